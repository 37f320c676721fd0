"""Out-of-range and refused requests get the right errors and the connection goes on.

usage: bounds.py URI_RW URI_RO
"""
import sys

import nbd
from nbdtest import expect, lax

h = lax(sys.argv[1])
size = h.get_size()
expect("EINVAL", h.pread, 4096, size - 1024)
expect("EINVAL", h.pread, 512, size)
expect("EINVAL", h.pread, 512, 2**63)
expect("ENOSPC", h.pwrite, b"x" * 4096, size - 1)
expect("EINVAL", h.trim, 4096, size)
expect("ENOSPC", h.zero, 4096, size)
expect("EINVAL", h.pread, 32 * 1024 * 1024 + 1, 0)  # over the advertised maximum block size
# The connection still works, and the data is right.
h.pwrite(b"\x5a" * 4096, 8192, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b"\x5a" * 4096
h.flush()
h.zero(4096, 8192, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, 8192) == bytes(4096)
assert len(h.pread(1, size - 1)) == 1  # the last byte is in range
h.shutdown()

ro = lax(sys.argv[2])
assert ro.is_read_only()
expect("EPERM", ro.pwrite, b"y" * 512, 0)
expect("EPERM", ro.trim, 512, 0)
expect("EPERM", ro.zero, 512, 0)
assert ro.pread(512, 0) == bytes(512)
ro.shutdown()
print("ok")
