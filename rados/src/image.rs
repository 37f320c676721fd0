//! Minimal safe librbd layer: list / create / open images, read their
//! identity and features, and manage snapshots.
//!
//! Why this module exists: consistency-group operations act on ordinary RBD
//! images, and the client needs a few image-level calls (resolve name ↔ id,
//! take and roll back snapshots) that only librbd implements correctly
//! (exclusive-lock handshakes, header updates, object maps). As with
//! [`crate::ioctx`], the C API is used because it is the ABI-stable one; this
//! module applies its ownership rules (caller-sized arrays terminated or
//! cleaned up by librbd, strings freed by `*_end` / `*_cleanup` calls, progress
//! callbacks with a `void *`) in one place.
//!
//! An [`Image`] keeps the cluster connection alive (librbd duplicates the
//! [`IoCtx`] it was opened with, but the duplicate still needs the cluster),
//! and is closed on drop. Progress callbacks run on librbd's threads; the
//! trampoline catches panics so that none unwinds into C, aborts the
//! operation, and re-raises the panic on the caller's thread.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::cluster::ClusterHandle;
use crate::error::{check, cstring, owned_string, read_c_string, RadosError, RadosResult};
use crate::ioctx::IoCtx;
use crate::sys;

/// Feature bit: layering (clones).
pub const FEATURE_LAYERING: u64 = sys::RBD_FEATURE_LAYERING as u64;
/// Feature bit: striping v2 (a stripe unit or count other than one object).
pub const FEATURE_STRIPINGV2: u64 = sys::RBD_FEATURE_STRIPINGV2 as u64;
/// Feature bit: exclusive lock.
pub const FEATURE_EXCLUSIVE_LOCK: u64 = sys::RBD_FEATURE_EXCLUSIVE_LOCK as u64;
/// Feature bit: object map.
pub const FEATURE_OBJECT_MAP: u64 = sys::RBD_FEATURE_OBJECT_MAP as u64;
/// Feature bit: fast-diff (object map states `EXISTS_CLEAN`).
pub const FEATURE_FAST_DIFF: u64 = sys::RBD_FEATURE_FAST_DIFF as u64;
/// Feature bit: journaling.
pub const FEATURE_JOURNALING: u64 = sys::RBD_FEATURE_JOURNALING as u64;
/// Feature bit: a migration in progress.
pub const FEATURE_MIGRATING: u64 = sys::RBD_FEATURE_MIGRATING as u64;
/// Feature bit: persistent write-back cache that may hold unflushed writes.
pub const FEATURE_DIRTY_CACHE: u64 = sys::RBD_FEATURE_DIRTY_CACHE as u64;
/// Feature bit: non-primary (mirroring).
pub const FEATURE_NON_PRIMARY: u64 = sys::RBD_FEATURE_NON_PRIMARY as u64;
/// The features `rbd create --image-feature layering,exclusive-lock` gives: what a group
/// member needs to be fenced, without the object map.
pub const CREATE_FEATURES: u64 = FEATURE_LAYERING | FEATURE_EXCLUSIVE_LOCK;

/// Retries of the "ask for the size, then fetch" protocol of list calls,
/// which can race with concurrent creations.
const LIST_RETRIES: usize = 8;

/// A watcher of an image header, as `rbd status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// Its address, e.g. `127.0.0.1:0/2881234`.
    pub addr: String,
    /// Its instance id (`client.<id>`).
    pub instance_id: i64,
    /// Its watch cookie.
    pub cookie: u64,
}

/// One snapshot of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapInfo {
    /// Snapshot id (RADOS snap id).
    pub id: u64,
    /// Snapshot name.
    pub name: String,
    /// Image size at the snapshot, in bytes.
    pub size: u64,
}

