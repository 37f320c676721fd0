"""Constants shared by the binding's tests and their conftest (a module of its own, so
that no test imports ``conftest``, which another test directory may also have)."""

import os

POOL = os.environ.get("RBD_CG_TEST_POOL", "rbd")
IMAGE_SIZE = 8 << 20
