//! The data path of rbd_cg: block I/O from clients, served over NBD ([`nbd`], a protocol
//! server generic over its storage backend), onto a group's members ([`exports`]): through
//! the group journal (`rbd_cg_journal`) when the group journals, straight through librbd
//! otherwise. [`serve`] is `rbd-cg nbd serve`.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod exports;
pub mod nbd;
pub mod serve;
