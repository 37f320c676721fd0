//! Client for `rbd_cg` consistency groups: a Rust API and the `rbd-cg` CLI.
//!
//! The class inside the OSD makes every single-object change atomic; this crate drives
//! the multi-object operations as documented sequences of such steps ([`groups`]), talks
//! to the cluster through librados ([`rados`], over bindgen bindings fenced in the private `sys` module),
//! and reports failures with an errno like every Ceph tool ([`Error`]).
//!
//! ```no_run
//! use rbd_cg_client::{rados::{Cluster, ConnectOptions}, spec::PoolSpec, groups::Groups};
//! let cluster = Cluster::connect(&ConnectOptions::default())?;
//! let groups = Groups::open(&cluster, &PoolSpec::parse("rbd")?)?;
//! groups.create("db")?;
//! println!("{:?}", groups.info("db")?);
//! groups.remove("db")?;
//! # Ok::<(), rbd_cg_client::Error>(())
//! ```

pub mod class;
pub mod clone;
pub mod error;
pub mod faults;
pub mod fence;
pub mod groups;
pub mod members;
pub mod parallel;
pub mod progress;
pub mod rados;
pub mod rbd;
pub mod snapshots;
pub mod spec;
mod sys;

pub use error::{Error, Result};
