//! Image snapshots by id, at the RADOS level: read `cls_rbd`'s record of a snapshot, set its
//! protection, and *relabel* it (another name and namespace).
//!
//! Why: a snapshot in cls_rbd's `group` namespace is out of reach of every by-name stock
//! command, which is the point, but also of librbd's by-name calls that have no by-id
//! variant in Pacific's public API (`rbd_snap_rollback`, `rbd_clone3`,
//! `rbd_snap_unprotect`). cls_rbd has no method that moves a snapshot between namespaces,
//! so [`relabel`] rewrites the one omap value that holds it (`snapshot_<id>` on
//! `rbd_header.<image id>`) in a compare-and-swap write op — the value must still be
//! exactly what was read, else nothing changes (`ECANCELED`) — keeping every other byte
//! (`SnapRecord::relabeled`), then sends librbd's `HEADER_UPDATE` so that every open image
//! refreshes. It is what `cls_rbd`'s own `image::snapshot::write` would store; it is kept to
//! that one field pair and only ever used on our own member snapshots.

use crate::ceph::cls_rbd::{self, SetProtectionStatus, SnapRecord, SnapshotNamespace};
use crate::ceph::librbd_notify;
use crate::ceph::objects;
use crate::cls::WriteBatch;
use crate::error::{RadosError, RadosResult};
use crate::ioctx::IoCtx;

/// The records of snapshots `snap_ids` of image `image_id`, in one read op; `None` for a
/// snapshot (or image) that does not exist.
pub fn read_snapshots(ioctx: &IoCtx, image_id: &str, snap_ids: &[u64]) -> RadosResult<Vec<Option<SnapRecord>>> {
    let header = objects::image_header(image_id);
    let keys: Vec<String> = snap_ids.iter().map(|id| cls_rbd::snapshot_key(*id)).collect();
    let found = match ioctx.omap_get_by_keys(&header, &keys) {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Ok(vec![None; snap_ids.len()]),
        Err(e) => return Err(e),
    };
    keys.iter()
        .map(|key| match found.iter().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, bytes)) => SnapRecord::parse(bytes)
                .map(Some)
                .map_err(|e| RadosError::new(format!("{header} {key}: {e}"), libc::EOPNOTSUPP)),
        })
        .collect()
}

/// The record of one snapshot (`None`: no such snapshot or image).
pub fn read_snapshot(ioctx: &IoCtx, image_id: &str, snap_id: u64) -> RadosResult<Option<SnapRecord>> {
    Ok(read_snapshots(ioctx, image_id, &[snap_id])?.pop().flatten())
}

/// Gives snapshot `current.id` of image `image_id` the name `name` in `namespace`, provided
/// its record is still `current` (else `ECANCELED`, nothing changed), and tells the
/// image's watchers. The caller makes sure no other snapshot of that namespace has `name`.
pub fn relabel(
    ioctx: &IoCtx,
    image_id: &str,
    current: &SnapRecord,
    name: &str,
    namespace: &SnapshotNamespace,
) -> RadosResult<SnapRecord> {
    let header = objects::image_header(image_id);
    let key = cls_rbd::snapshot_key(current.id);
    let new = current.relabeled(name, namespace);
    let mut batch = WriteBatch::new();
    batch.omap_cmp_eq(&key, current.bytes().to_vec()).omap_set(&key, new.clone());
    ioctx
        .write_batch(&header, &batch)
        .map_err(|e| e.context(format!("moving snapshot {} of image {image_id} to {name:?}", current.id)))?;
    header_update(ioctx, image_id);
    SnapRecord::parse(&new).map_err(|e| RadosError::new(format!("{header} {key}: {e}"), libc::EIO))
}

/// Sets the protection status (`cls_rbd::PROTECTION_*`) of snapshot `snap_id` directly
/// (`ENOEXEC` without the layering feature). librbd's unprotect also checks for clone-v1
/// children first; this does not, so it is only for protecting.
pub fn set_protection(ioctx: &IoCtx, image_id: &str, snap_id: u64, status: u8) -> RadosResult<()> {
    let header = objects::image_header(image_id);
    ioctx.call_write(&header, &cls_rbd::SET_PROTECTION_STATUS, &SetProtectionStatus { snap_id, status })?;
    header_update(ioctx, image_id);
    Ok(())
}

/// librbd's `HEADER_UPDATE` to the image's watchers (they re-read the header); best
/// effort: a watcher that misses it re-reads when it next re-registers its watch.
pub fn header_update(ioctx: &IoCtx, image_id: &str) {
    let header = objects::image_header(image_id);
    if let Err(e) = ioctx.notify(&header, &librbd_notify::header_update(), librbd_notify::NOTIFY_TIMEOUT_MS) {
        log::debug!("HEADER_UPDATE to {header}: {e}");
    }
}
