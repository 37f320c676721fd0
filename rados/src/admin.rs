//! What an operator's tool needs besides object I/O: monitor commands (`ceph osd map`,
//! `ceph osd dump`, … as JSON) and walking a pool's objects placement group by placement
//! group.
//!
//! Why the walk: a class method runs on the OSD that is primary for the object it is called
//! on, and only on an object that exists (the OSD answers `ENOENT` for a read method on a
//! missing object before the method runs). So "which class does osd.N run" can only be asked
//! through an existing object whose placement group osd.N leads. Listing a whole pool to find
//! one is out of the question on a big cluster; librados can instead start a listing at a
//! hash position (`rados_nobjects_list_seek`). Objects are listed in the order of their
//! bit-reversed hash, so the position `ps` (a PG's number, below `pg_num`) is where the
//! objects of PG `ps` begin: [`IoCtx::first_object_from`] reads just that first object,
//! read-only, with `r` caps. (`rados_nobjects_list_get_pg_hash_position` does not follow the
//! listing on Pacific: it stays 0; ask `ceph osd map` where an object lives.)

use std::ffi::c_char;
use std::ptr;

use crate::cluster::Cluster;
use crate::error::{check, cstring, RadosError, RadosResult};
use crate::ioctx::IoCtx;
use crate::sys;

/// librados' `LIBRADOS_ALL_NSPACES`: as the namespace of a listing, every namespace.
const ALL_NAMESPACES: &str = "\u{1}";

/// What a monitor command answered: its output buffer (JSON with `"format": "json"`) and
/// its status string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonReply {
    /// The command's output (`outbuf`).
    pub out: Vec<u8>,
    /// The status line (`outs`), e.g. a warning or why it failed.
    pub status: String,
}

/// Copies and frees a buffer librados allocated (`rados_buffer_free`).
///
/// # Safety
/// `buf` is null or a buffer of `len` bytes that librados allocated for the caller.
unsafe fn take_buffer(buf: *mut c_char, len: usize) -> Vec<u8> {
    if buf.is_null() {
        return Vec::new();
    }
    // SAFETY: per the contract above, `buf` is readable for `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }.to_vec();
    // SAFETY: librados allocated `buf` for us and it is freed exactly once, here.
    unsafe { sys::rados_buffer_free(buf) };
    bytes
}

impl Cluster {
    /// Sends one monitor command, `command` being its JSON form (what `ceph … -f json`
    /// sends, e.g. `{"prefix": "osd dump", "format": "json"}`), and waits for the answer.
    /// A refused command is its errno, with the monitor's status line in the message.
    pub fn mon_command(&self, command: &str) -> RadosResult<MonReply> {
        let what = || format!("mon command {command}");
        let c_cmd = cstring(command, what)?;
        let cmds = [c_cmd.as_ptr()];
        let (mut out, mut out_len): (*mut c_char, usize) = (ptr::null_mut(), 0);
        let (mut status, mut status_len): (*mut c_char, usize) = (ptr::null_mut(), 0);
        // SAFETY: connected handle; `cmds` holds one NUL-terminated string that outlives the
        // call; no input buffer; the four out-pointers are live locals that librados fills
        // with buffers we free below.
        let ret = unsafe {
            sys::rados_mon_command(
                self.inner.raw,
                cmds.as_ptr().cast_mut(),
                cmds.len(),
                ptr::null(),
                0,
                &mut out,
                &mut out_len,
                &mut status,
                &mut status_len,
            )
        };
        // SAFETY: both buffers are null or were allocated by librados with these lengths.
        let (out, status) = unsafe { (take_buffer(out, out_len), take_buffer(status, status_len)) };
        let status = String::from_utf8_lossy(&status).into_owned();
        if ret < 0 {
            let message = if status.is_empty() { what() } else { format!("{}: {status}", what()) };
            return Err(RadosError::new(message, ret));
        }
        Ok(MonReply { out, status })
    }
}

/// An object found by a listing: its name, RADOS namespace and locator key (`""` when it
/// has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Object name.
    pub oid: String,
    /// RADOS namespace (`""` = default).
    pub namespace: String,
    /// Locator key (`""` = none; RBD never sets one).
    pub key: String,
}

/// A listing handle, closed on drop.
struct Listing(sys::rados_list_ctx_t);

impl Drop for Listing {
    fn drop(&mut self) {
        // SAFETY: opened by `rados_nobjects_list_open`, closed exactly once, here.
        unsafe { sys::rados_nobjects_list_close(self.0) };
    }
}

/// A string librados returned with its length (may be null for "none").
///
/// # Safety
/// `p` is null or readable for `len` bytes.
unsafe fn listed_str(p: *const c_char, len: usize) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    String::from_utf8_lossy(bytes).into_owned()
}

impl IoCtx {
    /// The first object, in any namespace, listed from hash position `position` of this
    /// context's pool: the first object of PG `position` when that PG holds one, else one of
    /// a PG listed after it; `None` past the last object. Reads one listing page, not the
    /// pool.
    pub fn first_object_from(&self, position: u32) -> RadosResult<Option<ListedObject>> {
        // A context of its own, set to every namespace (this one keeps its namespace).
        let pool = self.pool_id();
        let mut all = Cluster { inner: self.cluster_handle() }.ioctx_by_id(pool)?;
        all.set_namespace(ALL_NAMESPACES)?;
        let mut raw: sys::rados_list_ctx_t = ptr::null_mut();
        // SAFETY: valid ioctx; `raw` is a live out-pointer.
        let ret = unsafe { sys::rados_nobjects_list_open(all.raw, &mut raw) };
        check(ret, || format!("rados_nobjects_list_open(pool {pool})"))?;
        let listing = Listing(raw);
        // SAFETY: an open listing; seeking has no other precondition.
        unsafe { sys::rados_nobjects_list_seek(listing.0, position) };
        let (mut entry, mut key, mut nspace): (*const c_char, *const c_char, *const c_char) =
            (ptr::null(), ptr::null(), ptr::null());
        let (mut entry_len, mut key_len, mut nspace_len) = (0usize, 0usize, 0usize);
        // SAFETY: an open listing; the six out-pointers are live locals. The strings stay
        // valid until the next call on the listing, and are copied before it.
        let ret = unsafe {
            sys::rados_nobjects_list_next2(
                listing.0,
                &mut entry,
                &mut key,
                &mut nspace,
                &mut entry_len,
                &mut key_len,
                &mut nspace_len,
            )
        };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, || format!("rados_nobjects_list_next2(pool {pool}, from {position})"))?;
        // SAFETY: librados returned these pointers with these lengths (null = none).
        let object = unsafe {
            ListedObject {
                oid: listed_str(entry, entry_len),
                namespace: listed_str(nspace, nspace_len),
                key: listed_str(key, key_len),
            }
        };
        Ok(Some(object))
    }
}