/// Lists the images of the pool / namespace of `ioctx` as `(name, id)` pairs.
pub fn rbd_list(ioctx: &IoCtx) -> RadosResult<Vec<(String, String)>> {
    let what = || "rbd_list2".to_owned();
    let mut cap: usize = 64;
    for _ in 0..LIST_RETRIES {
        let mut specs = vec![sys::rbd_image_spec_t { id: ptr::null_mut(), name: ptr::null_mut() }; cap];
        let mut n = cap;
        // SAFETY: valid ioctx; `specs` holds `n` zeroed, writable entries and
        // `n` is a live local. On success librbd sets `n` to the count and
        // strdup()s the strings of the first `n` entries.
        let ret = unsafe { sys::rbd_list2(ioctx.as_raw(), specs.as_mut_ptr(), &mut n) };
        if ret == -libc::ERANGE {
            cap = n.max(cap.saturating_mul(2));
            continue;
        }
        check(ret, what)?;
        if n > cap {
            // Never expected; do not let cleanup walk past the buffer.
            return Err(RadosError::new("rbd_list2: count exceeds buffer", libc::EIO));
        }
        let result = specs[..n]
            .iter()
            .map(|s| {
                // SAFETY: librbd filled both pointers with strdup()ed,
                // NUL-terminated strings, freed only by the cleanup below.
                let name = unsafe { owned_string(s.name, || "rbd_list2: image name".to_owned()) }?;
                // SAFETY: as above.
                let id = unsafe { owned_string(s.id, || format!("rbd_list2: id of image {name}")) }?;
                Ok((name, id))
            })
            .collect::<RadosResult<Vec<_>>>();
        // SAFETY: frees exactly the `n` entries librbd filled; the strings are
        // not used afterwards (copied above).
        unsafe { sys::rbd_image_spec_list_cleanup(specs.as_mut_ptr(), n) };
        return result;
    }
    Err(RadosError::new("rbd_list2: image count kept changing", libc::ERANGE))
}

/// Owned `rbd_image_options_t`, destroyed on drop.
struct ImageOptions(sys::rbd_image_options_t);

impl ImageOptions {
    fn new() -> ImageOptions {
        let mut raw: sys::rbd_image_options_t = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; librbd allocates the options.
        unsafe { sys::rbd_image_options_create(&mut raw) };
        ImageOptions(raw)
    }

    fn set_u64(&mut self, option: u32, value: u64, what: &str) -> RadosResult<()> {
        let option = c_int::try_from(option).map_err(|_| RadosError::new(what, libc::EINVAL))?;
        // SAFETY: `self.0` is a live options object; integer arguments only.
        let ret = unsafe { sys::rbd_image_options_set_uint64(self.0, option, value) };
        check(ret, || what.to_owned()).map(drop)
    }
}

impl Drop for ImageOptions {
    fn drop(&mut self) {
        // SAFETY: created by `rbd_image_options_create`, destroyed once.
        unsafe { sys::rbd_image_options_destroy(self.0) };
    }
}

/// Clones `parent_name@snap_name` (in `parent_ioctx`) as image `name` in `ioctx`, with
/// RBD clone `format` 1 (the snapshot must be protected) or 2. The clone gets the
/// parent's features. `EEXIST` if `name` exists.
pub fn image_clone(
    parent_ioctx: &IoCtx,
    parent_name: &str,
    snap_name: &str,
    ioctx: &IoCtx,
    name: &str,
    format: u64,
) -> RadosResult<()> {
    let what = || format!("rbd_clone3({parent_name}@{snap_name} -> {name})");
    let c_parent = cstring(parent_name, what)?;
    let c_snap = cstring(snap_name, what)?;
    let c_name = cstring(name, what)?;
    let mut opts = ImageOptions::new();
    opts.set_u64(sys::RBD_IMAGE_OPTION_CLONE_FORMAT, format, "rbd_image_options_set_uint64(clone_format)")?;
    // SAFETY: valid io contexts; the strings are NUL-terminated; `opts` is live; librbd
    // copies what it needs.
    let ret = unsafe {
        sys::rbd_clone3(
            parent_ioctx.as_raw(),
            c_parent.as_ptr(),
            c_snap.as_ptr(),
            ioctx.as_raw(),
            c_name.as_ptr(),
            opts.0,
        )
    };
    check(ret, what).map(drop)
}

/// Removes image `name` (`ENOENT` if absent, `ENOTEMPTY` while it has snapshots, `EBUSY`
/// while another client has it open).
pub fn image_remove(ioctx: &IoCtx, name: &str) -> RadosResult<()> {
    let what = || format!("rbd_remove({name})");
    let c_name = cstring(name, what)?;
    // SAFETY: valid ioctx; `c_name` NUL-terminated.
    let ret = unsafe { sys::rbd_remove(ioctx.as_raw(), c_name.as_ptr()) };
    check(ret, what).map(drop)
}

/// The parent of a clone: image and snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentSpec {
    /// Pool of the parent image.
    pub pool_id: i64,
    /// Its RBD namespace.
    pub namespace: String,
    /// Its image id.
    pub image_id: String,
    /// The parent snapshot's id.
    pub snap_id: u64,
}

