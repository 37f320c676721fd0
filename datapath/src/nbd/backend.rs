//! The seam between the protocol server and storage: [`ExportSet`].
//!
//! # Ordering contract
//!
//! The journal behind this trait must give every request a position in **one total order
//! equal to the order in which the server read the requests off its sockets**. So every
//! operation is split in two:
//!
//! 1. **Submission** — the synchronous `submit_*` call. The server makes it on the
//!    connection's reader as soon as a request (and, for a write, its whole payload) has
//!    been read and validated, and *before* it reads the next request from that
//!    connection. The backend takes the request's place in its order **inside this call**
//!    (e.g. assigns a sequence number, appends to an in-memory journal queue, or applies the
//!    write to an in-memory image). Submissions from different connections are made from
//!    different tasks and may run concurrently; the backend serialises them itself (a
//!    mutex or an atomic counter), and the order it picks is *the* order. Within one
//!    connection, submissions happen in wire order, one at a time.
//! 2. **Completion** — the returned future. The server awaits it (possibly polling it
//!    first with a no-op waker, then from a spawned task) and sends the reply only when it
//!    resolves. A write whose reply the client has seen has therefore completed; and since a
//!    client can only send request B "after A was acknowledged" by reading A's reply first,
//!    A's submission and completion both precede B's submission.
//!
//! Consequences a backend can rely on:
//! - `submit_*` never blocks on I/O: it must return promptly (it runs on the reader of a
//!   connection, and a slow submission stalls that connection). Expensive work belongs in
//!   the future.
//! - Futures are `'static + Send`: they must own what they need (clone an `Arc`).
//! - Futures are always driven to completion by the server, also during a graceful
//!   shutdown; the server never drops an in-flight future to cancel it (it may drop one
//!   only when the whole runtime goes away).
//! - `submit_flush` is ordered like any other request: it must cover (make durable) every
//!   write *completed* before it was submitted, as NBD requires; covering writes merely
//!   submitted before it is allowed.
//! - `fua` asks that the future resolve only once that request is durable.
//! - Offsets and lengths are already checked against the export's size, the export is
//!   writable for write-like calls, and lengths are non-zero: zero-length requests are
//!   answered by the server without calling the backend.
//!
//! [`MemBackend`](super::MemBackend) is the reference implementation.

use std::future::Future;
use std::pin::Pin;

use thiserror::Error;

/// The completion of a submitted request.
pub type IoFuture<T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'static>>;

/// Description of one export, as listed to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// Export name, UTF-8 without NUL, at most 4096 bytes (longer names are never matched).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Writes, trims and write-zeroes get `EPERM`; advertised with `NBD_FLAG_READ_ONLY`.
    pub read_only: bool,
    /// Human-readable description (`NBD_INFO_DESCRIPTION`, and the `NBD_OPT_LIST` entry).
    pub description: String,
    /// May `NBD_FLAG_CAN_MULTI_CONN` be advertised: a flush or FUA on one connection makes
    /// the writes completed on *every* connection durable and visible to all of them.
    pub multi_conn: bool,
}

impl ExportInfo {
    /// A writable export without description or multi-conn.
    pub fn new(name: impl Into<String>, size: u64) -> Self {
        ExportInfo { name: name.into(), size, read_only: false, description: String::new(), multi_conn: false }
    }

    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn multi_conn(mut self, multi_conn: bool) -> Self {
        self.multi_conn = multi_conn;
        self
    }
}

/// The NBD error values (the protocol's fixed numbering, not the host's errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum NbdErrno {
    Perm = 1,
    Io = 5,
    NoMem = 12,
    Inval = 22,
    NoSpc = 28,
    Overflow = 75,
    NotSup = 95,
    Shutdown = 108,
}

impl NbdErrno {
    /// The value sent in a reply's error field.
    pub fn wire(self) -> u32 {
        self as u32
    }

