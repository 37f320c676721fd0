//! An I/O context: one pool and RBD namespace of a cluster, with plain object I/O.
//!
//! librados' C API is the stable, documented ABI (the C++ API is not ABI-stable across
//! releases), but it is all raw pointers, negative errno returns and buffers with
//! hand-written ownership rules; this module applies them for object data and omap, so
//! everything above it is safe Rust. Class-method calls are in [`crate::op`], watches,
//! notifies and locks in [`crate::watch`].

use std::ffi::{c_char, c_int, c_uint, CString};
use std::sync::Arc;

use crate::cluster::ClusterHandle;
use crate::error::{check, cstring, read_c_string, RadosError, RadosResult};
use crate::sys;

/// Chunk size of [`IoCtx::read_full`]; one `rados_read` each.
const READ_CHUNK: usize = 4 << 20;

/// An I/O context: one pool (and namespace) of a cluster. Keeps the cluster
/// handle alive, so it may outlive the [`crate::Cluster`] value it came from.
///
/// `Send` and `Sync`: I/O may be submitted from any thread and concurrently (what the
/// asynchronous operations of [`crate::aio`] do from many tasks); changing its settings
/// (namespace, snapshot write context) takes `&mut self`, so it never races them.
#[derive(Debug)]
pub struct IoCtx {
    pub(crate) raw: sys::rados_ioctx_t,
    namespace: String,
    pub(crate) cluster: Arc<ClusterHandle>,
}

// SAFETY: a librados ioctx has no thread affinity; it may be used from any
// thread. The cluster handle it refers to is kept alive by `cluster`.
unsafe impl Send for IoCtx {}

// SAFETY: librados.h on `rados_ioctx_t`: an ioctx holds a few settings for all I/O done on
// it (pool, snapshot context, snapshot to read from, object locator), and "changing any of
// these settings is not thread-safe"; I/O itself may be issued concurrently from several
// threads. Every method here that changes a setting (`set_namespace`,
// `selfmanaged_snap_set_write_ctx`) takes `&mut self`, so no `&self` call can run during
// one.
unsafe impl Sync for IoCtx {}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `rados_ioctx_create*` and is
        // destroyed exactly once, here, before `cluster` (a field, dropped
        // after this body) can shut the cluster down. All operations issued by
        // this module are synchronous, so none is in flight.
        unsafe { sys::rados_ioctx_destroy(self.raw) };
    }
}

impl IoCtx {
    pub(crate) fn from_raw(raw: sys::rados_ioctx_t, cluster: Arc<ClusterHandle>) -> IoCtx {
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

    pub(crate) fn oid(oid: &str, op: &str) -> RadosResult<CString> {
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

    /// Sets the snapshot context that writes through this context carry (an RBD image's
    /// `seq` and its snapshot ids): what makes the OSD preserve each object's data for the
    /// image's snapshots before a write changes it. `snaps` must be sorted newest first.
    pub fn selfmanaged_snap_set_write_ctx(&mut self, seq: u64, snaps: &[u64]) -> RadosResult<()> {
        let mut ids = snaps.to_vec();
        let count =
            c_int::try_from(ids.len()).map_err(|_| RadosError::new("snapshot context too large", libc::E2BIG))?;
        // SAFETY: valid ioctx, exclusively borrowed; `ids` is readable for `count` entries and
        // copied by librados.
        let ret = unsafe { sys::rados_ioctx_selfmanaged_snap_set_write_ctx(self.raw, seq, ids.as_mut_ptr(), count) };
        check(ret, || format!("rados_ioctx_selfmanaged_snap_set_write_ctx(seq {seq}, {count} snapshots)")).map(drop)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cluster;

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
