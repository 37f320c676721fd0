//! The class methods: name, read/write access, request and reply types.
//!
//! A [`ReadMethod`] returns an encoded reply; a [`WriteMethod`] returns only a status,
//! because the OSD drops the output of write methods for `rados_exec` and friends. The
//! client therefore chooses every id it needs up front and reads results back with
//! read methods. Each descriptor is the single source of the method's name and flags:
//! the class registers from these constants and the client calls through them.

use crate::records::{
    ClonePlan, DirEntry, DirIdEntry, GroupHeader, GroupIdRecord, GroupRef, ImageRef, MemberRecord, SnapIdReserve,
    SnapInProgress, SnapshotRecord,
};
use crate::versioned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// Which OSD operations a method performs; decides its registration flags and so the
/// cephx capability a caller needs (`class-read` / `class-write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only (`CLS_METHOD_RD`).
    Read,
    /// Reads and writes (`CLS_METHOD_RD | CLS_METHOD_WR`).
    Write,
}

/// `CLS_METHOD_RD` from `objclass.h`.
pub const CLS_METHOD_RD: i32 = 0x1;
/// `CLS_METHOD_WR` from `objclass.h`.
pub const CLS_METHOD_WR: i32 = 0x2;

impl Access {
    /// The flags passed to `cls_register_method`.
    pub const fn cls_flags(self) -> i32 {
        match self {
            Access::Read => CLS_METHOD_RD,
            Access::Write => CLS_METHOD_RD | CLS_METHOD_WR,
        }
    }
}

/// A method that reads and replies with a `Reply`.
pub struct ReadMethod<Req, Reply> {
    /// Method name as registered with the OSD.
    pub name: &'static str,
    marker: PhantomData<fn(Req) -> Reply>,
}

/// A method that changes its object and replies with nothing but a status.
pub struct WriteMethod<Req> {
    /// Method name as registered with the OSD.
    pub name: &'static str,
    marker: PhantomData<fn(Req)>,
}

impl<Req, Reply> ReadMethod<Req, Reply> {
    const fn new(name: &'static str) -> Self {
        ReadMethod { name, marker: PhantomData }
    }
}

impl<Req> WriteMethod<Req> {
    const fn new(name: &'static str) -> Self {
        WriteMethod { name, marker: PhantomData }
    }
}

/// Request or reply without fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}
versioned!(Empty, "Empty", 1, 1, 64);

/// Reply of [`GET_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReply {
    /// The class's crate version.
    pub class_version: String,
    /// Oldest protocol the class speaks.
    pub protocol_min: u16,
    /// Newest protocol the class speaks.
    pub protocol_max: u16,
}
versioned!(VersionReply, "VersionReply", 1, 1, 256);

/// A group name and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameAndId {
    /// Group name.
    pub name: String,
    /// Group id.
    pub id: String,
}
versioned!(NameAndId, "NameAndId", 1, 1, 512);

/// A group name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRequest {
    /// Group name.
    pub name: String,
}
versioned!(NameRequest, "NameRequest", 1, 1, 512);

/// A group id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRequest {
    /// Group id.
    pub id: String,
}
versioned!(IdRequest, "IdRequest", 1, 1, 256);

/// Renames group `id` from `old_name` to `new_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRequest {
    /// Group id.
    pub id: String,
    /// Current name.
    pub old_name: String,
    /// Wanted name.
    pub new_name: String,
}
versioned!(RenameRequest, "RenameRequest", 1, 1, 512);

/// Creates the header of group `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreateRequest {
    /// Group id.
    pub id: String,
    /// Group name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}
versioned!(GroupCreateRequest, "GroupCreateRequest", 1, 1, 512);

/// Most entries any list method returns in one page.
pub const MAX_LIST_PAGE: u32 = 1024;

/// One page of the directory, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListRequest {
    /// Return names strictly after this one ("" = from the start).
    pub start_after: String,
    /// At most this many entries, 1..=[`MAX_LIST_PAGE`].
    pub max_entries: u32,
}
versioned!(DirListRequest, "DirListRequest", 1, 1, 512);

/// One listed directory name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListItem {
    /// Group name.
    pub name: String,
    /// Its entry.
    pub entry: DirEntry,
}

