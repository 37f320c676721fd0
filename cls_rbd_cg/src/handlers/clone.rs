//! Clone plans, in `cg_header.<id>`'s omap under `clone_plan`.
//!
//! `clone` builds a new group whose members are RBD clones of another group snapshot's
//! member snapshots. That spans many objects (a clone and a back-reference per member),
//! so the client first records the whole plan on the new group's header: a rerun or
//! `repair` then knows exactly which images to finish making, and `rm --force` exactly
//! which images to undo. The plan may only be recorded on an empty group (the clone
//! creates it), and the group cannot be removed while the plan is there — undoing a
//! clone drops the plan only after its images are gone.

use super::header::{load as header, load_active};
use crate::store::{load_data, load_key};
use crate::ObjectStore;
use rbd_cg_contract::methods::{CloneBeginRequest, GroupCreateRequest, IdRequest};
use rbd_cg_contract::names::{validate_group_name, CLONE_PLAN_KEY};
use rbd_cg_contract::records::{ClonePlan, GroupHeader};
use rbd_cg_contract::{encode, CgError};

/// The plan recorded on this header, if any.
pub(crate) fn plan(store: &dyn ObjectStore) -> Result<Option<ClonePlan>, CgError> {
    load_key(store, CLONE_PLAN_KEY)
}

/// Creates the header (if missing) with the plan, or records the plan on the existing
/// empty header; the same plan again succeeds. The header is never read back after being
/// written in the same call (the OSD would not show the write).
pub fn begin(store: &mut dyn ObjectStore, req: CloneBeginRequest) -> Result<(), CgError> {
    req.plan.validate()?;
    validate_group_name(&req.name)?;
    if load_data::<GroupHeader>(store)?.is_none() {
        let create = GroupCreateRequest { id: req.group_id, name: req.name, created_ms: req.created_ms };
        super::header::create(store, create)?;
        return store.omap_set(&[(CLONE_PLAN_KEY, &encode(&req.plan)?)]);
    }
    let header = load_active(store, &req.group_id)?;
    super::journal::refuse_while_journaled(store, "cloning into the group")?;
    if header.name != req.name {
        return Err(CgError::Exists(format!("header of group {} is named {:?}", header.id, header.name)));
    }
    match plan(store)? {
        Some(existing) if existing == req.plan => Ok(()),
        Some(_) => Err(CgError::Exists(format!("group {} is being cloned from another plan", req.group_id))),
        None if header.member_count > 0 || header.snapshot_count > 0 => Err(CgError::Busy(format!(
            "group {} already has {} members and {} snapshots",
            req.group_id, header.member_count, header.snapshot_count
        ))),
        None => store.omap_set(&[(CLONE_PLAN_KEY, &encode(&req.plan)?)]),
    }
}

/// The recorded plan; `ENOENT` when there is none.
pub fn get(store: &mut dyn ObjectStore, req: IdRequest) -> Result<ClonePlan, CgError> {
    header(store, &req.id)?;
    plan(store)?.ok_or_else(|| CgError::NotFound(format!("group {} has no clone plan", req.id)))
}

