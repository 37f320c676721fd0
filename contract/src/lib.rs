//! The contract between the `rbd_cg` object class (inside the OSD) and its client.
//!
//! Everything both sides must agree on lives here and only here, so that the two can
//! never drift apart: the names of RADOS objects and omap keys ([`names`]), the stored
//! records ([`records`]), the class methods with their request/response types and their
//! read/write flags ([`methods`]), the errno mapping ([`error`]) and the versioned
//! binary encoding ([`encoding`]). This crate has no FFI and no I/O; the byte layout of
//! every record and request is pinned by golden tests (`tests/golden.rs`) and written
//! down in `docs/FORMAT.md`.

#![forbid(unsafe_code)]

pub mod encoding;
pub mod error;
pub mod history;
pub mod journal;
pub mod methods;
pub mod mirror;
pub mod names;
pub mod records;

pub use encoding::{decode, encode, Versioned};
pub use error::CgError;

/// Name under which the OSD registers the class (`libcls_rbd_cg.so` → `rbd_cg`).
pub const CLASS_NAME: &str = "rbd_cg";

/// Version of the class implementation, reported by the `get_version` method.
pub const CLASS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Protocol versions this build speaks. A client checks on first use that its own
/// protocol version lies inside the class's `[PROTOCOL_MIN, PROTOCOL_MAX]`.
pub const PROTOCOL_MIN: u16 = 1;
/// See [`PROTOCOL_MIN`].
pub const PROTOCOL_MAX: u16 = 1;