/// Reply of [`DIR_LIST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListReply {
    /// Entries in name order.
    pub entries: Vec<DirListItem>,
    /// Whether more entries follow the last one.
    pub more: bool,
}
versioned!(DirListReply, "DirListReply", 1, 1, 512 * 1024);

// ---- any object -------------------------------------------------------------------

/// Reports the class version and protocol range. The OSD runs read methods only on
/// existing objects: on an absent one it answers `ENOENT` after checking that the class
/// and method exist (`EOPNOTSUPP` if not), which the client's class check relies on.
pub const GET_VERSION: ReadMethod<Empty, VersionReply> = ReadMethod::new("get_version");

/// Test-only (feature `fault-injection` of the class): panics, to prove the guard.
pub const TEST_PANIC: ReadMethod<Empty, Empty> = ReadMethod::new("test_panic");

// ---- cg_directory -----------------------------------------------------------------

/// Reserves `name` for `id` in state `Creating`. `EEXIST` if the name or id is taken
/// (repeating the same reservation succeeds).
pub const DIR_ADD: WriteMethod<NameAndId> = WriteMethod::new("dir_add");
/// `Creating` → `Ready` for `name`/`id` (idempotent). `ENOENT`, or `EBUSY` in another state.
pub const DIR_SET_READY: WriteMethod<NameAndId> = WriteMethod::new("dir_set_ready");
/// Starts a rename: old name `RenamingTo(new)`, new name `RenamingFrom(old)`, id → new name.
pub const DIR_RENAME_BEGIN: WriteMethod<RenameRequest> = WriteMethod::new("dir_rename_begin");
/// Finishes a rename: drops the old name, new name `Ready` (idempotent).
pub const DIR_RENAME_FINISH: WriteMethod<RenameRequest> = WriteMethod::new("dir_rename_finish");
/// Drops `name` and `id` from the directory. `ENOENT` if absent, `EBUSY` during a rename.
pub const DIR_REMOVE: WriteMethod<NameAndId> = WriteMethod::new("dir_remove");
/// Looks up a name.
pub const DIR_GET: ReadMethod<NameRequest, DirEntry> = ReadMethod::new("dir_get");
/// Looks up an id.
pub const DIR_GET_NAME: ReadMethod<IdRequest, DirIdEntry> = ReadMethod::new("dir_get_name");
/// Lists names in pages.
pub const DIR_LIST: ReadMethod<DirListRequest, DirListReply> = ReadMethod::new("dir_list");

// ---- cg_id.<name> -----------------------------------------------------------------

/// Creates `cg_id.<name>` holding `id`; repeating it with the same id succeeds.
pub const ID_CREATE: WriteMethod<IdRequest> = WriteMethod::new("id_create");
/// Reads the id.
pub const ID_GET: ReadMethod<Empty, GroupIdRecord> = ReadMethod::new("id_get");
/// Removes the object if it holds `id`; `ENOENT` if absent or holding another id.
pub const ID_REMOVE: WriteMethod<IdRequest> = WriteMethod::new("id_remove");

// ---- cg_header.<id> ---------------------------------------------------------------

/// Creates the header (state `Active`); repeating it with the same id and name succeeds.
pub const GROUP_CREATE: WriteMethod<GroupCreateRequest> = WriteMethod::new("group_create");
/// Reads the header.
pub const GROUP_GET: ReadMethod<Empty, GroupHeader> = ReadMethod::new("group_get");
/// Changes the stored name from `old_name` to `new_name`; repeating it succeeds. `EBUSY`
/// when the header holds another name or is being removed.
pub const GROUP_SET_NAME: WriteMethod<RenameRequest> = WriteMethod::new("group_set_name");
/// `Active` → `Removing`; `EBUSY` while members or snapshots exist.
pub const GROUP_BEGIN_REMOVE: WriteMethod<IdRequest> = WriteMethod::new("group_begin_remove");
/// Deletes a header that is `Removing`; `EBUSY` if it is not.
pub const GROUP_REMOVE: WriteMethod<IdRequest> = WriteMethod::new("group_remove");