/// A `librbd_progress_fn_t` for calls whose progress nobody watches.
unsafe extern "C" fn no_progress(_offset: u64, _total: u64, _arg: *mut c_void) -> c_int {
    0
}

/// Creates a format-2 image `name` of `size` bytes with `features` (`None`: the cluster's
/// `rbd_default_features`, as `rbd create` does). `EEXIST` if it exists.
pub fn image_create(ioctx: &IoCtx, name: &str, size: u64, features: Option<u64>) -> RadosResult<()> {
    image_create_with_order(ioctx, name, size, features, None)
}

/// [`image_create`] with objects of `1 << order` bytes (`None`: the cluster's default), as
/// `rbd create --object-size` does: a mirror's copy has its primary's object size.
pub fn image_create_with_order(
    ioctx: &IoCtx,
    name: &str,
    size: u64,
    features: Option<u64>,
    order: Option<u8>,
) -> RadosResult<()> {
    let what = || format!("rbd_create4({name})");
    let c_name = cstring(name, what)?;
    let mut opts = ImageOptions::new();
    opts.set_u64(sys::RBD_IMAGE_OPTION_FORMAT, 2, "rbd_image_options_set_uint64(format)")?;
    if let Some(features) = features {
        opts.set_u64(sys::RBD_IMAGE_OPTION_FEATURES, features, "rbd_image_options_set_uint64(features)")?;
    }
    if let Some(order) = order {
        opts.set_u64(sys::RBD_IMAGE_OPTION_ORDER, u64::from(order), "rbd_image_options_set_uint64(order)")?;
    }
    // SAFETY: valid ioctx; `c_name` NUL-terminated; `opts` is live; librbd
    // copies what it needs.
    let ret = unsafe { sys::rbd_create4(ioctx.as_raw(), c_name.as_ptr(), size, opts.0) };
    check(ret, what).map(drop)
}

/// An open RBD image (head, read-write). Closed on drop; `Send`.
#[derive(Debug)]
pub struct Image {
    raw: sys::rbd_image_t,
    /// Keeps the cluster connection alive while the image is open.
    _cluster: Arc<ClusterHandle>,
}

// SAFETY: a librbd image handle (`ImageCtx`) has no thread affinity and is
// internally synchronized; `Image` is not `Sync`, so calls through it are
// never concurrent anyway.
unsafe impl Send for Image {}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `rbd_open*` and is closed
        // exactly once, here, before `_cluster` is released.
        let ret = unsafe { sys::rbd_close(self.raw) };
        if ret < 0 {
            log::warn!("rbd_close: {}", RadosError::new("rbd_close", ret));
        }
    }
}

/// State shared with the progress trampoline.
struct Progress<F> {
    callback: F,
    panic: Option<Box<dyn Any + Send>>,
}

/// `librbd_progress_fn_t` that forwards to a Rust closure. Returns 0 to go
/// on, `-ECANCELED` (which librbd treats as "stop") once the closure panicked.
///
/// # Safety
/// `arg` must point to a `Mutex<Progress<F>>` (same `F`) that outlives every
/// call librbd makes to this function.
unsafe extern "C" fn progress_trampoline<F: FnMut(u64, u64) + Send>(
    offset: u64,
    total: u64,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: guaranteed by the caller contract; the reference is shared, and
    // the Mutex serializes calls from librbd's threads.
    let state = unsafe { &*arg.cast::<Mutex<Progress<F>>>() };
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.panic.is_some() {
        return -libc::ECANCELED;
    }
    let callback = &mut state.callback;
    match panic::catch_unwind(AssertUnwindSafe(|| callback(offset, total))) {
        Ok(()) => 0,
        Err(payload) => {
            state.panic = Some(payload);
            -libc::ECANCELED
        }
    }
}

/// The shared signature of `rbd_open`, `rbd_open_by_id` and their read-only variants.
type RbdOpenFn = unsafe extern "C" fn(
    sys::rados_ioctx_t,
    *const std::ffi::c_char,
    *mut sys::rbd_image_t,
    *const std::ffi::c_char,
) -> std::ffi::c_int;

impl Image {
    /// The raw handle, for the asynchronous layer ([`crate::aio::AioImage`]).
    pub(crate) fn raw(&self) -> sys::rbd_image_t {
        self.raw
    }

