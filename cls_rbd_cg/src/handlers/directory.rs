//! Methods on `cg_directory`: the name ⇄ id index of a pool/namespace, and the state of
//! each name's lifecycle (see [`DirState`]).
//!
//! The directory is where a group's existence is decided: `create` reserves a name here
//! first (`Creating`) and marks it `Ready` last; `rename` records both names here before
//! it touches anything else and clears the old one last. So an interrupted operation is
//! always visible here, and a rerun finds where to continue.

use crate::store::{decode_listed, load_key};
use crate::ObjectStore;
use rbd_cg_contract::methods::{
    DirListItem, DirListReply, DirListRequest, IdRequest, NameAndId, NameRequest, RenameRequest, MAX_LIST_PAGE,
};
use rbd_cg_contract::names::{dir_id_key, dir_name_key, validate_group_id, validate_group_name, DIR_NAME_KEY_PREFIX};
use rbd_cg_contract::records::{DirEntry, DirIdEntry, DirState};
use rbd_cg_contract::{encode, CgError};

fn validate(name: &str, id: &str) -> Result<(), CgError> {
    validate_group_name(name)?;
    validate_group_id(id)
}

/// The entry of `name` if it belongs to `id`; `ENOENT` otherwise.
fn entry_of(store: &dyn ObjectStore, name: &str, id: &str) -> Result<DirEntry, CgError> {
    match load_key::<DirEntry>(store, &dir_name_key(name))? {
        Some(entry) if entry.id == id => Ok(entry),
        Some(entry) => Err(CgError::NotFound(format!("{name:?} belongs to group {}", entry.id))),
        None => Err(CgError::NotFound(format!("no group named {name:?}"))),
    }
}

/// Reserves `name` for `id` in state `Creating`.
pub fn add(store: &mut dyn ObjectStore, req: NameAndId) -> Result<(), CgError> {
    validate(&req.name, &req.id)?;
    let name_key = dir_name_key(&req.name);
    let id_key = dir_id_key(&req.id);
    match load_key::<DirEntry>(store, &name_key)? {
        Some(entry) if entry.id == req.id && entry.state == DirState::Creating => return Ok(()),
        Some(_) => return Err(CgError::Exists(format!("group name {:?}", req.name))),
        None => {}
    }
    if load_key::<DirIdEntry>(store, &id_key)?.is_some() {
        return Err(CgError::Exists(format!("group id {}", req.id)));
    }
    let entry = encode(&DirEntry { id: req.id.clone(), state: DirState::Creating })?;
    let id_entry = encode(&DirIdEntry { name: req.name.clone() })?;
    store.omap_set(&[(&name_key, &entry), (&id_key, &id_entry)])
}

/// `Creating` → `Ready` (repeating it succeeds).
pub fn set_ready(store: &mut dyn ObjectStore, req: NameAndId) -> Result<(), CgError> {
    validate(&req.name, &req.id)?;
    let entry = entry_of(store, &req.name, &req.id)?;
    match entry.state {
        DirState::Ready => Ok(()),
        DirState::Creating => {
            let ready = encode(&DirEntry { id: req.id, state: DirState::Ready })?;
            store.omap_set(&[(&dir_name_key(&req.name), &ready)])
        }
        other => Err(CgError::Busy(format!("{:?} is {other:?}", req.name))),
    }
}

/// Starts a rename: the old name becomes `RenamingTo(new)`, the new one
/// `RenamingFrom(old)`, and the id maps to the new name.
pub fn rename_begin(store: &mut dyn ObjectStore, req: RenameRequest) -> Result<(), CgError> {
    validate(&req.old_name, &req.id)?;
    validate_group_name(&req.new_name)?;
    if req.old_name == req.new_name {
        return Err(CgError::Exists(format!("group is already named {:?}", req.new_name)));
    }
    let old = entry_of(store, &req.old_name, &req.id)?;
    let new_key = dir_name_key(&req.new_name);
    let existing_new = load_key::<DirEntry>(store, &new_key)?;
    let resumed_new = DirEntry { id: req.id.clone(), state: DirState::RenamingFrom(req.old_name.clone()) };
    match (&old.state, &existing_new) {
        (DirState::RenamingTo(to), Some(new)) if *to == req.new_name && *new == resumed_new => return Ok(()),
        (DirState::Ready, None) => {}
        (DirState::Ready, Some(_)) => return Err(CgError::Exists(format!("group name {:?}", req.new_name))),
        (state, _) => return Err(CgError::Busy(format!("{:?} is {state:?}", req.old_name))),
    }
    let old_entry = encode(&DirEntry { id: req.id.clone(), state: DirState::RenamingTo(req.new_name.clone()) })?;
    let new_entry = encode(&resumed_new)?;
    let id_entry = encode(&DirIdEntry { name: req.new_name.clone() })?;
    store.omap_set(&[
        (&dir_name_key(&req.old_name), &old_entry),
        (&new_key, &new_entry),
        (&dir_id_key(&req.id), &id_entry),
    ])
}