/// Starts adding `image` to group `group_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddRequest {
    /// The group (checked against the header).
    pub group_id: String,
    /// The image.
    pub image: ImageRef,
    /// Time of the add, ms since the Unix epoch.
    pub added_ms: u64,
    /// Refuse with `ERANGE` if the group already has this many members (at most
    /// [`crate::names::MAX_GROUP_MEMBERS`]).
    pub max_members: u32,
}
versioned!(MemberAddRequest, "MemberAddRequest", 1, 1, 1024);

/// Names one member of group `group_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRequest {
    /// The group (checked against the header).
    pub group_id: String,
    /// The image.
    pub image: ImageRef,
}
versioned!(MemberRequest, "MemberRequest", 1, 1, 1024);

/// One page of members, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberListRequest {
    /// Start after this member ("" = from the start); the last image of the previous page.
    pub start_after: Option<ImageRef>,
    /// At most this many, 1..=[`MAX_LIST_PAGE`].
    pub max_entries: u32,
}
versioned!(MemberListRequest, "MemberListRequest", 1, 1, 1024);

/// Reply of [`MEMBER_LIST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberListReply {
    /// Members in key order.
    pub members: Vec<MemberRecord>,
    /// Whether more follow.
    pub more: bool,
}
versioned!(MemberListReply, "MemberListReply", 1, 1, 512 * 1024);

/// Sets or clears an image's back-reference to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackRefRequest {
    /// The image id (checked against nothing else: the object name carries it).
    pub image_id: String,
    /// The group.
    pub group: GroupRef,
}
versioned!(BackRefRequest, "BackRefRequest", 1, 1, 1024);

/// Reply of [`IMAGE_GROUP_LIST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRefList {
    /// Groups the image belongs to, in key order.
    pub groups: Vec<GroupRef>,
    /// Whether more follow (more than [`MAX_LIST_PAGE`] groups).
    pub more: bool,
}
versioned!(GroupRefList, "GroupRefList", 1, 1, 512 * 1024);

// ---- members on cg_header.<id> ------------------------------------------------------

/// Records `image` as `Adding` (member count + 1). `EEXIST` if already a member,
/// `EBUSY` while the group is being removed or a group snapshot is in progress,
/// `ERANGE` at the member limit. Repeating it succeeds.
pub const MEMBER_ADD_BEGIN: WriteMethod<MemberAddRequest> = WriteMethod::new("member_add_begin");
/// `Adding` → `Attached`; repeating it succeeds. `ENOENT` if not a member.
pub const MEMBER_ADD_FINISH: WriteMethod<MemberRequest> = WriteMethod::new("member_add_finish");
/// `Adding`/`Attached` → `Removing`; repeating it succeeds. `ENOENT` if not a member,
/// `EBUSY` while a group snapshot is in progress.
pub const MEMBER_REMOVE_BEGIN: WriteMethod<MemberRequest> = WriteMethod::new("member_remove_begin");
/// Drops a `Removing` member (member count − 1). `ENOENT` if absent, `EBUSY` in another state.
pub const MEMBER_REMOVE_FINISH: WriteMethod<MemberRequest> = WriteMethod::new("member_remove_finish");
/// Lists members in pages.
pub const MEMBER_LIST: ReadMethod<MemberListRequest, MemberListReply> = ReadMethod::new("member_list");

// ---- back-references on rbd_header.<image id> -----------------------------------------

/// Sets the image's back-reference to a group; `ENOENT` if the image header is gone.
/// Repeating it succeeds.
pub const IMAGE_GROUP_LINK: WriteMethod<BackRefRequest> = WriteMethod::new("image_group_link");
/// Clears the image's back-reference; succeeds if it is already gone. `ENOENT` if the
/// image header is gone.
pub const IMAGE_GROUP_UNLINK: WriteMethod<BackRefRequest> = WriteMethod::new("image_group_unlink");
/// The groups an image belongs to.
pub const IMAGE_GROUP_LIST: ReadMethod<Empty, GroupRefList> = ReadMethod::new("image_group_list");

/// Starts group snapshot `snap_id`/`name` of group `group_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapCreateRequest {
    /// The group (checked against the header).
    pub group_id: String,
    /// Snapshot id chosen by the client (1..=32 lowercase letters or digits).
    pub snap_id: String,
    /// Snapshot name.
    pub name: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Refuse with `ERANGE` if the group already has this many snapshots.
    pub max_snapshots: u32,
}
versioned!(SnapCreateRequest, "SnapCreateRequest", 1, 1, 1024);

