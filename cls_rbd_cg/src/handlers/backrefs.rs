//! Back-references on RBD image headers (`rbd_header.<image id>`): an omap key per group
//! the image belongs to, so an image knows its groups. The keys use our own prefix
//! (`rbd_cg.group.`), which cannot clash with librbd's keys on the same object.

use crate::store::{decode_listed, load_key};
use crate::ObjectStore;
use rbd_cg_contract::methods::{BackRefRequest, Empty, GroupRefList, MAX_LIST_PAGE};
use rbd_cg_contract::names::{
    backref_key, validate_group_id, validate_image_id, validate_location, BACKREF_KEY_PREFIX,
};
use rbd_cg_contract::records::GroupRef;
use rbd_cg_contract::{encode, CgError};

fn validate(req: &BackRefRequest) -> Result<String, CgError> {
    validate_image_id(&req.image_id)?;
    validate_location(req.group.pool_id, &req.group.namespace)?;
    validate_group_id(&req.group.group_id)?;
    Ok(backref_key(req.group.pool_id, &req.group.group_id, &req.group.namespace))
}

/// The image header must exist: we never create one (that is librbd's job).
fn image_exists(store: &dyn ObjectStore, image_id: &str) -> Result<(), CgError> {
    match store.stat()? {
        Some(_) => Ok(()),
        None => Err(CgError::NotFound(format!("image {image_id} has no header"))),
    }
}

/// Sets the back-reference (repeating it succeeds).
pub fn link(store: &mut dyn ObjectStore, req: BackRefRequest) -> Result<(), CgError> {
    let key = validate(&req)?;
    image_exists(store, &req.image_id)?;
    if load_key::<GroupRef>(store, &key)?.is_some_and(|existing| existing == req.group) {
        return Ok(());
    }
    let value = encode(&req.group)?;
    store.omap_set(&[(&key, &value)])
}

/// Clears the back-reference (already gone is fine).
pub fn unlink(store: &mut dyn ObjectStore, req: BackRefRequest) -> Result<(), CgError> {
    let key = validate(&req)?;
    image_exists(store, &req.image_id)?;
    if store.omap_get(&key)?.is_some() {
        store.omap_remove(&key)?;
    }
    Ok(())
}

/// The groups of the image, up to one page.
pub fn list(store: &mut dyn ObjectStore, _req: Empty) -> Result<GroupRefList, CgError> {
    let page = store.omap_list("", BACKREF_KEY_PREFIX, MAX_LIST_PAGE)?;
    let groups = page.entries.iter().map(|(key, value)| decode_listed(key, value)).collect::<Result<_, _>>()?;
    Ok(GroupRefList { groups, more: page.more })
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use crate::store::MemObject;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::records::GroupRef;

    const IMG: &str = "rbd_header.abc";

    fn req(group: &str) -> BackRefRequest {
        BackRefRequest {
            image_id: "abc".into(),
            group: GroupRef { pool_id: 1, namespace: "".into(), group_id: group.into() },
        }
    }

    #[test]
    fn link_list_unlink_next_to_librbd_keys() {
        let mut h = Harness::default();
        assert_eq!(h.write(IMG, &IMAGE_GROUP_LINK, &req("g1")).unwrap_err().errno(), libc::ENOENT);
        let mut image = MemObject::default();
        image.omap.insert("features".into(), vec![1]);
        image.omap.insert("size".into(), vec![2]);
        h.put(IMG, Some(image));
        h.write(IMG, &IMAGE_GROUP_LINK, &req("g1")).unwrap();
        h.write(IMG, &IMAGE_GROUP_LINK, &req("g1")).unwrap();
        h.write(IMG, &IMAGE_GROUP_LINK, &req("g2")).unwrap();
        let listed = h.read(IMG, &IMAGE_GROUP_LIST, &Empty {}).unwrap();
        assert_eq!(listed.groups.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), ["g1", "g2"]);
        h.write(IMG, &IMAGE_GROUP_UNLINK, &req("g1")).unwrap();
        h.write(IMG, &IMAGE_GROUP_UNLINK, &req("g1")).unwrap();
        let object = h.object(IMG).unwrap();
        assert_eq!(object.omap.keys().collect::<Vec<_>>(), ["features", "rbd_cg.group.0000000000000001_g2_", "size"]);
        assert_eq!(
            h.write(IMG, &IMAGE_GROUP_LINK, &BackRefRequest { image_id: "a_b".into(), ..req("g1") })
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
    }
}
