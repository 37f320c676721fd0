#!/usr/bin/python3
"""Dependent writer for the crash-consistency test of group snapshots.

Round n = 1, 2, ... writes the little-endian u64 n (padded to 4 KiB) at offset 0 of
each IMAGE in order, synchronously, so image i+1 only gets n after image i has it.
A crash-consistent group snapshot of images A, B, C must therefore read back
values with A >= B >= C >= A - 1.

Write errors are counted, not fatal (first 5 kept as samples). A JSON status file
(rounds, errors, max_write_ms, error_samples, done) is replaced atomically after each
round (at most every ~50 ms) and once more at exit with done=true (also printed).
Stops on SIGTERM/SIGINT or when --stop FILE exists.

Needs Debian's python3-rados/python3-rbd, hence /usr/bin/python3. Example:
  tests/helpers/fencing_writer.py --status /tmp/w.json --stop /tmp/w.stop \
      --conf-set rbd_cache=false a b c
"""
import argparse
import json
import os
import signal
import struct
import sys
import time

import rados
import rbd

stopping = False


def on_signal(signum, frame):
    global stopping
    stopping = True


def write_status(path, status):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(status, f)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--conf', default=os.environ.get('CEPH_CONF'), help='default $CEPH_CONF')
    p.add_argument('--pool', default='rbd')
    p.add_argument('--namespace', default='')
    p.add_argument('--status', required=True, help='JSON status file (replaced atomically)')
    p.add_argument('--stop', help='stop when this file exists')
    p.add_argument('--conf-set', action='append', default=[], metavar='KEY=VALUE')
    p.add_argument('--lock-exclusive', action='store_true',
                   help='lock_acquire(EXCLUSIVE) on every image before writing')
    p.add_argument('images', nargs='+', metavar='IMAGE')
    args = p.parse_args()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    cluster = rados.Rados()
    cluster.conf_read_file(args.conf)  # None: $CEPH_CONF, /etc/ceph/ceph.conf, ...
    for kv in args.conf_set:
        key, _, value = kv.partition('=')
        cluster.conf_set(key, value)
    cluster.connect()
    ioctx = cluster.open_ioctx(args.pool)
    ioctx.set_namespace(args.namespace)
    images = [rbd.Image(ioctx, name) for name in args.images]
    if args.lock_exclusive:
        for image in images:
            image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)

    status = {'rounds': 0, 'errors': 0, 'max_write_ms': 0.0,
              'error_samples': [], 'done': False}
    last_status = 0.0
    n = 0
    try:
        while not stopping and not (args.stop and os.path.exists(args.stop)):
            n += 1
            data = struct.pack('<Q', n).ljust(4096, b'\0')
            for name, image in zip(args.images, images):
                t0 = time.monotonic()
                try:
                    image.write(data, 0)
                except Exception as e:
                    status['errors'] += 1
                    msg = '%s round %d: %s: %s' % (name, n, type(e).__name__, e)
                    if len(status['error_samples']) < 5:
                        status['error_samples'].append(msg)
                        print(msg, file=sys.stderr, flush=True)
                ms = (time.monotonic() - t0) * 1000.0
                status['max_write_ms'] = max(status['max_write_ms'], ms)
            status['rounds'] = n
            now = time.monotonic()
            if now - last_status >= 0.05:
                write_status(args.status, status)
                last_status = now
    finally:
        for image in images:
            image.close()
        ioctx.close()
        cluster.shutdown()
        status['done'] = True
        write_status(args.status, status)
        print(json.dumps(status), flush=True)


if __name__ == '__main__':
    main()
