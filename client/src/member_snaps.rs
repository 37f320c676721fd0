//! Member image snapshots of both kinds, found, used and removed by id.
//!
//! Since this release a member snapshot is cut in cls_rbd's `group` snapshot namespace
//! (`rbd_cg_rados::exclusive_lock::snapshot_namespace_for`) and protected, like stock
//! `rbd group snap create`'s: plain `rbd snap ls` hides it, `rbd snap rm` and
//! `rbd snap purge` cannot name it, `rbd rm` of its image refuses, and even
//! `rbd snap rm --snap-id` meets the protection. Release 0.1.0 cut them as ordinary user
//! snapshots under the same name; those stay valid and are used as they are ([`Kind`]).
//!
//! librbd's by-name calls that have no by-id variant in Pacific (`rbd_snap_rollback`,
//! `rbd_clone3`, `rbd_snap_unprotect`) cannot name a group-namespace snapshot, so
//! [`with_exposed`] moves it into the user namespace under
//! `rbd_cg_contract::names::exposed_image_snap_name` for the call and back afterwards
//! (`rbd_cg_rados::snap_record::relabel`). The snapshot stays protected meanwhile. A crash
//! in between leaves it exposed under that distinctive name, which tells it from a 0.1.0
//! snapshot: the interrupted operation's rerun or `repair` hides it again ([`hide`]).

use crate::error::{ignore_missing, Error, Result};
use crate::faults::{FaultPlan, Steps};
use crate::images::open_member;
use rbd_cg_contract::names::{exposed_image_snap_name, parse_image_snap_name};
use rbd_cg_contract::records::ImageRef;
use rbd_cg_rados::ceph::cls_rbd::{SnapRecord, SnapshotNamespace, PROTECTION_UNPROTECTED, PROTECTION_UNPROTECTING};
use rbd_cg_rados::exclusive_lock::snapshot_namespace_for;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::snap_record;
use rbd_cg_rados::{Cluster, IoCtx};
use std::time::{Duration, Instant};

/// Where a member snapshot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// In the group namespace under its name: out of reach of stock tools.
    Hidden,
    /// In the user namespace under its exposed name, for one of librbd's by-name calls (or
    /// left so by a crash).
    Exposed,
    /// In the user namespace under its name: made by release 0.1.0.
    Legacy,
}

/// One member snapshot on one image.
#[derive(Debug, Clone)]
pub(crate) struct MemberSnap {
    /// Its image.
    pub(crate) image: ImageRef,
    /// Its name (`image_snap_name`), whatever it is called now.
    pub(crate) name: String,
    /// cls_rbd's record as last read.
    pub(crate) record: SnapRecord,
}

impl MemberSnap {
    /// Its kind, from its current name and namespace; `None` when the snapshot under this
    /// id is not (or no longer) this member snapshot (e.g. in the trash).
    pub(crate) fn kind(&self) -> Option<Kind> {
        let exposed = exposed_name(&self.name)?;
        match (&self.record.namespace, self.record.name.as_str()) {
            (SnapshotNamespace::Group { .. }, name) if name == self.name => Some(Kind::Hidden),
            (SnapshotNamespace::User, name) if name == exposed => Some(Kind::Exposed),
            (SnapshotNamespace::User, name) if name == self.name => Some(Kind::Legacy),
            _ => None,
        }
    }

    /// Its snapshot id.
    pub(crate) fn id(&self) -> u64 {
        self.record.id
    }
}

/// The exposed form of member snapshot name `name`.
fn exposed_name(name: &str) -> Option<String> {
    let parts = parse_image_snap_name(name)?;
    Some(exposed_image_snap_name(parts.group_pool_id, &parts.group_id, &parts.snap_id))
}