    fn from_raw(raw: sys::rbd_image_t, ioctx: &IoCtx) -> Image {
        Image { raw, _cluster: ioctx.cluster_handle() }
    }

    /// Runs one of librbd's four `rbd_open*` calls (all share this signature) for `key`
    /// (a name or an id, per `open`), naming `call` in errors.
    fn open_with(ioctx: &IoCtx, call: &str, key: &str, open: RbdOpenFn) -> RadosResult<Image> {
        let what = || format!("{call}({key})");
        let c_key = cstring(key, what)?;
        let mut raw: sys::rbd_image_t = ptr::null_mut();
        // SAFETY: `open` is one of librbd's rbd_open* functions; valid ioctx (librbd
        // duplicates it); `c_key` NUL-terminated; `raw` a valid out-pointer; NULL snap
        // name = head.
        let ret = unsafe { open(ioctx.as_raw(), c_key.as_ptr(), &mut raw, ptr::null()) };
        check(ret, what)?;
        Ok(Image::from_raw(raw, ioctx))
    }

    /// Opens the image named `name` in the pool / namespace of `ioctx`.
    pub fn open(ioctx: &IoCtx, name: &str) -> RadosResult<Image> {
        Image::open_with(ioctx, "rbd_open", name, sys::rbd_open)
    }

    /// Opens the image with id `id` in the pool / namespace of `ioctx`.
    pub fn open_by_id(ioctx: &IoCtx, id: &str) -> RadosResult<Image> {
        Image::open_with(ioctx, "rbd_open_by_id", id, sys::rbd_open_by_id)
    }

    /// Opens the image with id `id` read-only: no header watch, so `class-read`/`r` caps
    /// suffice. For inspecting (snapshot lists, names), never for changes.
    pub fn open_by_id_read_only(ioctx: &IoCtx, id: &str) -> RadosResult<Image> {
        Image::open_with(ioctx, "rbd_open_by_id_read_only", id, sys::rbd_open_by_id_read_only)
    }

    /// Opens the image `name` read-only (see [`Image::open_by_id_read_only`]).
    pub fn open_read_only(ioctx: &IoCtx, name: &str) -> RadosResult<Image> {
        Image::open_with(ioctx, "rbd_open_read_only", name, sys::rbd_open_read_only)
    }

    /// The image id (`EINVAL` for old-format images, which have none).
    pub fn id(&self) -> RadosResult<String> {
        let raw = self.raw;
        read_c_string("rbd_get_id", |buf, len| {
            // SAFETY: open image; `buf` writable for `len` bytes; librbd
            // writes a NUL-terminated id or returns -ERANGE.
            unsafe { sys::rbd_get_id(raw, buf, len) }
        })
    }

    /// The image name.
    pub fn name(&self) -> RadosResult<String> {
        let raw = self.raw;
        read_c_string("rbd_get_name", |buf, len| {
            let mut len = len;
            // SAFETY: open image; `buf` writable for `len` bytes; `len` is a
            // live local librbd may update with the needed size.
            unsafe { sys::rbd_get_name(raw, buf, &mut len) }
        })
    }

    /// Feature bits (`FEATURE_*`).
    pub fn features(&self) -> RadosResult<u64> {
        let mut features: u64 = 0;
        // SAFETY: open image; `features` a live out-pointer.
        let ret = unsafe { sys::rbd_get_features(self.raw, &mut features) };
        check(ret, || "rbd_get_features".to_owned())?;
        Ok(features)
    }

    /// Header flags (`RBD_FLAG_*`: object map / fast-diff invalid).
    pub fn flags(&self) -> RadosResult<u64> {
        let mut flags: u64 = 0;
        // SAFETY: open image; `flags` a live out-pointer.
        let ret = unsafe { sys::rbd_get_flags(self.raw, &mut flags) };
        check(ret, || "rbd_get_flags".to_owned())?;
        Ok(flags)
    }

    /// The pool holding the image's data objects (its own pool unless a data pool is set).
    pub fn data_pool_id(&self) -> RadosResult<i64> {
        // SAFETY: open image.
        let ret = unsafe { sys::rbd_get_data_pool_id(self.raw) };
        if ret < 0 {
            return Err(RadosError::new("rbd_get_data_pool_id", i32::try_from(ret).unwrap_or(-libc::EIO)));
        }
        Ok(ret)
    }

