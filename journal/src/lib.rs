//! The group journal: one journal for all members of a consistency group.
//!
//! Every write to any member becomes one entry, tagged with its member, in one total order
//! (`rbd_cg_contract::journal` has the format). This crate is the engine that the data path
//! (the NBD server), the control plane (enable, disable, replay, snapshots of journaled
//! groups) and the mirror daemon share:
//!
//! - [`reader`]: entries in order, every checksum verified; corruption stops with `EBADMSG`.
//! - [`apply`]: entries applied to member images, per-object in journal order, in parallel
//!   across objects; the applied position is always a prefix.
//! - [`lease`]: the writer lease (one writer per group, a new epoch each time, dead writers
//!   blocklisted); [`members`]: the member images held by the writer (exclusive lock,
//!   RADOS-level writes).
//! - [`writer`]: the writer itself: submission in one order, group commit, acknowledgement
//!   when durable, background apply, reads that see every acknowledged write, snapshots at
//!   one journal position, recovery (replay) when it starts.
//! - [`trim`]: journal space freed behind the slowest consumer; laggards disconnected.
//!
//! Errors are [`rbd_cg_rados::RadosError`]: what failed and an errno.

#![forbid(unsafe_code)]

pub mod apply;
pub mod lease;
pub mod members;
pub mod reader;
pub mod stats;
pub mod trim;
pub mod writer;
