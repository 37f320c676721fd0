//! The control plane of `rbd_cg` consistency groups: every multi-object operation on
//! groups, members and group snapshots, as a Rust API (the `rbd-cg` CLI, the Python
//! binding and the Cinder driver sit on it).
//!
//! The class inside the OSD makes every single-object change atomic; this crate drives the
//! multi-object operations as documented sequences of such steps (`docs/OPERATIONS.md`),
//! each in its own module: [`groups`] (create, info, list, rename, remove, repair),
//! [`members`], [`snapshots`] (create, remove, rollback, repair), [`clone`], and the
//! writer fence that makes group snapshots crash-consistent (`fence`). Lookups shared by
//! them are in `lookup` (groups) and `images` (member images); [`image_groups`] answers
//! which groups an image belongs to; [`class_versions`] which class version each OSD runs. Talking to Ceph is `rbd_cg_rados`'s job; this crate
//! has no `unsafe` code. Failures carry an errno like every Ceph tool's ([`Error`]).
//!
//! ```no_run
//! use rbd_cg_client::{groups::Groups, spec::PoolSpec};
//! use rbd_cg_rados::{Cluster, ConnectOptions};
//! let cluster = Cluster::connect(&ConnectOptions::default())?;
//! let groups = Groups::open(&cluster, &PoolSpec::parse("rbd")?)?;
//! groups.create("db")?;
//! println!("{:?}", groups.info("db")?);
//! groups.remove("db")?;
//! # Ok::<(), rbd_cg_client::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod class_versions;
pub mod clone;
pub mod error;
pub mod faults;
mod fence;
pub mod groups;
pub mod image_groups;
mod images;
pub mod journal;
mod lookup;
mod member_snaps;
pub mod members;
pub mod mirror;
pub mod parallel;
pub mod progress;
pub mod snapshots;
pub mod spec;

pub use error::{Error, Result};
