//! RADOS object names, omap keys and the rules for group names and ids.
//!
//! The object layout follows the original consistency-group design: per pool and RBD
//! namespace, `cg_id.<group name>` holds the group id, `cg_header.<group id>` holds the
//! group (members and snapshots go into its omap), and one directory object,
//! `cg_directory`, indexes names and ids both ways so groups can be listed in pages.
//! `docs/FORMAT.md` describes each object in full.

use crate::error::CgError;

/// Prefix of the per-name object that holds a group's id.
pub const ID_OBJECT_PREFIX: &str = "cg_id.";
/// Prefix of the per-group header object.
pub const HEADER_OBJECT_PREFIX: &str = "cg_header.";
/// The directory object of a pool/namespace.
pub const DIRECTORY_OBJECT: &str = "cg_directory";

/// Directory omap key prefix: `name_<group name>` → [`crate::records::DirEntry`].
pub const DIR_NAME_KEY_PREFIX: &str = "name_";
/// Directory omap key prefix: `id_<group id>` → [`crate::records::DirIdEntry`].
pub const DIR_ID_KEY_PREFIX: &str = "id_";

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 128;
/// Longest group id, in bytes. Ids are chosen by the client: lowercase hex.
pub const MAX_GROUP_ID_LEN: usize = 32;
/// Length of the ids this client generates (64 random bits as hex).
pub const GENERATED_GROUP_ID_LEN: usize = 16;

/// `cg_id.<name>`.
pub fn id_object(name: &str) -> String {
    format!("{ID_OBJECT_PREFIX}{name}")
}

/// `cg_header.<id>`.
pub fn header_object(id: &str) -> String {
    format!("{HEADER_OBJECT_PREFIX}{id}")
}

/// `name_<name>` in the directory.
pub fn dir_name_key(name: &str) -> String {
    format!("{DIR_NAME_KEY_PREFIX}{name}")
}

/// `id_<id>` in the directory.
pub fn dir_id_key(id: &str) -> String {
    format!("{DIR_ID_KEY_PREFIX}{id}")
}

/// Checks a group name: 1..=128 bytes of UTF-8 without `/`, `@`, NUL or control characters.
///
/// `/` separates pool, namespace and group in a spec and `@` separates a snapshot, so
/// neither can be part of a name.
pub fn validate_group_name(name: &str) -> Result<(), CgError> {
    if name.is_empty() || name.len() > MAX_GROUP_NAME_LEN {
        return Err(CgError::InvalidArgument(format!(
            "group name must be 1 to {MAX_GROUP_NAME_LEN} bytes, not {}",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| matches!(c, '/' | '@') || c.is_control()) {
        return Err(CgError::InvalidArgument(format!("group name {name:?} contains the forbidden character {bad:?}")));
    }
    Ok(())
}

/// Checks a group id: 1..=32 lowercase ASCII letters or digits.
pub fn validate_group_id(id: &str) -> Result<(), CgError> {
    if id.is_empty() || id.len() > MAX_GROUP_ID_LEN || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(CgError::InvalidArgument(format!(
            "group id {id:?} must be 1 to {MAX_GROUP_ID_LEN} lowercase letters or digits"
        )));
    }
    Ok(())
}

// ---- members and back-references (issue: members and group snapshots) -----------------

/// Header omap key prefix of a member: `member_<pool id, 16 hex>_<image id>_<namespace>`.
pub const MEMBER_KEY_PREFIX: &str = "member_";
/// Header omap key present while a group snapshot is being created or removed.
pub const SNAPSHOT_IN_PROGRESS_KEY: &str = "snapshot_in_progress";
/// Image header (`rbd_header.<image id>`) omap key prefix of a back-reference to a group:
/// `rbd_cg.group.<group pool id, 16 hex>_<group id>_<group namespace>`. librbd's own keys
/// on `rbd_header.<id>` never start with `rbd_cg.` (image-meta uses `metadata_`).
pub const BACKREF_KEY_PREFIX: &str = "rbd_cg.group.";

/// Most members a group may have (the CLI may set a lower limit per call).
pub const MAX_GROUP_MEMBERS: u32 = 4096;
/// Longest image id (librbd makes 12 to 16 hex digits).
pub const MAX_IMAGE_ID_LEN: usize = 64;
/// Longest RBD namespace name.
pub const MAX_NAMESPACE_LEN: usize = 255;

/// `member_<pool id as 16 hex digits>_<image id>_<namespace>`. Image ids contain no `_`,
/// so the key parses back unambiguously; the namespace comes last because it may.
pub fn member_key(pool_id: i64, image_id: &str, namespace: &str) -> String {
    format!("{MEMBER_KEY_PREFIX}{:016x}_{image_id}_{namespace}", pool_id as u64)
}

/// `rbd_cg.group.<group pool id as 16 hex digits>_<group id>_<group namespace>`.
pub fn backref_key(group_pool_id: i64, group_id: &str, group_namespace: &str) -> String {
    format!("{BACKREF_KEY_PREFIX}{:016x}_{group_id}_{group_namespace}", group_pool_id as u64)
}

/// Checks an RBD image id: 1..=64 ASCII letters or digits.
pub fn validate_image_id(id: &str) -> Result<(), CgError> {
    if id.is_empty() || id.len() > MAX_IMAGE_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CgError::InvalidArgument(format!(
            "image id {id:?} must be 1 to {MAX_IMAGE_ID_LEN} ASCII letters or digits"
        )));
    }
    Ok(())
}