    /// The watchers of the image header: (address, instance id, watch cookie). Works on a
    /// read-only open, which registers no watch of its own.
    pub fn watchers(&self) -> RadosResult<Vec<Watcher>> {
        let what = || "rbd_watchers_list".to_owned();
        let mut cap: usize = 8;
        for _ in 0..LIST_RETRIES {
            let blank = sys::rbd_image_watcher_t { addr: ptr::null_mut(), id: 0, cookie: 0 };
            let mut watchers = vec![blank; cap];
            let mut count = cap;
            // SAFETY: open image; `watchers` holds `count` writable entries and `count`
            // is a live local; on -ERANGE librbd writes only the needed count.
            let ret = unsafe { sys::rbd_watchers_list(self.raw, watchers.as_mut_ptr(), &mut count) };
            if ret == -libc::ERANGE {
                cap = count.max(cap.saturating_mul(2));
                continue;
            }
            check(ret, what)?;
            let count = count.min(cap);
            let result = watchers[..count]
                .iter()
                .map(|w| {
                    Ok(Watcher {
                        // SAFETY: librbd strdup()ed a NUL-terminated address, freed only by
                        // rbd_watchers_list_cleanup below.
                        addr: unsafe { owned_string(w.addr, || "rbd_watchers_list: address".to_owned()) }?,
                        instance_id: w.id,
                        cookie: w.cookie,
                    })
                })
                .collect::<RadosResult<Vec<_>>>();
            // SAFETY: frees the `count` addresses librbd allocated, once; not used afterwards.
            unsafe { sys::rbd_watchers_list_cleanup(watchers.as_mut_ptr(), count) };
            return result;
        }
        Err(RadosError::new("rbd_watchers_list: watcher count kept changing", libc::ERANGE))
    }

    /// True for a format-1 image.
    pub fn old_format(&self) -> RadosResult<bool> {
        let mut old: u8 = 0;
        // SAFETY: open image; `old` a live out-pointer.
        let ret = unsafe { sys::rbd_get_old_format(self.raw, &mut old) };
        check(ret, || "rbd_get_old_format".to_owned())?;
        Ok(old != 0)
    }

    /// Creates snapshot `name` (`EEXIST` if it exists).
    pub fn snap_create(&mut self, name: &str) -> RadosResult<()> {
        let what = || format!("rbd_snap_create({name})");
        let c_name = cstring(name, what)?;
        // SAFETY: open image; `c_name` NUL-terminated.
        let ret = unsafe { sys::rbd_snap_create(self.raw, c_name.as_ptr()) };
        check(ret, what).map(drop)
    }

    /// Removes snapshot `name` (`ENOENT` if absent), unprotecting it first if it is
    /// protected (`EBUSY` when clone-v1 children still depend on it). A snapshot with
    /// clone-v2 children moves to the image's trash namespace (librbd's rule) and goes
    /// away with its last child.
    pub fn snap_remove(&mut self, name: &str) -> RadosResult<()> {
        let what = || format!("rbd_snap_remove2({name})");
        let c_name = cstring(name, what)?;
        // SAFETY: open image; `c_name` NUL-terminated; the progress callback ignores its
        // (null) argument and is a plain function.
        let ret = unsafe {
            sys::rbd_snap_remove2(
                self.raw,
                c_name.as_ptr(),
                sys::RBD_SNAP_REMOVE_UNPROTECT,
                Some(no_progress),
                ptr::null_mut(),
            )
        };
        check(ret, what).map(drop)
    }

    /// Removes snapshot `snap_id`, whatever its namespace (librbd's `snap_remove` by id:
    /// trash first, detach from a parent, merge its object map, release the id, remove the
    /// record, notify). `EBUSY` while it is protected; with clone-v2 children it moves to
    /// the image's trash namespace instead and goes away with its last child (`Ok`).
    pub fn snap_remove_by_id(&mut self, snap_id: u64) -> RadosResult<()> {
        // SAFETY: open image; integer argument.
        let ret = unsafe { sys::rbd_snap_remove_by_id(self.raw, snap_id) };
        check(ret, || format!("rbd_snap_remove_by_id({snap_id})")).map(drop)
    }

