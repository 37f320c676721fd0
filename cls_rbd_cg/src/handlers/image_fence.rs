//! The journal write fence on a member image (`image_journal_fence` on
//! `rbd_header.<image id>`).
//!
//! A journaled group's writes go through its journal writer only; a stock librbd client
//! writing a member directly would bypass the journal and break the group's order. The fence
//! uses what every librbd already obeys, in cls_rbd's own omap keys on the image header:
//!
//! - the `non-primary` feature bit: librbd opens the image read-only for I/O (writes and
//!   maintenance get `EROFS`), reads keep working;
//! - an operation feature librbd does not know ([`OP_FEATURE_RBD_CG_JOURNAL`]) in
//!   `op_features`, with the `operations` feature bit: librbd refuses every maintenance
//!   operation (`rbd rm`, `snap rm`, resize, ...) on such an image, even after the writer died.
//!
//! Both change in one transaction, the way cls_rbd's own `op_features_set` changes them (the
//! `operations` bit is set exactly while `op_features` is non-zero, and the key is removed
//! when it becomes zero). Fencing requires the image's back-reference to the group (an image
//! is fenced only for a group it belongs to) and refuses an image that is `non-primary` for
//! another reason (mirroring): unfencing it later would make it writable behind the mirror's
//! back. Unfencing touches only an image carrying our operation feature.

use crate::store::load_key;
use crate::ObjectStore;
use rbd_cg_contract::journal::{
    ImageFenceRequest, OP_FEATURE_RBD_CG_JOURNAL, RBD_FEATURES_KEY, RBD_FEATURE_NON_PRIMARY, RBD_FEATURE_OPERATIONS,
    RBD_OP_FEATURES_KEY,
};
use rbd_cg_contract::names::{backref_key, validate_group_id, validate_image_id, validate_location};
use rbd_cg_contract::records::GroupRef;
use rbd_cg_contract::CgError;

/// A `u64` cls_rbd stored under `key` (Ceph's encoding: 8 bytes, little-endian).
fn read_u64(store: &dyn ObjectStore, key: &str) -> Result<Option<u64>, CgError> {
    match store.omap_get(key)? {
        None => Ok(None),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| CgError::Io(format!("cls_rbd key {key:?} holds {} bytes, not a u64", bytes.len())))?;
            Ok(Some(u64::from_le_bytes(bytes)))
        }
    }
}

/// Turns the fence on or off; idempotent.
pub fn journal_fence(store: &mut dyn ObjectStore, req: ImageFenceRequest) -> Result<(), CgError> {
    validate_image_id(&req.image_id)?;
    validate_location(req.group.pool_id, &req.group.namespace)?;
    validate_group_id(&req.group.group_id)?;
    if store.stat()?.is_none() {
        return Err(CgError::NotFound(format!("image {} has no header", req.image_id)));
    }
    let features = read_u64(store, RBD_FEATURES_KEY)?.ok_or_else(|| {
        CgError::InvalidArgument(format!("image {} has no features (an old-format image?)", req.image_id))
    })?;
    let op_features = read_u64(store, RBD_OP_FEATURES_KEY)?.unwrap_or(0);
    let ours = op_features & OP_FEATURE_RBD_CG_JOURNAL != 0;
    let (new_features, new_op_features) = if req.fenced {
        let key = backref_key(req.group.pool_id, &req.group.group_id, &req.group.namespace);
        if load_key::<GroupRef>(store, &key)?.as_ref() != Some(&req.group) {
            return Err(CgError::InvalidArgument(format!(
                "image {} does not belong to group {}",
                req.image_id, req.group.group_id
            )));
        }
        if features & RBD_FEATURE_NON_PRIMARY != 0 && !ours {
            return Err(CgError::InvalidArgument(format!(
                "image {} is non-primary (mirrored): a group journal cannot take it over",
                req.image_id
            )));
        }
        (features | RBD_FEATURE_NON_PRIMARY, op_features | OP_FEATURE_RBD_CG_JOURNAL)
    } else {
        if !ours {
            return Ok(());
        }
        (features & !RBD_FEATURE_NON_PRIMARY, op_features & !OP_FEATURE_RBD_CG_JOURNAL)
    };
    let new_features = if new_op_features == 0 {
        new_features & !RBD_FEATURE_OPERATIONS
    } else {
        new_features | RBD_FEATURE_OPERATIONS
    };
    if new_features == features && new_op_features == op_features {
        return Ok(());
    }
    let features_bytes = new_features.to_le_bytes();
    if new_op_features == 0 {
        store.omap_remove(RBD_OP_FEATURES_KEY)?;
        store.omap_set(&[(RBD_FEATURES_KEY, &features_bytes)])
    } else {
        let op_bytes = new_op_features.to_le_bytes();
        store.omap_set(&[(RBD_FEATURES_KEY, &features_bytes), (RBD_OP_FEATURES_KEY, &op_bytes)])
    }
}

#[cfg(test)]
mod tests {
    use crate::handlers::testing::Harness;
    use crate::store::MemObject;
    use rbd_cg_contract::journal::*;
    use rbd_cg_contract::methods::*;
    use rbd_cg_contract::records::GroupRef;

