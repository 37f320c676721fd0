//! Safe librados layer: cluster connection, pool I/O contexts, object I/O and
//! object-class method calls.
//!
//! Why this module exists: the rest of the client speaks to the OSD class only
//! through `exec` calls on header objects, and to RADOS for a handful of plain
//! object operations. librados' C API is the stable, documented ABI for that
//! (the C++ API is not ABI-stable across releases), but it is all raw pointers,
//! negative errno returns and buffers with hand-written ownership rules. This
//! module is the one place where those rules are applied, so that everything
//! above it is safe Rust:
//!
//! * every C string goes through [`CString::new`]; an interior NUL becomes a
//!   [`RadosError`] with `EINVAL` instead of a truncated name;
//! * every negative return becomes a [`RadosError`] naming the operation;
//! * every librados allocation (ops, iterators, output buffers) is owned by a
//!   small RAII guard, so early returns cannot leak or double-free;
//! * handle lifetimes are tied together with an [`Arc`]: an [`IoCtx`] (and an
//!   `rbd::Image`) keeps the cluster handle alive, so `rados_shutdown` can only
//!   run after the last handle that depends on it is gone.
//!
//! Every `unsafe` block states why it is sound in a `// SAFETY:` comment. The
//! raw declarations live in `crate::sys`.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::sys;

mod watch;
pub use watch::{LockInfo, Locker, NotifyOutcome, Watch, WatchHandler};

/// Error from a librados / librbd call: what failed and the (positive) errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: ({errno}) {}", strerror(*errno))]
pub struct RadosError {
    /// What failed, e.g. `"rados_connect"` or
    /// `"exec rbd_cg.group_create on cg_header.x"`.
    pub op: String,
    /// Positive errno value (`libc::ENOENT`, ...).
    pub errno: i32,
}

/// Result of a librados / librbd operation.
pub type RadosResult<T> = Result<T, RadosError>;

impl RadosError {
    /// Builds an error; `errno` may be given with either sign (C APIs return
    /// `-errno`), it is stored as a positive value.
    pub fn new(op: impl Into<String>, errno: i32) -> Self {
        RadosError { op: op.into(), errno: errno.checked_abs().unwrap_or(i32::MAX) }
    }

    /// True for `ENOENT` (no such object / pool / image).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.errno == libc::ENOENT
    }
}

/// Text of an errno value, like `strerror(3)`.
fn strerror(errno: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes for the duration of the
    // call. The libc crate binds the XSI variant on glibc (`__xpg_strerror_r`),
    // which writes a NUL-terminated message of at most `buflen` bytes into
    // `buf` and returns 0 on success.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    match CStr::from_bytes_until_nul(&buf) {
        Ok(s) if rc == 0 => s.to_string_lossy().into_owned(),
        _ => std::io::Error::from_raw_os_error(errno).to_string(),
    }
}

/// Converts a C return value (`>= 0` success, `-errno` failure).
pub(crate) fn check(ret: c_int, op: impl FnOnce() -> String) -> RadosResult<c_int> {
    if ret < 0 {
        Err(RadosError::new(op(), ret))
    } else {
        Ok(ret)
    }
}

/// `CString::new` that reports an interior NUL as `EINVAL` for `what`.
pub(crate) fn cstring(s: &str, what: impl FnOnce() -> String) -> RadosResult<CString> {
    CString::new(s).map_err(|_| RadosError::new(format!("{}: contains a NUL byte", what()), libc::EINVAL))
}

fn path_cstring(p: &Path, what: &str) -> RadosResult<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| RadosError::new(format!("{what}: path {} contains a NUL byte", p.display()), libc::EINVAL))
}

/// Copies a NUL-terminated C string owned by librados into a `String`.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string that stays valid for
/// the duration of the call.
pub(crate) unsafe fn owned_string(p: *const c_char, what: impl FnOnce() -> String) -> RadosResult<String> {
    if p.is_null() {
        return Err(RadosError::new(format!("{}: null string", what()), libc::EIO));
    }
    // SAFETY: guaranteed by the caller (see the function's safety contract).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(str::to_owned).map_err(|_| RadosError::new(format!("{}: not UTF-8", what()), libc::EILSEQ))
}

/// Calls `fill(buf, len)` with growing buffers until it stops returning
/// `-ERANGE`, then returns the NUL-terminated string it wrote.
pub(crate) fn read_c_string(op: &str, mut fill: impl FnMut(*mut c_char, usize) -> c_int) -> RadosResult<String> {
    let mut len = 128usize;
    loop {
        let mut buf = vec![0u8; len];
        let ret = fill(buf.as_mut_ptr().cast::<c_char>(), buf.len());
        if ret == -libc::ERANGE && len < MAX_NAME_BUF {
            len *= 2;
            continue;
        }
        check(ret, || op.to_owned())?;
        let s = CStr::from_bytes_until_nul(&buf)
            .map_err(|_| RadosError::new(format!("{op}: unterminated string"), libc::EIO))?;
        return s.to_str().map(str::to_owned).map_err(|_| RadosError::new(format!("{op}: not UTF-8"), libc::EILSEQ));
    }
}