/// Finishes a rename: drops the old name and marks the new one `Ready` (repeating it
/// succeeds).
pub fn rename_finish(store: &mut dyn ObjectStore, req: RenameRequest) -> Result<(), CgError> {
    validate(&req.old_name, &req.id)?;
    validate_group_name(&req.new_name)?;
    let new = entry_of(store, &req.new_name, &req.id)?;
    let old_key = dir_name_key(&req.old_name);
    let old = load_key::<DirEntry>(store, &old_key)?;
    let old_is_ours =
        old.as_ref().is_some_and(|o| o.id == req.id && o.state == DirState::RenamingTo(req.new_name.clone()));
    match new.state {
        DirState::Ready if !old_is_ours => return Ok(()),
        DirState::RenamingFrom(ref from) if *from == req.old_name => {}
        ref state => return Err(CgError::Busy(format!("{:?} is {state:?}", req.new_name))),
    }
    if old_is_ours {
        store.omap_remove(&old_key)?;
    }
    let ready = encode(&DirEntry { id: req.id, state: DirState::Ready })?;
    store.omap_set(&[(&dir_name_key(&req.new_name), &ready)])
}

/// Drops `name` and its id. Names in the middle of a rename are `EBUSY`.
pub fn remove(store: &mut dyn ObjectStore, req: NameAndId) -> Result<(), CgError> {
    validate(&req.name, &req.id)?;
    let entry = entry_of(store, &req.name, &req.id)?;
    if !matches!(entry.state, DirState::Creating | DirState::Ready) {
        return Err(CgError::Busy(format!("{:?} is {:?}", req.name, entry.state)));
    }
    store.omap_remove(&dir_name_key(&req.name))?;
    let id_key = dir_id_key(&req.id);
    if load_key::<DirIdEntry>(store, &id_key)?.is_some_and(|e| e.name == req.name) {
        store.omap_remove(&id_key)?;
    }
    Ok(())
}

/// Looks up a name.
pub fn get(store: &mut dyn ObjectStore, req: NameRequest) -> Result<DirEntry, CgError> {
    validate_group_name(&req.name)?;
    load_key(store, &dir_name_key(&req.name))?
        .ok_or_else(|| CgError::NotFound(format!("no group named {:?}", req.name)))
}

/// Looks up an id.
pub fn get_name(store: &mut dyn ObjectStore, req: IdRequest) -> Result<DirIdEntry, CgError> {
    validate_group_id(&req.id)?;
    load_key(store, &dir_id_key(&req.id))?.ok_or_else(|| CgError::NotFound(format!("no group with id {}", req.id)))
}

