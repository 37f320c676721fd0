#!/usr/bin/python3
"""Numbered records written to, and read back from, NBD exports with libnbd (python3-libnbd).

Used by tests/journal.rs against `rbd-cg nbd serve`, a real userspace NBD client.

  nbd_records.py chain ACK_LOG URI...     write record k to every URI in turn, each only
                                          after the previous one was acknowledged, for
                                          k = 0, 1, ... until killed or an error; log
                                          "k i" per acknowledged write (flushed)
  nbd_records.py count URI...             print, per URI, how many records 0.. are there
                                          in a row, and whether anything valid follows
  nbd_records.py count-rbd POOL NS IMAGE...
                                          the same, read from RBD images through librbd
                                          (python3-rbd, the cluster of $CEPH_CONF): a
                                          mirror's copy, which no NBD server serves

A record is one 4 KiB block at offset k * 4096: magic, k, the URI index, a CRC32 of the
rest; a block of anything else is "no record" (zeros after a discard, or never written).
"""

import struct
import sys
import zlib

try:
    import nbd
except ImportError:  # count-rbd needs only python3-rbd
    nbd = None

BLOCK = 4096
MAGIC = b"RBDCGREC"


def record(k, index):
    body = MAGIC + struct.pack("<QQ", k, index)
    body += bytes((k * 131 + index * 7 + i) & 0xFF for i in range(BLOCK - len(body) - 4))
    return body + struct.pack("<I", zlib.crc32(body))


def is_record(block, k, index):
    return len(block) == BLOCK and block == record(k, index)


def connect(uri):
    handle = nbd.NBD()
    handle.connect_uri(uri)
    return handle


def chain(ack_log, uris):
    handles = [connect(u) for u in uris]
    limit = min(h.get_size() for h in handles) // BLOCK
    with open(ack_log, "a", buffering=1) as log:
        for k in range(limit):
            for index, handle in enumerate(handles):
                handle.pwrite(record(k, index), k * BLOCK)
                log.write(f"{k} {index}\n")
    for handle in handles:
        handle.shutdown()


def count(uris):
    for index, uri in enumerate(uris):
        handle = connect(uri)
        limit = handle.get_size() // BLOCK
        n = 0
        while n < limit and is_record(handle.pread(BLOCK, n * BLOCK), n, index):
            n += 1
        # Nothing valid may follow the first gap: a later record without an earlier one
        # means the order was broken.
        stray = any(is_record(handle.pread(BLOCK, k * BLOCK), k, index) for k in range(n + 1, min(limit, n + 64)))
        handle.shutdown()
        print(f"{n} {int(stray)}")


def count_rbd(pool, namespace, images):
    import rados
    import rbd

    cluster = rados.Rados(conffile="")
    cluster.connect()
    try:
        ioctx = cluster.open_ioctx(pool)
        ioctx.set_namespace(namespace)
        # Last member first: while a copy changes under us, a later member read earlier
        # can only look behind, never ahead, of an earlier member read later.
        results = {}
        for index, name in reversed(list(enumerate(images))):
            with rbd.Image(ioctx, name, read_only=True) as image:
                limit = image.size() // BLOCK
                # One object (4 MiB, 1024 records) per read: a read within one RADOS
                # object sees one state of it, even while a mirror applies entries; a gap
                # and a record after it are only compared within one such read.
                n, stray, k = 0, False, 0
                piece = 1024
                while k < limit:
                    data = image.read(k * BLOCK, min(piece, limit - k) * BLOCK)
                    gap = None
                    for i in range(len(data) // BLOCK):
                        ok = is_record(data[i * BLOCK:(i + 1) * BLOCK], k + i, index)
                        if gap is None and ok:
                            n += 1
                        elif gap is None:
                            gap = k + i
                        elif ok and k + i < gap + 64:
                            stray = True
                    if gap is not None:
                        break
                    k += piece
                results[index] = (n, stray)
        for index in range(len(images)):
            n, stray = results[index]
            print(f"{n} {int(stray)}")
        ioctx.close()
    finally:
        cluster.shutdown()


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "chain":
        try:
            chain(sys.argv[2], sys.argv[3:])
        except nbd.Error as e:
            print(f"chain stopped: {e}", file=sys.stderr)
            sys.exit(3)
    elif len(sys.argv) >= 3 and sys.argv[1] == "count":
        count(sys.argv[2:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "count-rbd":
        count_rbd(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