/// Checks a pool id (non-negative) and an RBD namespace (0..=255 bytes, no `/`, NUL or
/// control characters; "" is the default namespace).
pub fn validate_location(pool_id: i64, namespace: &str) -> Result<(), CgError> {
    if pool_id < 0 {
        return Err(CgError::InvalidArgument(format!("pool id {pool_id} is negative")));
    }
    if namespace.len() > MAX_NAMESPACE_LEN || namespace.chars().any(|c| c == '/' || c.is_control()) {
        return Err(CgError::InvalidArgument(format!("namespace {namespace:?} is not valid")));
    }
    Ok(())
}

// ---- group snapshots ---------------------------------------------------------------

/// Header omap key prefix of a snapshot record: `snap_<seq, 16 hex>` (creation order).
pub const SNAP_KEY_PREFIX: &str = "snap_";
/// Header omap key prefix of the snapshot name index: `snapname_<name>`.
pub const SNAP_NAME_KEY_PREFIX: &str = "snapname_";
/// Header omap key holding the next snapshot sequence number.
pub const NEXT_SNAP_SEQ_KEY: &str = "next_snap_seq";
/// Header omap key (deliberately not under `snap_`, which `snap_list` walks): self-managed
/// snapshot ids allocated ahead for the next group snapshot
/// (value `SnapIdReserve`). `snap_create_begin` hands them to the snapshot it records.
pub const SNAP_ID_RESERVE_KEY: &str = "reserved_snap_ids";
/// Header omap key: the reserved ids handed to the snapshot being created (value
/// `SnapIdReserve`); replaced by every `snap_create_begin`, dropped by `snap_reserve_put`.
pub const SNAP_ID_TAKEN_KEY: &str = "taken_snap_ids";
/// Prefix of the member image snapshots of group snapshots.
pub const IMAGE_SNAP_NAME_PREFIX: &str = ".rbd_cg.";
/// Most snapshots a group may have.
pub const MAX_GROUP_SNAPSHOTS: u32 = 4096;
/// Longest snapshot name, in bytes.
pub const MAX_SNAP_NAME_LEN: usize = 128;

/// `snap_<seq as 16 hex digits>`: keys sort in creation order.
pub fn snap_key(seq: u64) -> String {
    format!("{SNAP_KEY_PREFIX}{seq:016x}")
}

/// `snapname_<name>`.
pub fn snap_name_key(name: &str) -> String {
    format!("{SNAP_NAME_KEY_PREFIX}{name}")
}

/// Name of the image snapshot that a group snapshot makes on each member:
/// `.rbd_cg.<group pool id, 16 hex>_<group id>_<snapshot id>`. Cut in cls_rbd's `group`
/// snapshot namespace (hidden from `rbd snap ls`, `rbd snap rm`, `rbd snap purge`); member
/// snapshots made by release 0.1.0 carry the same name in the user namespace.
pub fn image_snap_name(group_pool_id: i64, group_id: &str, snap_id: &str) -> String {
    format!("{IMAGE_SNAP_NAME_PREFIX}{:016x}_{group_id}_{snap_id}", group_pool_id as u64)
}

/// The prefix shared by every image snapshot of one group's snapshots.
pub fn image_snap_prefix(group_pool_id: i64, group_id: &str) -> String {
    format!("{IMAGE_SNAP_NAME_PREFIX}{:016x}_{group_id}_", group_pool_id as u64)
}

/// Prefix of a member image snapshot's name while it is *exposed*: moved for a moment from
/// the `group` snapshot namespace (where stock tools cannot name it) into the user
/// namespace, for one of librbd's by-name calls (rollback, clone, unprotect).
pub const EXPOSED_IMAGE_SNAP_NAME_PREFIX: &str = ".rbd_cg-exposed.";

/// Name of a member image snapshot while it is exposed:
/// `.rbd_cg-exposed.<group pool id, 16 hex>_<group id>_<snapshot id>`. A user snapshot by
/// this name is ours and belongs back in the group namespace under [`image_snap_name`];
/// one under [`image_snap_name`] itself is a member snapshot made by release 0.1.0.
pub fn exposed_image_snap_name(group_pool_id: i64, group_id: &str, snap_id: &str) -> String {
    format!("{EXPOSED_IMAGE_SNAP_NAME_PREFIX}{:016x}_{group_id}_{snap_id}", group_pool_id as u64)
}