/// Completes a snapshot: the image snapshot id cut on each member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapFinishRequest {
    /// The group.
    pub group_id: String,
    /// Snapshot name.
    pub name: String,
    /// One entry per member of the snapshot record, same images.
    pub image_snaps: Vec<(ImageRef, u64)>,
}
versioned!(SnapFinishRequest, "SnapFinishRequest", 1, 1, 512 * 1024);

/// Stores snapshot ids allocated ahead for the group's next snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapReservePutRequest {
    /// The group.
    pub group_id: String,
    /// The ids (each unused, each at most once).
    pub reserve: SnapIdReserve,
}
versioned!(SnapReservePutRequest, "SnapReservePutRequest", 1, 1, 128 * 1024 + 256);

/// Creates group `group_id`'s header (as `group_create` would, if it is not there yet)
/// and records `plan` on it, in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneBeginRequest {
    /// The group being built.
    pub group_id: String,
    /// Its name.
    pub name: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// What the clone makes.
    pub plan: ClonePlan,
}
versioned!(CloneBeginRequest, "CloneBeginRequest", 1, 1, 8 * 1024 * 1024 + 256);

/// Names one snapshot of group `group_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapRequest {
    /// The group.
    pub group_id: String,
    /// Snapshot name.
    pub name: String,
}
versioned!(SnapRequest, "SnapRequest", 1, 1, 1024);

/// Starts removing snapshot `name` of group `group_id` (`snap_remove_begin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapRemoveRequest {
    /// The group.
    pub group_id: String,
    /// Snapshot name.
    pub name: String,
    /// Whether a snapshot still `Creating` may be removed: only to undo a creation (its
    /// creator's own undo, or `repair` after a crash). A plain `snap rm` of a snapshot that
    /// another client is still creating is refused (`EBUSY`), so the creator never cuts member
    /// snapshots that nobody records (version 2; version-1 requests of release 0.1.0 mean
    /// `true`, as that release removed `Creating` snapshots unconditionally).
    pub undo_create: bool,
}
versioned!(
    SnapRemoveRequest,
    "SnapRemoveRequest",
    2,
    1,
    1024,
    older { 1 => crate::history::SnapRemoveRequestV1 }
);

/// Renames a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapRenameRequest {
    /// The group.
    pub group_id: String,
    /// Current name.
    pub old_name: String,
    /// Wanted name.
    pub new_name: String,
}
versioned!(SnapRenameRequest, "SnapRenameRequest", 1, 1, 1024);

/// One page of snapshots in creation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapListRequest {
    /// Return snapshots with a larger sequence number (0 = from the start).
    pub start_after_seq: u64,
    /// At most this many, 1..=[`MAX_LIST_PAGE`]; a page also ends before it would pass
    /// [`MAX_SNAP_PAGE_BYTES`] (but holds at least one snapshot).
    pub max_entries: u32,
}
versioned!(SnapListRequest, "SnapListRequest", 1, 1, 64);

/// Byte budget of one [`SNAP_LIST`] page (records include their member lists).
pub const MAX_SNAP_PAGE_BYTES: usize = 384 * 1024;

/// Reply of [`SNAP_LIST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapListReply {
    /// Snapshots in creation order.
    pub snapshots: Vec<SnapshotRecord>,
    /// The snapshot in progress, if any.
    pub in_progress: Option<SnapInProgress>,
    /// Whether more follow.
    pub more: bool,
}
versioned!(SnapListReply, "SnapListReply", 1, 1, 1024 * 1024);

// ---- group snapshots on cg_header.<id> ------------------------------------------------