fn ioctx_of(cluster: &Cluster, image: &ImageRef) -> Result<Option<IoCtx>> {
    match cluster.ioctx_in(image.pool_id, &image.namespace) {
        Ok(ioctx) => Ok(Some(ioctx)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Member snapshot `name` with id `snap_id` on `image`, if it is there (under its name
/// or its exposed name, in either namespace).
pub(crate) fn by_id(cluster: &Cluster, image: &ImageRef, name: &str, snap_id: u64) -> Result<Option<MemberSnap>> {
    let Some(ioctx) = ioctx_of(cluster, image)? else { return Ok(None) };
    let Some(record) = snap_record::read_snapshot(&ioctx, &image.image_id, snap_id)? else { return Ok(None) };
    let snap = MemberSnap { image: image.clone(), name: name.into(), record };
    Ok(snap.kind().is_some().then_some(snap))
}

/// Every snapshot on `image` that is member snapshot `name` (found by name in every
/// namespace: before `snap_create_finish` records the ids, a name is all there is).
pub(crate) fn by_name(cluster: &Cluster, image: &ImageRef, name: &str) -> Result<Vec<MemberSnap>> {
    let Some(ioctx) = ioctx_of(cluster, image)? else { return Ok(Vec::new()) };
    let listed = match Image::open_by_id_read_only(&ioctx, &image.image_id) {
        Ok(opened) => opened.snap_list()?,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let exposed = exposed_name(name);
    let ids: Vec<u64> =
        listed.iter().filter(|s| s.name == name || Some(&s.name) == exposed.as_ref()).map(|s| s.id).collect();
    let records = snap_record::read_snapshots(&ioctx, &image.image_id, &ids)?;
    Ok(records
        .into_iter()
        .flatten()
        .map(|record| MemberSnap { image: image.clone(), name: name.into(), record })
        .filter(|s| s.kind().is_some())
        .collect())
}

/// Moves `snap` into the user namespace under its exposed name (nothing to do for an
/// exposed or 0.1.0 one); returns the name librbd knows it by now.
pub(crate) fn expose(cluster: &Cluster, snap: &mut MemberSnap) -> Result<String> {
    match snap.kind() {
        Some(Kind::Legacy) => return Ok(snap.name.clone()),
        Some(Kind::Exposed) => return Ok(snap.record.name.clone()),
        Some(Kind::Hidden) => {}
        None => return Err(Error::new(format!("member snapshot {} is gone", snap.name), libc::ENOENT)),
    }
    let exposed = exposed_name(&snap.name).unwrap_or_default();
    let ioctx = ioctx_of(cluster, &snap.image)?
        .ok_or_else(|| Error::new(format!("the pool of image {} is gone", snap.image.image_id), libc::ENOENT))?;
    // Two user snapshots of one name would make librbd pick either: refuse a stranger's.
    let listed = Image::open_by_id_read_only(&ioctx, &snap.image.image_id)?.snap_list()?;
    if let Some(other) = listed.iter().find(|s| s.name == exposed && s.id != snap.id()) {
        return Err(Error::new(
            format!("image {} has another snapshot named {exposed} (id {})", snap.image.image_id, other.id),
            libc::EEXIST,
        ));
    }
    snap.record = snap_record::relabel(&ioctx, &snap.image.image_id, &snap.record, &exposed, &SnapshotNamespace::User)?;
    Ok(exposed)
}

/// Moves an exposed member snapshot back into the group namespace under its name (nothing
/// to do for a hidden or 0.1.0 one, or one that is gone).
pub(crate) fn hide(cluster: &Cluster, snap: &mut MemberSnap) -> Result<()> {
    if snap.kind() != Some(Kind::Exposed) {
        return Ok(());
    }
    let Some(ioctx) = ioctx_of(cluster, &snap.image)? else { return Ok(()) };
    let namespace = snapshot_namespace_for(&snap.name);
    snap.record = snap_record::relabel(&ioctx, &snap.image.image_id, &snap.record, &snap.name, &namespace)?;
    Ok(())
}

/// Re-reads `snap`'s record (`ENOENT` once it is no longer this member snapshot).
fn refresh(cluster: &Cluster, snap: &mut MemberSnap) -> Result<()> {
    match by_id(cluster, &snap.image, &snap.name, snap.id())? {
        Some(fresh) => {
            *snap = fresh;
            Ok(())
        }
        None => Err(Error::new(format!("member snapshot {} is gone", snap.name), libc::ENOENT)),
    }
}

/// Runs `call` on the image (opened read-write after the snapshot is exposed) with the name
/// librbd knows `snap` by, then hides it again: operation `expose` of the fault plan, steps
/// 1 expose, 2 the call, 3 hide. Another command working on the same member snapshot (a
/// concurrent clone of the same group snapshot) may hide it under our call, which then fails
/// `ENOENT` or `ECANCELED`: exposed again and retried, a few times.
pub(crate) fn with_exposed<T>(
    cluster: &Cluster,
    snap: &mut MemberSnap,
    faults: &FaultPlan,
    mut call: impl FnMut(&mut Image, &str) -> Result<T>,
) -> Result<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut steps = Steps::new("expose", faults);
        let name = match steps.run("expose the member snapshot", || expose(cluster, snap)) {
            Err(e) if e.errno() == libc::ECANCELED && attempt < 5 => {
                refresh(cluster, snap)?;
                continue;
            }
            other => other?,
        };
        let result = steps
            .run("call librbd", || open_member(cluster, &snap.image).and_then(|mut image| call(&mut image, &name)));
        if result.as_ref().is_err_and(Error::is_injected) {
            return result;
        }
        refresh(cluster, snap)?;
        let hidden = steps.run("hide the member snapshot", || hide(cluster, snap));
        match result {
            Err(e) if e.errno() == libc::ENOENT && attempt < 5 => continue,
            result => return hidden.and(result),
        }
    }
}

/// How long removing a member snapshot waits out another client's exclusive lock: a group
/// snapshot being cut on a shared image holds its fence (and refuses lock requests with
/// `EBUSY`) for at most its fence timeout, so a `snap rm` racing one waits instead of leaving
/// its snapshot half removed.
const LOCK_BUSY_WAIT: Duration = Duration::from_secs(60);

/// Unprotects `snap` through librbd (which refuses with `EBUSY` while clone-v1 children
/// depend on it); returns whether it was protected.
pub(crate) fn unprotect(cluster: &Cluster, snap: &mut MemberSnap, faults: &FaultPlan) -> Result<bool> {
    if snap.record.protection_status == PROTECTION_UNPROTECTED {
        return Ok(false);
    }
    if snap.record.protection_status == PROTECTION_UNPROTECTING {
        // Left so by a journal writer stopped while unprotecting it for its removal:
        // librbd unprotects only a protected snapshot.
        protect(cluster, snap)?;
    }
    with_exposed(cluster, snap, faults, |image, name| Ok(image.snap_unprotect(name)?))?;
    Ok(true)
}

/// How many clone children (either format, any pool) `snap` has; 0 when its image is gone.
pub(crate) fn children(cluster: &Cluster, snap: &MemberSnap) -> Result<usize> {
    let Some(ioctx) = ioctx_of(cluster, &snap.image)? else { return Ok(0) };
    match Image::open_by_id_read_only(&ioctx, &snap.image.image_id) {
        Ok(mut image) => Ok(image.snap_children_count(snap.id())?),
        Err(e) if e.is_not_found() => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Protects `snap` again (after an [`unprotect`] whose removal was called off).
pub(crate) fn protect(cluster: &Cluster, snap: &mut MemberSnap) -> Result<()> {
    let Some(ioctx) = ioctx_of(cluster, &snap.image)? else { return Ok(()) };
    snap_record::set_protection(
        &ioctx,
        &snap.image.image_id,
        snap.id(),
        rbd_cg_rados::ceph::cls_rbd::PROTECTION_PROTECTED,
    )?;
    refresh(cluster, snap)
}

/// Removes `snap` (unprotecting it first: `EBUSY` while clone-v1 children depend on it) by
/// id, whatever its namespace. With clone-v2 children librbd moves it to the image's trash
/// namespace instead; it goes with its last child. `EBUSY` from a lock owner refusing to
/// let go is retried for a while; a snapshot already gone is fine.
pub(crate) fn remove(cluster: &Cluster, mut snap: MemberSnap, faults: &FaultPlan) -> Result<()> {
    match unprotect(cluster, &mut snap, faults) {
        Err(e) if e.is_not_found() => return Ok(()),
        other => other?,
    };
    let mut image = match open_member(cluster, &snap.image) {
        Ok(image) => image,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + LOCK_BUSY_WAIT;
    let mut pause = Duration::from_millis(20);
    loop {
        match image.snap_remove_by_id(snap.id()) {
            Err(e) if e.errno == libc::EBUSY && Instant::now() < deadline => {
                match refresh(cluster, &mut snap) {
                    // Gone meanwhile (another client removed it, e.g. `image rm` of the
                    // member or a concurrent `snap rm`): what we wanted.
                    Err(gone) if gone.is_not_found() => return Ok(()),
                    other => other?,
                }
                if snap.record.protection_status != PROTECTION_UNPROTECTED {
                    return Err(e.into());
                }
                log::debug!("removing {}: the image's lock owner is busy; retrying in {pause:?}", snap.name);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            result => return ignore_missing(result.map_err(Error::from)),
        }
    }
}

/// Removes member snapshot `name` of `image`: the one with id `snap_id` when it is known,
/// else every snapshot by that name (an undone create has no ids yet).
pub(crate) fn remove_member_snapshot(
    cluster: &Cluster,
    image: &ImageRef,
    name: &str,
    snap_id: Option<u64>,
    faults: &FaultPlan,
) -> Result<()> {
    let found = match snap_id {
        Some(id) => by_id(cluster, image, name, id)?.into_iter().collect(),
        None => by_name(cluster, image, name)?,
    };
    found.into_iter().try_for_each(|snap| remove(cluster, snap, faults))
}