/// Largest buffer tried for pool / image / namespace names.
const MAX_NAME_BUF: usize = 64 * 1024;
/// Chunk size of [`IoCtx::read_full`]; one `rados_read` each.
const READ_CHUNK: usize = 4 << 20;
/// Page size of [`IoCtx::omap_get_all`] when the caller passes 0.
const DEFAULT_OMAP_PAGE: u32 = 512;
/// Default user id, as librados' `rados_create(NULL)`.
const DEFAULT_ID: &str = "admin";
/// Default cluster name.
const DEFAULT_CLUSTER: &str = "ceph";

/// `rados_conf_parse_env` uses a static buffer ("not threadsafe", says
/// librados.h), so connects from several threads take turns on it.
static PARSE_ENV_LOCK: Mutex<()> = Mutex::new(());

/// How to reach the cluster; [`Default`] behaves like the `ceph` / `rbd` tools
/// run without options.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Config file; `None` = librados' search path (`$CEPH_CONF`,
    /// `/etc/ceph/$cluster.conf`, `~/.ceph/config`, `./$cluster.conf`). A
    /// missing default file is tolerated (settings may come from `CEPH_ARGS`
    /// or `extra`); a missing explicit file is an error.
    pub conf_path: Option<PathBuf>,
    /// Cluster name; default: `--cluster` in `CEPH_ARGS`, else `"ceph"`.
    pub cluster_name: Option<String>,
    /// User id without `client.` (a leading `client.` is tolerated); default:
    /// `--id` / `--user` / `--name` in `CEPH_ARGS`, else `admin` (librados'
    /// default).
    pub id: Option<String>,
    /// Keyring file (`keyring` option).
    pub keyring: Option<PathBuf>,
    /// Extra `rados_conf_set` pairs, applied last (after `CEPH_ARGS`).
    pub extra: Vec<(String, String)>,
}

/// Identity options of `CEPH_ARGS`. librados fixes the entity name and
/// cluster when the handle is created, so `rados_conf_parse_env` ignores them;
/// the Ceph CLI tools honor them, and so does [`Cluster::connect`].
#[derive(Debug, Default, PartialEq, Eq)]
struct EarlyArgs {
    /// Full entity name, e.g. `client.admin`.
    name: Option<String>,
    cluster: Option<String>,
}

/// Picks `--id X` / `-i X` / `--user X` / `--name T.X` / `-n T.X` /
/// `--cluster X` (also `--flag=X`) out of a `CEPH_ARGS` value; the last one
/// wins, as in `ceph_argparse`.
fn parse_early_args(args: &str) -> EarlyArgs {
    enum Kind {
        Id,
        Name,
        Cluster,
    }
    let mut out = EarlyArgs::default();
    let mut words = args.split_whitespace();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (word, None),
        };
        let kind = match flag {
            "--id" | "--user" | "-i" => Kind::Id,
            "--name" | "-n" => Kind::Name,
            "--cluster" => Kind::Cluster,
            _ => continue,
        };
        let Some(value) = inline.or_else(|| words.next()) else {
            break;
        };
        match kind {
            Kind::Id => out.name = Some(format!("client.{value}")),
            Kind::Name => out.name = Some(value.to_owned()),
            Kind::Cluster => out.cluster = Some(value.to_owned()),
        }
    }
    out
}

/// Owner of a `rados_t`; shut down when the last [`Cluster`], [`IoCtx`] or
/// image referring to it is dropped.
#[derive(Debug)]
pub(crate) struct ClusterHandle {
    raw: sys::rados_t,
}

// SAFETY: a librados cluster handle (`RadosClient`) is internally synchronized;
// librados documents handles as usable from any thread, and the handle has no
// thread affinity. The pointer is only freed in `Drop`, which has exclusive
// access.
unsafe impl Send for ClusterHandle {}
// SAFETY: see `Send`; every call made through `&ClusterHandle` is a
// thread-safe librados entry point (ioctx creation, pool lookups).
unsafe impl Sync for ClusterHandle {}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `rados_create2` and is shut down
        // exactly once, here; every IoCtx/Image holds an `Arc` of this handle,
        // so none is alive any more.
        unsafe { sys::rados_shutdown(self.raw) };
    }
}

impl ClusterHandle {
    fn conf_set(&self, key: &str, value: &str) -> RadosResult<()> {
        let what = || format!("rados_conf_set({key})");
        let k = cstring(key, what)?;
        let v = cstring(value, what)?;
        // SAFETY: `raw` is a valid, not yet connected handle; `k` and `v` are
        // NUL-terminated and outlive the call, which copies them.
        let ret = unsafe { sys::rados_conf_set(self.raw, k.as_ptr(), v.as_ptr()) };
        check(ret, what).map(drop)
    }
}