/// Records a `Creating` snapshot whose members are the group's attached members, marks
/// `snapshot_in_progress` (Create) and counts it. `EEXIST` if the name is taken (the same
/// id repeating it succeeds), `EBUSY` while another snapshot operation is in progress or
/// a member is being added or removed, `ERANGE` at the snapshot limit.
pub const SNAP_CREATE_BEGIN: WriteMethod<SnapCreateRequest> = WriteMethod::new("snap_create_begin");
/// Records the image snapshot ids, `Creating` → `Complete`, clears the in-progress mark.
/// `EINVAL` if the images differ from the record's members. Repeating it succeeds.
pub const SNAP_CREATE_FINISH: WriteMethod<SnapFinishRequest> = WriteMethod::new("snap_create_finish");
/// `Complete` → `Removing`, and `Creating` → `Removing` only with `undo_create`; repeating it
/// succeeds. `EBUSY` for a `Creating` snapshot without `undo_create` (another client may be
/// creating it), and while the group is being rolled back to it.
pub const SNAP_REMOVE_BEGIN: WriteMethod<SnapRemoveRequest> = WriteMethod::new("snap_remove_begin");
/// Drops a `Removing` snapshot (count − 1, in-progress mark cleared if it was its).
pub const SNAP_REMOVE_FINISH: WriteMethod<SnapRequest> = WriteMethod::new("snap_remove_finish");
/// Renames a `Complete` snapshot. `EEXIST` if the new name is taken.
pub const SNAP_RENAME: WriteMethod<SnapRenameRequest> = WriteMethod::new("snap_rename");
/// Marks `snapshot_in_progress` (Rollback) for a `Complete` snapshot; repeating it succeeds.
/// `EBUSY` while another snapshot operation or a membership change is in progress.
pub const SNAP_ROLLBACK_BEGIN: WriteMethod<SnapRequest> = WriteMethod::new("snap_rollback_begin");
/// Clears the rollback mark; succeeds if it is already clear.
pub const SNAP_ROLLBACK_FINISH: WriteMethod<SnapRequest> = WriteMethod::new("snap_rollback_finish");
/// One snapshot by name.
pub const SNAP_GET: ReadMethod<SnapRequest, SnapshotRecord> = ReadMethod::new("snap_get");
/// Snapshots in pages, in creation order.
pub const SNAP_LIST: ReadMethod<SnapListRequest, SnapListReply> = ReadMethod::new("snap_list");
/// The reserved snapshot ids handed to the snapshot being created (`taken_snap_ids`; empty
/// when there are none).
pub const SNAP_RESERVE_GET: ReadMethod<Empty, SnapIdReserve> = ReadMethod::new("snap_reserve_get");
/// Stores the reserve for the next snapshot and drops `taken_snap_ids`. Only while a
/// snapshot is being created (`EINVAL` otherwise): the client sends it in one atomic op
/// with `snap_create_finish`, so every reserved id reaches exactly one snapshot attempt.
pub const SNAP_RESERVE_PUT: WriteMethod<SnapReservePutRequest> = WriteMethod::new("snap_reserve_put");

/// Creates the new group's header with the plan of a clone, or records the plan on that
/// header if it exists and is empty. Repeating it with the same plan succeeds; another plan
/// or another group's header is `EEXIST`; a group with members or snapshots is `EBUSY`.
pub const CLONE_BEGIN: WriteMethod<CloneBeginRequest> = WriteMethod::new("clone_begin");
/// The clone plan recorded on the header (`ENOENT` when none).
pub const CLONE_GET: ReadMethod<IdRequest, ClonePlan> = ReadMethod::new("clone_get");
/// Drops the clone plan (the clone is finished or undone). Repeating it succeeds.
pub const CLONE_FINISH: WriteMethod<IdRequest> = WriteMethod::new("clone_finish");

// ---- the group journal (crate::journal) ------------------------------------------------

/// A write method whose input is not one envelope but a raw framing of its own (the journal
/// append: a small envelope and megabytes of entries, `journal::encode_append`).
pub struct RawWriteMethod {
    /// Method name as registered with the OSD.
    pub name: &'static str,
}

/// Records the group's journal `Enabling` with its member tags, registers the consumer
/// `local` at position 0 and sets the header's journaling feature, on `cg_header.<id>`.
/// `ERANGE` for a segment size outside `MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE` or a bound
/// below two segments; `EBUSY` while the group is being removed, or a snapshot, a
/// membership change or a clone is in progress; `EINVAL` unless the tags (distinct, ≥ 1)
/// name exactly the attached members; repeating it with the same members, segment size
/// and bound succeeds (another journal is `EEXIST`, one being disabled `EBUSY`). While the
/// `journal` key exists, `member_add_begin`, `member_remove_begin`, `snap_rollback_begin`,
/// `group_begin_remove` and `clone_begin` on the header are `EBUSY`.
pub const JOURNAL_ENABLE: WriteMethod<crate::journal::JournalEnableRequest> = WriteMethod::new("journal_enable");
/// `Enabling` → `Enabled` (idempotent).
pub const JOURNAL_ENABLED: WriteMethod<crate::journal::JournalGroupRequest> = WriteMethod::new("journal_enabled");
/// `Enabled`/`Enabling` → `Disabling` (idempotent); `EBUSY` while a writer holds the lease.
pub const JOURNAL_DISABLE_BEGIN: WriteMethod<crate::journal::JournalGroupRequest> =
    WriteMethod::new("journal_disable_begin");
