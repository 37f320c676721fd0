//! Writing an RBD image at the RADOS level, the way librbd does, without librbd.
//!
//! While a group is journaled its members carry the `non-primary` feature, so every librbd
//! writer gets `EROFS` — ours too. The journal applier therefore writes the member's data
//! objects itself ([`DirectImage`]): the same object names, the same snapshot context on
//! every write, and the same object-map updates in the same order as librbd's
//! `io/ObjectRequest.cc`, so that `rbd export`, snapshots, `rbd diff` and
//! `rbd object-map check` cannot tell the difference (librbd 16.2's requests, checked
//! against a 16.2.15 cluster by `tests/direct_image.rs`).
//!
//! Per object and request kind (object map only with the object-map feature):
//!
//! | request | map before | data op | map after |
//! |---|---|---|---|
//! | write | `EXISTS` | (`set_alloc_hint`) `write` | – |
//! | discard of a whole object (or of all of it up to the image end) | `PENDING` | `remove` (`ENOENT` is fine) | `NONEXISTENT` where `PENDING` |
//! | discard of an object's tail | fast-diff: `EXISTS` where it exists | (`assert_exists`) `truncate` | – |
//! | discard inside an object, write zeroes | fast-diff: `EXISTS` where it exists | (`assert_exists`, `set_alloc_hint`) `zero` | – |
//!
//! "Where it exists" is the update filtered on `EXISTS` (which also matches
//! `EXISTS_CLEAN`): an existing object turns dirty for fast-diff, a missing one stays
//! missing, and `assert_exists` keeps the data op off a missing object, so the map stays
//! exact without reading it. Without fast-diff an existing object is `EXISTS` already and
//! a missing one stays missing (the OSD makes `truncate` and `zero` of a missing object
//! no-ops, measured), so those need no update. The alloc hint goes with writes to objects
//! that may not exist yet, as librbd's; with a fast-diff zero it also makes sure the op
//! changes the object: the OSD skips a zero past the object's end, no clone is made for the
//! newest snapshot, and `rbd object-map check` would then want `EXISTS_CLEAN` back and
//! invalidate the map (measured; librbd's discard, which sets `EXISTS` before its `zero`
//! the same way, has that flaw).
//!
//! Every map update is one op on `rbd_object_map.<id>`: `lock.assert_locked` of the map's
//! own lock (cookie and tag empty, as librbd's) + `rbd.object_map_update`, for a run of
//! neighbouring objects at once. Objects known to be `EXISTS` (set by us since the last
//! snapshot) skip the update and the steps in parentheses.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use crate::aio::AioFuture;
use crate::ceph::cls_lock::{self, AssertLocked, RBD_LOCK_NAME};
use crate::ceph::cls_rbd::{self, object_state, GetFeatures, ObjectMapUpdate, SnapContext, CEPH_NOSNAP};
use crate::ceph::objects;
use crate::cls::{ReadBatch, WriteBatch};
use crate::error::{RadosError, RadosResult};
use crate::image::{
    FEATURE_DIRTY_CACHE, FEATURE_FAST_DIFF, FEATURE_JOURNALING, FEATURE_MIGRATING, FEATURE_OBJECT_MAP,
    FEATURE_STRIPINGV2,
};
use crate::{Cluster, IoCtx};
use rbd_cg_contract::records::ImageRef;

/// Every feature bit Ceph 16.2 knows (`RBD_FEATURES_ALL`): an image with any other bit was
/// made by a newer Ceph whose write rules we do not know.
const KNOWN_FEATURES: u64 = (1 << 12) - 1;
/// Features whose images must not be written under librbd's feet: a journal that would
/// miss our writes, a migration, a write-back cache that may hold newer data.
const REFUSED_FEATURES: [(u64, &str); 3] =
    [(FEATURE_JOURNALING, "journaling"), (FEATURE_MIGRATING, "migrating"), (FEATURE_DIRTY_CACHE, "dirty-cache")];