/// A connected cluster. Cheap to clone (shares one librados handle);
/// `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<ClusterHandle>,
}

impl Cluster {
    /// Creates a handle, reads the configuration the way Ceph tools do
    /// (config file, then `CEPH_ARGS`, then `keyring` and `extra`), and
    /// connects.
    pub fn connect(opts: &ConnectOptions) -> RadosResult<Cluster> {
        let early = std::env::var("CEPH_ARGS").map(|a| parse_early_args(&a)).unwrap_or_default();
        let cluster_name = opts.cluster_name.as_deref().or(early.cluster.as_deref()).unwrap_or(DEFAULT_CLUSTER);
        let name = match (&opts.id, early.name) {
            (Some(id), _) => format!("client.{}", id.strip_prefix("client.").unwrap_or(id)),
            (None, Some(name)) => name,
            (None, None) => format!("client.{DEFAULT_ID}"),
        };
        let c_cluster = cstring(cluster_name, || "rados_create2: cluster name".into())?;
        let c_name = cstring(&name, || "rados_create2: user name".into())?;
        log::debug!("connecting to cluster {cluster_name:?} as {name}");

        let mut raw: sys::rados_t = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; both strings are NUL-terminated
        // and outlive the call; flags must be 0.
        let ret = unsafe { sys::rados_create2(&mut raw, c_cluster.as_ptr(), c_name.as_ptr(), 0) };
        check(ret, || "rados_create2".into())?;
        // From here on, `handle`'s Drop shuts the handle down on every error path.
        let handle = ClusterHandle { raw };

        if let Some(path) = &opts.conf_path {
            let what = format!("rados_conf_read_file({})", path.display());
            let c_path = path_cstring(path, &what)?;
            // SAFETY: valid unconnected handle; `c_path` is NUL-terminated and
            // outlives the call.
            let ret = unsafe { sys::rados_conf_read_file(handle.raw, c_path.as_ptr()) };
            check(ret, || what)?;
        } else {
            // SAFETY: valid unconnected handle; NULL selects the default search
            // path (including $CEPH_CONF).
            let ret = unsafe { sys::rados_conf_read_file(handle.raw, ptr::null()) };
            if ret == -libc::ENOENT {
                log::debug!("no default ceph config file found; using CEPH_ARGS / options only");
            } else {
                check(ret, || "rados_conf_read_file(default search path)".into())?;
            }
        }

        {
            let _guard = PARSE_ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            // SAFETY: valid unconnected handle; NULL means "$CEPH_ARGS". The
            // lock serializes librados' static parse buffer.
            let ret = unsafe { sys::rados_conf_parse_env(handle.raw, ptr::null()) };
            check(ret, || "rados_conf_parse_env(CEPH_ARGS)".into())?;
        }

        if let Some(keyring) = &opts.keyring {
            let value = keyring.to_str().ok_or_else(|| {
                RadosError::new(
                    format!("rados_conf_set(keyring): path {} is not UTF-8", keyring.display()),
                    libc::EINVAL,
                )
            })?;
            handle.conf_set("keyring", value)?;
        }
        for (k, v) in &opts.extra {
            handle.conf_set(k, v)?;
        }

        // SAFETY: valid, configured handle; connect is called once.
        let ret = unsafe { sys::rados_connect(handle.raw) };
        check(ret, || "rados_connect".into())?;
        log::debug!("connected to cluster {cluster_name:?}");
        Ok(Cluster { inner: Arc::new(handle) })
    }

    /// Opens an I/O context on the pool named `pool` (`ENOENT` if absent).
    pub fn ioctx(&self, pool: &str) -> RadosResult<IoCtx> {
        let what = || format!("rados_ioctx_create({pool})");
        let c_pool = cstring(pool, what)?;
        let mut raw: sys::rados_ioctx_t = ptr::null_mut();
        // SAFETY: connected handle; `c_pool` NUL-terminated and outlives the
        // call; `raw` is a valid out-pointer.
        let ret = unsafe { sys::rados_ioctx_create(self.inner.raw, c_pool.as_ptr(), &mut raw) };
        check(ret, what)?;
        Ok(IoCtx::from_raw(raw, Arc::clone(&self.inner)))
    }

    /// Opens an I/O context on the pool with id `pool_id` (`ENOENT` if absent).
    pub fn ioctx_by_id(&self, pool_id: i64) -> RadosResult<IoCtx> {
        let mut raw: sys::rados_ioctx_t = ptr::null_mut();
        // SAFETY: connected handle; `raw` is a valid out-pointer.
        let ret = unsafe { sys::rados_ioctx_create2(self.inner.raw, pool_id, &mut raw) };
        check(ret, || format!("rados_ioctx_create2({pool_id})"))?;
        Ok(IoCtx::from_raw(raw, Arc::clone(&self.inner)))
    }