/// Drops the journal record, its consumers and the snapshots' journal positions (positions
/// in a journal that is gone) and clears the journaling feature: only in `Disabling`,
/// without a writer (`EBUSY`). Repeating it succeeds.
pub const JOURNAL_DISABLE_FINISH: WriteMethod<crate::journal::JournalGroupRequest> =
    WriteMethod::new("journal_disable_finish");
/// The journal and its consumers (`ENOENT` when the group has no journal).
pub const JOURNAL_GET: ReadMethod<crate::journal::JournalGroupRequest, crate::journal::JournalStatus> =
    ReadMethod::new("journal_get");
/// Records a new writer with a new epoch (larger than all before, else `ESTALE`); only while
/// `Enabled` (`EBUSY`). Repeating it with the very lease recorded succeeds. Sent in one op
/// after `lock.assert_locked` on the writer lock, which makes the lease exclusive.
pub const JOURNAL_TAKE: WriteMethod<crate::journal::JournalTakeRequest> = WriteMethod::new("journal_take");
/// The writer with this epoch gives the lease up (no writer recorded afterwards); another
/// epoch is `ESTALE`, no writer succeeds.
pub const JOURNAL_RELEASE: WriteMethod<crate::journal::JournalReleaseRequest> = WriteMethod::new("journal_release");
/// The current writer moved to a newer segment (`ESTALE` unless `epoch` is the recorded
/// writer's, `ERANGE` when the segment would not move forward or the sequence number back,
/// `EINVAL` for sequence number 0). Segment numbers may skip; the same segment and first
/// sequence number again succeed.
pub const JOURNAL_ROLL: WriteMethod<crate::journal::JournalRollRequest> = WriteMethod::new("journal_roll");
/// Moves the trim point forward (`ERANGE` backwards, past the active segment or its first
/// sequence number, or — for `trimmed_seq` — past `position + 1` of a `Connected`
/// consumer). The same trim point again succeeds.
pub const JOURNAL_TRIM: WriteMethod<crate::journal::JournalTrimRequest> = WriteMethod::new("journal_trim");
/// Registers a consumer or moves its position forward (`ERANGE` backwards unless `reset`;
/// no upper bound). The record must be `Connected` (`EINVAL`; use
/// `journal_consumer_disconnect`); a `Disconnected` consumer must register anew with
/// `reset` (`ESTALE` otherwise). `EINVAL` for a bad name, `ERANGE` for more than
/// `MAX_CONSUMER_DATA_LEN` bytes of data, or for a consumer that would grow `journal_get`'s
/// reply past what it can return with a writer lease recorded.
pub const JOURNAL_CONSUMER_SET: WriteMethod<crate::journal::ConsumerSetRequest> =
    WriteMethod::new("journal_consumer_set");
/// Marks a consumer `Disconnected` (idempotent; `ENOENT` if unknown). The local consumer
/// cannot be (`EPERM`): its entries would be trimmed before they reach the images.
pub const JOURNAL_CONSUMER_DISCONNECT: WriteMethod<crate::journal::ConsumerRequest> =
    WriteMethod::new("journal_consumer_disconnect");
/// Removes a consumer (absent is fine); the local consumer cannot be removed (`EPERM`).
pub const JOURNAL_CONSUMER_REMOVE: WriteMethod<crate::journal::ConsumerRequest> =
    WriteMethod::new("journal_consumer_remove");

/// Records the journal position a snapshot of a journaled group was cut at, while it is
/// `Creating` (`EINVAL` otherwise; `ENOENT` without a journal): sent in one atomic op with
/// `snap_create_finish`. The same position already recorded succeeds in any state (that op
/// sent again). `snap_remove_finish` drops it with the snapshot.
pub const SNAP_SET_JOURNAL_POSITION: WriteMethod<crate::journal::SnapJournalPositionRequest> =
    WriteMethod::new("snap_set_journal_position");