    /// Reads from snapshot `snap_id` (any namespace) from now on; `None`: the head again.
    pub fn set_snap_by_id(&mut self, snap_id: Option<u64>) -> RadosResult<()> {
        let id = snap_id.unwrap_or(u64::MAX - 1);
        // SAFETY: open image; integer argument (CEPH_NOSNAP = u64::MAX - 1 is the head).
        let ret = unsafe { sys::rbd_snap_set_by_id(self.raw, id) };
        check(ret, || format!("rbd_snap_set_by_id({id})")).map(drop)
    }

    /// The extents of `offset..offset + len` that hold data at the snapshot (or head) the
    /// image is set to, with a parent's data included: `(offset, length)` pairs in order,
    /// from librbd's `diff_iterate2` without a starting snapshot. What a copy must read;
    /// everything else reads as zeros.
    pub fn allocated_extents(&self, offset: u64, len: u64) -> RadosResult<Vec<(u64, u64)>> {
        Ok(self.changed_extents(None, offset, len)?.into_iter().filter(|e| e.2).map(|(o, l, _)| (o, l)).collect())
    }

    /// The extents of `offset..offset + len` that differ between user-namespace snapshot
    /// `from` (`None`: an empty image) and the snapshot (or head) the image is set to:
    /// `(offset, length, exists)`, where `exists` false means the extent is now zero /
    /// unallocated (librbd's `diff_iterate2`, not whole objects). Adjacent extents of the
    /// same kind are merged.
    pub fn changed_extents(&self, from: Option<&str>, offset: u64, len: u64) -> RadosResult<Vec<(u64, u64, bool)>> {
        /// `diff_iterate2`'s callback: collects extents.
        unsafe extern "C" fn collect(offset: u64, len: usize, exists: c_int, arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the `Vec` below, alive for the whole call that invokes us,
            // from the calling thread only (librbd calls back synchronously).
            let extents = unsafe { &mut *arg.cast::<Vec<(u64, u64, bool)>>() };
            let exists = exists != 0;
            match extents.last_mut() {
                Some((o, l, e)) if *o + *l == offset && *e == exists => *l += len as u64,
                _ => extents.push((offset, len as u64, exists)),
            }
            0
        }
        let what = || format!("rbd_diff_iterate2({from:?}, {offset}, {len})");
        let c_from = match from {
            Some(name) => Some(cstring(name, what)?),
            None => None,
        };
        let mut extents: Vec<(u64, u64, bool)> = Vec::new();
        // SAFETY: open image; `c_from` is NULL (since the beginning) or NUL-terminated and
        // outlives the call; `collect` matches the callback signature and `arg` points to
        // `extents`, which outlives the call.
        let ret = unsafe {
            sys::rbd_diff_iterate2(
                self.raw,
                c_from.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
                offset,
                len,
                1,
                0,
                Some(collect),
                (&mut extents as *mut Vec<(u64, u64, bool)>).cast(),
            )
        };
        check(ret, what)?;
        Ok(extents)
    }

    /// The image size in bytes (at the snapshot it is set to).
    pub fn size(&self) -> RadosResult<u64> {
        let mut size = 0u64;
        // SAFETY: open image; `size` is a valid out-pointer.
        let ret = unsafe { sys::rbd_get_size(self.raw, &mut size) };
        check(ret, || "rbd_get_size".to_owned())?;
        Ok(size)
    }

    /// How many clone children snapshot `snap_id` has, of either clone format, in any pool
    /// (librbd's `list_children` with the snapshot set by id, so any namespace): what
    /// librbd's unprotect checks. The image is set back to its head afterwards.
    pub fn snap_children_count(&mut self, snap_id: u64) -> RadosResult<usize> {
        // SAFETY: open image; integer argument.
        let ret = unsafe { sys::rbd_snap_set_by_id(self.raw, snap_id) };
        check(ret, || format!("rbd_snap_set_by_id({snap_id})"))?;
        let mut count: usize = 0;
        // SAFETY: open image; with `max` 0 librbd writes no entry (it returns `-ERANGE` and
        // the count when there are children, 0 when there are none) and only sets `count`.
        let ret = unsafe { sys::rbd_list_children3(self.raw, ptr::null_mut(), &mut count) };
        // SAFETY: open image; CEPH_NOSNAP is the head.
        let reset = unsafe { sys::rbd_snap_set_by_id(self.raw, u64::MAX - 1) };
        match ret {
            r if r == -libc::ERANGE => {}
            r => {
                check(r, || format!("rbd_list_children3 of snapshot {snap_id}"))?;
            }
        }
        check(reset, || "rbd_snap_set_by_id(head)".to_owned())?;
        Ok(count)
    }