/// Drops the plan; nothing to drop succeeds.
pub fn finish(store: &mut dyn ObjectStore, req: IdRequest) -> Result<(), CgError> {
    header(store, &req.id)?;
    store.omap_remove(CLONE_PLAN_KEY)
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::records::{CloneImagePlan, ClonePlan, GroupRef, ImageRef};

    const HDR: &str = "cg_header.g2";

    fn errno(r: Result<impl Sized, rbd_cg_contract::CgError>) -> i32 {
        match r {
            Ok(_) => 0,
            Err(e) => e.errno(),
        }
    }
    fn image(id: &str) -> ImageRef {
        ImageRef { pool_id: 1, namespace: "".into(), image_id: id.into() }
    }
    fn plan(ids: &[&str]) -> ClonePlan {
        ClonePlan {
            source_group: GroupRef { pool_id: 1, namespace: "".into(), group_id: "g1".into() },
            source_snap_id: "5a".into(),
            source_snap_name: "s1".into(),
            clone_format: 2,
            images: ids
                .iter()
                .map(|id| CloneImagePlan {
                    source: image(id),
                    source_snap_id: 4,
                    source_snap_name: ".rbd_cg.x".into(),
                    name: format!("new-{id}"),
                })
                .collect(),
        }
    }
    fn begin(plan: ClonePlan) -> CloneBeginRequest {
        CloneBeginRequest { group_id: "g2".into(), name: "copy".into(), created_ms: 1, plan }
    }
    fn harness() -> Harness {
        let mut h = Harness::default();
        h.write(HDR, &GROUP_CREATE, &GroupCreateRequest { id: "g2".into(), name: "copy".into(), created_ms: 1 })
            .unwrap();
        h
    }
    fn id() -> IdRequest {
        IdRequest { id: "g2".into() }
    }

    #[test]
    fn plan_lifecycle_is_idempotent_and_blocks_removal() {
        let mut h = harness();
        assert_eq!(errno(h.read(HDR, &CLONE_GET, &id())), libc::ENOENT);
        h.write(HDR, &CLONE_BEGIN, &begin(plan(&["a", "b"]))).unwrap();
        h.write(HDR, &CLONE_BEGIN, &begin(plan(&["a", "b"]))).unwrap();
        assert_eq!(errno(h.write(HDR, &CLONE_BEGIN, &begin(plan(&["a"])))), libc::EEXIST);
        assert_eq!(h.read(HDR, &CLONE_GET, &id()).unwrap(), plan(&["a", "b"]));
        // Members may join while the plan is there (the clone adds them)...
        let add = MemberAddRequest { group_id: "g2".into(), image: image("c"), added_ms: 0, max_members: 10 };
        h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
        h.write(HDR, &MEMBER_REMOVE_BEGIN, &MemberRequest { group_id: "g2".into(), image: image("c") }).unwrap();
        h.write(HDR, &MEMBER_REMOVE_FINISH, &MemberRequest { group_id: "g2".into(), image: image("c") }).unwrap();
        // ...but the group cannot go away under it.
        assert_eq!(errno(h.write(HDR, &GROUP_BEGIN_REMOVE, &id())), libc::EBUSY);
        h.write(HDR, &CLONE_FINISH, &id()).unwrap();
        h.write(HDR, &CLONE_FINISH, &id()).unwrap();
        assert_eq!(errno(h.read(HDR, &CLONE_GET, &id())), libc::ENOENT);
        h.write(HDR, &GROUP_BEGIN_REMOVE, &id()).unwrap();
    }

    #[test]
    fn begin_creates_the_header_with_the_plan_in_one_step() {
        let mut h = Harness::default();
        h.write(HDR, &CLONE_BEGIN, &begin(plan(&["a"]))).unwrap();
        h.write(HDR, &CLONE_BEGIN, &begin(plan(&["a"]))).unwrap();
        let header = h.read(HDR, &GROUP_GET, &Empty {}).unwrap();
        assert_eq!((header.name.as_str(), header.member_count, header.snapshot_count), ("copy", 0, 0));
        assert_eq!(h.read(HDR, &CLONE_GET, &id()).unwrap(), plan(&["a"]));
        // Same id, other name: another group's header.
        let mut other = begin(plan(&["a"]));
        other.name = "other".into();
        assert_eq!(errno(h.write(HDR, &CLONE_BEGIN, &other)), libc::EEXIST);
    }

    #[test]
    fn plan_needs_an_empty_group() {
        let mut h = harness();
        let add = MemberAddRequest { group_id: "g2".into(), image: image("c"), added_ms: 0, max_members: 10 };
        h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
        assert_eq!(errno(h.write(HDR, &CLONE_BEGIN, &begin(plan(&["a"])))), libc::EBUSY);
    }

    #[test]
    fn bad_plans_are_rejected_and_change_nothing() {
        let mut h = harness();
        let before = h.object(HDR);
        let mut bad = Vec::new();
        let mut p = plan(&["a"]);
        p.clone_format = 3;
        bad.push(p);
        bad.push(plan(&["a", "a"]));
        let mut p = plan(&["a", "b"]);
        p.images[1].name = "new-a".into();
        bad.push(p);
        for name in ["", "a/b", "a@b", "a\nb"] {
            let mut p = plan(&["a"]);
            p.images[0].name = name.into();
            bad.push(p);
        }
        let mut p = plan(&["a"]);
        p.images[0].source_snap_id = 0;
        bad.push(p);
        let mut p = plan(&["a"]);
        p.source_group.group_id = "NOT-AN-ID".into();
        bad.push(p);
        for p in bad {
            assert_eq!(errno(h.write(HDR, &CLONE_BEGIN, &begin(p.clone()))), libc::EINVAL, "{p:?}");
        }
        let ids: Vec<String> = (0..=rbd_cg_contract::names::MAX_GROUP_MEMBERS).map(|i| format!("i{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(errno(h.write(HDR, &CLONE_BEGIN, &begin(plan(&refs)))), libc::ERANGE);
        assert_eq!(h.object(HDR), before);
    }
}
