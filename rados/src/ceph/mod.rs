//! Stock Ceph's vocabulary, in one place: the names of RBD's objects, the `cls_rbd` and
//! `cls_lock` methods we call (typed descriptors, as [`crate::cls`] defines them), and
//! librbd's watch/notify messages on an image header.
//!
//! These are Ceph's formats, not ours (ours are in `rbd_cg_contract`). Every encoding
//! follows Ceph's `encoding.h` ([`encoding`]) and is pinned by golden bytes taken from
//! real librbd traffic or from Ceph's sources (`docs/FENCING-DESIGN.md` §1).

pub mod cls_lock;
pub mod cls_rbd;
pub mod encoding;
pub mod librbd_notify;
pub mod objects;