    /// Whether snapshot `name` is protected (`ENOENT` if absent).
    pub fn snap_is_protected(&self, name: &str) -> RadosResult<bool> {
        let what = || format!("rbd_snap_is_protected({name})");
        let c_name = cstring(name, what)?;
        let mut protected: c_int = 0;
        // SAFETY: open image; `c_name` NUL-terminated; `protected` a live out-pointer.
        let ret = unsafe { sys::rbd_snap_is_protected(self.raw, c_name.as_ptr(), &mut protected) };
        check(ret, what)?;
        Ok(protected != 0)
    }

    /// Protects snapshot `name` (needed before a clone-v1 child is made); already
    /// protected is fine.
    pub fn snap_protect(&mut self, name: &str) -> RadosResult<()> {
        if self.snap_is_protected(name)? {
            return Ok(());
        }
        let what = || format!("rbd_snap_protect({name})");
        let c_name = cstring(name, what)?;
        // SAFETY: open image; `c_name` NUL-terminated.
        let ret = unsafe { sys::rbd_snap_protect(self.raw, c_name.as_ptr()) };
        match check(ret, what) {
            Err(e) if e.errno == libc::EBUSY => Ok(()), // protected meanwhile
            other => other.map(drop),
        }
    }

    /// Unprotects snapshot `name`: `EBUSY` while clone-v1 children depend on it;
    /// not protected is fine.
    pub fn snap_unprotect(&mut self, name: &str) -> RadosResult<()> {
        if !self.snap_is_protected(name)? {
            return Ok(());
        }
        let what = || format!("rbd_snap_unprotect({name})");
        let c_name = cstring(name, what)?;
        // SAFETY: open image; `c_name` NUL-terminated.
        let ret = unsafe { sys::rbd_snap_unprotect(self.raw, c_name.as_ptr()) };
        match check(ret, what) {
            Err(e) if e.errno == libc::EINVAL => Ok(()), // unprotected meanwhile
            other => other.map(drop),
        }
    }

