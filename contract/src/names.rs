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
    fn object_names_match_the_design() {
        assert_eq!(id_object("db"), "cg_id.db");
        assert_eq!(header_object("abc"), "cg_header.abc");
        assert_eq!(dir_name_key("db"), "name_db");
        assert_eq!(dir_id_key("abc"), "id_abc");
    }
}
