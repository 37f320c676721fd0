//! Group snapshots, in `cg_header.<id>`'s omap: `snap_<seq>` records in creation order,
//! a `snapname_<name>` index, the `next_snap_seq` counter, and the
//! `snapshot_in_progress` mark.
//!
//! Creating a snapshot takes the member list from the group's `Attached` members in
//! the same atomic call that records the snapshot and sets the mark; while the mark is
//! set, membership cannot change (see [`super::members`]). A snapshot cannot begin while
//! a member is `Adding` or `Removing`. So a snapshot's members are exactly the group's
//! members at one instant, never a partial view.
//!
//! Snapshot ids allocated ahead (`reserved_snap_ids`) are handed by `create_begin` to the
//! snapshot it records (`taken_snap_ids`), in the same atomic call, and refilled by
//! `reserve_put` in the atomic op that also finishes the snapshot: so each reserved id
//! reaches exactly one snapshot attempt, whatever crashes in between.

use super::header::{load as header, load_active};
use super::members::validate_image;
use crate::store::{decode_listed, for_each_with_prefix, load_key, save_data};
use crate::ObjectStore;
use rbd_cg_contract::journal::snap_journal_key;
use rbd_cg_contract::methods::{
    Empty, SnapCreateRequest, SnapFinishRequest, SnapListReply, SnapListRequest, SnapRemoveRequest, SnapRenameRequest,
    SnapRequest, SnapReservePutRequest, MAX_LIST_PAGE, MAX_SNAP_PAGE_BYTES,
};
use rbd_cg_contract::names::{
    snap_key, snap_name_key, validate_group_id, validate_snap_name, MAX_GROUP_MEMBERS, MAX_GROUP_SNAPSHOTS,
    MEMBER_KEY_PREFIX, NEXT_SNAP_SEQ_KEY, SNAPSHOT_IN_PROGRESS_KEY, SNAP_ID_RESERVE_KEY, SNAP_ID_TAKEN_KEY,
    SNAP_KEY_PREFIX,
};
use rbd_cg_contract::records::{
    ImageRef, MemberRecord, MemberState, SnapIdReserve, SnapInProgress, SnapNameEntry, SnapOperation, SnapSeq,
    SnapshotMember, SnapshotRecord, SnapshotState,
};
use rbd_cg_contract::{encode, CgError};

/// Snapshot records read per omap call while listing.
const SNAP_LIST_CHUNK: usize = 16;

fn in_progress(store: &dyn ObjectStore) -> Result<Option<SnapInProgress>, CgError> {
    load_key(store, SNAPSHOT_IN_PROGRESS_KEY)
}

/// The record of snapshot `name`; `ENOENT` if there is none.
pub(crate) fn record(store: &dyn ObjectStore, name: &str) -> Result<SnapshotRecord, CgError> {
    validate_snap_name(name)?;
    let entry = load_key::<SnapNameEntry>(store, &snap_name_key(name))?
        .ok_or_else(|| CgError::NotFound(format!("no group snapshot {name:?}")))?;
    load_key::<SnapshotRecord>(store, &snap_key(entry.seq))?
        .ok_or_else(|| CgError::Io(format!("snapshot index names seq {} but no record exists", entry.seq)))
}

fn save_record(store: &mut dyn ObjectStore, record: &SnapshotRecord) -> Result<(), CgError> {
    let value = encode(record)?;
    store.omap_set(&[(&snap_key(record.seq), &value)])
}

/// Every member, all of which must be `Attached` (`EBUSY` otherwise), in key order.
pub(crate) fn attached_members(store: &dyn ObjectStore) -> Result<Vec<ImageRef>, CgError> {
    let mut images = Vec::new();
    for_each_with_prefix(store, MEMBER_KEY_PREFIX, |key, value| {
        let member: MemberRecord = decode_listed(key, value)?;
        if member.state != MemberState::Attached {
            return Err(CgError::Busy(format!("image {} is {:?}", member.image.image_id, member.state)));
        }
        if images.len() >= MAX_GROUP_MEMBERS as usize {
            return Err(CgError::OutOfRange(format!("more than {MAX_GROUP_MEMBERS} members")));
        }
        images.push(member.image);
        Ok(true)
    })?;
    Ok(images)
}

