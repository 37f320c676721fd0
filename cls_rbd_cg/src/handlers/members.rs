//! Members of a group, in `cg_header.<id>`'s omap, changed together with the header's
//! member count so both always agree.
//!
//! Adding and removing are two-phase (`Adding`/`Removing`, then final) because the image's
//! back-reference lives in another object: the client sets or clears it between the two
//! phases. The rule that keeps group snapshots exact: a membership change cannot begin
//! while a group snapshot is in progress (the `snapshot_in_progress` key), and a group
//! snapshot cannot begin while a member is `Adding` or `Removing`. Both checks run in
//! the same atomic call that changes the state, so a snapshot's member list never
//! misses or half-includes an image.

use super::header::{load as load_header, load_active};
use crate::store::{decode_listed, load_key, save_data};
use crate::ObjectStore;
use rbd_cg_contract::methods::{MemberAddRequest, MemberListReply, MemberListRequest, MemberRequest, MAX_LIST_PAGE};
use rbd_cg_contract::names::{
    member_key, validate_group_id, validate_image_id, validate_location, MAX_GROUP_MEMBERS, MEMBER_KEY_PREFIX,
    SNAPSHOT_IN_PROGRESS_KEY,
};
use rbd_cg_contract::records::{ImageRef, MemberRecord, MemberState};
use rbd_cg_contract::{encode, CgError};

pub(crate) fn validate_image(image: &ImageRef) -> Result<(), CgError> {
    validate_location(image.pool_id, &image.namespace)?;
    validate_image_id(&image.image_id)
}

fn key_of(image: &ImageRef) -> String {
    member_key(image.pool_id, &image.image_id, &image.namespace)
}

fn no_snapshot_in_progress(store: &dyn ObjectStore) -> Result<(), CgError> {
    match store.omap_get(SNAPSHOT_IN_PROGRESS_KEY)? {
        Some(_) => Err(CgError::Busy("a group snapshot is in progress".into())),
        None => Ok(()),
    }
}

fn save_member(store: &mut dyn ObjectStore, record: &MemberRecord) -> Result<(), CgError> {
    let value = encode(record)?;
    store.omap_set(&[(&key_of(&record.image), &value)])
}

/// Records the image as `Adding` and counts it.
pub fn add_begin(store: &mut dyn ObjectStore, req: MemberAddRequest) -> Result<(), CgError> {
    validate_image(&req.image)?;
    if req.max_members == 0 || req.max_members > MAX_GROUP_MEMBERS {
        return Err(CgError::OutOfRange(format!("member limit {} is not in 1..={MAX_GROUP_MEMBERS}", req.max_members)));
    }
    let mut header = load_active(store, &req.group_id)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "adding a member")?;
    super::journal::refuse_while_journaled(store, "adding a member")?;
    match load_key::<MemberRecord>(store, &key_of(&req.image))? {
        Some(existing) if existing.state == MemberState::Adding => return Ok(()),
        Some(existing) if existing.state == MemberState::Attached => {
            return Err(CgError::Exists(format!("image {} is already a member", req.image.image_id)))
        }
        Some(_) => return Err(CgError::Busy(format!("image {} is being removed", req.image.image_id))),
        None => {}
    }
    no_snapshot_in_progress(store)?;
    if header.member_count >= req.max_members {
        return Err(CgError::OutOfRange(format!("group has {} members, the limit", header.member_count)));
    }
    header.member_count += 1;
    save_member(store, &MemberRecord { image: req.image, state: MemberState::Adding, added_ms: req.added_ms })?;
    save_data(store, &header)
}

fn member(store: &dyn ObjectStore, req: &MemberRequest) -> Result<MemberRecord, CgError> {
    validate_image(&req.image)?;
    validate_group_id(&req.group_id)?;
    load_key::<MemberRecord>(store, &key_of(&req.image))?
        .ok_or_else(|| CgError::NotFound(format!("image {} is not a member", req.image.image_id)))
}

/// `Adding` → `Attached`.
pub fn add_finish(store: &mut dyn ObjectStore, req: MemberRequest) -> Result<(), CgError> {
    let mut record = member(store, &req)?;
    load_active(store, &req.group_id)?;
    match record.state {
        MemberState::Attached => Ok(()),
        MemberState::Adding => {
            record.state = MemberState::Attached;
            save_member(store, &record)
        }
        MemberState::Removing => Err(CgError::Busy(format!("image {} is being removed", req.image.image_id))),
    }
}

