//! Records stored in RADOS objects. Each one travels in the [`crate::encoding`] envelope.
//!
//! | object | where | record |
//! |---|---|---|
//! | `cg_id.<name>` | object data | [`GroupIdRecord`] |
//! | `cg_header.<id>` | object data | [`GroupHeader`] |
//! | `cg_directory` | omap `name_<name>` | [`DirEntry`] |
//! | `cg_directory` | omap `id_<id>` | [`DirIdEntry`] |

use crate::names::{
    validate_group_id, validate_image_id, validate_image_name, validate_location, MAX_GROUP_MEMBERS,
    MAX_IMAGE_SNAP_NAME_LEN, MAX_SNAP_NAME_LEN,
};
use crate::versioned;
use crate::CgError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// Features of the group, [`GroupHeader::FEATURE_JOURNALING`] and so on (version 2;
    /// 0 when read from version 1). A header with any feature is written with
    /// `compat_v` 2: a class that does not know features refuses it (`EOPNOTSUPP`) instead
    /// of rewriting it without them.
    pub features: u64,
}

impl GroupHeader {
    /// The group has one journal for all its members (`rbd-cg journal enable`).
    pub const FEATURE_JOURNALING: u64 = 1 << 0;
    /// Every feature this version knows; the class refuses any other bit.
    pub const KNOWN_FEATURES: u64 = GroupHeader::FEATURE_JOURNALING;
}

impl crate::encoding::Versioned for GroupHeader {
    const TYPE_NAME: &'static str = "GroupHeader";
    const STRUCT_V: u8 = 2;
    const COMPAT_V: u8 = 1;
    const MAX_ENCODED_LEN: usize = 4096;

    fn compat_v(&self) -> u8 {
        if self.features == 0 {
            1
        } else {
            2
        }
    }

    fn decode_older(struct_v: u8, payload: &[u8]) -> Result<Self, CgError> {
        match struct_v {
            1 => crate::encoding::decode_exact::<crate::history::GroupHeaderV1>(Self::TYPE_NAME, 1, payload)
                .map(Into::into),
            other => Err(CgError::InvalidArgument(format!("GroupHeader has no version {other}"))),
        }
    }
}

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

/// Lifecycle of a group snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotState {
    /// Recorded with its member list; member image snapshots are being cut.
    Creating,
    /// Every member image snapshot exists and its id is recorded.
    Complete,
    /// Being removed (or an interrupted create is being undone).
    Removing,
}

/// One member image of a group snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMember {
    /// The image.
    pub image: ImageRef,
    /// The image snapshot's id, once cut (`None` while `Creating`).
    pub snap_id: Option<u64>,
}

/// Header omap value under `snap_<seq>`: one group snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Creation order within the group (assigned by the class, from 1).
    pub seq: u64,
    /// Snapshot id chosen by the client (lowercase hex); part of the image snapshot names.
    pub id: String,
    /// Snapshot name, unique in the group.
    pub name: String,
    /// See [`SnapshotState`].
    pub state: SnapshotState,
    /// Creation time, ms since the Unix epoch (chosen by the client).
    pub created_ms: u64,
    /// The members at the moment the snapshot began, in member-key order.
    pub members: Vec<SnapshotMember>,
}
versioned!(SnapshotRecord, "SnapshotRecord", 1, 1, 512 * 1024);

/// Header omap value under `snapname_<name>`: which record holds the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapNameEntry {
    /// The record's sequence number.
    pub seq: u64,
}
versioned!(SnapNameEntry, "SnapNameEntry", 1, 1, 64);

/// Header omap value under `next_snap_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapSeq {
    /// Sequence number the next snapshot gets.
    pub next: u64,
}
versioned!(SnapSeq, "SnapSeq", 1, 1, 64);

/// A self-managed snapshot id allocated ahead, in the (data) pool it was allocated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReservedSnapId {
    /// The pool (a member's data pool) the id belongs to.
    pub pool_id: i64,
    /// The id (`rados_ioctx_selfmanaged_snap_create`), used by no snapshot yet.
    pub snap_id: u64,
}