/// Records a `Creating` snapshot of the attached members and marks it in progress.
pub fn create_begin(store: &mut dyn ObjectStore, req: SnapCreateRequest) -> Result<(), CgError> {
    validate_group_id(&req.snap_id)?;
    validate_snap_name(&req.name)?;
    if req.max_snapshots == 0 || req.max_snapshots > MAX_GROUP_SNAPSHOTS {
        return Err(CgError::OutOfRange(format!(
            "snapshot limit {} is not in 1..={MAX_GROUP_SNAPSHOTS}",
            req.max_snapshots
        )));
    }
    let mut header = load_active(store, &req.group_id)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "creating a group snapshot")?;
    if let Some(entry) = load_key::<SnapNameEntry>(store, &snap_name_key(&req.name))? {
        let existing = load_key::<SnapshotRecord>(store, &snap_key(entry.seq))?;
        return match existing {
            Some(r) if r.id == req.snap_id && r.state == SnapshotState::Creating => Ok(()),
            _ => Err(CgError::Exists(format!("group snapshot {:?}", req.name))),
        };
    }
    if let Some(busy) = in_progress(store)? {
        return Err(CgError::Busy(format!("snapshot {} is in progress ({:?})", busy.seq, busy.operation)));
    }
    if header.snapshot_count >= req.max_snapshots {
        return Err(CgError::OutOfRange(format!("group has {} snapshots, the limit", header.snapshot_count)));
    }
    let members =
        attached_members(store)?.into_iter().map(|image| SnapshotMember { image, snap_id: None }).collect::<Vec<_>>();
    let seq = load_key::<SnapSeq>(store, NEXT_SNAP_SEQ_KEY)?.map_or(1, |s| s.next);
    let next = seq.checked_add(1).ok_or_else(|| CgError::Io("snapshot sequence exhausted".into()))?;
    let record = SnapshotRecord {
        seq,
        id: req.snap_id,
        name: req.name.clone(),
        state: SnapshotState::Creating,
        created_ms: req.created_ms,
        members,
    };
    // The record grows when `finish` fills in the ids: check it will still fit then.
    let completed = SnapshotRecord {
        state: SnapshotState::Complete,
        members: record.members.iter().map(|m| SnapshotMember { snap_id: Some(u64::MAX), ..m.clone() }).collect(),
        ..record.clone()
    };
    encode(&completed)?;
    let record_value = encode(&record)?;
    let name_value = encode(&SnapNameEntry { seq })?;
    let seq_value = encode(&SnapSeq { next })?;
    let mark = encode(&SnapInProgress { seq, operation: SnapOperation::Create })?;
    store.omap_set(&[
        (&snap_key(seq), &record_value),
        (&snap_name_key(&req.name), &name_value),
        (NEXT_SNAP_SEQ_KEY, &seq_value),
        (SNAPSHOT_IN_PROGRESS_KEY, &mark),
    ])?;
    // Hand the reserve to this snapshot (a leftover of an earlier attempt is dropped).
    match store.omap_get(SNAP_ID_RESERVE_KEY)? {
        Some(reserve) => {
            store.omap_set(&[(SNAP_ID_TAKEN_KEY, &reserve)])?;
            store.omap_remove(SNAP_ID_RESERVE_KEY)?;
        }
        None => store.omap_remove(SNAP_ID_TAKEN_KEY)?,
    }
    header.snapshot_count += 1;
    save_data(store, &header)
}

/// The reserved snapshot ids handed to the snapshot being created (empty if none).
pub fn reserve_get(store: &mut dyn ObjectStore, _req: Empty) -> Result<SnapIdReserve, CgError> {
    Ok(load_key::<SnapIdReserve>(store, SNAP_ID_TAKEN_KEY)?.unwrap_or_default())
}