    /// An I/O context on pool `pool_id`, RBD namespace `namespace` (where an image lives).
    pub fn ioctx_in(&self, pool_id: i64, namespace: &str) -> RadosResult<IoCtx> {
        let mut ioctx = self.ioctx_by_id(pool_id)?;
        ioctx.set_namespace(namespace)?;
        Ok(ioctx)
    }

    /// Id of the pool named `pool` (`ENOENT` if absent).
    pub fn pool_lookup(&self, pool: &str) -> RadosResult<i64> {
        let what = || format!("rados_pool_lookup({pool})");
        let c_pool = cstring(pool, what)?;
        // SAFETY: connected handle; `c_pool` NUL-terminated and outlives the call.
        let ret = unsafe { sys::rados_pool_lookup(self.inner.raw, c_pool.as_ptr()) };
        if ret < 0 {
            let errno = i32::try_from(ret).unwrap_or(-libc::EIO);
            return Err(RadosError::new(what(), errno));
        }
        Ok(ret)
    }

    /// Name of the pool with id `pool_id` (`ENOENT` if absent).
    pub fn pool_name(&self, pool_id: i64) -> RadosResult<String> {
        let raw = self.inner.raw;
        read_c_string(&format!("rados_pool_reverse_lookup({pool_id})"), |buf, len| {
            // SAFETY: connected handle; `buf` is writable for `len` bytes
            // (provided by `read_c_string`); librados writes at most `len`
            // bytes including the NUL, or returns -ERANGE.
            unsafe { sys::rados_pool_reverse_lookup(raw, pool_id, buf, len) }
        })
    }

    /// The cluster's `require_min_compat_client`, as a Ceph release number (luminous 12,
    /// mimic 13, ...): what decides whether clone v2 may be used.
    pub fn require_min_compat_client(&self) -> RadosResult<i8> {
        let (mut min_compat, mut require_min_compat) = (0i8, 0i8);
        // SAFETY: connected handle; both out-pointers are live locals.
        let ret =
            unsafe { sys::rados_get_min_compatible_client(self.inner.raw, &mut min_compat, &mut require_min_compat) };
        check(ret, || "rados_get_min_compatible_client".to_owned())?;
        Ok(require_min_compat)
    }
}

