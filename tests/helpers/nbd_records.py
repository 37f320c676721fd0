#!/usr/bin/python3
"""Numbered records written to, and read back from, NBD exports with libnbd (python3-libnbd).

Used by tests/journal.rs against `rbd-cg nbd serve`, a real userspace NBD client.

  nbd_records.py chain ACK_LOG URI...     write record k to every URI in turn, each only
                                          after the previous one was acknowledged, for
                                          k = 0, 1, ... until killed or an error; log
                                          "k i" per acknowledged write (flushed)
  nbd_records.py count URI...             print, per URI, how many records 0.. are there
                                          in a row, and whether anything valid follows

A record is one 4 KiB block at offset k * 4096: magic, k, the URI index, a CRC32 of the
rest; a block of anything else is "no record" (zeros after a discard, or never written).
"""

import struct
import sys
import zlib

import nbd

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


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "chain":
        try:
            chain(sys.argv[2], sys.argv[3:])
        except nbd.Error as e:
            print(f"chain stopped: {e}", file=sys.stderr)
            sys.exit(3)
    elif len(sys.argv) >= 3 and sys.argv[1] == "count":
        count(sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
