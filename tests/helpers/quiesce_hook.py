#!/usr/bin/python3
"""Quiesce hook: register an RBD quiesce watch on one image, like rbd-nbd does.

python3-rbd (Pacific) has no quiesce_watch, so this goes through librbd's C API
with ctypes: rbd_quiesce_watch(image, quiesce_cb, unquiesce_cb, arg, &handle).
The quiesce callback answers at once with rbd_quiesce_complete(image, handle,
-ERRNO), ERRNO from --fail-with (default 0 = success).

Appends one line per event to --events FILE (flushed): "ready <time>" once the
watch is registered, then "quiesce <time>" / "unquiesce <time>" from the callbacks.
Runs until SIGTERM/SIGINT or until --stop FILE exists; then unwatches and closes.

Example (Debian python for consistency with the other helpers; only ctypes used):
  tests/helpers/quiesce_hook.py --events /tmp/q.events --fail-with 22 a &
  rbd snap create rbd/a@s1        # fails: EINVAL from the hook
  rbd snap create --ignore-quiesce-error rbd/a@s1   # succeeds
"""
import argparse
import ctypes
import os
import signal
import threading
import time

stopping = threading.Event()
CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # rbd_update_callback_t: void cb(void *arg)


def check(r, what):
    if r < 0:
        raise OSError(-r, '%s: %s' % (what, os.strerror(-r)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--conf', default=os.environ.get('CEPH_CONF'), help='default $CEPH_CONF')
    p.add_argument('--pool', default='rbd')
    p.add_argument('--namespace', default='')
    p.add_argument('--events', required=True, help='append event lines here')
    p.add_argument('--stop', help='stop when this file exists')
    p.add_argument('--fail-with', type=int, default=0, metavar='ERRNO',
                   help='answer quiesce requests with -ERRNO (default 0: success)')
    p.add_argument('image', metavar='IMAGE')
    args = p.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    librados = ctypes.CDLL('librados.so.2')
    librbd = ctypes.CDLL('librbd.so.1')
    vp, u64 = ctypes.c_void_p, ctypes.c_uint64
    librados.rados_create2.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p, ctypes.c_char_p, u64]
    librados.rados_conf_read_file.argtypes = [vp, ctypes.c_char_p]
    librados.rados_connect.argtypes = [vp]
    librados.rados_ioctx_create.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp)]
    librados.rados_ioctx_set_namespace.argtypes = [vp, ctypes.c_char_p]
    librados.rados_ioctx_set_namespace.restype = None
    librados.rados_ioctx_destroy.argtypes = [vp]
    librados.rados_ioctx_destroy.restype = None
    librados.rados_shutdown.argtypes = [vp]
    librados.rados_shutdown.restype = None
    librbd.rbd_open.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp), ctypes.c_char_p]
    librbd.rbd_close.argtypes = [vp]
    librbd.rbd_quiesce_watch.argtypes = [vp, CALLBACK, CALLBACK, vp, ctypes.POINTER(u64)]
    librbd.rbd_quiesce_complete.argtypes = [vp, u64, ctypes.c_int]
    librbd.rbd_quiesce_complete.restype = None
    librbd.rbd_quiesce_unwatch.argtypes = [vp, u64]

    events = open(args.events, 'a')
    lock = threading.Lock()

    def event(name):
        with lock:
            events.write('%s %.6f\n' % (name, time.time()))
            events.flush()

    cluster, ioctx, image, handle = vp(), vp(), vp(), u64()
    check(librados.rados_create2(ctypes.byref(cluster), b'ceph', b'client.admin', 0), 'rados_create2')
    # NULL path: librados' default search ($CEPH_CONF, /etc/ceph/ceph.conf, ...)
    check(librados.rados_conf_read_file(cluster, args.conf and args.conf.encode()),
          'rados_conf_read_file')
    check(librados.rados_connect(cluster), 'rados_connect')
    check(librados.rados_ioctx_create(cluster, args.pool.encode(), ctypes.byref(ioctx)),
          'rados_ioctx_create')
    librados.rados_ioctx_set_namespace(ioctx, args.namespace.encode())
    check(librbd.rbd_open(ioctx, args.image.encode(), ctypes.byref(image), None), 'rbd_open')

    def on_quiesce(arg):  # runs on a librbd thread
        event('quiesce')
        librbd.rbd_quiesce_complete(image, handle.value, -args.fail_with)

    def on_unquiesce(arg):
        event('unquiesce')

    # keep the ctypes callback objects referenced for as long as the watch exists
    callbacks = (CALLBACK(on_quiesce), CALLBACK(on_unquiesce))
    check(librbd.rbd_quiesce_watch(image, callbacks[0], callbacks[1], None, ctypes.byref(handle)),
          'rbd_quiesce_watch')
    event('ready')
    try:
        while not stopping.wait(0.1):
            if args.stop and os.path.exists(args.stop):
                break
    finally:
        check(librbd.rbd_quiesce_unwatch(image, handle.value), 'rbd_quiesce_unwatch')
        librbd.rbd_close(image)
        librados.rados_ioctx_destroy(ioctx)
        librados.rados_shutdown(cluster)
        events.close()


if __name__ == '__main__':
    main()
