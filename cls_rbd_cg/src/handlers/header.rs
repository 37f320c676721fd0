//! Methods on `cg_header.<id>`: the group record itself. Members and snapshots will live
//! in this object's omap, so rules that involve them (no removal while any exist) are
//! enforced here, atomically with the state they guard.

use crate::store::{load_data, save_data};
use crate::ObjectStore;
use rbd_cg_contract::methods::{Empty, GroupCreateRequest, IdRequest, RenameRequest};
use rbd_cg_contract::names::{validate_group_id, validate_group_name};
use rbd_cg_contract::records::{GroupHeader, HeaderState};
use rbd_cg_contract::CgError;

/// The header, checked to belong to `id`; `ENOENT` when absent. Every method on
/// `cg_header.<id>` goes through this (or [`load_active`]) so a request for one group can
/// never touch another's header.
pub(crate) fn load(store: &dyn ObjectStore, id: &str) -> Result<GroupHeader, CgError> {
    validate_group_id(id)?;
    let header =
        load_data::<GroupHeader>(store)?.ok_or_else(|| CgError::NotFound(format!("no header for group {id}")))?;
    if header.id != id {
        return Err(CgError::InvalidArgument(format!("header holds group {}, not {id}", header.id)));
    }
    let unknown = header.features & !GroupHeader::KNOWN_FEATURES;
    if unknown != 0 {
        return Err(CgError::Unsupported(format!("group {id} has features {unknown:#x} this class does not know")));
    }
    Ok(header)
}

/// The header of `id`, which must be `Active` (`EBUSY` while it is being removed).
pub(crate) fn load_active(store: &dyn ObjectStore, id: &str) -> Result<GroupHeader, CgError> {
    let header = load(store, id)?;
    if header.state != HeaderState::Active {
        return Err(CgError::Busy(format!("group {id} is being removed")));
    }
    Ok(header)
}

/// Creates the header, `Active` and empty. Repeating it succeeds; another group's
/// header under the same id is `EEXIST`.
pub fn create(store: &mut dyn ObjectStore, req: GroupCreateRequest) -> Result<(), CgError> {
    validate_group_id(&req.id)?;
    validate_group_name(&req.name)?;
    match load_data::<GroupHeader>(store)? {
        Some(h) if h.id == req.id && h.name == req.name && h.state == HeaderState::Active => Ok(()),
        Some(h) if h.id == req.id && h.state == HeaderState::Removing => {
            Err(CgError::Busy(format!("group {} is being removed", h.id)))
        }
        Some(h) => Err(CgError::Exists(format!("header of group {} ({:?})", h.id, h.name))),
        None => {
            store.create(true)?;
            let header = GroupHeader {
                id: req.id,
                name: req.name,
                state: HeaderState::Active,
                created_ms: req.created_ms,
                member_count: 0,
                snapshot_count: 0,
                features: 0,
            };
            save_data(store, &header)
        }
    }
}

/// Reads the header.
pub fn get(store: &mut dyn ObjectStore, _req: Empty) -> Result<GroupHeader, CgError> {
    load_data(store)?.ok_or_else(|| CgError::NotFound("no such group header".into()))
}

/// Changes the name from `old_name` to `new_name`; repeating it succeeds.
pub fn set_name(store: &mut dyn ObjectStore, req: RenameRequest) -> Result<(), CgError> {
    validate_group_name(&req.old_name)?;
    validate_group_name(&req.new_name)?;
    let mut header = load(store, &req.id)?;
    if header.name == req.new_name {
        return Ok(());
    }
    if header.name != req.old_name {
        return Err(CgError::Busy(format!("group is named {:?}, not {:?}", header.name, req.old_name)));
    }
    if header.state != HeaderState::Active {
        return Err(CgError::Busy(format!("group is {:?}", header.state)));
    }
    header.name = req.new_name;
    save_data(store, &header)
}

/// `Active` → `Removing`, refused with `EBUSY` while the group has members or
/// snapshots. Repeating it succeeds.
pub fn begin_remove(store: &mut dyn ObjectStore, req: IdRequest) -> Result<(), CgError> {
    let mut header = load(store, &req.id)?;
    super::mirror::refuse_if_non_primary(store, &req.id, "removing the group")?;
    if header.state == HeaderState::Removing {
        return Ok(());
    }
    super::journal::refuse_while_journaled(store, "removing the group")?;
    if header.member_count > 0 || header.snapshot_count > 0 {
        return Err(CgError::Busy(format!(
            "group has {} members and {} snapshots",
            header.member_count, header.snapshot_count
        )));
    }
    if super::clone::plan(store)?.is_some() {
        return Err(CgError::Busy("group is being cloned: finish or undo the clone first".into()));
    }
    header.state = HeaderState::Removing;
    save_data(store, &header)
}