/// The parts of a member image snapshot name ([`image_snap_name`] or
/// [`exposed_image_snap_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapName {
    /// The group's pool.
    pub group_pool_id: i64,
    /// The group's id.
    pub group_id: String,
    /// The group snapshot's id.
    pub snap_id: String,
    /// Whether it is the exposed form.
    pub exposed: bool,
}

/// Splits a member image snapshot name; `None` for any other name.
pub fn parse_image_snap_name(name: &str) -> Option<MemberSnapName> {
    let (rest, exposed) = match name.strip_prefix(IMAGE_SNAP_NAME_PREFIX) {
        Some(rest) => (rest, false),
        None => (name.strip_prefix(EXPOSED_IMAGE_SNAP_NAME_PREFIX)?, true),
    };
    let mut parts = rest.splitn(3, '_');
    let (pool, group_id, snap_id) = (parts.next()?, parts.next()?, parts.next()?);
    if pool.len() != 16 || validate_group_id(group_id).is_err() || validate_group_id(snap_id).is_err() {
        return None;
    }
    let group_pool_id = u64::from_str_radix(pool, 16).ok()? as i64;
    Some(MemberSnapName { group_pool_id, group_id: group_id.into(), snap_id: snap_id.into(), exposed })
}

/// Checks a group snapshot name: the group-name rules (1..=128 bytes of UTF-8, no `/`,
/// `@`, NUL or control characters).
pub fn validate_snap_name(name: &str) -> Result<(), CgError> {
    validate_group_name(name).map_err(|_| {
        CgError::InvalidArgument(format!(
            "snapshot name {name:?} must be 1 to {MAX_SNAP_NAME_LEN} bytes without '/', '@' or control characters"
        ))
    })
}

// ---- clones ------------------------------------------------------------------------

/// Header omap key (not under `snap_` or `member_`): the plan of a `clone` that is building
/// this group from another group's snapshot (value `ClonePlan`). Present only until the
/// clone is finished or undone; `group_begin_remove` refuses while it is there.
pub const CLONE_PLAN_KEY: &str = "clone_plan";
/// Longest image name a clone plan may give, in bytes.
pub const MAX_IMAGE_NAME_LEN: usize = 1024;
/// Longest image snapshot name a clone plan may name as a parent, in bytes.
pub const MAX_IMAGE_SNAP_NAME_LEN: usize = 1024;

/// Checks an RBD image name: 1..=1024 bytes, no `/`, `@`, NUL or control characters.
pub fn validate_image_name(name: &str) -> Result<(), CgError> {
    if name.is_empty()
        || name.len() > MAX_IMAGE_NAME_LEN
        || name.chars().any(|c| c == '/' || c == '@' || c.is_control())
    {
        return Err(CgError::InvalidArgument(format!(
            "image name {name:?} must be 1 to {MAX_IMAGE_NAME_LEN} bytes without '/', '@' or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for ok in ["a", "grp-1", "Ünïcødé", "with space", &"x".repeat(128)] {
            assert!(validate_group_name(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a/b", "a@b", "nul\0", "tab\t", "\u{7f}", &"x".repeat(129)] {
            assert_eq!(validate_group_name(bad).unwrap_err().errno(), libc::EINVAL, "{bad:?}");
        }
    }

    #[test]
    fn ids_follow_the_rules() {
        assert!(validate_group_id("0123456789abcdef").is_ok());
        for bad in ["", "ABC", "a-b", "a.b", &"a".repeat(33)] {
            assert!(validate_group_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn member_snapshot_names_split_back_into_their_parts() {
        let name = image_snap_name(1, "0123456789abcdef", "5a");
        let parts = parse_image_snap_name(&name).unwrap();
        assert_eq!(
            (parts.group_pool_id, parts.group_id.as_str(), parts.snap_id.as_str()),
            (1, "0123456789abcdef", "5a")
        );
        assert!(!parts.exposed);
        let exposed = exposed_image_snap_name(1, "0123456789abcdef", "5a");
        assert_eq!(exposed, ".rbd_cg-exposed.0000000000000001_0123456789abcdef_5a");
        assert_eq!(parse_image_snap_name(&exposed), Some(MemberSnapName { exposed: true, ..parts }));
        for other in
            ["s1", ".rbd_cg.1_ab_cd", ".rbd_cg.0000000000000001_ab", ".rbd_cg.0000000000000001_AB_cd", ".group.1_a_b"]
        {
            assert_eq!(parse_image_snap_name(other), None, "{other}");
        }
    }

    #[test]
    fn object_names_match_the_design() {
        assert_eq!(id_object("db"), "cg_id.db");
        assert_eq!(header_object("abc"), "cg_header.abc");
        assert_eq!(dir_name_key("db"), "name_db");
        assert_eq!(dir_id_key("abc"), "id_abc");
    }
}
