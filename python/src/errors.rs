//! The exception classes, and how a client error or a panic becomes one.
//!
//! The classes subclass `OSError`, so `errno`/`strerror` come for free from
//! `OSError(errno, message)`. Under the stable ABI (abi3) a Rust `#[pyclass]` cannot
//! extend `OSError` (its instance layout is private before Python 3.12), so they are
//! defined by the few lines of Python in [`CLASSES`], run once when the module is
//! imported; their type objects are kept in [`TYPES`] to raise them from Rust.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use rbd_cg_client::Error;
use std::any::Any;

/// Defines `Error` and its subclasses in a dict whose `__name__` is `rbd_cg`.
const CLASSES: &std::ffi::CStr = cr#"
class Error(OSError):
    """Base class of every error of the rbd_cg module.

    args is (errno, message): errno is the positive errno and strerror the client's
    message (what failed, the errno and its text, then advice on a second line if there
    is some). str(e) is that message. Errnos without a subclass of their own raise Error.
    """

    def __str__(self):
        return str(self.strerror) if self.strerror is not None else OSError.__str__(self)

class ObjectNotFound(Error):
    """ENOENT: no such group, snapshot, image or pool."""

class ObjectExists(Error):
    """EEXIST: a group, snapshot or image of that name exists already."""

class ImageBusy(Error):
    """EBUSY: the group is not empty, an interrupted operation must be finished first
    (rerun it or Groups.repair), a snapshot or rollback is in progress, or a member's lock
    could not be taken."""

class PermissionError(Error):
    """EPERM or EACCES: the cephx user's caps do not allow this."""

class InvalidArgument(Error):
    """EINVAL: a bad name or spec, a conflicting option, or a member that cannot be fenced."""

class ArgumentOutOfRange(Error):
    """ERANGE (or EDOM): a value too large or out of range."""

class ReadOnlyImage(Error):
    """EROFS: an image is read-only."""

class Timeout(Error):
    """ETIMEDOUT: e.g. fencing the members took longer than fence_timeout."""

class IOError(Error):
    """EIO: an I/O error, a malformed reply, or an internal error of the binding."""

class OperationNotSupported(Error):
    """EOPNOTSUPP: the OSDs' rbd_cg class is missing or too old, or an image has a feature
    group snapshots do not support."""

class NoSpace(Error):
    """ENOSPC: the cluster is full."""
"#;

/// Class names in [`CLASSES`], the base first, and the errnos each one stands for.
pub(crate) const NAMES: [(&str, &[i32]); 12] = [
    ("Error", &[]),
    ("ObjectNotFound", &[libc::ENOENT]),
    ("ObjectExists", &[libc::EEXIST]),
    ("ImageBusy", &[libc::EBUSY]),
    ("PermissionError", &[libc::EPERM, libc::EACCES]),
    ("InvalidArgument", &[libc::EINVAL]),
    ("ArgumentOutOfRange", &[libc::ERANGE, libc::EDOM]),
    ("ReadOnlyImage", &[libc::EROFS]),
    ("Timeout", &[libc::ETIMEDOUT]),
    ("IOError", &[libc::EIO]),
    ("OperationNotSupported", &[libc::EOPNOTSUPP]),
    ("NoSpace", &[libc::ENOSPC]),
];

/// The class objects, in the order of [`NAMES`].
static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// Defines the classes and adds them to module `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let types = TYPES.get_or_try_init(py, || -> PyResult<_> {
        let namespace = PyDict::new(py);
        namespace.set_item("__name__", "rbd_cg")?;
        py.run(CLASSES, Some(&namespace), None)?;
        NAMES
            .iter()
            .map(|(name, _)| {
                let class = namespace.get_item(name)?.ok_or_else(|| {
                    pyo3::exceptions::PySystemError::new_err(format!("rbd_cg: class {name} was not defined"))
                })?;
                Ok(class.cast_into::<PyType>()?.unbind())
            })
            .collect()
    })?;
    for ((name, _), class) in NAMES.iter().zip(types) {
        m.add(*name, class.bind(py))?;
    }
    Ok(())
}

/// The index in [`NAMES`] of the class for `errno` (0, the base, when none is specific).
fn class_index(errno: i32) -> usize {
    NAMES.iter().position(|(_, errnos)| errnos.contains(&errno)).unwrap_or(0)
}

/// The exception for a client error: `Class(errno, message)`.
pub(crate) fn to_pyerr(py: Python<'_>, error: &Error) -> PyErr {
    raise(py, error.errno(), error.to_string())
}

/// `Class(errno, message)`, the class chosen by errno.
pub(crate) fn raise(py: Python<'_>, errno: i32, message: String) -> PyErr {
    match TYPES.get(py) {
        Some(types) => PyErr::from_type(types[class_index(errno)].bind(py).clone(), (errno, message)),
        // Unreachable once the module is initialised; never panic for it.
        None => PyErr::new::<pyo3::exceptions::PyOSError, _>((errno, message)),
    }
}

/// What went wrong in a call made without the GIL: a client error, or a panic (a bug)
/// caught before it could unwind into Python.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The client reported an error.
    Client(Error),
    /// Rust code panicked with this message.
    Panic(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Client(error)
    }
}

impl Failure {
    /// A panic payload's message.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
            (Some(text), _) => (*text).to_owned(),
            (None, Some(text)) => text.clone(),
            (None, None) => "(no message)".to_owned(),
        };
        Failure::Panic(message)
    }

    /// The Python exception: the client error's class, or `IOError` (EIO) for a panic.
    pub(crate) fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Client(error) => to_pyerr(py, &error),
            Failure::Panic(message) => raise(
                py,
                libc::EIO,
                format!("internal error in rbd_cg (a bug; please report it): panic: {message}: (5) Input/output error"),
            ),
        }
    }
}

/// An `EINVAL` error for a bad argument given to the binding.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(message, libc::EINVAL)
}

/// An `ERANGE` error for an argument out of range.
pub(crate) fn out_of_range(message: impl Into<String>) -> Error {
    Error::new(message, libc::ERANGE)
}