/// Deletes a header in state `Removing`; `EBUSY` in any other state.
pub fn remove(store: &mut dyn ObjectStore, req: IdRequest) -> Result<(), CgError> {
    let header = load(store, &req.id)?;
    if header.state != HeaderState::Removing {
        return Err(CgError::Busy("removal has not begun".into()));
    }
    store.remove()
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use crate::store::save_data;
    use crate::store::MemStore;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::records::{GroupHeader, HeaderState};

    const HDR: &str = "cg_header.a1";

    fn create_req(name: &str) -> GroupCreateRequest {
        GroupCreateRequest { id: "a1".into(), name: name.into(), created_ms: 42 }
    }
    fn id() -> IdRequest {
        IdRequest { id: "a1".into() }
    }

    #[test]
    fn lifecycle() {
        let mut h = Harness::default();
        assert_eq!(h.read(HDR, &GROUP_GET, &Empty {}).unwrap_err().errno(), libc::ENOENT);
        h.write(HDR, &GROUP_CREATE, &create_req("db")).unwrap();
        h.write(HDR, &GROUP_CREATE, &create_req("db")).unwrap();
        assert_eq!(h.write(HDR, &GROUP_CREATE, &create_req("web")).unwrap_err().errno(), libc::EEXIST);
        let header = h.read(HDR, &GROUP_GET, &Empty {}).unwrap();
        assert_eq!((header.name.as_str(), header.state, header.created_ms), ("db", HeaderState::Active, 42));

        let rename =
            |old: &str, new: &str| RenameRequest { id: "a1".into(), old_name: old.into(), new_name: new.into() };
        h.write(HDR, &GROUP_SET_NAME, &rename("db", "db2")).unwrap();
        h.write(HDR, &GROUP_SET_NAME, &rename("db", "db2")).unwrap();
        assert_eq!(h.write(HDR, &GROUP_SET_NAME, &rename("zz", "yy")).unwrap_err().errno(), libc::EBUSY);
        assert_eq!(h.read(HDR, &GROUP_GET, &Empty {}).unwrap().name, "db2");

        assert_eq!(h.write(HDR, &GROUP_REMOVE, &id()).unwrap_err().errno(), libc::EBUSY);
        h.write(HDR, &GROUP_BEGIN_REMOVE, &id()).unwrap();
        h.write(HDR, &GROUP_BEGIN_REMOVE, &id()).unwrap();
        assert_eq!(h.write(HDR, &GROUP_SET_NAME, &rename("db2", "db3")).unwrap_err().errno(), libc::EBUSY);
        h.write(HDR, &GROUP_REMOVE, &id()).unwrap();
        assert!(h.object(HDR).is_none());
        assert_eq!(h.write(HDR, &GROUP_REMOVE, &id()).unwrap_err().errno(), libc::ENOENT);
    }

    #[test]
    fn begin_remove_refuses_a_group_with_members_or_snapshots() {
        for (members, snapshots) in [(1, 0), (0, 1)] {
            let mut store = MemStore::new(None);
            let header = GroupHeader {
                id: "a1".into(),
                name: "db".into(),
                state: HeaderState::Active,
                created_ms: 0,
                member_count: members,
                snapshot_count: snapshots,
                features: 0,
            };
            save_data(&mut store, &header).unwrap();
            let mut h = Harness::default();
            h.put(HDR, store.commit());
            let before = h.object(HDR);
            assert_eq!(h.write(HDR, &GROUP_BEGIN_REMOVE, &id()).unwrap_err().errno(), libc::EBUSY);
            assert_eq!(h.object(HDR), before);
        }
    }

    #[test]
    fn a_header_for_another_id_is_never_touched() {
        let mut h = Harness::default();
        h.write(HDR, &GROUP_CREATE, &create_req("db")).unwrap();
        let other = IdRequest { id: "b2".into() };
        assert_eq!(h.write(HDR, &GROUP_BEGIN_REMOVE, &other).unwrap_err().errno(), libc::EINVAL);
    }

    /// A header written by release 0.1.0 (version 1, no `features`), as its bytes sit in
    /// the object: read by every method, and written back in version 2 by the next change.
    #[test]
    fn a_version_1_header_is_read_and_rewritten_in_version_2() {
        use rbd_cg_contract::history::GroupHeaderV1;
        use rbd_cg_contract::records::GroupHeader;
        #[derive(serde::Serialize, serde::Deserialize)]
        struct V1(GroupHeaderV1);
        rbd_cg_contract::versioned!(V1, "GroupHeader", 1, 1, 4096);
        let v1 = GroupHeaderV1 {
            id: "a1".into(),
            name: "db".into(),
            state: HeaderState::Active,
            created_ms: 42,
            member_count: 0,
            snapshot_count: 0,
        };
        let mut store = MemStore::new(None);
        save_data(&mut store, &V1(v1)).unwrap();
        let mut h = Harness::default();
        h.put(HDR, store.commit());
        assert_eq!(h.object(HDR).unwrap().data[0], 1, "stored in version 1");
        let header: GroupHeader = h.read(HDR, &GROUP_GET, &Empty {}).unwrap();
        assert_eq!((header.name.as_str(), header.features), ("db", 0));
        let rename = RenameRequest { id: "a1".into(), old_name: "db".into(), new_name: "db2".into() };
        h.write(HDR, &GROUP_SET_NAME, &rename).unwrap();
        assert_eq!(h.object(HDR).unwrap().data[..2], [2, 1], "rewritten in version 2, readable by version 1");
        assert_eq!(h.read(HDR, &GROUP_GET, &Empty {}).unwrap().name, "db2");
    }

    #[test]
    fn a_header_with_unknown_features_is_refused_and_left_alone() {
        let header = GroupHeader {
            id: "a1".into(),
            name: "db".into(),
            state: HeaderState::Active,
            created_ms: 0,
            member_count: 0,
            snapshot_count: 0,
            features: 1 << 40,
        };
        let mut store = MemStore::new(None);
        save_data(&mut store, &header).unwrap();
        let mut h = Harness::default();
        h.put(HDR, store.commit());
        let before = h.object(HDR);
        let rename = RenameRequest { id: "a1".into(), old_name: "db".into(), new_name: "db2".into() };
        assert_eq!(h.write(HDR, &GROUP_SET_NAME, &rename).unwrap_err().errno(), libc::EOPNOTSUPP);
        assert_eq!(h.write(HDR, &GROUP_BEGIN_REMOVE, &id()).unwrap_err().errno(), libc::EOPNOTSUPP);
        assert_eq!(h.object(HDR), before);
    }
}
