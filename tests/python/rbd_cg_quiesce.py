"""An in-process RBD quiesce hook (``rbd_quiesce_watch``, as rbd-nbd registers one).

python3-rbd (Pacific) has no quiesce_watch, so this goes through librbd's C API with
ctypes, like ``tests/helpers/quiesce_hook.py`` but inside the test process: its callbacks
are Python code, run on librbd's threads, so they need the GIL. A group snapshot taken
from this process can only see the hook answer while it runs if the binding released
the GIL for the call.
"""

import ctypes
import threading
import time

CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _check(r, what):
    if r < 0:
        raise OSError(-r, f"{what} failed")


class QuiesceHook:
    """Watches ``pool/image`` for quiesce requests; ``events`` lists ``(name, time)``."""

    def __init__(self, conffile, pool, image, on_quiesce=None):
        self.events = []
        self._lock = threading.Lock()
        self._on_quiesce = on_quiesce
        self._rados = ctypes.CDLL("librados.so.2")
        self._rbd = ctypes.CDLL("librbd.so.1")
        vp, u64 = ctypes.c_void_p, ctypes.c_uint64
        lr, lb = self._rados, self._rbd
        lr.rados_create2.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p, ctypes.c_char_p, u64]
        lr.rados_conf_read_file.argtypes = [vp, ctypes.c_char_p]
        lr.rados_connect.argtypes = [vp]
        lr.rados_ioctx_create.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp)]
        lr.rados_ioctx_destroy.argtypes = [vp]
        lr.rados_ioctx_destroy.restype = None
        lr.rados_shutdown.argtypes = [vp]
        lr.rados_shutdown.restype = None
        lb.rbd_open.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp), ctypes.c_char_p]
        lb.rbd_close.argtypes = [vp]
        lb.rbd_quiesce_watch.argtypes = [vp, CALLBACK, CALLBACK, vp, ctypes.POINTER(u64)]
        lb.rbd_quiesce_complete.argtypes = [vp, u64, ctypes.c_int]
        lb.rbd_quiesce_complete.restype = None
        lb.rbd_quiesce_unwatch.argtypes = [vp, u64]

        self._cluster, self._ioctx, self._image, self._handle = vp(), vp(), vp(), u64()
        _check(lr.rados_create2(ctypes.byref(self._cluster), b"ceph", b"client.admin", 0), "rados_create2")
        _check(lr.rados_conf_read_file(self._cluster, conffile.encode()), "rados_conf_read_file")
        _check(lr.rados_connect(self._cluster), "rados_connect")
        _check(lr.rados_ioctx_create(self._cluster, pool.encode(), ctypes.byref(self._ioctx)), "rados_ioctx_create")
        _check(lb.rbd_open(self._ioctx, image.encode(), ctypes.byref(self._image), None), "rbd_open")
        # Referenced for as long as the watch exists.
        self._callbacks = (CALLBACK(self._quiesce), CALLBACK(self._unquiesce))
        _check(
            lb.rbd_quiesce_watch(self._image, self._callbacks[0], self._callbacks[1], None, ctypes.byref(self._handle)),
            "rbd_quiesce_watch",
        )

    def _event(self, name):
        with self._lock:
            self.events.append((name, time.time()))

    def _quiesce(self, _arg):  # on a librbd thread, with the GIL
        self._event("quiesce")
        if self._on_quiesce:
            self._on_quiesce()
        self._rbd.rbd_quiesce_complete(self._image, self._handle.value, 0)

    def _unquiesce(self, _arg):
        self._event("unquiesce")

    def close(self):
        self._rbd.rbd_quiesce_unwatch(self._image, self._handle.value)
        self._rbd.rbd_close(self._image)
        self._rados.rados_ioctx_destroy(self._ioctx)
        self._rados.rados_shutdown(self._cluster)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
