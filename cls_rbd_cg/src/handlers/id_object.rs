//! Methods on `cg_id.<name>`: the object whose data names the group's id.

use crate::store::{load_data, save_data};
use crate::ObjectStore;
use rbd_cg_contract::methods::{Empty, IdRequest};
use rbd_cg_contract::names::validate_group_id;
use rbd_cg_contract::records::GroupIdRecord;
use rbd_cg_contract::CgError;

/// Creates the object holding `id`. Repeating it with the same id succeeds; another id
/// is `EEXIST`.
pub fn create(store: &mut dyn ObjectStore, req: IdRequest) -> Result<(), CgError> {
    validate_group_id(&req.id)?;
    match load_data::<GroupIdRecord>(store)? {
        Some(existing) if existing.id == req.id => Ok(()),
        Some(existing) => Err(CgError::Exists(format!("name already maps to group {}", existing.id))),
        None => {
            store.create(true)?;
            save_data(store, &GroupIdRecord { id: req.id })
        }
    }
}

/// Reads the id; `ENOENT` when the name is unknown.
pub fn get(store: &mut dyn ObjectStore, _req: Empty) -> Result<GroupIdRecord, CgError> {
    load_data(store)?.ok_or_else(|| CgError::NotFound("no such group name".into()))
}

/// Removes the object if it holds `id`. `ENOENT` when it is absent or belongs to
/// another group (then it is not ours to remove).
pub fn remove(store: &mut dyn ObjectStore, req: IdRequest) -> Result<(), CgError> {
    validate_group_id(&req.id)?;
    match load_data::<GroupIdRecord>(store)? {
        Some(existing) if existing.id == req.id => store.remove(),
        Some(existing) => Err(CgError::NotFound(format!("name maps to group {}, not {}", existing.id, req.id))),
        None => Err(CgError::NotFound("no such group name".into())),
    }
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use rbd_cg_contract::methods::{Empty, IdRequest, ID_CREATE, ID_GET, ID_REMOVE};

    fn id(id: &str) -> IdRequest {
        IdRequest { id: id.into() }
    }

    #[test]
    fn create_get_remove() {
        let mut h = Harness::default();
        let o = "cg_id.db";
        assert_eq!(h.read(o, &ID_GET, &Empty {}).unwrap_err().errno(), libc::ENOENT);
        h.write(o, &ID_CREATE, &id("abc")).unwrap();
        h.write(o, &ID_CREATE, &id("abc")).unwrap();
        assert_eq!(h.write(o, &ID_CREATE, &id("def")).unwrap_err().errno(), libc::EEXIST);
        assert_eq!(h.read(o, &ID_GET, &Empty {}).unwrap().id, "abc");
        assert_eq!(h.write(o, &ID_REMOVE, &id("def")).unwrap_err().errno(), libc::ENOENT);
        h.write(o, &ID_REMOVE, &id("abc")).unwrap();
        assert!(h.object(o).is_none());
        assert_eq!(h.write(o, &ID_REMOVE, &id("abc")).unwrap_err().errno(), libc::ENOENT);
    }

    #[test]
    fn bad_ids_are_einval_and_change_nothing() {
        let mut h = Harness::default();
        for bad in ["", "UPPER", "a/b"] {
            assert_eq!(h.write("cg_id.x", &ID_CREATE, &id(bad)).unwrap_err().errno(), libc::EINVAL);
        }
        assert!(h.object("cg_id.x").is_none());
    }
}