/// Object orders librbd creates (4 KiB … 32 MiB objects), with room to spare.
const ORDERS: std::ops::RangeInclusive<u8> = 12..=30;

/// Where one request touches one object: object number, offset in the object, length.
pub type ObjectExtent = (u64, u64, u64);

/// An RBD image written at the RADOS level; see the [module docs](self) for what each
/// request does.
///
/// # Contract
///
/// - **Ownership.** The caller holds the image's exclusive lock and, with the object-map
///   feature, the object map's own lock ([`crate::exclusive_lock::ExclusiveLock`] takes
///   both), through the same [`Cluster`] connection this image was opened with:
///   `lock.assert_locked` compares the caller's client id. If a librbd client takes the
///   lock over, the next object-map update fails `EBUSY` before any data is written, and
///   every later write fails `EBUSY` at once (the caller stops). A write that only touches
///   objects already known to exist sends no map update, so it cannot notice; the
///   header lock's watch ([`crate::exclusive_lock::ExclusiveLock`]) and the blocklisting a
///   new owner does are the guards there.
/// - **Per-object order.** The caller never runs two requests that touch the same object
///   concurrently ([`DirectImage::object_extents`] says which objects a request touches);
///   requests on different objects may overlap freely. Within a request, objects are
///   written concurrently, so a request that fails may have changed some of its objects.
/// - **Snapshots.** After cutting a snapshot (or any change of the header's snapshots or
///   size), call [`DirectImage::refresh`] — writes carry the snapshot context read last, and
///   a stale one silently corrupts the new snapshot (the OSD makes no clone for it) — and
///   [`DirectImage::invalidate_object_map_cache`] (fast-diff turned the head's objects
///   `EXISTS_CLEAN`, so they need the `EXISTS` update again). `refresh` also drops the cache
///   when the snapshot context changed.
/// - **Not supported** (refused with `EOPNOTSUPP` at open): images with a parent (clones:
///   writes would need copy-ups), striping v2 other than the default, journaling,
///   migrating, dirty-cache and unknown features.
pub struct DirectImage {
    image: ImageRef,
    header: String,
    object_map: String,
    object_prefix: String,
    order: u8,
    size: u64,
    features: u64,
    snapc: SnapContext,
    io: Mutex<Io>,
    /// Objects the head object map says `EXISTS` because we set it since the last snapshot.
    known: Mutex<Bitmap>,
    /// An object-map update failed `EBUSY`: our lock was taken over.
    lost: AtomicBool,
}

/// The two I/O contexts: `meta` on the image's pool (header, object map; no snapshot
/// context) and `data` on the data pool with the image's snapshot context. I/O contexts are
/// not `Sync`; submitting an asynchronous operation only needs the mutex for an instant.
struct Io {
    meta: IoCtx,
    data: IoCtx,
}

/// What the header says about the image.
struct HeaderInfo {
    features: u64,
    order: u8,
    size: u64,
    snapc: SnapContext,
}

/// One request's work on one object.
struct ObjectOp {
    objno: u64,
    data: DataOp,
    /// Object map update before the data op: (state, filter).
    pre: Option<(u8, Option<u8>)>,
    /// Object map update after it succeeded.
    post: Option<(u8, Option<u8>)>,
    /// Hint the allocation (librbd's `set_alloc_hint(object size, object size)`).
    hint: bool,
    /// Only if the object exists (`assert_exists`; `ENOENT` means nothing to do).
    guard: bool,
}

enum DataOp {
    Write { offset: u64, data: Vec<u8> },
    Remove,
    Truncate { offset: u64 },
    Zero { offset: u64, len: u64 },
}