/// The journal position of a snapshot (`ENOENT` when it has none).
pub const SNAP_GET_JOURNAL_POSITION: ReadMethod<SnapRequest, crate::journal::SnapJournalPosition> =
    ReadMethod::new("snap_get_journal_position");

/// Turns the journal write fence of a member image on or off (on `rbd_header.<image id>`):
/// sets or clears librbd's `non-primary` feature and the `operations` feature with
/// `journal::OP_FEATURE_RBD_CG_JOURNAL` in its `op_features`, in cls_rbd's own keys.
/// Idempotent. `EINVAL` to fence an image without a back-reference to the group, or one that
/// is `non-primary` for another reason (mirroring); `ENOENT` when the header is gone.
pub const IMAGE_JOURNAL_FENCE: WriteMethod<crate::journal::ImageFenceRequest> = WriteMethod::new("image_journal_fence");

/// Creates a segment object for a writer (`EEXIST` when it exists for another epoch or
/// first sequence number, or is not a segment; the same ones succeed). `EINVAL` for epoch or
/// sequence number 0, `ERANGE` for a capacity outside `MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE`.
pub const SEGMENT_OPEN: WriteMethod<crate::journal::SegmentOpenRequest> = WriteMethod::new("segment_open");
/// Appends entries: `ENOENT` without a segment, `ESTALE` for another epoch or a sealed
/// segment, `ERANGE` unless the first entry continues the segment's sequence, `ENOSPC` when
/// the segment is full (a batch never spans segments; an empty segment takes one batch of
/// any size), `EINVAL` for malformed entries (every header is checked: magic, checksum,
/// exactly `count` entries with contiguous sequence numbers and the append's epoch, no
/// bytes after them; payload checksums are left to readers). Nothing is written on error;
/// otherwise one write at the committed length and the segment record.
pub const SEGMENT_APPEND: RawWriteMethod = RawWriteMethod { name: "segment_append" };
/// Closes a segment to appends (idempotent); `ESTALE` when the sealer's epoch is older
/// than the segment's.
pub const SEGMENT_SEAL: WriteMethod<crate::journal::SegmentSealRequest> = WriteMethod::new("segment_seal");
/// The segment's record (`ENOENT` without one).
pub const SEGMENT_GET: ReadMethod<Empty, crate::journal::SegmentRecord> = ReadMethod::new("segment_get");

/// Records the group mirrored (`cg_header.<id>` omap `mirror`): `EINVAL` for journal mode
/// without an `Enabled` journal, `ERANGE` for an interval outside
/// `MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS` in snapshot mode; `EEXIST` when it is mirrored
/// already in another mode or role (the same mode and role succeed and change nothing);
/// `ENOENT`/`EINVAL` like every header method, `EBUSY` while the group is being removed.
pub const MIRROR_ENABLE: WriteMethod<crate::mirror::MirrorEnableRequest> = WriteMethod::new("mirror_enable");
/// Drops the mirror record (absent is fine), on either side.
pub const MIRROR_DISABLE: WriteMethod<crate::mirror::MirrorGroupRequest> = WriteMethod::new("mirror_disable");
/// Promotes or demotes (the same role again succeeds). Demoting refuses with `EBUSY` while
/// a journal writer holds the lease; `ENOENT` when the group is not mirrored.
pub const MIRROR_SET_ROLE: WriteMethod<crate::mirror::MirrorRoleRequest> = WriteMethod::new("mirror_set_role");
/// The mirror daemon records its state: `EROFS` unless the group is non-primary (after a
/// promotion a stale daemon stops here), `ERANGE` beyond `MAX_REPLAY_MEMBERS` members or
/// `MAX_TEXT_LEN` bytes of text, `EINVAL` for a position beyond its wave.
pub const MIRROR_SET_REPLAY: WriteMethod<crate::mirror::MirrorReplayRequest> = WriteMethod::new("mirror_set_replay");
/// Asks a non-primary group's daemon to copy everything again (`EINVAL` on a primary).
pub const MIRROR_RESYNC: WriteMethod<crate::mirror::MirrorGroupRequest> = WriteMethod::new("mirror_resync");
/// The mirror record (`ENOENT` when the group is not mirrored).
pub const MIRROR_GET: ReadMethod<crate::mirror::MirrorGroupRequest, crate::mirror::MirrorRecord> =
    ReadMethod::new("mirror_get");