/// One page of names, in byte order of the name. An absent directory lists as empty.
pub fn list(store: &mut dyn ObjectStore, req: DirListRequest) -> Result<DirListReply, CgError> {
    if req.max_entries == 0 || req.max_entries > MAX_LIST_PAGE {
        return Err(CgError::OutOfRange(format!("page size {} is not in 1..={MAX_LIST_PAGE}", req.max_entries)));
    }
    if !req.start_after.is_empty() {
        validate_group_name(&req.start_after)?;
    }
    if store.stat()?.is_none() {
        return Ok(DirListReply { entries: Vec::new(), more: false });
    }
    let start_after = if req.start_after.is_empty() { String::new() } else { dir_name_key(&req.start_after) };
    let page = store.omap_list(&start_after, DIR_NAME_KEY_PREFIX, req.max_entries)?;
    let entries = page
        .entries
        .iter()
        .map(|(key, value)| {
            let name = key.strip_prefix(DIR_NAME_KEY_PREFIX).unwrap_or(key).to_owned();
            Ok(DirListItem { name, entry: decode_listed(key, value)? })
        })
        .collect::<Result<_, CgError>>()?;
    Ok(DirListReply { entries, more: page.more })
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::records::{DirEntry, DirState};

    const DIR: &str = "cg_directory";

    fn ni(name: &str, id: &str) -> NameAndId {
        NameAndId { name: name.into(), id: id.into() }
    }
    fn rn(id: &str, old: &str, new: &str) -> RenameRequest {
        RenameRequest { id: id.into(), old_name: old.into(), new_name: new.into() }
    }
    fn get(h: &mut Harness, name: &str) -> Result<DirEntry, i32> {
        h.read(DIR, &DIR_GET, &NameRequest { name: name.into() }).map_err(|e| e.errno())
    }

    #[test]
    fn add_then_ready() {
        let mut h = Harness::default();
        h.write(DIR, &DIR_ADD, &ni("db", "a1")).unwrap();
        h.write(DIR, &DIR_ADD, &ni("db", "a1")).unwrap();
        assert_eq!(get(&mut h, "db").unwrap().state, DirState::Creating);
        assert_eq!(h.write(DIR, &DIR_ADD, &ni("db", "b2")).unwrap_err().errno(), libc::EEXIST);
        assert_eq!(h.write(DIR, &DIR_ADD, &ni("web", "a1")).unwrap_err().errno(), libc::EEXIST);
        h.write(DIR, &DIR_SET_READY, &ni("db", "a1")).unwrap();
        h.write(DIR, &DIR_SET_READY, &ni("db", "a1")).unwrap();
        assert_eq!(get(&mut h, "db").unwrap(), DirEntry { id: "a1".into(), state: DirState::Ready });
        assert_eq!(h.write(DIR, &DIR_ADD, &ni("db", "a1")).unwrap_err().errno(), libc::EEXIST);
        assert_eq!(h.write(DIR, &DIR_SET_READY, &ni("db", "zz")).unwrap_err().errno(), libc::ENOENT);
        assert_eq!(h.write(DIR, &DIR_SET_READY, &ni("nope", "a1")).unwrap_err().errno(), libc::ENOENT);
        let name = h.read(DIR, &DIR_GET_NAME, &IdRequest { id: "a1".into() }).unwrap();
        assert_eq!(name.name, "db");
    }

    #[test]
    fn rename_walks_through_both_states_and_is_resumable() {
        let mut h = Harness::default();
        h.write(DIR, &DIR_ADD, &ni("old", "a1")).unwrap();
        assert_eq!(h.write(DIR, &DIR_RENAME_BEGIN, &rn("a1", "old", "new")).unwrap_err().errno(), libc::EBUSY);
        h.write(DIR, &DIR_SET_READY, &ni("old", "a1")).unwrap();
        h.write(DIR, &DIR_ADD, &ni("taken", "b2")).unwrap();
        assert_eq!(h.write(DIR, &DIR_RENAME_BEGIN, &rn("a1", "old", "taken")).unwrap_err().errno(), libc::EEXIST);
        assert_eq!(h.write(DIR, &DIR_RENAME_BEGIN, &rn("a1", "old", "old")).unwrap_err().errno(), libc::EEXIST);
        h.write(DIR, &DIR_RENAME_BEGIN, &rn("a1", "old", "new")).unwrap();
        h.write(DIR, &DIR_RENAME_BEGIN, &rn("a1", "old", "new")).unwrap();
        assert_eq!(get(&mut h, "old").unwrap().state, DirState::RenamingTo("new".into()));
        assert_eq!(get(&mut h, "new").unwrap().state, DirState::RenamingFrom("old".into()));
        // A different rename cannot start meanwhile, nor can the old name be removed.
        assert_eq!(h.write(DIR, &DIR_RENAME_BEGIN, &rn("a1", "old", "other")).unwrap_err().errno(), libc::EBUSY);
        assert_eq!(h.write(DIR, &DIR_REMOVE, &ni("old", "a1")).unwrap_err().errno(), libc::EBUSY);
        h.write(DIR, &DIR_RENAME_FINISH, &rn("a1", "old", "new")).unwrap();
        h.write(DIR, &DIR_RENAME_FINISH, &rn("a1", "old", "new")).unwrap();
        assert_eq!(get(&mut h, "old").unwrap_err(), libc::ENOENT);
        assert_eq!(get(&mut h, "new").unwrap().state, DirState::Ready);
        let name = h.read(DIR, &DIR_GET_NAME, &IdRequest { id: "a1".into() }).unwrap();
        assert_eq!(name.name, "new");
    }

    #[test]
    fn remove_drops_both_keys() {
        let mut h = Harness::default();
        h.write(DIR, &DIR_ADD, &ni("db", "a1")).unwrap();
        assert_eq!(h.write(DIR, &DIR_REMOVE, &ni("db", "b2")).unwrap_err().errno(), libc::ENOENT);
        h.write(DIR, &DIR_REMOVE, &ni("db", "a1")).unwrap();
        assert!(h.object(DIR).unwrap().omap.is_empty());
        assert_eq!(h.write(DIR, &DIR_REMOVE, &ni("db", "a1")).unwrap_err().errno(), libc::ENOENT);
    }

    #[test]
    fn list_pages_in_name_order() {
        let mut h = Harness::default();
        let req = |after: &str, max| DirListRequest { start_after: after.into(), max_entries: max };
        assert!(h.read(DIR, &DIR_LIST, &req("", 10)).unwrap().entries.is_empty());
        for (i, name) in ["c", "a", "b", "d"].iter().enumerate() {
            h.write(DIR, &DIR_ADD, &ni(name, &format!("i{i}"))).unwrap();
        }
        let page = h.read(DIR, &DIR_LIST, &req("", 3)).unwrap();
        assert_eq!(page.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(page.more);
        let page = h.read(DIR, &DIR_LIST, &req("c", 3)).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(!page.more);
        assert_eq!(h.read(DIR, &DIR_LIST, &req("", 0)).unwrap_err().errno(), libc::ERANGE);
        assert_eq!(h.read(DIR, &DIR_LIST, &req("", MAX_LIST_PAGE + 1)).unwrap_err().errno(), libc::ERANGE);
        assert_eq!(h.read(DIR, &DIR_LIST, &req("a/b", 3)).unwrap_err().errno(), libc::EINVAL);
    }

    #[test]
    fn invalid_names_change_nothing() {
        let mut h = Harness::default();
        for bad in ["", "a/b", "a@b", "x\u{1}"] {
            assert_eq!(h.write(DIR, &DIR_ADD, &ni(bad, "a1")).unwrap_err().errno(), libc::EINVAL);
        }
        assert!(h.object(DIR).is_none());
    }
}