impl DirectImage {
    /// Reads the image's layout, features and snapshot context from its header (one OSD
    /// op), refuses what it cannot write like librbd (`EOPNOTSUPP`), and opens its data pool
    /// (same namespace) with the image's snapshot context.
    pub fn open(cluster: &Cluster, image: &ImageRef) -> RadosResult<DirectImage> {
        let meta = cluster.ioctx_in(image.pool_id, &image.namespace)?;
        let header = objects::image_header(&image.image_id);
        let label = format!("image {} in pool {}", image.image_id, image.pool_id);
        let context = |e: RadosError| e.context(format!("opening {label} for direct writes"));

        let mut batch = ReadBatch::new();
        let features = batch.add(&cls_rbd::GET_FEATURES, &GetFeatures { snap_id: CEPH_NOSNAP, read_only: false })?;
        let size = batch.add(&cls_rbd::GET_SIZE, &CEPH_NOSNAP)?;
        let snapc = batch.add(&cls_rbd::GET_SNAPCONTEXT, &())?;
        let prefix = batch.add(&cls_rbd::GET_OBJECT_PREFIX, &())?;
        let data_pool = batch.add(&cls_rbd::GET_DATA_POOL, &())?;
        let stripe = batch.add(&cls_rbd::GET_STRIPE_UNIT_COUNT, &())?;
        let parent = batch.add(&cls_rbd::PARENT_GET, &())?;
        let overlap = batch.add(&cls_rbd::PARENT_OVERLAP_GET, &CEPH_NOSNAP)?;
        let mut replies = meta.read_batch(&header, &batch).map_err(context)?;

        let info = HeaderInfo::from_replies(
            features.take(&mut replies),
            size.take(&mut replies),
            snapc.take(&mut replies),
            &label,
        )
        .map_err(context)?;
        if info.features & FEATURE_STRIPINGV2 != 0 {
            let stripe = stripe.take(&mut replies).map_err(context)?;
            if stripe.stripe_unit != 1 << info.order || stripe.stripe_count != 1 {
                return Err(RadosError::new(
                    format!(
                        "{label} is striped ({} bytes x {} objects); direct writes support only the default layout",
                        stripe.stripe_unit, stripe.stripe_count
                    ),
                    libc::EOPNOTSUPP,
                ));
            }
        }
        let has_parent = match parent.take(&mut replies) {
            Ok(spec) => spec.exists() && overlap.take(&mut replies).map_err(context)?.0.is_some(),
            // An OSD older than Nautilus: the legacy call.
            Err(e) if e.errno == libc::EOPNOTSUPP => {
                meta.call(&header, &cls_rbd::GET_PARENT, &CEPH_NOSNAP).map_err(context)?.pool_id >= 0
            }
            Err(e) => return Err(context(e)),
        };
        if has_parent {
            return Err(RadosError::new(
                format!("{label} is a clone; direct writes would need copy-ups from its parent"),
                libc::EOPNOTSUPP,
            )
            .with_hint("Flatten it first (`rbd flatten`)."));
        }
        let object_prefix = prefix.take(&mut replies).map_err(context)?;
        if object_prefix.is_empty() {
            return Err(RadosError::new(format!("{label} has an empty object prefix"), libc::EIO));
        }
        let data_pool = data_pool.take(&mut replies).map_err(context)?.0.unwrap_or(image.pool_id);
        let mut data = cluster.ioctx_in(data_pool, &image.namespace).map_err(context)?;
        data.selfmanaged_snap_set_write_ctx(info.snapc.seq, &info.snapc.snaps).map_err(context)?;

        let objects = object_count(info.size, info.order);
        Ok(DirectImage {
            image: image.clone(),
            object_map: objects::object_map(&image.image_id, None),
            header,
            object_prefix,
            order: info.order,
            size: info.size,
            features: info.features,
            snapc: info.snapc,
            io: Mutex::new(Io { meta, data }),
            known: Mutex::new(Bitmap::new(objects)),
            lost: AtomicBool::new(false),
        })
    }

    /// The image.
    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// The image size in bytes, as read last.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size of its objects in bytes.
    pub fn object_size(&self) -> u64 {
        1 << self.order
    }

    /// Its feature bits, as read last.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// The snapshot context its writes carry (sequence, snapshot ids newest first).
    pub fn snap_context(&self) -> (u64, &[u64]) {
        (self.snapc.seq, &self.snapc.snaps)
    }

