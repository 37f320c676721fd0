"""Many writes in flight, then the test shuts the server down: print which were acked.

usage: shutdown.py URI COUNT
Prints SUBMITTED once the writes are queued, then (after the server closed) a line with the
indices of the writes the server acknowledged, space-separated.
"""
import sys
import time

import nbd

uri, count = sys.argv[1], int(sys.argv[2])
h = nbd.NBD()
h.connect_uri(uri)
bufs, cookies = [], []
for i in range(count):
    b = nbd.Buffer.from_bytearray(bytearray([i % 251 + 1]) * 4096)
    bufs.append(b)
    cookies.append(h.aio_pwrite(b, i * 4096))
print("SUBMITTED", flush=True)
deadline = time.time() + 30
while h.aio_in_flight() > 0 and time.time() < deadline:
    try:
        h.poll(100)
    except nbd.Error:
        break  # the server closed the connection
acked = []
for i, c in enumerate(cookies):
    try:
        if h.aio_command_completed(c):
            acked.append(i)
    except nbd.Error:
        pass
print("ACKED", " ".join(map(str, acked)), flush=True)
