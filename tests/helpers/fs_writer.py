#!/usr/bin/python3
"""Writes files into a mounted filesystem until it fails, logging each one once it is durable.

  fs_writer.py DIR LOG

File i is 16..256 KiB of pseudo-random bytes; after writing it, the file and DIR are
fsync'ed, and only then "NAME SHA256" is appended to LOG (which lives elsewhere, fsync'ed
too). Whatever LOG lists must survive a crash of the block device's server: that is what
fsync promised. Used by tests/journal.rs (ext4 on a member served by `rbd-cg nbd serve`).
"""

import hashlib
import os
import random
import sys


def main():
    directory, log_path = sys.argv[1], sys.argv[2]
    rng = random.Random(7)
    dir_fd = os.open(directory, os.O_RDONLY)
    with open(log_path, "a") as log:
        i = 0
        while True:
            data = rng.randbytes(rng.randint(16, 256) * 1024)
            name = f"f{i:06d}"
            try:
                fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, data)
                os.fsync(fd)
                os.close(fd)
                os.fsync(dir_fd)
            except OSError as e:
                print(f"stopped at {name}: {e}", file=sys.stderr)
                return
            log.write(f"{name} {hashlib.sha256(data).hexdigest()}\n")
            log.flush()
            os.fsync(log.fileno())
            i += 1


if __name__ == "__main__":
    main()