    /// The name of data object `objno`: `rbd_data.<id>.<objno as 16 hex digits>`.
    pub fn object_name(&self, objno: u64) -> String {
        format!("{}.{objno:016x}", self.object_prefix)
    }

    /// The objects `len` bytes at `offset` fall into, in order: (object number, offset in
    /// the object, length). Pure arithmetic; it does not check the image size.
    pub fn object_extents(&self, offset: u64, len: u64) -> Vec<ObjectExtent> {
        object_extents(self.order, offset, len)
    }

    /// Re-reads size, features and snapshot context from the header and applies the
    /// snapshot context to later writes. Call it after every snapshot (see the contract);
    /// a changed snapshot context or size also drops the object-map cache.
    pub fn refresh(&mut self) -> RadosResult<()> {
        let label = format!("image {} in pool {}", self.image.image_id, self.image.pool_id);
        let context = |e: RadosError| e.context(format!("refreshing {label}"));
        let io = self.io.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut batch = ReadBatch::new();
        let features = batch.add(&cls_rbd::GET_FEATURES, &GetFeatures { snap_id: CEPH_NOSNAP, read_only: false })?;
        let size = batch.add(&cls_rbd::GET_SIZE, &CEPH_NOSNAP)?;
        let snapc = batch.add(&cls_rbd::GET_SNAPCONTEXT, &())?;
        let mut replies = io.meta.read_batch(&self.header, &batch).map_err(context)?;
        let info = HeaderInfo::from_replies(
            features.take(&mut replies),
            size.take(&mut replies),
            snapc.take(&mut replies),
            &label,
        )
        .map_err(context)?;
        if info.order != self.order {
            return Err(context(RadosError::new(format!("the object size of {label} changed"), libc::EIO)));
        }
        if info.features & FEATURE_STRIPINGV2 != 0 && self.features & FEATURE_STRIPINGV2 == 0 {
            return Err(context(RadosError::new(format!("{label} became striped"), libc::EOPNOTSUPP)));
        }
        io.data.selfmanaged_snap_set_write_ctx(info.snapc.seq, &info.snapc.snaps).map_err(context)?;
        let changed = info.snapc != self.snapc || info.size != self.size || info.features != self.features;
        self.size = info.size;
        self.features = info.features;
        self.snapc = info.snapc;
        if changed {
            *self.known.get_mut().unwrap_or_else(PoisonError::into_inner) =
                Bitmap::new(object_count(self.size, self.order));
        }
        Ok(())
    }

    /// Forgets which objects are known to be `EXISTS` in the head object map: call it after
    /// a snapshot (fast-diff turned them `EXISTS_CLEAN`) or anything else that changed the
    /// map behind this image's back.
    pub fn invalidate_object_map_cache(&self) {
        self.known().clear();
    }

    /// Writes `data` at `offset` (`EINVAL` past the image end).
    pub async fn write(&self, offset: u64, data: &[u8]) -> RadosResult<()> {
        let len = data.len() as u64;
        let what = || format!("writing {len} bytes at {offset}");
        self.check_writable(offset, len, what)?;
        let mut consumed = 0usize;
        let ops = self
            .object_extents(offset, len)
            .into_iter()
            .map(|(objno, offset, len)| {
                // `len` is at most `data.len()`, a usize.
                let end = consumed + len as usize;
                let chunk = data.get(consumed..end).map(<[u8]>::to_vec).unwrap_or_default();
                consumed = end;
                ObjectOp {
                    objno,
                    data: DataOp::Write { offset, data: chunk },
                    pre: None,
                    post: None,
                    hint: false,
                    guard: false,
                }
            })
            .collect();
        self.run(ops).await.map_err(|e| e.context(what()))
    }

