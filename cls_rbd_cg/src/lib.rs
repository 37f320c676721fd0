//! `rbd_cg`: a Ceph RADOS object class for RBD consistency groups, in Rust.
//!
//! The OSD loads `libcls_rbd_cg.so` from `osd_class_dir`, calls [`__cls_init`], and from
//! then on runs our methods inside its op threads, each on one object, each as one atomic
//! transaction: either every write of a method lands or none does. That is what makes
//! the single-object steps of the client's multi-object operations safe.
//!
//! Layout of the crate, from the outside in:
//! - `osd` (not built for unit tests): the only `unsafe` code on this side. The entry
//!   point, one `extern "C"` trampoline per method with a panic guard, the [`ObjectStore`]
//!   over the C++ shim, and a `log` backend writing to the OSD log through `cls_log`.
//! - [`methods`]: the one registration table: method descriptor from the contract →
//!   handler. Names and RD/WR flags come from `rbd_cg_contract`, so they cannot drift.
//! - [`handlers`]: plain safe functions `fn(&mut dyn ObjectStore, Request) -> Result<…>`.
//! - [`store`]: the small storage trait the handlers see, plus [`store::MemStore`], an
//!   in-memory implementation with the OSD's transaction semantics for unit tests.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod handlers;
pub mod methods;
pub mod store;

#[cfg(not(test))]
mod osd;

pub use store::ObjectStore;

/// The OSD's entry point: registers the class and its methods. Nothing else is exported.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn __cls_init() {
    osd::init(methods::METHODS);
}