/// Every method the class registers in a normal build, with its access.
pub const ALL_METHODS: &[(&str, Access)] = &[
    (GET_VERSION.name, Access::Read),
    (DIR_ADD.name, Access::Write),
    (DIR_SET_READY.name, Access::Write),
    (DIR_RENAME_BEGIN.name, Access::Write),
    (DIR_RENAME_FINISH.name, Access::Write),
    (DIR_REMOVE.name, Access::Write),
    (DIR_GET.name, Access::Read),
    (DIR_GET_NAME.name, Access::Read),
    (DIR_LIST.name, Access::Read),
    (ID_CREATE.name, Access::Write),
    (ID_GET.name, Access::Read),
    (ID_REMOVE.name, Access::Write),
    (GROUP_CREATE.name, Access::Write),
    (GROUP_GET.name, Access::Read),
    (GROUP_SET_NAME.name, Access::Write),
    (GROUP_BEGIN_REMOVE.name, Access::Write),
    (GROUP_REMOVE.name, Access::Write),
    (MEMBER_ADD_BEGIN.name, Access::Write),
    (MEMBER_ADD_FINISH.name, Access::Write),
    (MEMBER_REMOVE_BEGIN.name, Access::Write),
    (MEMBER_REMOVE_FINISH.name, Access::Write),
    (MEMBER_LIST.name, Access::Read),
    (IMAGE_GROUP_LINK.name, Access::Write),
    (IMAGE_GROUP_UNLINK.name, Access::Write),
    (IMAGE_GROUP_LIST.name, Access::Read),
    (SNAP_CREATE_BEGIN.name, Access::Write),
    (SNAP_CREATE_FINISH.name, Access::Write),
    (SNAP_REMOVE_BEGIN.name, Access::Write),
    (SNAP_REMOVE_FINISH.name, Access::Write),
    (SNAP_RENAME.name, Access::Write),
    (SNAP_ROLLBACK_BEGIN.name, Access::Write),
    (SNAP_ROLLBACK_FINISH.name, Access::Write),
    (SNAP_GET.name, Access::Read),
    (SNAP_LIST.name, Access::Read),
    (SNAP_RESERVE_GET.name, Access::Read),
    (SNAP_RESERVE_PUT.name, Access::Write),
    (CLONE_BEGIN.name, Access::Write),
    (CLONE_GET.name, Access::Read),
    (CLONE_FINISH.name, Access::Write),
    (JOURNAL_ENABLE.name, Access::Write),
    (JOURNAL_ENABLED.name, Access::Write),
    (JOURNAL_DISABLE_BEGIN.name, Access::Write),
    (JOURNAL_DISABLE_FINISH.name, Access::Write),
    (JOURNAL_GET.name, Access::Read),
    (JOURNAL_TAKE.name, Access::Write),
    (JOURNAL_RELEASE.name, Access::Write),
    (JOURNAL_ROLL.name, Access::Write),
    (JOURNAL_TRIM.name, Access::Write),
    (JOURNAL_CONSUMER_SET.name, Access::Write),
    (JOURNAL_CONSUMER_DISCONNECT.name, Access::Write),
    (JOURNAL_CONSUMER_REMOVE.name, Access::Write),
    (IMAGE_JOURNAL_FENCE.name, Access::Write),
    (SNAP_SET_JOURNAL_POSITION.name, Access::Write),
    (SNAP_GET_JOURNAL_POSITION.name, Access::Read),
    (SEGMENT_OPEN.name, Access::Write),
    (SEGMENT_APPEND.name, Access::Write),
    (SEGMENT_SEAL.name, Access::Write),
    (SEGMENT_GET.name, Access::Read),
    (MIRROR_ENABLE.name, Access::Write),
    (MIRROR_DISABLE.name, Access::Write),
    (MIRROR_SET_ROLE.name, Access::Write),
    (MIRROR_SET_REPLAY.name, Access::Write),
    (MIRROR_RESYNC.name, Access::Write),
    (MIRROR_GET.name, Access::Read),
];
