"""Constants and helpers shared by the binding's tests and their conftest (a module of its
own, so that no test imports ``conftest``, which another test directory may also have)."""

import os

import rbd

POOL = os.environ.get("RBD_CG_TEST_POOL", "rbd")
IMAGE_SIZE = 8 << 20
BLOCK = 4096


def write(ioctx, image, byte):
    """Fills the first block of ``image`` with ``byte`` through plain librbd."""
    with rbd.Image(ioctx, image) as img:
        img.write(bytes([byte]) * BLOCK, 0)
        img.flush()


def read(ioctx, image):
    """The first block of ``image``, read through plain librbd."""
    with rbd.Image(ioctx, image, read_only=True) as img:
        return img.read(0, BLOCK)
