//! Records stored in RADOS objects. Each one travels in the [`crate::encoding`] envelope.
//!
//! | object | where | record |
//! |---|---|---|
//! | `cg_id.<name>` | object data | [`GroupIdRecord`] |
//! | `cg_header.<id>` | object data | [`GroupHeader`] |
//! | `cg_directory` | omap `name_<name>` | [`DirEntry`] |
//! | `cg_directory` | omap `id_<id>` | [`DirIdEntry`] |

use crate::versioned;
use serde::{Deserialize, Serialize};

/// Data of `cg_id.<name>`: which group the name belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIdRecord {
    /// The group id.
    pub id: String,
}
versioned!(GroupIdRecord, "GroupIdRecord", 1, 1, 256);

/// Lifecycle of a group header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderState {
    /// Normal state: members and snapshots may change.
    Active,
    /// Removal has begun: nothing may be added; a rerun of `rm` or `repair` finishes it.
    Removing,
}

/// Data of `cg_header.<id>`: the group itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHeader {
    /// The group id (also in the object name).
    pub id: String,
    /// The current name; follows renames.
    pub name: String,
    /// See [`HeaderState`].
    pub state: HeaderState,
    /// Creation time chosen by the client, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Number of member images (kept with the members, in the same object).
    pub member_count: u32,
    /// Number of group snapshots (kept with the snapshots, in the same object).
    pub snapshot_count: u32,
}
versioned!(GroupHeader, "GroupHeader", 1, 1, 4096);

/// Lifecycle of a name in the directory. Only `Ready` names are complete; the others
/// mark a create or rename that a rerun of the same command, or `rbd-cg repair`, finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirState {
    /// `create` has reserved the name; the group is not usable yet and `ls` hides it.
    Creating,
    /// A complete group.
    Ready,
    /// This (old) name is being renamed to the given name; `ls` hides it.
    RenamingTo(String),
    /// This (new) name is being renamed from the given name; `ls` shows it.
    RenamingFrom(String),
}

/// Directory omap value under `name_<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The group id the name maps to.
    pub id: String,
    /// See [`DirState`].
    pub state: DirState,
}
versioned!(DirEntry, "DirEntry", 1, 1, 512);

/// Directory omap value under `id_<id>`: the group's current (or target) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirIdEntry {
    /// The name.
    pub name: String,
}
versioned!(DirIdEntry, "DirIdEntry", 1, 1, 256);

/// An RBD image, by the identity that survives `rbd rename`: pool id, namespace, image id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    /// Pool id of the image.
    pub pool_id: i64,
    /// RBD namespace of the image ("" = default).
    pub namespace: String,
    /// librbd image id (`rbd info` → `id`).
    pub image_id: String,
}

/// A group, by pool id, namespace and group id: what an image's back-reference holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupRef {
    /// Pool id of the group.
    pub pool_id: i64,
    /// RBD namespace of the group ("" = default).
    pub namespace: String,
    /// Group id.
    pub group_id: String,
}
versioned!(GroupRef, "GroupRef", 1, 1, 512);

/// Lifecycle of a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// `image add` has recorded the link; the image's back-reference may not exist yet.
    Adding,
    /// A complete member.
    Attached,
    /// `image rm` has begun; the back-reference may already be gone.
    Removing,
}

/// Header omap value under `member_…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The image.
    pub image: ImageRef,
    /// See [`MemberState`].
    pub state: MemberState,
    /// When `image add` began, ms since the Unix epoch (chosen by the client).
    pub added_ms: u64,
}
versioned!(MemberRecord, "MemberRecord", 1, 1, 1024);
