//! The class methods: name, read/write access, request and reply types.
//!
//! A [`ReadMethod`] returns an encoded reply; a [`WriteMethod`] returns only a status,
//! because the OSD drops the output of write methods for `rados_exec` and friends. The
//! client therefore chooses every id it needs up front and reads results back with
//! read methods. Each descriptor is the single source of the method's name and flags:
//! the class registers from these constants and the client calls through them.

use crate::records::{DirEntry, DirIdEntry, GroupHeader, GroupIdRecord};
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
];