/// Header omap value under `reserved_snap_ids` / `taken_snap_ids`: snapshot ids allocated
/// ahead, so that a group snapshot need not wait for a monitor commit per data pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapIdReserve {
    /// At most one per member (`MAX_GROUP_MEMBERS`).
    pub ids: Vec<ReservedSnapId>,
}
versioned!(SnapIdReserve, "SnapIdReserve", 1, 1, 128 * 1024);

/// Which multi-image snapshot operation holds the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapOperation {
    /// A snapshot is being created (or its interrupted creation undone).
    Create,
    /// The group is being rolled back to the snapshot.
    Rollback,
}

/// Header omap value under `snapshot_in_progress`. While present, membership cannot
/// change and no other snapshot can be created or rolled back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapInProgress {
    /// The snapshot's sequence number.
    pub seq: u64,
    /// What is in progress.
    pub operation: SnapOperation,
}
versioned!(SnapInProgress, "SnapInProgress", 1, 1, 64);

/// One image a clone makes: an RBD clone of one member snapshot of the source group
/// snapshot, created in the source image's pool and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneImagePlan {
    /// The source member image.
    pub source: ImageRef,
    /// Id of its member snapshot (the clone's parent snapshot).
    pub source_snap_id: u64,
    /// Name of that member snapshot.
    pub source_snap_name: String,
    /// Name of the clone.
    pub name: String,
}

/// Header omap value under `clone_plan`: what a `clone` building this group makes, so a
/// rerun or `repair` can finish it and `rm --force` can undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClonePlan {
    /// The group the snapshot belongs to.
    pub source_group: GroupRef,
    /// The group snapshot's id.
    pub source_snap_id: String,
    /// The group snapshot's name (for messages).
    pub source_snap_name: String,
    /// RBD clone format, 1 (parent snapshots protected) or 2.
    pub clone_format: u8,
    /// One entry per member of the snapshot, at most `MAX_GROUP_MEMBERS`.
    pub images: Vec<CloneImagePlan>,
}
versioned!(ClonePlan, "ClonePlan", 1, 1, 8 * 1024 * 1024);

impl ClonePlan {
    /// The rules `clone_begin` enforces, also checked by the client before it writes
    /// anything: valid ids and names, format 1 or 2, at most `MAX_GROUP_MEMBERS` images, no
    /// source image twice, no two clones with one name in one pool and namespace.
    pub fn validate(&self) -> Result<(), CgError> {
        let source = &self.source_group;
        validate_location(source.pool_id, &source.namespace)?;
        validate_group_id(&source.group_id)?;
        validate_group_id(&self.source_snap_id)?;
        if self.source_snap_name.is_empty() || self.source_snap_name.len() > MAX_SNAP_NAME_LEN {
            return Err(CgError::InvalidArgument("bad source snapshot name".into()));
        }
        if !matches!(self.clone_format, 1 | 2) {
            return Err(CgError::InvalidArgument(format!("clone format {} is neither 1 nor 2", self.clone_format)));
        }
        if self.images.len() > MAX_GROUP_MEMBERS as usize {
            return Err(CgError::OutOfRange(format!("{} images, more than {MAX_GROUP_MEMBERS}", self.images.len())));
        }
        let mut sources = BTreeSet::new();
        let mut targets = BTreeSet::new();
        for image in &self.images {
            validate_location(image.source.pool_id, &image.source.namespace)?;
            validate_image_id(&image.source.image_id)?;
            validate_image_name(&image.name)?;
            if image.source_snap_id == 0
                || image.source_snap_name.is_empty()
                || image.source_snap_name.len() > MAX_IMAGE_SNAP_NAME_LEN
            {
                return Err(CgError::InvalidArgument(format!("bad parent snapshot of {}", image.name)));
            }
            if !sources.insert(&image.source) {
                return Err(CgError::InvalidArgument(format!("image {} is planned twice", image.source.image_id)));
            }
            if !targets.insert((image.source.pool_id, &image.source.namespace, &image.name)) {
                return Err(CgError::InvalidArgument(format!("two clones would be named {:?}", image.name)));
            }
        }
        Ok(())
    }
}