/// Stores the reserve for the next snapshot; only while a snapshot is being created.
pub fn reserve_put(store: &mut dyn ObjectStore, req: SnapReservePutRequest) -> Result<(), CgError> {
    load_active(store, &req.group_id)?;
    if !in_progress(store)?.is_some_and(|p| p.operation == SnapOperation::Create) {
        return Err(CgError::InvalidArgument("no group snapshot is being created".into()));
    }
    let ids = &req.reserve.ids;
    if ids.len() > MAX_GROUP_MEMBERS as usize {
        return Err(CgError::OutOfRange(format!("{} reserved ids, more than {MAX_GROUP_MEMBERS}", ids.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        // Ceph reserves the top snap ids (CEPH_MAXSNAP = u64::MAX - 2); stay well below.
        if id.pool_id < 0 || id.snap_id == 0 || id.snap_id >= 0xffff_ffff_ffff_fff0 || !seen.insert(*id) {
            return Err(CgError::InvalidArgument(format!("bad or repeated reserved snapshot id {id:?}")));
        }
    }
    store.omap_set(&[(SNAP_ID_RESERVE_KEY, &encode(&req.reserve)?)])?;
    store.omap_remove(SNAP_ID_TAKEN_KEY)
}

/// Records the image snapshot ids and completes the snapshot.
pub fn create_finish(store: &mut dyn ObjectStore, req: SnapFinishRequest) -> Result<(), CgError> {
    header(store, &req.group_id)?;
    let mut record = record(store, &req.name)?;
    match record.state {
        SnapshotState::Complete => return Ok(()),
        SnapshotState::Removing => return Err(CgError::Busy(format!("snapshot {:?} is being removed", req.name))),
        SnapshotState::Creating => {}
    }
    if req.image_snaps.len() != record.members.len() {
        return Err(CgError::InvalidArgument(format!(
            "{} image snapshots for {} members",
            req.image_snaps.len(),
            record.members.len()
        )));
    }
    for (member, (image, snap_id)) in record.members.iter_mut().zip(&req.image_snaps) {
        validate_image(image)?;
        if member.image != *image {
            return Err(CgError::InvalidArgument(format!(
                "image {} is not member {}",
                image.image_id, member.image.image_id
            )));
        }
        member.snap_id = Some(*snap_id);
    }
    record.state = SnapshotState::Complete;
    save_record(store, &record)?;
    if in_progress(store)?.is_some_and(|p| p.seq == record.seq) {
        store.omap_remove(SNAPSHOT_IN_PROGRESS_KEY)?;
    }
    Ok(())
}

/// `Creating`/`Complete` → `Removing`.
pub fn remove_begin(store: &mut dyn ObjectStore, req: SnapRemoveRequest) -> Result<(), CgError> {
    header(store, &req.group_id)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "removing a group snapshot")?;
    let mut record = record(store, &req.name)?;
    if record.state == SnapshotState::Removing {
        return Ok(());
    }
    if record.state == SnapshotState::Creating && !req.undo_create {
        return Err(CgError::Busy(format!(
            "snapshot {:?} is being created (if its creator died, repair undoes it)",
            req.name
        )));
    }
    if in_progress(store)?.is_some_and(|p| p.seq == record.seq && p.operation == SnapOperation::Rollback) {
        return Err(CgError::Busy(format!("the group is being rolled back to {:?}", req.name)));
    }
    record.state = SnapshotState::Removing;
    save_record(store, &record)
}

/// Drops a `Removing` snapshot.
pub fn remove_finish(store: &mut dyn ObjectStore, req: SnapRequest) -> Result<(), CgError> {
    let mut header = header(store, &req.group_id)?;
    let record = record(store, &req.name)?;
    if record.state != SnapshotState::Removing {
        return Err(CgError::Busy(format!("snapshot {:?} is {:?}, not Removing", req.name, record.state)));
    }
    store.omap_remove(&snap_key(record.seq))?;
    store.omap_remove(&snap_name_key(&req.name))?;
    store.omap_remove(&snap_journal_key(record.seq))?;
    if in_progress(store)?.is_some_and(|p| p.seq == record.seq) {
        store.omap_remove(SNAPSHOT_IN_PROGRESS_KEY)?;
    }
    header.snapshot_count = header.snapshot_count.saturating_sub(1);
    save_data(store, &header)
}

/// Renames a `Complete` snapshot.
pub fn rename(store: &mut dyn ObjectStore, req: SnapRenameRequest) -> Result<(), CgError> {
    header(store, &req.group_id)?;
    validate_snap_name(&req.new_name)?;
    let mut record = record(store, &req.old_name)?;
    if record.state != SnapshotState::Complete {
        return Err(CgError::Busy(format!("snapshot {:?} is {:?}", req.old_name, record.state)));
    }
    if store.omap_get(&snap_name_key(&req.new_name))?.is_some() {
        return Err(CgError::Exists(format!("group snapshot {:?}", req.new_name)));
    }
    record.name = req.new_name.clone();
    let record_value = encode(&record)?;
    let name_value = encode(&SnapNameEntry { seq: record.seq })?;
    store.omap_remove(&snap_name_key(&req.old_name))?;
    store.omap_set(&[(&snap_key(record.seq), &record_value), (&snap_name_key(&req.new_name), &name_value)])
}

/// Marks a rollback to a `Complete` snapshot as in progress.
pub fn rollback_begin(store: &mut dyn ObjectStore, req: SnapRequest) -> Result<(), CgError> {
    load_active(store, &req.group_id)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "rolling the group back")?;
    super::journal::refuse_while_journaled(store, "rolling the group back")?;
    let record = record(store, &req.name)?;
    if record.state != SnapshotState::Complete {
        return Err(CgError::Busy(format!("snapshot {:?} is {:?}", req.name, record.state)));
    }
    match in_progress(store)? {
        Some(p) if p.seq == record.seq && p.operation == SnapOperation::Rollback => return Ok(()),
        Some(p) => return Err(CgError::Busy(format!("snapshot {} is in progress ({:?})", p.seq, p.operation))),
        None => {}
    }
    attached_members(store)?;
    let mark = encode(&SnapInProgress { seq: record.seq, operation: SnapOperation::Rollback })?;
    store.omap_set(&[(SNAPSHOT_IN_PROGRESS_KEY, &mark)])
}

/// Clears the rollback mark of snapshot `name`.
pub fn rollback_finish(store: &mut dyn ObjectStore, req: SnapRequest) -> Result<(), CgError> {
    header(store, &req.group_id)?;
    let record = record(store, &req.name)?;
    if in_progress(store)?.is_some_and(|p| p.seq == record.seq && p.operation == SnapOperation::Rollback) {
        store.omap_remove(SNAPSHOT_IN_PROGRESS_KEY)?;
    }
    Ok(())
}

/// One snapshot by name.
pub fn get(store: &mut dyn ObjectStore, req: SnapRequest) -> Result<SnapshotRecord, CgError> {
    header(store, &req.group_id)?;
    record(store, &req.name)
}

/// Snapshots in creation order, bounded by count and by bytes.
pub fn list(store: &mut dyn ObjectStore, req: SnapListRequest) -> Result<SnapListReply, CgError> {
    if req.max_entries == 0 || req.max_entries > MAX_LIST_PAGE {
        return Err(CgError::OutOfRange(format!("page size {} is not in 1..={MAX_LIST_PAGE}", req.max_entries)));
    }
    if store.stat()?.is_none() {
        return Err(CgError::NotFound("no group header".into()));
    }
    // Records can be large (their member lists), so read them in small chunks and stop
    // at the byte budget: the OSD never holds much more than one reply's worth.
    let mut after = if req.start_after_seq == 0 { String::new() } else { snap_key(req.start_after_seq) };
    let mut snapshots = Vec::new();
    let mut bytes = 0usize;
    loop {
        let want = (req.max_entries as usize - snapshots.len()).min(SNAP_LIST_CHUNK) as u32;
        let page = store.omap_list(&after, SNAP_KEY_PREFIX, want)?;
        for (key, value) in &page.entries {
            if !snapshots.is_empty() && bytes + value.len() > MAX_SNAP_PAGE_BYTES {
                return Ok(SnapListReply { snapshots, in_progress: in_progress(store)?, more: true });
            }
            bytes += value.len();
            snapshots.push(decode_listed(key, value)?);
        }
        let full = snapshots.len() >= req.max_entries as usize;
        match page.entries.last() {
            Some((last, _)) if page.more && !full => after = last.clone(),
            _ => return Ok(SnapListReply { snapshots, in_progress: in_progress(store)?, more: page.more }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::records::{ImageRef, ReservedSnapId, SnapIdReserve, SnapOperation, SnapshotState};

    const HDR: &str = "cg_header.g1";

    fn image(id: &str) -> ImageRef {
        ImageRef { pool_id: 1, namespace: "".into(), image_id: id.into() }
    }
    fn member(h: &mut Harness, id: &str, attach: bool) {
        let add = MemberAddRequest { group_id: "g1".into(), image: image(id), added_ms: 0, max_members: 100 };
        h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
        if attach {
            h.write(HDR, &MEMBER_ADD_FINISH, &MemberRequest { group_id: "g1".into(), image: image(id) }).unwrap();
        }
    }
    fn harness(members: &[&str]) -> Harness {
        let mut h = Harness::default();
        let create = GroupCreateRequest { id: "g1".into(), name: "db".into(), created_ms: 1 };
        h.write(HDR, &GROUP_CREATE, &create).unwrap();
        for m in members {
            member(&mut h, m, true);
        }
        h
    }
    fn begin(name: &str, id: &str) -> SnapCreateRequest {
        SnapCreateRequest {
            group_id: "g1".into(),
            snap_id: id.into(),
            name: name.into(),
            created_ms: 7,
            max_snapshots: 10,
        }
    }
    fn snap(name: &str) -> SnapRequest {
        SnapRequest { group_id: "g1".into(), name: name.into() }
    }
    /// `snap_remove_begin` as an undo (or repair) sends it: a `Creating` snapshot may go.
    fn undo(name: &str) -> SnapRemoveRequest {
        SnapRemoveRequest { group_id: "g1".into(), name: name.into(), undo_create: true }
    }
    fn finish(name: &str, ids: &[(&str, u64)]) -> SnapFinishRequest {
        SnapFinishRequest {
            group_id: "g1".into(),
            name: name.into(),
            image_snaps: ids.iter().map(|(i, s)| (image(i), *s)).collect(),
        }
    }
    fn list(h: &mut Harness) -> SnapListReply {
        h.read(HDR, &SNAP_LIST, &SnapListRequest { start_after_seq: 0, max_entries: 100 }).unwrap()
    }
    fn errno<T>(r: Result<T, rbd_cg_contract::CgError>) -> i32 {
        r.err().map(|e| e.errno()).unwrap_or(0)
    }

    fn reserve(ids: &[u64]) -> SnapReservePutRequest {
        let ids = ids.iter().map(|&snap_id| ReservedSnapId { pool_id: 1, snap_id }).collect();
        SnapReservePutRequest { group_id: "g1".into(), reserve: SnapIdReserve { ids } }
    }
    fn taken(h: &mut Harness) -> Vec<u64> {
        h.read(HDR, &SNAP_RESERVE_GET, &Empty {}).unwrap().ids.iter().map(|i| i.snap_id).collect()
    }

    #[test]
    fn each_reserved_snapshot_id_reaches_one_snapshot_attempt() {
        let mut h = harness(&["aa"]);
        // Only while a snapshot is being created.
        assert_eq!(errno(h.write(HDR, &SNAP_RESERVE_PUT, &reserve(&[10]))), libc::EINVAL);
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "id1")).unwrap();
        assert!(taken(&mut h).is_empty(), "nothing reserved yet");
        for bad in [&[0][..], &[11, 11], &[u64::MAX - 2]] {
            assert_eq!(errno(h.write(HDR, &SNAP_RESERVE_PUT, &reserve(bad))), libc::EINVAL, "{bad:?}");
        }
        h.write(HDR, &SNAP_RESERVE_PUT, &reserve(&[20])).unwrap();
        h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 4)])).unwrap();
        // The next snapshot takes the reserve; a second take (a new attempt) finds none.
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s2", "id2")).unwrap();
        assert_eq!(taken(&mut h), [20]);
        h.write(HDR, &SNAP_REMOVE_BEGIN, &undo("s2")).unwrap();
        h.write(HDR, &SNAP_REMOVE_FINISH, &snap("s2")).unwrap();
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s3", "id3")).unwrap();
        assert!(taken(&mut h).is_empty(), "an undone attempt's ids are never handed out again");
        h.write(HDR, &SNAP_RESERVE_PUT, &reserve(&[30, 31])).unwrap();
        assert!(taken(&mut h).is_empty(), "put drops the taken ids");
        h.write(HDR, &SNAP_CREATE_FINISH, &finish("s3", &[("aa", 5)])).unwrap();
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s4", "id4")).unwrap();
        assert_eq!(taken(&mut h), [30, 31]);
        h.write(HDR, &SNAP_RESERVE_PUT, &reserve(&[40])).unwrap();
        // The reserve keys are not snapshot records: listing still reads every snapshot.
        assert_eq!(list(&mut h).snapshots.len(), 3);
    }

    #[test]
    fn create_captures_the_attached_members_and_blocks_membership_until_finished() {
        let mut h = harness(&["aa", "bb"]);
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "id1")).unwrap();
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "id1")).unwrap();
        let record = h.read(HDR, &SNAP_GET, &snap("s1")).unwrap();
        assert_eq!((record.seq, record.state, record.members.len()), (1, SnapshotState::Creating, 2));
        assert_eq!(list(&mut h).in_progress.map(|p| p.operation), Some(SnapOperation::Create));
        // Membership and other snapshots wait.
        let add = MemberAddRequest { group_id: "g1".into(), image: image("cc"), added_ms: 0, max_members: 100 };
        assert_eq!(errno(h.write(HDR, &MEMBER_ADD_BEGIN, &add)), libc::EBUSY);
        let rm = MemberRequest { group_id: "g1".into(), image: image("aa") };
        assert_eq!(errno(h.write(HDR, &MEMBER_REMOVE_BEGIN, &rm)), libc::EBUSY);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s2", "id2"))), libc::EBUSY);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "other"))), libc::EEXIST);
        // Finishing needs exactly the recorded members.
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 4)]))), libc::EINVAL);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 4), ("zz", 5)]))), libc::EINVAL);
        h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 4), ("bb", 5)])).unwrap();
        h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 4), ("bb", 5)])).unwrap();
        let record = h.read(HDR, &SNAP_GET, &snap("s1")).unwrap();
        assert_eq!(record.state, SnapshotState::Complete);
        assert_eq!(record.members.iter().map(|m| m.snap_id).collect::<Vec<_>>(), [Some(4), Some(5)]);
        assert!(list(&mut h).in_progress.is_none());
        h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
        // A member being added blocks the next snapshot.
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s2", "id2"))), libc::EBUSY);
        assert_eq!(h.read(HDR, &GROUP_GET, &Empty {}).unwrap().snapshot_count, 1);
        let id = IdRequest { id: "g1".into() };
        assert_eq!(errno(h.write(HDR, &GROUP_BEGIN_REMOVE, &id)), libc::EBUSY);
    }

    #[test]
    fn remove_walks_its_states_and_undoes_an_interrupted_create() {
        let mut h = harness(&["aa"]);
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "id1")).unwrap();
        assert_eq!(errno(h.write(HDR, &SNAP_REMOVE_FINISH, &snap("s1"))), libc::EBUSY);
        h.write(HDR, &SNAP_REMOVE_BEGIN, &undo("s1")).unwrap();
        h.write(HDR, &SNAP_REMOVE_BEGIN, &undo("s1")).unwrap();
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 1)]))), libc::EBUSY);
        assert!(list(&mut h).in_progress.is_some(), "undoing a create keeps membership frozen");
        h.write(HDR, &SNAP_REMOVE_FINISH, &snap("s1")).unwrap();
        assert_eq!(errno(h.write(HDR, &SNAP_REMOVE_FINISH, &snap("s1"))), libc::ENOENT);
        let after = list(&mut h);
        assert!(after.snapshots.is_empty() && after.in_progress.is_none());
        assert_eq!(h.read(HDR, &GROUP_GET, &Empty {}).unwrap().snapshot_count, 0);
        // Sequence numbers keep growing: creation order survives removals.
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "id3")).unwrap();
        assert_eq!(h.read(HDR, &SNAP_GET, &snap("s1")).unwrap().seq, 2);
    }

    #[test]
    fn rename_rollback_list_and_limits() {
        let mut h = harness(&["aa"]);
        for (i, name) in ["s1", "s2", "s3"].iter().enumerate() {
            let id = format!("id{i}");
            h.write(HDR, &SNAP_CREATE_BEGIN, &begin(name, &id)).unwrap();
            h.write(HDR, &SNAP_CREATE_FINISH, &finish(name, &[("aa", i as u64)])).unwrap();
        }
        let rename = |old: &str, new: &str| SnapRenameRequest {
            group_id: "g1".into(),
            old_name: old.into(),
            new_name: new.into(),
        };
        assert_eq!(errno(h.write(HDR, &SNAP_RENAME, &rename("s1", "s2"))), libc::EEXIST);
        assert_eq!(errno(h.write(HDR, &SNAP_RENAME, &rename("nope", "x"))), libc::ENOENT);
        assert_eq!(errno(h.write(HDR, &SNAP_RENAME, &rename("s1", "a/b"))), libc::EINVAL);
        h.write(HDR, &SNAP_RENAME, &rename("s1", "first")).unwrap();
        assert_eq!(errno(h.read(HDR, &SNAP_GET, &snap("s1"))), libc::ENOENT);
        let names: Vec<String> = list(&mut h).snapshots.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["first", "s2", "s3"], "creation order, not name order");
        let page = h.read(HDR, &SNAP_LIST, &SnapListRequest { start_after_seq: 1, max_entries: 1 }).unwrap();
        assert_eq!((page.snapshots[0].name.as_str(), page.more), ("s2", true));

        h.write(HDR, &SNAP_ROLLBACK_BEGIN, &snap("s2")).unwrap();
        h.write(HDR, &SNAP_ROLLBACK_BEGIN, &snap("s2")).unwrap();
        assert_eq!(errno(h.write(HDR, &SNAP_ROLLBACK_BEGIN, &snap("s3"))), libc::EBUSY);
        assert_eq!(errno(h.write(HDR, &SNAP_REMOVE_BEGIN, &undo("s2"))), libc::EBUSY);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s4", "id4"))), libc::EBUSY);
        h.write(HDR, &SNAP_ROLLBACK_FINISH, &snap("s2")).unwrap();
        h.write(HDR, &SNAP_ROLLBACK_FINISH, &snap("s2")).unwrap();
        assert!(list(&mut h).in_progress.is_none());

        let mut over = begin("s4", "id4");
        over.max_snapshots = 3;
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &over)), libc::ERANGE);
        over.max_snapshots = 0;
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &over)), libc::ERANGE);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("bad@name", "id5"))), libc::EINVAL);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("ok", "BAD"))), libc::EINVAL);
        let bad_page = SnapListRequest { start_after_seq: 0, max_entries: 0 };
        assert_eq!(errno(h.read(HDR, &SNAP_LIST, &bad_page)), libc::ERANGE);
    }

    #[test]
    fn snapshots_see_every_member_past_the_osd_per_call_cap() {
        let mut h = harness(&[]);
        let ids: Vec<String> = (0..1030).map(|i| format!("m{i:04}")).collect();
        for id in &ids {
            let add = MemberAddRequest { group_id: "g1".into(), image: image(id), added_ms: 0, max_members: 4096 };
            h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
            h.write(HDR, &MEMBER_ADD_FINISH, &MemberRequest { group_id: "g1".into(), image: image(id) }).unwrap();
        }
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("big", "id1")).unwrap();
        assert_eq!(h.read(HDR, &SNAP_GET, &snap("big")).unwrap().members.len(), 1030);
        let all: Vec<(&str, u64)> = ids.iter().map(|i| (i.as_str(), 1)).collect();
        h.write(HDR, &SNAP_CREATE_FINISH, &finish("big", &all)).unwrap();
        // A member past the first 1024 that is being removed still blocks rollback.
        let last = MemberRequest { group_id: "g1".into(), image: image("m1029") };
        h.write(HDR, &MEMBER_REMOVE_BEGIN, &last).unwrap();
        assert_eq!(errno(h.write(HDR, &SNAP_ROLLBACK_BEGIN, &snap("big"))), libc::EBUSY);
        assert_eq!(errno(h.write(HDR, &SNAP_CREATE_BEGIN, &begin("next", "id2"))), libc::EBUSY);
    }

    #[test]
    fn listing_reads_in_chunks_and_returns_everything_asked() {
        let mut h = harness(&["aa"]);
        for i in 0..40u64 {
            let name = format!("s{i:02}");
            let request = SnapCreateRequest { max_snapshots: 100, ..begin(&name, &format!("id{i}")) };
            h.write(HDR, &SNAP_CREATE_BEGIN, &request).unwrap();
            h.write(HDR, &SNAP_CREATE_FINISH, &finish(&name, &[("aa", i)])).unwrap();
        }
        let page = h.read(HDR, &SNAP_LIST, &SnapListRequest { start_after_seq: 0, max_entries: 100 }).unwrap();
        assert_eq!((page.snapshots.len(), page.more), (40, false));
        let page = h.read(HDR, &SNAP_LIST, &SnapListRequest { start_after_seq: 0, max_entries: 20 }).unwrap();
        assert_eq!((page.snapshots.len(), page.more), (20, true));
        let rest = h.read(HDR, &SNAP_LIST, &SnapListRequest { start_after_seq: 20, max_entries: 100 }).unwrap();
        assert_eq!((rest.snapshots.len(), rest.snapshots[0].seq), (20, 21));
    }

    #[test]
    fn a_removing_header_is_not_recreated() {
        let mut h = harness(&[]);
        h.write(HDR, &GROUP_BEGIN_REMOVE, &IdRequest { id: "g1".into() }).unwrap();
        let create = GroupCreateRequest { id: "g1".into(), name: "db".into(), created_ms: 1 };
        assert_eq!(errno(h.write(HDR, &GROUP_CREATE, &create)), libc::EBUSY);
    }

    /// The race that leaked member snapshots: a `snap rm` of a snapshot another client is
    /// still creating. Only an undo may remove a `Creating` snapshot.
    #[test]
    fn a_snapshot_being_created_is_removed_only_by_an_undo() {
        let mut h = harness(&["aa"]);
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s1", "id1")).unwrap();
        let before = h.object(HDR);
        let plain = SnapRemoveRequest { group_id: "g1".into(), name: "s1".into(), undo_create: false };
        assert_eq!(errno(h.write(HDR, &SNAP_REMOVE_BEGIN, &plain)), libc::EBUSY);
        assert_eq!(h.object(HDR), before, "a refusal changes nothing");
        h.write(HDR, &SNAP_CREATE_FINISH, &finish("s1", &[("aa", 4)])).unwrap();
        h.write(HDR, &SNAP_REMOVE_BEGIN, &plain).unwrap();
        // A release-0.1.0 client's request (version 1, a `SnapRequest`) keeps its old meaning.
        h.write(HDR, &SNAP_CREATE_BEGIN, &begin("s2", "id2")).unwrap();
        let old = rbd_cg_contract::encode(&snap("s2")).unwrap();
        assert_eq!(old[0], 1);
        h.call_raw(HDR, SNAP_REMOVE_BEGIN.name, &old).unwrap();
    }
}
