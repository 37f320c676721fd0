"""Cinder volume driver: RBD with crash-consistent consistency groups.

``volume_driver = rbd_cg_cinder.driver.RBDConsistencyGroupDriver`` (see docs/CINDER.md).
The driver module is not imported here, so importing this package does not import cinder.
"""

__version__ = "0.1.0"
