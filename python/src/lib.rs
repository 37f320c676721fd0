//! `rbd_cg`: the Python binding of [`rbd_cg_client`], consistency groups for Ceph RBD.
//!
//! A pure-Rust extension module built with PyO3 against the stable ABI (abi3, CPython
//! 3.9 and newer) and packaged by maturin (`python/pyproject.toml`); the typed API, with
//! every docstring, is `python/rbd_cg.pyi`, shipped in the wheel.
//!
//! * `cluster`: `Cluster`, one librados connection; `groups`: `Groups`, the API of
//!   one pool and namespace; `compat`: python3-rbd's group API (`RBD`, `Group`) on
//!   top of them; `errors`: the `OSError` subclasses raised by errno;
//!   `convert`: results as plain dicts, arguments as the client's types.
//! * **No `unsafe` here** (`forbid(unsafe_code)`): every FFI call, and the reasoning
//!   that makes it sound, lives in `rbd_cg_rados`, under `rbd_cg_client`. This
//!   crate only moves values between Python and that safe API, so a mistake here can
//!   raise a wrong exception but not corrupt memory.
//! * **The GIL is released** around every call into the client (`unblocked`): the
//!   calls block on the network, sometimes for seconds (a fenced snapshot), and other
//!   Python threads must keep running meanwhile.
//! * **Any thread**: `Cluster` and `Groups` are `Send + Sync` (no `unsendable`), since
//!   Cinder calls drivers from eventlet green threads and offloads blocking calls to
//!   native threads with `eventlet.tpool`. See `groups` for how the client's
//!   non-`Sync` I/O context is shared.
//! * **Panics** are caught (the workspace never builds with `panic = "abort"`) and raised
//!   as `rbd_cg.IOError` (EIO); they never unwind into the interpreter or abort it.
#![forbid(unsafe_code)]

mod cluster;
mod compat;
mod convert;
mod errors;
mod groups;

use errors::Failure;
use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f` with the GIL released, catching panics; its error becomes the exception.
pub(crate) fn unblocked<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Failure> + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(Failure::from_panic(payload))))
        .map_err(|failure| failure.into_pyerr(py))
}

/// `rbd_cg._panic_for_tests(message)`: panics where a client call would run, to prove
/// that a panic is raised as `rbd_cg.IOError` rather than aborting the interpreter. Not
/// part of the API (hence the underscore and its absence from the stubs).
#[cfg(feature = "test-panic")]
#[pyfunction]
fn _panic_for_tests(py: Python<'_>, message: String) -> PyResult<()> {
    unblocked(py, move || -> Result<(), Failure> { panic!("{message}") })
}

/// The module: `Cluster`, `Groups`, the exception classes, python3-rbd's group API
/// (`RBD`, `Group` and its constants) and `__version__`.
#[pymodule]
fn rbd_cg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<cluster::Cluster>()?;
    m.add_class::<groups::Groups>()?;
    compat::register(m)?;
    #[cfg(feature = "test-panic")]
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
