//! The data path of rbd_cg: what turns block I/O from clients into ordered requests for the
//! journaled Ceph backend. So far it holds the NBD protocol server ([`nbd`]), generic over
//! a storage backend; no Ceph is linked here.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod nbd;
