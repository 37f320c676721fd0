"""Backend errors reach the client as NBD errors; other requests are unaffected.

usage: faults.py URI ERRNAME OFFSET
"""
import sys

from nbdtest import expect, lax

h = lax(sys.argv[1])
name, off = sys.argv[2], int(sys.argv[3])
expect(name, h.pread, 4096, off)
expect(name, h.pwrite, b"z" * 4096, off)
expect(name, h.trim, 4096, off)
h.pwrite(b"w" * 4096, off + 65536)
assert h.pread(4096, off + 65536) == b"w" * 4096
h.flush()
h.shutdown()
print("ok")
