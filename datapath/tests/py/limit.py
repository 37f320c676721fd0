"""max_connections: N clients are served, the next is refused, a freed slot is reused.

usage: limit.py URI N
"""
import sys
import time

import nbd

uri, n = sys.argv[1], int(sys.argv[2])
hs = []
for i in range(n):
    h = nbd.NBD()
    h.connect_uri(uri)
    hs.append(h)
for i in range(3):
    extra = nbd.NBD()
    try:
        extra.connect_uri(uri)
    except nbd.Error:
        pass
    else:
        raise AssertionError(f"connection {n + i + 1} beyond the limit of {n} was served")
# Every admitted client still works.
for i, h in enumerate(hs):
    h.pwrite(bytes([i + 1]) * 512, i * 512)
for i, h in enumerate(hs):
    assert h.pread(512, i * 512) == bytes([i + 1]) * 512
hs.pop().shutdown()
deadline = time.time() + 5
while True:
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
        break
    except nbd.Error:
        assert time.time() < deadline, "freed slot not reused"
        time.sleep(0.05)
assert h.pread(512, 0) == b"\x01" * 512
print("ok")