/// Ends the process with `status` at once, after flushing stdout and stderr, without
/// running `atexit` handlers or C++ static destructors: a background thread may still be
/// inside librados (a snapshot-id allocation nobody waits for), and librados' global
/// teardown must not run under it. For a CLI's `main`, after everything it owns was dropped.
pub fn exit_now(status: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` has no preconditions; it ends every thread of the process at once.
    unsafe { libc::_exit(status) }
}

/// An I/O context: one pool (and namespace) of a cluster. Keeps the cluster
/// handle alive, so it may outlive the [`Cluster`] value it came from.
///
/// `Send` but not `Sync`: move it to another thread, or open one per thread.
#[derive(Debug)]
pub struct IoCtx {
    raw: sys::rados_ioctx_t,
    namespace: String,
    cluster: Arc<ClusterHandle>,
}

// SAFETY: a librados ioctx has no thread affinity; it may be used from any
// thread as long as calls that change its state (namespace) are not
// concurrent with others, which `&mut self` on `set_namespace` and the
// absence of `Sync` guarantee. The cluster handle it refers to is kept alive
// by `cluster`.
unsafe impl Send for IoCtx {}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `rados_ioctx_create*` and is
        // destroyed exactly once, here, before `cluster` (a field, dropped
        // after this body) can shut the cluster down. All operations issued by
        // this module are synchronous, so none is in flight.
        unsafe { sys::rados_ioctx_destroy(self.raw) };
    }
}

/// Owned `rados_read_op_t`, released on drop.
struct ReadOp(sys::rados_read_op_t);

impl ReadOp {
    fn new(op: &str) -> RadosResult<ReadOp> {
        // SAFETY: no preconditions; returns a new op or NULL.
        let raw = unsafe { sys::rados_create_read_op() };
        if raw.is_null() {
            return Err(RadosError::new(format!("{op}: rados_create_read_op"), libc::ENOMEM));
        }
        Ok(ReadOp(raw))
    }
}

impl Drop for ReadOp {
    fn drop(&mut self) {
        // SAFETY: the op came from `rados_create_read_op` and is released once;
        // any operate on it has returned (all calls here are synchronous).
        unsafe { sys::rados_release_read_op(self.0) };
    }
}

/// Owned `rados_write_op_t`, released on drop.
struct WriteOp(sys::rados_write_op_t);

impl WriteOp {
    fn new(op: &str) -> RadosResult<WriteOp> {
        // SAFETY: no preconditions; returns a new op or NULL.
        let raw = unsafe { sys::rados_create_write_op() };
        if raw.is_null() {
            return Err(RadosError::new(format!("{op}: rados_create_write_op"), libc::ENOMEM));
        }
        Ok(WriteOp(raw))
    }
}

impl Drop for WriteOp {
    fn drop(&mut self) {
        // SAFETY: the op came from `rados_create_write_op` and is released
        // once; any operate on it has returned.
        unsafe { sys::rados_release_write_op(self.0) };
    }
}

/// Output buffer allocated by librados, freed with `rados_buffer_free`.
struct RadosBuffer {
    ptr: *mut c_char,
    len: usize,
}

impl RadosBuffer {
    fn to_vec(&self) -> Vec<u8> {
        if self.ptr.is_null() || self.len == 0 {
            return Vec::new();
        }
        // SAFETY: librados allocated `len` bytes at `ptr` (do_out_buffer) and
        // they stay valid until `rados_buffer_free` in Drop.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }.to_vec()
    }
}

impl Drop for RadosBuffer {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the buffer was allocated by librados for us and is freed
            // exactly once.
            unsafe { sys::rados_buffer_free(self.ptr) };
        }
    }
}

/// Omap iterator, closed with `rados_omap_get_end`.
struct OmapIter(sys::rados_omap_iter_t);

impl Drop for OmapIter {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the iterator was created by rados_read_op_omap_get_vals2
            // and is closed exactly once; no key/value pointer obtained from it
            // is used after this point (they were copied).
            unsafe { sys::rados_omap_get_end(self.0) };
        }
    }
}

impl IoCtx {
    fn from_raw(raw: sys::rados_ioctx_t, cluster: Arc<ClusterHandle>) -> IoCtx {
        IoCtx { raw, namespace: String::new(), cluster }
    }

    /// Raw handle, for the sibling librbd layer.
    pub(crate) fn as_raw(&self) -> sys::rados_ioctx_t {
        self.raw
    }

    /// Cluster handle keep-alive, for objects (rbd images) that must not
    /// outlive the cluster connection.
    pub(crate) fn cluster_handle(&self) -> Arc<ClusterHandle> {
        Arc::clone(&self.cluster)
    }

    fn oid(oid: &str, op: &str) -> RadosResult<CString> {
        cstring(oid, || format!("{op}: object name {oid:?}"))
    }

    /// Selects the namespace for subsequent operations (`""` = default).
    /// Fails with `EINVAL` if `ns` contains a NUL byte.
    pub fn set_namespace(&mut self, ns: &str) -> RadosResult<()> {
        let c_ns = cstring(ns, || format!("rados_ioctx_set_namespace({ns:?})"))?;
        // SAFETY: valid ioctx, exclusively borrowed; `c_ns` is NUL-terminated
        // and copied by librados ("" selects the default namespace).
        unsafe { sys::rados_ioctx_set_namespace(self.raw, c_ns.as_ptr()) };
        ns.clone_into(&mut self.namespace);
        Ok(())
    }

    /// Current namespace (`""` = default).
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Id of this context's pool.
    #[must_use]
    pub fn pool_id(&self) -> i64 {
        // SAFETY: valid ioctx; a pure getter.
        unsafe { sys::rados_ioctx_get_id(self.raw) }
    }

    /// Name of this context's pool.
    pub fn pool_name(&self) -> RadosResult<String> {
        let raw = self.raw;
        read_c_string("rados_ioctx_get_pool_name", |buf, len| {
            let len = c_uint::try_from(len).unwrap_or(c_uint::MAX);
            // SAFETY: valid ioctx; `buf` is writable for at least `len` bytes
            // (provided by `read_c_string`; `len` is never larger than that).
            unsafe { sys::rados_ioctx_get_pool_name(raw, buf, len) }
        })
    }

    /// Runs a class method that only reads; returns its output bytes (any
    /// length: librados sizes the buffer). The errno comes from the method's
    /// return value or from the operation.
    pub fn exec_read(&self, oid: &str, class: &str, method: &str, input: &[u8]) -> RadosResult<Vec<u8>> {
        let mut results = self.exec_read_batch(oid, &[(class, method, input)])?;
        results.pop().unwrap_or_else(|| Err(RadosError::new(format!("exec {class}.{method} on {oid}"), libc::EIO)))
    }

    /// Several read-method calls on one object in one read op (one round trip, one OSD
    /// operation); each call succeeds or fails on its own (`FAILOK`), so the result has
    /// one entry per call. The outer error is for the operation as a whole (e.g. no such
    /// object).
    pub fn exec_read_batch(&self, oid: &str, calls: &[(&str, &str, &[u8])]) -> RadosResult<Vec<RadosResult<Vec<u8>>>> {
        let what = || format!("exec of {} read methods on {oid}", calls.len());
        let c_oid = Self::oid(oid, &what())?;
        let names = calls
            .iter()
            .map(|(class, method, _)| {
                Ok((
                    cstring(class, || format!("{}: class name", what()))?,
                    cstring(method, || format!("{}: method", what()))?,
                ))
            })
            .collect::<RadosResult<Vec<_>>>()?;
        let op = ReadOp::new(&what())?;
        // One fixed slot per call, never moved after its address is given to librados.
        let mut outs: Box<[(*mut c_char, usize, c_int)]> =
            vec![(ptr::null_mut(), 0, 0); calls.len()].into_boxed_slice();
        for ((slot, (_, _, input)), (c_class, c_method)) in outs.iter_mut().zip(calls).zip(&names) {
            // SAFETY: `op.0` is a live read op; class/method are NUL-terminated and `input`
            // is readable for its length (copied into the op here). The three out-pointers
            // point into `outs`, a boxed slice that is neither moved nor dropped before
            // `rados_read_op_operate` below returns, which is when librados writes them.
            unsafe {
                sys::rados_read_op_exec(
                    op.0,
                    c_class.as_ptr(),
                    c_method.as_ptr(),
                    input.as_ptr().cast::<c_char>(),
                    input.len(),
                    &mut slot.0,
                    &mut slot.1,
                    &mut slot.2,
                );
                // The flag applies to the op just added: its failure ends only its call.
                sys::rados_read_op_set_flags(op.0, sys::LIBRADOS_OP_FLAG_FAILOK as c_int);
            }
        }
        // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; synchronous, so the
        // out-pointers registered above are written before it returns.
        let ret = unsafe { sys::rados_read_op_operate(op.0, self.raw, c_oid.as_ptr(), 0) };
        let buffers: Vec<(RadosBuffer, c_int)> =
            outs.iter().map(|&(ptr, len, prval)| (RadosBuffer { ptr, len }, prval)).collect();
        check(ret, what)?;
        Ok(buffers
            .iter()
            .zip(calls)
            .map(|((buffer, prval), (class, method, _))| {
                check(*prval, || format!("exec {class}.{method} on {oid}")).map(|_| buffer.to_vec())
            })
            .collect())
    }

    /// Runs a class method that writes. The OSD drops the output of write
    /// methods, so only the status is returned.
    pub fn exec_write(&self, oid: &str, class: &str, method: &str, input: &[u8]) -> RadosResult<()> {
        self.exec_write_batch(oid, &[(class, method, input)])
    }

    /// Several write-method calls on one object in one atomic write op: all
    /// of them take effect or none does. An empty `calls` is a no-op.
    ///
    /// On failure the error names the first call whose return value was
    /// negative, when the OSD reports it, else the whole batch.
    pub fn exec_write_batch(&self, oid: &str, calls: &[(&str, &str, &[u8])]) -> RadosResult<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let batch_what = || {
            if let [(class, method, _)] = calls {
                format!("exec {class}.{method} on {oid}")
            } else {
                let names: Vec<String> = calls.iter().map(|(c, m, _)| format!("{c}.{m}")).collect();
                format!("exec [{}] on {oid}", names.join(", "))
            }
        };
        let c_oid = Self::oid(oid, &batch_what())?;
        let mut names = Vec::with_capacity(calls.len());
        for (class, method, _) in calls {
            let call_what = || format!("exec {class}.{method} on {oid}");
            names.push((
                cstring(class, || format!("{}: class name", call_what()))?,
                cstring(method, || format!("{}: method name", call_what()))?,
            ));
        }
        let op = WriteOp::new(&batch_what())?;
        // One slot per call; never resized, so pointers into it stay valid.
        let mut prvals: Vec<c_int> = vec![0; calls.len()];
        for (((_, _, input), (c_class, c_method)), prval) in calls.iter().zip(&names).zip(prvals.iter_mut()) {
            // SAFETY: `op.0` is a live write op; class/method are
            // NUL-terminated and outlive the op; `input` is readable for its
            // length and copied here; `prval` points into `prvals`, which is
            // neither moved nor resized until after operate returns.
            unsafe {
                sys::rados_write_op_exec(
                    op.0,
                    c_class.as_ptr(),
                    c_method.as_ptr(),
                    input.as_ptr().cast::<c_char>(),
                    input.len(),
                    prval,
                );
            }
        }
        // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; NULL mtime means
        // "now"; synchronous, so the prval slots are written before it returns.
        let ret = unsafe { sys::rados_write_op_operate(op.0, self.raw, c_oid.as_ptr(), ptr::null_mut(), 0) };
        if ret < 0 {
            let failed = calls.iter().zip(&prvals).find(|(_, &rv)| rv < 0);
            return Err(match failed {
                Some(((class, method, _), &rv)) => RadosError::new(format!("exec {class}.{method} on {oid}"), rv),
                None => RadosError::new(batch_what(), ret),
            });
        }
        Ok(())
    }

    /// Reads the whole object (`ENOENT` if absent, `ERANGE` if it is larger
    /// than `max_len`). Objects larger than one chunk (4 MiB) are read in
    /// several non-atomic reads.
    pub fn read_full(&self, oid: &str, max_len: usize) -> RadosResult<Vec<u8>> {
        let what = || format!("rados_read({oid})");
        let c_oid = Self::oid(oid, "rados_read")?;
        let limit = max_len.saturating_add(1);
        let mut data: Vec<u8> = Vec::new();
        loop {
            let start = data.len();
            let want = READ_CHUNK.min(limit - start);
            data.resize(start + want, 0);
            let off = u64::try_from(start).unwrap_or(u64::MAX);
            // SAFETY: valid ioctx; `c_oid` NUL-terminated; `data[start..]` is
            // initialized and writable for exactly `want` bytes.
            let ret = unsafe {
                sys::rados_read(self.raw, c_oid.as_ptr(), data[start..].as_mut_ptr().cast::<c_char>(), want, off)
            };
            let got = usize::try_from(check(ret, what)?).unwrap_or(0);
            if got > want {
                return Err(RadosError::new(format!("{}: read past buffer", what()), libc::EIO));
            }
            data.truncate(start + got);
            if data.len() > max_len {
                return Err(RadosError::new(format!("{}: object larger than {max_len} bytes", what()), libc::ERANGE));
            }
            if got < want {
                return Ok(data);
            }
        }
    }

    /// Replaces the object's content with `data` (creating it if needed).
    pub fn write_full(&self, oid: &str, data: &[u8]) -> RadosResult<()> {
        let what = || format!("rados_write_full({oid})");
        let c_oid = Self::oid(oid, "rados_write_full")?;
        // SAFETY: valid ioctx; `c_oid` NUL-terminated; `data` readable for
        // its length; librados copies it before returning.
        let ret =
            unsafe { sys::rados_write_full(self.raw, c_oid.as_ptr(), data.as_ptr().cast::<c_char>(), data.len()) };
        check(ret, what).map(drop)
    }

    /// Deletes the object (`ENOENT` if absent).
    pub fn remove(&self, oid: &str) -> RadosResult<()> {
        let c_oid = Self::oid(oid, "rados_remove")?;
        // SAFETY: valid ioctx; `c_oid` NUL-terminated.
        let ret = unsafe { sys::rados_remove(self.raw, c_oid.as_ptr()) };
        check(ret, || format!("rados_remove({oid})")).map(drop)
    }

    /// Size of the object, or `None` if it does not exist.
    pub fn stat(&self, oid: &str) -> RadosResult<Option<u64>> {
        let c_oid = Self::oid(oid, "rados_stat")?;
        let mut size: u64 = 0;
        let mut mtime: sys::time_t = 0;
        // SAFETY: valid ioctx; `c_oid` NUL-terminated; both out-pointers refer
        // to live locals.
        let ret = unsafe { sys::rados_stat(self.raw, c_oid.as_ptr(), &mut size, &mut mtime) };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, || format!("rados_stat({oid})"))?;
        Ok(Some(size))
    }

    /// All omap entries of the object, in key order, fetched in pages of
    /// `max_per_page` (0 = a default of 512). `ENOENT` if the object does not
    /// exist; `EILSEQ` if a key is not UTF-8. Pages are separate reads, so a
    /// concurrent writer may be observed mid-way.
    pub fn omap_get_all(&self, oid: &str, max_per_page: u32) -> RadosResult<Vec<(String, Vec<u8>)>> {
        let what = || format!("omap_get_vals({oid})");
        let c_oid = Self::oid(oid, "omap_get_vals")?;
        let page = if max_per_page == 0 { DEFAULT_OMAP_PAGE } else { max_per_page };
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        let mut start_after = CString::default();
        loop {
            let op = ReadOp::new(&what())?;
            let mut iter_raw: sys::rados_omap_iter_t = ptr::null_mut();
            let mut more: u8 = 0;
            let mut prval: c_int = 0;
            // SAFETY: live read op; `start_after` and the empty filter prefix
            // are NUL-terminated and copied into the op; the out-pointers refer
            // to locals that stay untouched until operate below has returned.
            unsafe {
                sys::rados_read_op_omap_get_vals2(
                    op.0,
                    start_after.as_ptr(),
                    c"".as_ptr(),
                    u64::from(page),
                    &mut iter_raw,
                    &mut more,
                    &mut prval,
                );
            }
            // The iterator is allocated right away; own it before anything can fail.
            let iter = OmapIter(iter_raw);
            // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; synchronous.
            let ret = unsafe { sys::rados_read_op_operate(op.0, self.raw, c_oid.as_ptr(), 0) };
            check(ret, what)?;
            check(prval, what)?;

            let mut got = 0usize;
            loop {
                let mut key: *mut c_char = ptr::null_mut();
                let mut val: *mut c_char = ptr::null_mut();
                let mut key_len: usize = 0;
                let mut val_len: usize = 0;
                // SAFETY: `iter.0` is a live iterator filled by the operate
                // above; all out-pointers refer to live locals.
                let ret = unsafe { sys::rados_omap_get_next2(iter.0, &mut key, &mut val, &mut key_len, &mut val_len) };
                check(ret, what)?;
                if key.is_null() {
                    break;
                }
                // SAFETY: librados returned `key_len` bytes at `key`, valid
                // until `rados_omap_get_end` (when `iter` drops); copied now.
                let k = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) }.to_vec();
                let v = if val.is_null() || val_len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: as for the key: `val_len` bytes at `val`, valid
                    // until the iterator is closed; copied now.
                    unsafe { std::slice::from_raw_parts(val.cast::<u8>(), val_len) }.to_vec()
                };
                let k = String::from_utf8(k).map_err(|e| {
                    RadosError::new(
                        format!("{}: omap key {:?} is not UTF-8", what(), String::from_utf8_lossy(e.as_bytes())),
                        libc::EILSEQ,
                    )
                })?;
                entries.push((k, v));
                got += 1;
            }
            drop(iter);

            if more == 0 {
                return Ok(entries);
            }
            let Some((last, _)) = entries.last().filter(|_| got > 0) else {
                return Err(RadosError::new(
                    format!("{}: OSD reported more entries but returned none", what()),
                    libc::EIO,
                ));
            };
            start_after = cstring(last, || format!("{}: omap key {last:?}", what()))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_has_op_errno_and_text() {
        let e = RadosError::new("rados_connect", -libc::ENOENT);
        assert_eq!(e.errno, libc::ENOENT);
        assert_eq!(e.to_string(), "rados_connect: (2) No such file or directory");
        assert!(e.is_not_found());
    }

    #[test]
    fn error_errno_is_positive_even_for_extremes() {
        assert_eq!(RadosError::new("x", i32::MIN).errno, i32::MAX);
        assert_eq!(RadosError::new("x", libc::EINVAL).errno, libc::EINVAL);
    }

    #[test]
    fn unknown_errno_still_displays() {
        let e = RadosError::new("op", 4000);
        assert!(e.to_string().starts_with("op: (4000) "), "{e}");
    }

    #[test]
    fn check_maps_negative_returns() {
        assert_eq!(check(5, || "op".into()), Ok(5));
        let e = check(-libc::EEXIST, || "op".into()).err();
        assert_eq!(e.map(|e| e.errno), Some(libc::EEXIST));
    }

    #[test]
    fn interior_nul_is_einval() {
        let e = cstring("a\0b", || "thing".into()).err();
        assert_eq!(e.as_ref().map(|e| e.errno), Some(libc::EINVAL));
        assert!(e.map(|e| e.op).unwrap_or_default().contains("thing"));
        assert!(cstring("ok", || "thing".into()).is_ok());
    }

    #[test]
    fn read_c_string_grows_on_erange() {
        let name = "x".repeat(300);
        let mut calls = 0;
        let s = read_c_string("op", |buf, len| {
            calls += 1;
            if len <= name.len() {
                return -libc::ERANGE;
            }
            let bytes = name.as_bytes();
            // SAFETY: `buf` has `len > bytes.len()` writable bytes.
            unsafe {
                ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
                *buf.add(bytes.len()) = 0;
            }
            c_int::try_from(bytes.len()).unwrap_or(c_int::MAX)
        });
        assert_eq!(s.as_deref(), Ok(name.as_str()));
        assert_eq!(calls, 3); // 128, 256, 512
    }

    #[test]
    fn read_c_string_gives_up() {
        let e = read_c_string("op", |_, _| -libc::ERANGE).err();
        assert_eq!(e.map(|e| e.errno), Some(libc::ERANGE));
    }

    #[test]
    fn early_args_from_ceph_args() {
        let e = parse_early_args("--keyring /k --id foo --mon_host 1.2.3.4");
        assert_eq!(e.name.as_deref(), Some("client.foo"));
        assert_eq!(e.cluster, None);
        let e = parse_early_args("--name=client.bar --cluster=c2 -m x");
        assert_eq!(e.name.as_deref(), Some("client.bar"));
        assert_eq!(e.cluster.as_deref(), Some("c2"));
        assert_eq!(parse_early_args("-i a --user b").name.as_deref(), Some("client.b"));
        assert_eq!(parse_early_args("-n osd.0").name.as_deref(), Some("osd.0"));
        assert_eq!(parse_early_args("--debug_ms 1 --id"), EarlyArgs::default());
        assert_eq!(parse_early_args(""), EarlyArgs::default());
    }

    #[test]
    fn connect_options_default_is_empty() {
        let o = ConnectOptions::default();
        assert!(o.conf_path.is_none() && o.cluster_name.is_none() && o.id.is_none());
        assert!(o.keyring.is_none() && o.extra.is_empty());
    }

    #[test]
    fn handles_are_send_sync_as_documented() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Cluster>();
        sync::<Cluster>();
        send::<IoCtx>();
        send::<RadosError>();
        sync::<RadosError>();
    }
}