    /// Maps a host errno (either sign, as librados returns them negative) to the closest NBD
    /// error; anything without a counterpart is `EIO`.
    pub fn from_errno(errno: i32) -> Self {
        match errno.checked_abs().unwrap_or(0) {
            libc::EPERM | libc::EACCES | libc::EROFS => NbdErrno::Perm,
            libc::ENOMEM => NbdErrno::NoMem,
            libc::EINVAL | libc::ERANGE => NbdErrno::Inval,
            libc::ENOSPC | libc::EDQUOT | libc::EFBIG => NbdErrno::NoSpc,
            libc::EOVERFLOW => NbdErrno::Overflow,
            libc::EOPNOTSUPP | libc::ENOSYS => NbdErrno::NotSup,
            libc::ESHUTDOWN => NbdErrno::Shutdown,
            _ => NbdErrno::Io,
        }
    }
}

/// Why a backend operation failed; the server sends `kind` to the client and logs the rest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind:?}: {message}")]
pub struct BackendError {
    pub kind: NbdErrno,
    pub message: String,
}

impl BackendError {
    pub fn new(kind: NbdErrno, message: impl Into<String>) -> Self {
        BackendError { kind, message: message.into() }
    }

    /// From a host errno (either sign), e.g. a librbd return code.
    pub fn from_errno(errno: i32, context: impl Into<String>) -> Self {
        BackendError { kind: NbdErrno::from_errno(errno), message: context.into() }
    }
}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        let kind = e.raw_os_error().map_or(NbdErrno::Io, NbdErrno::from_errno);
        BackendError { kind, message: e.to_string() }
    }
}

/// A set of exports and the operations on them. See the module docs for the ordering
/// contract every `submit_*` method is bound by.
pub trait ExportSet: Send + Sync + 'static {
    /// What the server keeps per connection for the export it selected (e.g. an `Arc` of
    /// an open image).
    type Export: Send + Sync + 'static;

    /// Every export, for `NBD_OPT_LIST`.
    fn list(&self) -> Vec<ExportInfo>;

    /// Name of the export an empty name selects, if any.
    fn default_export(&self) -> Option<String> {
        None
    }

    /// The export called `name` (never empty: the server resolves the default first), for
    /// `NBD_OPT_INFO`. The default looks it up in [`list`](Self::list).
    fn info(&self, name: &str) -> Option<ExportInfo> {
        self.list().into_iter().find(|e| e.name == name)
    }

    /// Opens `name` for a connection entering transmission (`NBD_OPT_GO`,
    /// `NBD_OPT_EXPORT_NAME`). `None`: no such export. The returned info is what the client
    /// is told (size, read-only, multi-conn) and what requests are checked against.
    fn open(&self, name: &str) -> Option<(ExportInfo, Self::Export)>;

    /// Reads `len` bytes at `offset`; the future yields exactly `len` bytes.
    fn submit_read(&self, export: &Self::Export, offset: u64, len: u32) -> IoFuture<Vec<u8>>;

    /// Writes `data` at `offset`; durable on completion if `fua`.
    fn submit_write(&self, export: &Self::Export, offset: u64, data: Vec<u8>, fua: bool) -> IoFuture<()>;

    /// Zeroes `len` bytes at `offset`; `may_trim` is false when the client asked for the
    /// range to stay allocated (`NBD_CMD_FLAG_NO_HOLE`).
    fn submit_write_zeroes(
        &self,
        export: &Self::Export,
        offset: u64,
        len: u32,
        fua: bool,
        may_trim: bool,
    ) -> IoFuture<()>;

    /// Discards `len` bytes at `offset` (a hint: contents become unspecified).
    fn submit_trim(&self, export: &Self::Export, offset: u64, len: u32, fua: bool) -> IoFuture<()>;

    /// Makes every write completed before this submission durable.
    fn submit_flush(&self, export: &Self::Export) -> IoFuture<()>;
}