    /// The parent of a clone: `None` for an image that is not a clone.
    pub fn parent(&self) -> RadosResult<Option<ParentSpec>> {
        let what = || "rbd_get_parent".to_owned();
        // SAFETY: both are plain C structs for which all-zero (null pointers) is valid.
        let mut image: sys::rbd_linked_image_spec_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut snap: sys::rbd_snap_spec_t = unsafe { std::mem::zeroed() };
        // SAFETY: open image; both out-structs are live; on success librbd fills them with
        // strdup()ed strings that the cleanup calls below free.
        let ret = unsafe { sys::rbd_get_parent(self.raw, &mut image, &mut snap) };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, what)?;
        // SAFETY: librbd set these to NUL-terminated strings (or NULL), freed only below.
        let namespace = unsafe { owned_string(image.pool_namespace, what) };
        // SAFETY: as above.
        let image_id = unsafe { owned_string(image.image_id, what) };
        let parent = (|| {
            Ok(ParentSpec { pool_id: image.pool_id, namespace: namespace?, image_id: image_id?, snap_id: snap.id })
        })();
        // SAFETY: frees what rbd_get_parent allocated, once; the strings were copied.
        unsafe {
            sys::rbd_linked_image_spec_cleanup(&mut image);
            sys::rbd_snap_spec_cleanup(&mut snap);
        }
        parent.map(Some)
    }

    /// Snapshots of the image, in librbd's order (by id).
    pub fn snap_list(&self) -> RadosResult<Vec<SnapInfo>> {
        let what = || "rbd_snap_list".to_owned();
        let mut cap: usize = 16;
        for _ in 0..LIST_RETRIES {
            let mut snaps = vec![sys::rbd_snap_info_t { id: 0, size: 0, name: ptr::null() }; cap];
            let mut max = c_int::try_from(cap).map_err(|_| RadosError::new(what(), libc::ERANGE))?;
            // SAFETY: open image; `snaps` holds `max` zeroed, writable
            // entries and `max` is a live local. On success librbd fills the
            // first `ret` entries (strdup()ed names) plus a zeroed terminator.
            let ret = unsafe { sys::rbd_snap_list(self.raw, snaps.as_mut_ptr(), &mut max) };
            if ret == -libc::ERANGE {
                cap = usize::try_from(max).unwrap_or(0).max(cap.saturating_mul(2));
                continue;
            }
            let count = usize::try_from(check(ret, what)?).unwrap_or(0);
            if count >= cap {
                // No room for the terminator: never expected; do not let
                // rbd_snap_list_end walk past the buffer.
                return Err(RadosError::new("rbd_snap_list: count exceeds buffer", libc::EIO));
            }
            let result = snaps[..count]
                .iter()
                .map(|s| {
                    Ok(SnapInfo {
                        id: s.id,
                        // SAFETY: librbd strdup()ed a NUL-terminated name,
                        // freed only by rbd_snap_list_end below.
                        name: unsafe { owned_string(s.name, || format!("rbd_snap_list: name of snap {}", s.id)) }?,
                        size: s.size,
                    })
                })
                .collect::<RadosResult<Vec<_>>>();
            // SAFETY: the array is terminated by an entry with a NULL name
            // (written by librbd, or left zeroed); frees the names once; they
            // are not used afterwards (copied above).
            unsafe { sys::rbd_snap_list_end(snaps.as_mut_ptr()) };
            return result;
        }
        Err(RadosError::new("rbd_snap_list: snapshot count kept changing", libc::ERANGE))
    }

    /// Rolls the image back to snapshot `name`, calling `progress(done,
    /// total)` from librbd's threads as objects are rolled back.
    ///
    /// If `progress` panics, the rollback is asked to stop and the panic is
    /// resumed on this thread once librbd has returned.
    pub fn snap_rollback_with_progress<F>(&mut self, name: &str, progress: F) -> RadosResult<()>
    where
        F: FnMut(u64, u64) + Send,
    {
        let what = || format!("rbd_snap_rollback({name})");
        let c_name = cstring(name, what)?;
        let state = Mutex::new(Progress { callback: progress, panic: None });
        let arg = ptr::from_ref(&state).cast_mut().cast::<c_void>();
        // SAFETY: open image; `c_name` NUL-terminated. The trampoline is
        // instantiated for this `F` and `arg` points to `state`, a
        // `Mutex<Progress<F>>` that lives on this stack frame until after the
        // synchronous call returns, after which librbd no longer calls back.
        // `F: Send` makes running it on librbd's threads sound.
        let ret = unsafe {
            sys::rbd_snap_rollback_with_progress(self.raw, c_name.as_ptr(), Some(progress_trampoline::<F>), arg)
        };
        let state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        if let Some(payload) = state.panic {
            panic::resume_unwind(payload);
        }
        check(ret, what).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_features_are_layering_and_exclusive_lock() {
        assert_eq!(FEATURE_LAYERING, 1);
        assert_eq!(FEATURE_EXCLUSIVE_LOCK, 4);
        assert_eq!(CREATE_FEATURES, 5);
    }

    fn call<F: FnMut(u64, u64) + Send>(state: &Mutex<Progress<F>>, done: u64, total: u64) -> c_int {
        let arg = ptr::from_ref(state).cast_mut().cast::<c_void>();
        // SAFETY: `arg` points to a live `Mutex<Progress<F>>` for this `F`.
        unsafe { progress_trampoline::<F>(done, total, arg) }
    }

    #[test]
    fn trampoline_forwards_progress() {
        let mut seen = Vec::new();
        {
            let state = Mutex::new(Progress { callback: |d, t| seen.push((d, t)), panic: None });
            assert_eq!(call(&state, 1, 4), 0);
            assert_eq!(call(&state, 4, 4), 0);
        }
        assert_eq!(seen, vec![(1, 4), (4, 4)]);
    }

    #[test]
    fn trampoline_catches_panics_and_stops() {
        let mut calls = 0;
        let state = Mutex::new(Progress {
            callback: |d: u64, _t: u64| {
                calls += 1;
                assert!(d < 2, "progress callback panics at {d}");
            },
            panic: None,
        });
        assert_eq!(call(&state, 1, 3), 0);
        assert_eq!(call(&state, 2, 3), -libc::ECANCELED);
        // Once panicked, the closure is not called again.
        assert_eq!(call(&state, 3, 3), -libc::ECANCELED);
        let state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        let msg = state.panic.as_ref().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
        assert!(msg.contains("panics at 2"), "{msg}");
        drop(state);
        assert_eq!(calls, 2);
    }

    #[test]
    fn image_is_send() {
        fn send<T: Send>() {}
        send::<Image>();
    }
}
