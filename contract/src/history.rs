//! The layouts of earlier versions of records and requests, kept so that this build reads
//! everything any earlier release wrote or sent (`docs/FORMAT.md`, "Versions").
//!
//! Each type here is the exact layout of one version of a current type, named after it
//! with the version (`GroupHeaderV1`), and converts into the current type with the new
//! fields at the values that keep the old meaning. The current type's `Versioned` impl
//! dispatches to it by `struct_v`. Never change a layout here: it describes bytes already
//! on disks. Golden bytes of every version are in `tests/released.rs`.

use crate::methods::SnapRemoveRequest;
use crate::records::{GroupHeader, HeaderState};
use serde::{Deserialize, Serialize};

/// [`GroupHeader`] version 1 (release 0.1.0): without `features`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHeaderV1 {
    /// The group id.
    pub id: String,
    /// The current name.
    pub name: String,
    /// Lifecycle state.
    pub state: HeaderState,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Number of member images.
    pub member_count: u32,
    /// Number of group snapshots.
    pub snapshot_count: u32,
}

impl From<GroupHeaderV1> for GroupHeader {
    /// A version-1 group has no features.
    fn from(v1: GroupHeaderV1) -> GroupHeader {
        GroupHeader {
            id: v1.id,
            name: v1.name,
            state: v1.state,
            created_ms: v1.created_ms,
            member_count: v1.member_count,
            snapshot_count: v1.snapshot_count,
            features: 0,
        }
    }
}

/// [`SnapRemoveRequest`] version 1 (release 0.1.0, where `snap_remove_begin` took a
/// `SnapRequest`): without `undo_create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapRemoveRequestV1 {
    /// The group.
    pub group_id: String,
    /// Snapshot name.
    pub name: String,
}

impl From<SnapRemoveRequestV1> for SnapRemoveRequest {
    /// Release 0.1.0 removed `Creating` snapshots whoever asked.
    fn from(v1: SnapRemoveRequestV1) -> SnapRemoveRequest {
        SnapRemoveRequest { group_id: v1.group_id, name: v1.name, undo_create: true }
    }
}