    /// Discards `len` bytes at `offset`: afterwards they read as zeros, and whole objects
    /// are gone (`EINVAL` past the image end).
    pub async fn discard(&self, offset: u64, len: u64) -> RadosResult<()> {
        let what = || format!("discarding {len} bytes at {offset}");
        self.check_writable(offset, len, what)?;
        let object_size = self.object_size();
        let ops = self
            .object_extents(offset, len)
            .into_iter()
            .map(|(objno, off, len)| {
                // The image ends inside its last object: nothing lies beyond the end.
                let to_end = off + len == object_size || objno * object_size + off + len >= self.size;
                let data = match (off, to_end) {
                    (0, true) => DataOp::Remove,
                    (_, true) => DataOp::Truncate { offset: off },
                    _ => DataOp::Zero { offset: off, len },
                };
                ObjectOp { objno, data, pre: None, post: None, hint: false, guard: false }
            })
            .collect();
        self.run(ops).await.map_err(|e| e.context(what()))
    }

    /// Writes `len` zero bytes at `offset` (RADOS `zero`: objects stay, as holes where the
    /// store can; missing objects stay missing). `EINVAL` past the image end.
    pub async fn write_zeroes(&self, offset: u64, len: u64) -> RadosResult<()> {
        let what = || format!("writing {len} zero bytes at {offset}");
        self.check_writable(offset, len, what)?;
        let ops = self
            .object_extents(offset, len)
            .into_iter()
            .map(|(objno, offset, len)| ObjectOp {
                objno,
                data: DataOp::Zero { offset, len },
                pre: None,
                post: None,
                hint: false,
                guard: false,
            })
            .collect();
        self.run(ops).await.map_err(|e| e.context(what()))
    }