    const IMG: &str = "rbd_header.abc";
    /// layering, exclusive-lock, object-map, fast-diff, deep-flatten: `rbd create`'s default.
    const DEFAULT_FEATURES: u64 = 1 | 4 | 8 | 16 | 32;

    fn group(id: &str) -> GroupRef {
        GroupRef { pool_id: 1, namespace: "".into(), group_id: id.into() }
    }
    fn fence(fenced: bool) -> ImageFenceRequest {
        ImageFenceRequest { image_id: "abc".into(), group: group("g1"), fenced }
    }
    fn harness(features: u64, op_features: Option<u64>) -> Harness {
        let mut h = Harness::default();
        let mut image = MemObject::default();
        image.omap.insert("features".into(), features.to_le_bytes().to_vec());
        if let Some(op) = op_features {
            image.omap.insert("op_features".into(), op.to_le_bytes().to_vec());
        }
        image.omap.insert("size".into(), 8u64.to_le_bytes().to_vec());
        h.put(IMG, Some(image));
        h.write(IMG, &IMAGE_GROUP_LINK, &BackRefRequest { image_id: "abc".into(), group: group("g1") }).unwrap();
        h
    }
    fn key(h: &Harness, key: &str) -> Option<u64> {
        h.object(IMG).unwrap().omap.get(key).map(|v| u64::from_le_bytes(v.as_slice().try_into().unwrap()))
    }

    #[test]
    fn fence_and_unfence_round_trip_to_the_same_bytes() {
        let mut h = harness(DEFAULT_FEATURES, None);
        let before = h.object(IMG).unwrap();
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap();
        let want = DEFAULT_FEATURES | RBD_FEATURE_NON_PRIMARY | RBD_FEATURE_OPERATIONS;
        assert_eq!(key(&h, "features"), Some(want));
        assert_eq!(key(&h, "op_features"), Some(OP_FEATURE_RBD_CG_JOURNAL));
        let fenced = h.object(IMG).unwrap();
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap();
        assert_eq!(h.object(IMG).unwrap(), fenced, "repeating changes nothing");
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(false)).unwrap();
        assert_eq!(h.object(IMG).unwrap(), before, "unfenced: cls_rbd's keys as they were");
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(false)).unwrap();
        assert_eq!(h.object(IMG).unwrap(), before);
    }

    #[test]
    fn other_operation_features_are_kept() {
        // clone-child (1 << 0) is librbd's own; it and `operations` stay after unfencing.
        let mut h = harness(DEFAULT_FEATURES | RBD_FEATURE_OPERATIONS, Some(1));
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap();
        assert_eq!(key(&h, "op_features"), Some(1 | OP_FEATURE_RBD_CG_JOURNAL));
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(false)).unwrap();
        assert_eq!(key(&h, "op_features"), Some(1));
        assert_eq!(key(&h, "features"), Some(DEFAULT_FEATURES | RBD_FEATURE_OPERATIONS));
    }

    #[test]
    fn refusals_change_nothing() {
        // Not a member of that group.
        let mut h = harness(DEFAULT_FEATURES, None);
        let before = h.object(IMG).unwrap();
        let other = ImageFenceRequest { group: group("g2"), ..fence(true) };
        assert_eq!(h.write(IMG, &IMAGE_JOURNAL_FENCE, &other).unwrap_err().errno(), libc::EINVAL);
        assert_eq!(h.object(IMG).unwrap(), before);
        // Non-primary for another reason (a mirrored image): neither fenced nor unfenced.
        let mut h = harness(DEFAULT_FEATURES | RBD_FEATURE_NON_PRIMARY, None);
        let before = h.object(IMG).unwrap();
        assert_eq!(h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap_err().errno(), libc::EINVAL);
        h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(false)).unwrap();
        assert_eq!(h.object(IMG).unwrap(), before);
        // No header; a header without features; a corrupt features key.
        let mut h = Harness::default();
        assert_eq!(h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap_err().errno(), libc::ENOENT);
        let mut image = MemObject::default();
        image.omap.insert("size".into(), vec![0; 8]);
        h.put(IMG, Some(image));
        assert_eq!(h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap_err().errno(), libc::EINVAL);
        let mut h = harness(DEFAULT_FEATURES, None);
        let mut corrupt = h.object(IMG).unwrap();
        corrupt.omap.insert("features".into(), vec![1, 2, 3]);
        h.put(IMG, Some(corrupt));
        let before = h.object(IMG).unwrap();
        assert_eq!(h.write(IMG, &IMAGE_JOURNAL_FENCE, &fence(true)).unwrap_err().errno(), libc::EIO);
        assert_eq!(h.object(IMG).unwrap(), before);
        // Bad names.
        let bad = ImageFenceRequest { image_id: "".into(), ..fence(true) };
        assert_eq!(h.write(IMG, &IMAGE_JOURNAL_FENCE, &bad).unwrap_err().errno(), libc::EINVAL);
    }
}