/// `Adding`/`Attached` → `Removing`.
pub fn remove_begin(store: &mut dyn ObjectStore, req: MemberRequest) -> Result<(), CgError> {
    let mut record = member(store, &req)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "removing a member")?;
    super::journal::refuse_while_journaled(store, "removing a member")?;
    if record.state == MemberState::Removing {
        return Ok(());
    }
    no_snapshot_in_progress(store)?;
    record.state = MemberState::Removing;
    save_member(store, &record)
}

/// Drops a `Removing` member and uncounts it.
pub fn remove_finish(store: &mut dyn ObjectStore, req: MemberRequest) -> Result<(), CgError> {
    let record = member(store, &req)?;
    if record.state != MemberState::Removing {
        return Err(CgError::Busy(format!("image {} is {:?}, not Removing", req.image.image_id, record.state)));
    }
    let mut header = load_header(store, &req.group_id)?;
    header.member_count = header.member_count.saturating_sub(1);
    store.omap_remove(&key_of(&req.image))?;
    save_data(store, &header)
}

/// One page of members in key order.
pub fn list(store: &mut dyn ObjectStore, req: MemberListRequest) -> Result<MemberListReply, CgError> {
    if req.max_entries == 0 || req.max_entries > MAX_LIST_PAGE {
        return Err(CgError::OutOfRange(format!("page size {} is not in 1..={MAX_LIST_PAGE}", req.max_entries)));
    }
    let start_after = match &req.start_after {
        Some(image) => {
            validate_image(image)?;
            key_of(image)
        }
        None => String::new(),
    };
    if store.stat()?.is_none() {
        return Err(CgError::NotFound("no group header".into()));
    }
    let page = store.omap_list(&start_after, MEMBER_KEY_PREFIX, req.max_entries)?;
    let members = page.entries.iter().map(|(key, value)| decode_listed(key, value)).collect::<Result<_, _>>()?;
    Ok(MemberListReply { members, more: page.more })
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::names::SNAPSHOT_IN_PROGRESS_KEY;
    use rbd_cg_contract::records::{ImageRef, MemberState};

    const HDR: &str = "cg_header.g1";

    fn image(id: &str) -> ImageRef {
        ImageRef { pool_id: 3, namespace: "ns".into(), image_id: id.into() }
    }
    fn add(id: &str, max: u32) -> MemberAddRequest {
        MemberAddRequest { group_id: "g1".into(), image: image(id), added_ms: 5, max_members: max }
    }
    fn req(id: &str) -> MemberRequest {
        MemberRequest { group_id: "g1".into(), image: image(id) }
    }
    fn harness() -> Harness {
        let mut h = Harness::default();
        let create = GroupCreateRequest { id: "g1".into(), name: "db".into(), created_ms: 1 };
        h.write(HDR, &GROUP_CREATE, &create).unwrap();
        h
    }
    fn count(h: &mut Harness) -> u32 {
        h.read(HDR, &GROUP_GET, &Empty {}).unwrap().member_count
    }
    fn states(h: &mut Harness) -> Vec<(String, MemberState)> {
        let page = h.read(HDR, &MEMBER_LIST, &MemberListRequest { start_after: None, max_entries: 100 }).unwrap();
        page.members.into_iter().map(|m| (m.image.image_id, m.state)).collect()
    }

    #[test]
    fn add_and_remove_walk_their_states_and_keep_the_count() {
        let mut h = harness();
        h.write(HDR, &MEMBER_ADD_BEGIN, &add("aa", 10)).unwrap();
        h.write(HDR, &MEMBER_ADD_BEGIN, &add("aa", 10)).unwrap();
        assert_eq!(states(&mut h), [("aa".into(), MemberState::Adding)]);
        assert_eq!(count(&mut h), 1);
        h.write(HDR, &MEMBER_ADD_FINISH, &req("aa")).unwrap();
        h.write(HDR, &MEMBER_ADD_FINISH, &req("aa")).unwrap();
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("aa", 10)).unwrap_err().errno(), libc::EEXIST);
        assert_eq!(count(&mut h), 1);
        // The group cannot be removed while it has members.
        let id = IdRequest { id: "g1".into() };
        assert_eq!(h.write(HDR, &GROUP_BEGIN_REMOVE, &id).unwrap_err().errno(), libc::EBUSY);

        assert_eq!(h.write(HDR, &MEMBER_REMOVE_FINISH, &req("aa")).unwrap_err().errno(), libc::EBUSY);
        h.write(HDR, &MEMBER_REMOVE_BEGIN, &req("aa")).unwrap();
        h.write(HDR, &MEMBER_REMOVE_BEGIN, &req("aa")).unwrap();
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("aa", 10)).unwrap_err().errno(), libc::EBUSY);
        assert_eq!(h.write(HDR, &MEMBER_ADD_FINISH, &req("aa")).unwrap_err().errno(), libc::EBUSY);
        h.write(HDR, &MEMBER_REMOVE_FINISH, &req("aa")).unwrap();
        assert_eq!(h.write(HDR, &MEMBER_REMOVE_FINISH, &req("aa")).unwrap_err().errno(), libc::ENOENT);
        assert_eq!(h.write(HDR, &MEMBER_REMOVE_BEGIN, &req("aa")).unwrap_err().errno(), libc::ENOENT);
        assert_eq!(count(&mut h), 0);
        assert!(states(&mut h).is_empty());
        h.write(HDR, &GROUP_BEGIN_REMOVE, &id).unwrap();
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("bb", 10)).unwrap_err().errno(), libc::EBUSY);
    }

    #[test]
    fn the_member_limit_is_enforced() {
        let mut h = harness();
        h.write(HDR, &MEMBER_ADD_BEGIN, &add("aa", 2)).unwrap();
        h.write(HDR, &MEMBER_ADD_BEGIN, &add("bb", 2)).unwrap();
        let before = h.object(HDR);
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("cc", 2)).unwrap_err().errno(), libc::ERANGE);
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("cc", 0)).unwrap_err().errno(), libc::ERANGE);
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("cc", 5000)).unwrap_err().errno(), libc::ERANGE);
        assert_eq!(h.object(HDR), before);
    }

    #[test]
    fn membership_cannot_change_while_a_snapshot_is_in_progress() {
        let mut h = harness();
        h.write(HDR, &MEMBER_ADD_BEGIN, &add("aa", 10)).unwrap();
        h.write(HDR, &MEMBER_ADD_FINISH, &req("aa")).unwrap();
        let mut object = h.object(HDR).unwrap();
        object.omap.insert(SNAPSHOT_IN_PROGRESS_KEY.into(), vec![]);
        h.put(HDR, Some(object));
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &add("bb", 10)).unwrap_err().errno(), libc::EBUSY);
        assert_eq!(h.write(HDR, &MEMBER_REMOVE_BEGIN, &req("aa")).unwrap_err().errno(), libc::EBUSY);
    }

    #[test]
    fn listing_pages_and_rejects_bad_input() {
        let mut h = harness();
        for id in ["cc", "aa", "bb"] {
            h.write(HDR, &MEMBER_ADD_BEGIN, &add(id, 10)).unwrap();
        }
        let first = h.read(HDR, &MEMBER_LIST, &MemberListRequest { start_after: None, max_entries: 2 }).unwrap();
        let ids: Vec<_> = first.members.iter().map(|m| m.image.image_id.as_str()).collect();
        assert_eq!(ids, ["aa", "bb"]);
        assert!(first.more);
        let rest =
            h.read(HDR, &MEMBER_LIST, &MemberListRequest { start_after: Some(image("bb")), max_entries: 2 }).unwrap();
        assert_eq!(rest.members.len(), 1);
        assert!(!rest.more);
        let bad = MemberListRequest { start_after: None, max_entries: 0 };
        assert_eq!(h.read(HDR, &MEMBER_LIST, &bad).unwrap_err().errno(), libc::ERANGE);
        let mut bad_image = add("x_y", 10);
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &bad_image).unwrap_err().errno(), libc::EINVAL);
        bad_image.image = ImageRef { pool_id: -1, namespace: "".into(), image_id: "ok".into() };
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &bad_image).unwrap_err().errno(), libc::EINVAL);
        let other_group = MemberAddRequest { group_id: "g2".into(), ..add("dd", 10) };
        assert_eq!(h.write(HDR, &MEMBER_ADD_BEGIN, &other_group).unwrap_err().errno(), libc::EINVAL);
    }
}