    /// Reads `len` bytes at `offset` of the head (missing objects and what lies past an
    /// object's end read as zeros). `EINVAL` past the image end.
    pub async fn read(&self, offset: u64, len: u64) -> RadosResult<Vec<u8>> {
        let what = || format!("reading {len} bytes at {offset} of image {}", self.image.image_id);
        let end = self.check_range(offset, len, what)?;
        let size = usize::try_from(end - offset).map_err(|_| RadosError::new(what(), libc::EINVAL))?;
        let extents = self.object_extents(offset, len);
        let reads = {
            let io = self.io();
            extents
                .iter()
                .map(|&(objno, off, len)| io.data.aio_read(&self.object_name(objno), off, len as usize))
                .collect::<Vec<_>>()
        };
        let mut out = vec![0u8; size];
        let mut at = 0usize;
        for (result, &(_, _, len)) in join_all(reads).await.into_iter().zip(&extents) {
            match result {
                Ok(bytes) => {
                    let n = bytes.len().min(len as usize);
                    if let (Some(dst), Some(src)) = (out.get_mut(at..at + n), bytes.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                }
                Err(e) if e.errno == libc::ENOENT => {}
                Err(e) => return Err(e.context(what())),
            }
            at += len as usize;
        }
        Ok(out)
    }

    fn io(&self) -> std::sync::MutexGuard<'_, Io> {
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Bitmap> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The end of `[offset, offset + len)`, which must lie inside the image.
    fn check_range(&self, offset: u64, len: u64, what: impl Fn() -> String) -> RadosResult<u64> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(end),
            _ => Err(RadosError::new(format!("{}: beyond the image end ({} bytes)", what(), self.size), libc::EINVAL)),
        }
    }

    fn check_writable(&self, offset: u64, len: u64, what: impl Fn() -> String) -> RadosResult<()> {
        self.check_range(offset, len, &what)?;
        if self.lost.load(Ordering::SeqCst) {
            return Err(RadosError::new(
                format!(
                    "{}: the object-map lock of image {} was taken over earlier; not writing",
                    what(),
                    self.image.image_id
                ),
                libc::EBUSY,
            ));
        }
        Ok(())
    }

    /// Runs one request's object operations: map updates before (all at once), then the
    /// data ops (all at once), then map updates after; see the module docs.
    async fn run(&self, mut ops: Vec<ObjectOp>) -> RadosResult<()> {
        let object_map = self.features & FEATURE_OBJECT_MAP != 0;
        let fast_diff = object_map && self.features & FEATURE_FAST_DIFF != 0;
        {
            let mut known = self.known();
            for op in &mut ops {
                let cached = object_map && known.get(op.objno);
                (op.pre, op.post, op.hint, op.guard) = match op.data {
                    // librbd hints the allocation when the object may not exist yet.
                    DataOp::Write { .. } if cached => (None, None, false, false),
                    DataOp::Write { .. } if object_map => (Some((object_state::EXISTS, None)), None, true, false),
                    DataOp::Write { .. } => (None, None, true, false),
                    DataOp::Remove if object_map => {
                        known.set(op.objno, false);
                        (
                            Some((object_state::PENDING, None)),
                            Some((object_state::NONEXISTENT, Some(object_state::PENDING))),
                            false,
                            false,
                        )
                    }
                    // Only fast-diff has a state to change for an existing object
                    // (`EXISTS_CLEAN`), and the op must then change the object even when
                    // it zeroes past its end, which the OSD would skip (no clone, so
                    // `rbd object-map check` wants `EXISTS_CLEAN` back): the alloc hint.
                    DataOp::Zero { .. } if fast_diff && !cached => {
                        (Some((object_state::EXISTS, Some(object_state::EXISTS))), None, true, true)
                    }
                    DataOp::Truncate { .. } if fast_diff && !cached => {
                        (Some((object_state::EXISTS, Some(object_state::EXISTS))), None, false, true)
                    }
                    DataOp::Remove | DataOp::Zero { .. } | DataOp::Truncate { .. } => (None, None, false, false),
                };
            }
        }
        let pre: Vec<(u64, (u8, Option<u8>))> = ops.iter().filter_map(|op| Some((op.objno, op.pre?))).collect();
        self.update_object_map(&pre).await?;
        {
            // Unfiltered EXISTS updates made it so; filtered ones only for objects that exist.
            let mut known = self.known();
            for (objno, _) in pre.iter().filter(|(_, update)| *update == (object_state::EXISTS, None)) {
                known.set(*objno, true);
            }
        }

        let object_size = self.object_size();
        let data_ops = {
            let io = self.io();
            ops.iter()
                .map(|op| {
                    let mut batch = WriteBatch::new();
                    if op.guard {
                        batch.assert_exists();
                    }
                    if op.hint {
                        batch.alloc_hint(object_size, object_size, 0);
                    }
                    match &op.data {
                        DataOp::Write { offset, data } => batch.write(*offset, data.clone()),
                        DataOp::Remove => batch.remove(),
                        DataOp::Truncate { offset } => batch.truncate(*offset),
                        DataOp::Zero { offset, len } => batch.zero(*offset, *len),
                    };
                    io.data.aio_write_batch(&self.object_name(op.objno), &batch)
                })
                .collect::<Vec<_>>()
        };
        let mut first_error = None;
        let mut post = Vec::new();
        let mut exist = Vec::new();
        for (op, result) in ops.iter().zip(join_all(data_ops).await) {
            match result {
                // A guarded op succeeded: the object exists, and its map says `EXISTS`.
                Ok(()) if op.guard => exist.push(op.objno),
                Ok(()) => {}
                // Removing, or guarding against, a missing object: nothing to do.
                Err(e) if e.errno == libc::ENOENT && (op.guard || matches!(op.data, DataOp::Remove)) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            if let Some(update) = op.post {
                post.push((op.objno, update));
            }
        }
        {
            let mut known = self.known();
            for objno in exist {
                known.set(objno, true);
            }
        }
        // Objects whose data op failed keep their `PENDING`: "may exist", which is safe.
        let posted = self.update_object_map(&post).await;
        match first_error {
            Some(e) => Err(e),
            None => posted,
        }
    }

    /// Applies object map updates, one op per run of neighbouring objects with the same
    /// update, all runs at once. `EBUSY` (our map lock is gone) marks the image lost.
    async fn update_object_map(&self, updates: &[(u64, (u8, Option<u8>))]) -> RadosResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let guard = AssertLocked { name: RBD_LOCK_NAME.into(), cookie: String::new(), tag: String::new() };
        let futures = {
            let io = self.io();
            runs(updates)
                .into_iter()
                .map(|(start, end, (new_state, current_state))| {
                    let mut batch = WriteBatch::new();
                    let update = ObjectMapUpdate { start, end, new_state, current_state };
                    match batch
                        .add(&cls_lock::ASSERT_LOCKED, &guard)
                        .and_then(|b| b.add(&cls_rbd::OBJECT_MAP_UPDATE, &update))
                    {
                        Ok(_) => io.meta.aio_write_batch(&self.object_map, &batch),
                        Err(e) => AioFuture::ready(Err(e)),
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut first_error = None;
        for result in join_all(futures).await {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) if e.errno == libc::EBUSY => {
                self.lost.store(true, Ordering::SeqCst);
                Err(e.with_hint(
                    "The object map's lock is no longer ours: a librbd client took the image over. Stop writing.",
                ))
            }
            Some(e) => Err(e),
        }
    }
}

impl HeaderInfo {
    fn from_replies(
        features: RadosResult<cls_rbd::Features>,
        size: RadosResult<cls_rbd::ImageSize>,
        snapc: RadosResult<SnapContext>,
        label: &str,
    ) -> RadosResult<HeaderInfo> {
        let features = features?.features;
        let size = size?;
        let snapc = snapc?;
        if let Some((_, name)) = REFUSED_FEATURES.iter().find(|(bit, _)| features & bit != 0) {
            return Err(RadosError::new(
                format!("{label} has the {name} feature; direct writes would bypass it"),
                libc::EOPNOTSUPP,
            ));
        }
        if features & !KNOWN_FEATURES != 0 {
            return Err(RadosError::new(
                format!("{label} has features unknown here ({:#x})", features & !KNOWN_FEATURES),
                libc::EOPNOTSUPP,
            ));
        }
        if !ORDERS.contains(&size.order) {
            return Err(RadosError::new(format!("{label} has an implausible object order {}", size.order), libc::EIO));
        }
        Ok(HeaderInfo { features, order: size.order, size: size.size, snapc })
    }
}

/// How many objects an image of `size` bytes spans.
fn object_count(size: u64, order: u8) -> u64 {
    size.div_ceil(1 << order)
}

/// See [`DirectImage::object_extents`].
fn object_extents(order: u8, offset: u64, len: u64) -> Vec<ObjectExtent> {
    let object_size = 1u64 << order;
    let mut extents = Vec::new();
    let (mut at, end) = (offset, offset.saturating_add(len));
    while at < end {
        let in_object = at & (object_size - 1);
        let n = (object_size - in_object).min(end - at);
        extents.push((at >> order, in_object, n));
        at += n;
    }
    extents
}

/// Groups per-object updates into runs `[start, end)` of consecutive objects with the same
/// update.
fn runs<T: Copy + PartialEq>(updates: &[(u64, T)]) -> Vec<(u64, u64, T)> {
    let mut by_object: BTreeMap<u64, T> = BTreeMap::new();
    by_object.extend(updates.iter().copied());
    let mut runs: Vec<(u64, u64, T)> = Vec::new();
    for (objno, update) in by_object {
        match runs.last_mut() {
            Some((_, end, last)) if *end == objno && *last == update => *end += 1,
            _ => runs.push((objno, objno + 1, update)),
        }
    }
    runs
}

/// Awaits every future, all polled concurrently; the outcomes in order.
async fn join_all<T>(futures: Vec<AioFuture<T>>) -> Vec<RadosResult<T>> {
    let mut pending: Vec<Option<AioFuture<T>>> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<RadosResult<T>>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut waiting = false;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = slot {
                match Pin::new(future).poll(cx) {
                    Poll::Ready(result) => {
                        *out = Some(result);
                        *slot = None;
                    }
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            return Poll::Pending;
        }
        Poll::Ready(
            done.iter_mut()
                .map(|out| out.take().unwrap_or_else(|| Err(RadosError::new("operation outcome lost", libc::EIO))))
                .collect(),
        )
    })
    .await
}

/// One bit per object.
#[derive(Debug, Default)]
struct Bitmap {
    words: Vec<u64>,
    len: u64,
}

impl Bitmap {
    fn new(len: u64) -> Bitmap {
        Bitmap { words: vec![0; len.div_ceil(64) as usize], len }
    }

    fn get(&self, i: u64) -> bool {
        i < self.len && self.words.get((i / 64) as usize).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: u64, on: bool) {
        if i >= self.len {
            return;
        }
        if let Some(word) = self.words.get_mut((i / 64) as usize) {
            if on {
                *word |= 1 << (i % 64);
            } else {
                *word &= !(1 << (i % 64));
            }
        }
    }

    fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_split_at_object_boundaries() {
        // 64 KiB objects.
        assert_eq!(object_extents(16, 0, 0), vec![]);
        assert_eq!(object_extents(16, 100, 50), vec![(0, 100, 50)]);
        assert_eq!(object_extents(16, 65_000, 1_000), vec![(0, 65_000, 536), (1, 0, 464)]);
        assert_eq!(
            object_extents(16, 65_536 - 1, 65_536 * 2 + 2),
            vec![(0, 65_535, 1), (1, 0, 65_536), (2, 0, 65_536), (3, 0, 1)]
        );
        assert_eq!(object_extents(22, 5 << 22, 1 << 22), vec![(5, 0, 1 << 22)]);
        let total: u64 = object_extents(12, 12_345, 1_000_000).iter().map(|e| e.2).sum();
        assert_eq!(total, 1_000_000);
        assert_eq!(object_count(0, 16), 0);
        assert_eq!(object_count(1, 16), 1);
        assert_eq!(object_count(2600 << 10, 16), 41);
    }

    #[test]
    fn map_updates_group_into_runs() {
        let exists = (object_state::EXISTS, None);
        let pending = (object_state::PENDING, None);
        let filtered = (object_state::EXISTS, Some(object_state::EXISTS));
        let updates =
            [(3, filtered), (4, pending), (5, pending), (6, pending), (7, filtered), (9, exists), (10, exists)];
        assert_eq!(runs(&updates), vec![(3, 4, filtered), (4, 7, pending), (7, 8, filtered), (9, 11, exists)]);
        assert_eq!(runs::<u8>(&[]), vec![]);
    }

    #[test]
    fn the_cache_is_a_bitmap() {
        let mut bits = Bitmap::new(130);
        assert!(!bits.get(129));
        bits.set(129, true);
        bits.set(0, true);
        bits.set(500, true); // beyond: ignored
        assert!(bits.get(129) && bits.get(0) && !bits.get(1) && !bits.get(500));
        bits.set(0, false);
        assert!(!bits.get(0));
        bits.clear();
        assert!(!bits.get(129));
    }

    #[test]
    fn join_all_keeps_order() {
        let futures = vec![
            AioFuture::ready(Ok(1)),
            AioFuture::ready(Err(RadosError::new("x", libc::EIO))),
            AioFuture::ready(Ok(3)),
        ];
        let results = block_on(join_all(futures));
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], Ok(1));
        assert_eq!(results[1].as_ref().map_err(|e| e.errno), Err(libc::EIO));
        assert_eq!(results[2], Ok(3));
    }

    #[test]
    fn futures_and_the_image_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<DirectImage>();
        // The futures of every request can run on a multi-threaded executor.
        let never = |image: &DirectImage| {
            send(&image.write(0, &[]));
            send(&image.discard(0, 0));
            send(&image.write_zeroes(0, 0));
            send(&image.read(0, 0));
        };
        let _ = never;
    }

    /// A minimal executor for futures that are already resolved.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }
}
