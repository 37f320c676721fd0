//! Group lifecycle: create, info, list, rename, remove, repair.
//!
//! Each operation that touches more than one object is a fixed sequence of single-object
//! atomic steps (class methods), listed in the doc of its function and in
//! `docs/OPERATIONS.md`. The directory object records the lifecycle state of every
//! name, so an interrupted sequence is always visible there; every step is idempotent,
//! so rerunning the same command (or `repair`) continues from wherever it stopped.

use crate::error::{ignore_missing, Error, Result};
use crate::faults::{FaultPlan, Steps};
use crate::progress::Progress;
use crate::snapshots::reserve::SnapIdReserve;
use crate::spec::PoolSpec;
use rbd_cg_contract::methods::{
    DirListRequest, Empty, GroupCreateRequest, IdRequest, NameAndId, RenameRequest, DIR_ADD, DIR_GET_NAME, DIR_LIST,
    DIR_REMOVE, DIR_RENAME_BEGIN, DIR_RENAME_FINISH, DIR_SET_READY, GROUP_BEGIN_REMOVE, GROUP_CREATE, GROUP_REMOVE,
    GROUP_SET_NAME, ID_CREATE, ID_GET, ID_REMOVE, MAX_LIST_PAGE,
};
use rbd_cg_contract::names::{header_object, id_object, validate_group_name, DIRECTORY_OBJECT, GENERATED_GROUP_ID_LEN};
use rbd_cg_contract::records::{DirEntry, DirState, HeaderState};
use rbd_cg_rados::rbd_cg::{check_class, ClassStatus};
use rbd_cg_rados::{Cluster, IoCtx};
use serde::Serialize;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a group stands in its lifecycle, as `info` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupState {
    /// Complete and usable.
    Ready,
    /// `create` was interrupted; rerun it or `repair`.
    Creating,
    /// `rm` was interrupted; rerun it or `repair`.
    Removing,
    /// Being renamed to the given name; rerun the rename or `repair`.
    RenamingTo(String),
    /// Being renamed from the given name; rerun the rename or `repair`.
    RenamingFrom(String),
}

impl GroupState {
    /// Short machine-readable name: `ready`, `creating`, `removing` or `renaming`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GroupState::Ready => "ready",
            GroupState::Creating => "creating",
            GroupState::Removing => "removing",
            GroupState::RenamingTo(_) | GroupState::RenamingFrom(_) => "renaming",
        }
    }

    /// Whether an operation was interrupted here.
    pub fn is_incomplete(&self) -> bool {
        *self != GroupState::Ready
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupState::Ready => f.write_str("ready"),
            GroupState::Creating => f.write_str("creating (incomplete: rerun create or run repair)"),
            GroupState::Removing => f.write_str("removing (incomplete: rerun rm or run repair)"),
            GroupState::RenamingTo(n) => write!(f, "renaming to {n:?} (incomplete: rerun rename or run repair)"),
            GroupState::RenamingFrom(n) => write!(f, "renaming from {n:?} (incomplete: rerun rename or run repair)"),
        }
    }
}

/// What `info` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Name asked for.
    pub name: String,
    /// Group id.
    pub id: String,
    /// Pool name.
    pub pool: String,
    /// RBD namespace ("" = default).
    pub namespace: String,
    /// Lifecycle state.
    pub state: GroupState,
    /// Creation time, ms since the Unix epoch (0 if the header is gone).
    pub created_ms: u64,
    /// Member images.
    pub member_count: u32,
    /// Group snapshots.
    pub snapshot_count: u32,
}

/// A name in the directory, as `ls` pages through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group name.
    pub name: String,
    /// Group id.
    pub id: String,
    /// Whether `ls` shows it: complete groups and the new name of one being renamed.
    pub visible: bool,
}

/// What `repair` did (or, with `check`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// One line per problem found.
    pub findings: Vec<String>,
    /// Whether anything was changed.
    pub changed: bool,
}

/// The groups of one pool and RBD namespace.
pub struct Groups {
    pub(crate) cluster: Cluster,
    pub(crate) ioctx: IoCtx,
    pub(crate) location: PoolSpec,
    pub(crate) faults: FaultPlan,
    pub(crate) progress: Progress,
    /// Snapshot ids this client allocates ahead for its group snapshots.
    pub(crate) reserve: SnapIdReserve,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// 64 random bits from the kernel, as lowercase hex: a group id.
pub(crate) fn new_group_id() -> Result<String> {
    let mut bytes = [0u8; GENERATED_GROUP_ID_LEN / 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::new(format!("reading /dev/urandom: {e}"), e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Groups {
    /// Opens `location` and checks that the OSDs run a compatible `rbd_cg` class.
    pub fn open(cluster: &Cluster, location: &PoolSpec) -> Result<Groups> {
        let mut ioctx = cluster
            .ioctx(&location.pool)
            .map_err(|e| Error::from(e).context(format!("opening pool {}", location.pool)))?;
        ioctx.set_namespace(&location.namespace)?;
        let status = check_class(&ioctx)?;
        if let ClassStatus::Version { class_version, .. } = &status {
            log::debug!("rbd_cg class {class_version} in {location}");
        }
        Ok(Groups {
            cluster: cluster.clone(),
            ioctx,
            location: location.clone(),
            faults: FaultPlan::none(),
            progress: Progress::none(),
            reserve: SnapIdReserve::new(cluster, false),
        })
    }

    /// Uses `plan` for fault injection in later operations.
    pub fn set_fault_plan(&mut self, plan: FaultPlan) {
        self.faults = plan;
    }

    /// Reports the progress of long operations (snapshot create and remove, `rm --force`)
    /// to `progress`.
    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    /// Lets snapshot-id refills run past the snapshot that started them, to be used by a
    /// later snapshot through this `Groups` (for long-lived clients: a group snapshot then
    /// almost never waits for the monitor). Dropping `Groups` waits for a refill that is
    /// still running, at most about one monitor commit. Off by default (the CLI).
    pub fn set_refill_ahead(&mut self, refill_ahead: bool) {
        self.reserve.set_refill_ahead(refill_ahead);
    }

    /// The pool and namespace.
    pub fn location(&self) -> &PoolSpec {
        &self.location
    }

    /// The cluster connection.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The I/O context (pool and namespace set).
    pub fn ioctx(&self) -> &IoCtx {
        &self.ioctx
    }

    pub(crate) fn spec(&self, name: &str) -> String {
        format!("{}/{name}", self.location)
    }

    fn busy(&self, name: &str, state: &DirState) -> Error {
        Error::new(format!("group {} is {state:?}", self.spec(name)), libc::EBUSY)
            .with_hint("An earlier operation on it was interrupted: rerun it, or run `rbd-cg repair`.")
    }

    /// Creates group `name` and returns its id.
    ///
    /// Steps (each one atomic on one object):
    /// 1. `dir_add` on `cg_directory`: name reserved as `Creating` (hidden from `ls`).
    /// 2. `group_create` on `cg_header.<id>`: the empty group.
    /// 3. `id_create` on `cg_id.<name>`: name → id.
    /// 4. `dir_set_ready` on `cg_directory`: the group is complete.
    ///
    /// A rerun after an interruption finds the `Creating` entry and continues with its id.
    pub fn create(&self, name: &str) -> Result<String> {
        validate_group_name(name)?;
        let context = || format!("creating group {}", self.spec(name));
        let id = match self.dir_entry(name).map_err(|e| e.context(context()))? {
            None => new_group_id()?,
            Some(DirEntry { id, state: DirState::Creating }) => {
                if self.clone_plan(&id).map_err(|e| e.context(context()))?.is_some() {
                    return Err(Error::new(format!("{}: an interrupted clone is building it", context()), libc::EBUSY)
                        .with_hint(
                            "Rerun that `rbd-cg clone` or `rbd-cg repair` it to finish, `rm --force` to undo.",
                        ));
                }
                log::info!("resuming the interrupted creation of {}", self.spec(name));
                id
            }
            Some(DirEntry { state: DirState::Ready, .. }) => {
                return Err(Error::new(context(), libc::EEXIST));
            }
            Some(DirEntry { state, .. }) => return Err(self.busy(name, &state)),
        };
        self.create_steps(name, &id).map_err(|e| e.context(context()))?;
        Ok(id)
    }

    fn create_steps(&self, name: &str, id: &str) -> Result<()> {
        let pair = NameAndId { name: name.into(), id: id.into() };
        let mut steps = Steps::new("create", &self.faults);
        steps.run("reserve the name", || self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_ADD, &pair))?;
        steps.run("create the header", || {
            let request = GroupCreateRequest { id: id.into(), name: name.into(), created_ms: now_ms() };
            self.ioctx.call_write(&header_object(id), &GROUP_CREATE, &request)
        })?;
        steps.run("create the id object", || self.create_id_object(name, id))?;
        steps.run("mark ready", || self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_SET_READY, &pair))
    }

    /// `id_create` on `cg_id.<name>`, replacing a stale object left by a lost race: one
    /// whose id the directory does not know.
    pub(crate) fn create_id_object(&self, name: &str, id: &str) -> Result<()> {
        let create =
            || -> Result<()> { Ok(self.ioctx.call_write(&id_object(name), &ID_CREATE, &IdRequest { id: id.into() })?) };
        match create() {
            Err(e) if e.errno() == libc::EEXIST => {
                let other = self.ioctx.call(&id_object(name), &ID_GET, &Empty {})?.id;
                let request = IdRequest { id: other.clone() };
                match self.ioctx.call(DIRECTORY_OBJECT, &DIR_GET_NAME, &request) {
                    Err(lookup) if lookup.is_not_found() => {
                        log::warn!("cg_id.{name} held stale id {other}, unknown to the directory: replacing it");
                        ignore_missing(self.ioctx.call_write(&id_object(name), &ID_REMOVE, &request))?;
                        create()
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Whether the header of `id` is gone or being removed.
    fn header_going_away(&self, id: &str) -> Result<bool> {
        Ok(self.header(id)?.is_none_or(|h| h.state == HeaderState::Removing))
    }

    /// Shows group `name`, including an interrupted operation's state.
    pub fn info(&self, name: &str) -> Result<GroupInfo> {
        validate_group_name(name)?;
        let context = || format!("group {}", self.spec(name));
        let entry = self.dir_entry(name)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let header = self.header(&entry.id).map_err(|e| e.context(context()))?;
        let state = match (&entry.state, &header) {
            (DirState::Creating, _) => GroupState::Creating,
            (DirState::RenamingTo(to), _) => GroupState::RenamingTo(to.clone()),
            (DirState::RenamingFrom(from), _) => GroupState::RenamingFrom(from.clone()),
            (DirState::Ready, Some(h)) if h.state == HeaderState::Removing => GroupState::Removing,
            (DirState::Ready, Some(_)) => GroupState::Ready,
            (DirState::Ready, None) => GroupState::Removing,
        };
        let (created_ms, member_count, snapshot_count) =
            header.map(|h| (h.created_ms, h.member_count, h.snapshot_count)).unwrap_or_default();
        Ok(GroupInfo {
            name: name.into(),
            id: entry.id,
            pool: self.location.pool.clone(),
            namespace: self.location.namespace.clone(),
            state,
            created_ms,
            member_count,
            snapshot_count,
        })
    }

    /// One page of the directory: up to `max_entries` names after `start_after`.
    pub fn list_page(&self, start_after: &str, max_entries: u32) -> Result<(Vec<ListedGroup>, bool)> {
        let request = DirListRequest { start_after: start_after.into(), max_entries: max_entries.min(MAX_LIST_PAGE) };
        let reply = match self.ioctx.call(DIRECTORY_OBJECT, &DIR_LIST, &request) {
            Ok(reply) => reply,
            Err(e) if e.is_not_found() => return Ok((Vec::new(), false)),
            Err(e) => return Err(Error::from(e).context(format!("listing groups in {}", self.location))),
        };
        let groups = reply
            .entries
            .into_iter()
            .map(|item| ListedGroup {
                visible: matches!(item.entry.state, DirState::Ready | DirState::RenamingFrom(_)),
                name: item.name,
                id: item.entry.id,
            })
            .collect();
        Ok((groups, reply.more))
    }

    /// Calls `each` for every group `ls` shows, in name order, one page at a time.
    pub fn for_each(&self, mut each: impl FnMut(&ListedGroup) -> Result<()>) -> Result<()> {
        let mut after = String::new();
        loop {
            let (page, more) = self.list_page(&after, MAX_LIST_PAGE)?;
            for group in page.iter().filter(|g| g.visible) {
                each(group)?;
            }
            match (more, page.last()) {
                (true, Some(last)) => after = last.name.clone(),
                _ => return Ok(()),
            }
        }
    }

    /// The names `ls` shows, in name order.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.for_each(|g| {
            names.push(g.name.clone());
            Ok(())
        })?;
        Ok(names)
    }

    /// Renames group `old` to `new`.
    ///
    /// Steps:
    /// 1. `dir_rename_begin` on `cg_directory`: old `RenamingTo(new)`, new `RenamingFrom(old)`.
    /// 2. `id_create` on `cg_id.<new>`.
    /// 3. `group_set_name` on `cg_header.<id>`.
    /// 4. `id_remove` on `cg_id.<old>`.
    /// 5. `dir_rename_finish` on `cg_directory`: old name gone, new name `Ready`.
    pub fn rename(&self, old: &str, new: &str) -> Result<()> {
        validate_group_name(old)?;
        validate_group_name(new)?;
        let context = || format!("renaming group {} to {new:?}", self.spec(old));
        let entry = self.dir_entry(old)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        match &entry.state {
            DirState::Ready => {}
            DirState::RenamingTo(to) if to == new => {
                log::info!("resuming the interrupted rename of {}", self.spec(old))
            }
            state => return Err(self.busy(old, state).context(context())),
        }
        if entry.state == DirState::Ready && self.header_going_away(&entry.id)? {
            return Err(Error::new(format!("{}: the group is being removed", context()), libc::EBUSY)
                .with_hint("An interrupted `rm` left it: rerun `rbd-cg rm`, or run `rbd-cg repair`."));
        }
        self.rename_steps(&entry.id, old, new).map_err(|e| e.context(context()))
    }

    fn rename_steps(&self, id: &str, old: &str, new: &str) -> Result<()> {
        let request = RenameRequest { id: id.into(), old_name: old.into(), new_name: new.into() };
        let id_request = IdRequest { id: id.into() };
        let mut steps = Steps::new("rename", &self.faults);
        steps.run("record the rename", || self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_RENAME_BEGIN, &request))?;
        steps.run("create the new id object", || self.ioctx.call_write(&id_object(new), &ID_CREATE, &id_request))?;
        steps.run("rename the header", || {
            match self.ioctx.call_write(&header_object(id), &GROUP_SET_NAME, &request) {
                // A removal that raced with this rename has begun: the header's name no
                // longer matters; finish the rename in the directory so `rm`/`repair` can
                // complete the removal under the new name.
                Err(e) if matches!(e.errno, libc::EBUSY | libc::ENOENT) && self.header_going_away(id)? => Ok(()),
                other => other.map_err(Error::from),
            }
        })?;
        steps.run("remove the old id object", || {
            ignore_missing(self.ioctx.call_write(&id_object(old), &ID_REMOVE, &id_request))
        })?;
        steps.run("finish the rename", || self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_RENAME_FINISH, &request))
    }

    /// Removes group `name`. A group with members or snapshots is `EBUSY`.
    ///
    /// Steps:
    /// 1. `group_begin_remove` on `cg_header.<id>`: `Removing` (refused while not empty).
    /// 2. `id_remove` on `cg_id.<name>`.
    /// 3. `group_remove` on `cg_header.<id>`.
    /// 4. `dir_remove` on `cg_directory`: the name is gone.
    ///
    /// Also finishes (removes) a group whose creation was interrupted.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.remove_with(name, false)
    }

    /// Removes group `name`; with `force`, first removes its snapshots and members (each
    /// by its own steps, so an interruption is finished by a rerun or `repair`).
    pub fn remove_with(&self, name: &str, force: bool) -> Result<()> {
        validate_group_name(name)?;
        let context = || format!("removing group {}", self.spec(name));
        let entry = self.dir_entry(name)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        if !matches!(entry.state, DirState::Ready | DirState::Creating) {
            return Err(self.busy(name, &entry.state).context(context()));
        }
        if entry.state == DirState::Creating {
            if let Some(plan) = self.clone_plan(&entry.id).map_err(|e| e.context(context()))? {
                if !force {
                    return Err(Error::new(format!("{}: an interrupted clone is building it", context()), libc::EBUSY)
                        .with_hint(
                            "`rm --force` undoes the clone (deleting the clones it made); rerunning that \
                                    `rbd-cg clone` or `rbd-cg repair` finishes it.",
                        ));
                }
                self.undo_clone(&entry.id, &plan).map_err(|e| e.context(context()))?;
            }
        }
        if force && self.header(&entry.id)?.is_some() {
            // A journaled group cannot lose members (the class refuses): refused before
            // its snapshots are removed, not half way.
            if let Some(journal) = self.journal(&entry.id).map_err(|e| e.context(context()))? {
                return Err(Error::new(
                    format!("{}: the group's journal is {:?}", context(), journal.journal.state),
                    libc::EBUSY,
                )
                .with_hint("Disable it first: `rbd-cg journal disable`."));
            }
            self.remove_all_snapshots(&entry.id).map_err(|e| e.context(context()))?;
            self.remove_all_images(&entry.id).map_err(|e| e.context(context()))?;
        }
        self.remove_steps(name, &entry.id).map_err(|e| e.context(context()))
    }

    fn remove_steps(&self, name: &str, id: &str) -> Result<()> {
        let id_request = IdRequest { id: id.into() };
        let header = header_object(id);
        let mut steps = Steps::new("remove", &self.faults);
        steps.run("mark the header removing", || {
            let begun = ignore_missing(self.ioctx.call_write(&header, &GROUP_BEGIN_REMOVE, &id_request));
            begun.map_err(|e| match e.errno() {
                libc::EBUSY => e.with_hint("The group still has images or snapshots; remove them first."),
                _ => e,
            })
        })?;
        steps.run("remove the id object", || {
            ignore_missing(self.ioctx.call_write(&id_object(name), &ID_REMOVE, &id_request))
        })?;
        steps
            .run("remove the header", || ignore_missing(self.ioctx.call_write(&header, &GROUP_REMOVE, &id_request)))?;
        steps.run("drop the name", || {
            let pair = NameAndId { name: name.into(), id: id.into() };
            ignore_missing(self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_REMOVE, &pair))
        })
    }

    /// Finds and (unless `check_only`) finishes an interrupted operation on group `name`:
    /// a create or rename is completed, a removal is completed, and a missing or stale
    /// `cg_id.<name>` is rewritten.
    pub fn repair(&self, name: &str, check_only: bool) -> Result<RepairReport> {
        validate_group_name(name)?;
        let context = || format!("repairing group {}", self.spec(name));
        let mut report = RepairReport::default();
        let entry = self.dir_entry(name)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let mut act = |finding: String, fix: &dyn Fn() -> Result<()>| -> Result<()> {
            report.findings.push(finding);
            if !check_only {
                fix().map_err(|e| e.context(context()))?;
                report.changed = true;
            }
            Ok(())
        };
        // A rename or create can meet a removal (an interrupted `rm`, or one that raced):
        // then the removal wins and is completed under the final name.
        let going_away = self.header_going_away(&entry.id)?;
        let finish_rename = |old: &str, new: &str| -> Result<()> {
            self.rename_steps(&entry.id, old, new)?;
            if self.header_going_away(&entry.id)? {
                self.remove_steps(new, &entry.id)?;
            }
            Ok(())
        };
        match &entry.state {
            DirState::Creating if going_away && self.header(&entry.id)?.is_some() => {
                act(format!("creation of {name:?} met a removal: completing the removal"), &|| {
                    self.remove_steps(name, &entry.id)
                })?
            }
            DirState::Creating => match self.clone_plan(&entry.id).map_err(|e| e.context(context()))? {
                Some(plan) => act(
                    format!(
                        "clone of {}@{} into {name:?} was interrupted: completing it",
                        plan.source_group.group_id, plan.source_snap_name
                    ),
                    &|| self.finish_clone(name, &entry.id, &plan).map(drop),
                )?,
                None if self.header(&entry.id)?.is_none() => act(
                    format!(
                        "creation of {name:?} was interrupted before anything but its name was written: completing \
                         it as an empty group (if it was a `clone`, `rm` it and run the clone again)"
                    ),
                    &|| self.create_steps(name, &entry.id),
                )?,
                None => act(format!("creation of {name:?} was interrupted: completing it"), &|| {
                    self.create_steps(name, &entry.id)
                })?,
            },
            DirState::RenamingTo(new) => {
                act(format!("rename of {name:?} to {new:?} was interrupted: completing it"), &|| {
                    finish_rename(name, new)
                })?
            }
            DirState::RenamingFrom(old) => {
                act(format!("rename of {old:?} to {name:?} was interrupted: completing it"), &|| {
                    finish_rename(old, name)
                })?
            }
            DirState::Ready => match self.header(&entry.id)? {
                None => act(format!("header of {name:?} is gone: completing its removal"), &|| {
                    self.remove_steps(name, &entry.id)
                })?,
                Some(h) if h.state == HeaderState::Removing => {
                    act(format!("removal of {name:?} was interrupted: completing it"), &|| {
                        self.remove_steps(name, &entry.id)
                    })?
                }
                Some(_) => {
                    // Snapshots first: an interrupted create freezes membership until undone.
                    // Both have already fixed what they report (unless check_only).
                    let snapshots = self.repair_snapshots(&entry.id, check_only).map_err(|e| e.context(context()))?;
                    let members = self.repair_members(&entry.id, check_only).map_err(|e| e.context(context()))?;
                    for finding in snapshots.into_iter().chain(members) {
                        act(finding, &|| Ok(()))?;
                    }
                    let id_record = match self.ioctx.call(&id_object(name), &ID_GET, &Empty {}) {
                        Ok(record) => Some(record.id),
                        Err(e) if e.is_not_found() => None,
                        Err(e) => return Err(Error::from(e).context(context())),
                    };
                    let create = || -> Result<()> {
                        Ok(self.ioctx.call_write(&id_object(name), &ID_CREATE, &IdRequest { id: entry.id.clone() })?)
                    };
                    match id_record {
                        None => act(format!("cg_id.{name} is missing: recreating it"), &create)?,
                        Some(other) if other != entry.id => act(
                            format!("cg_id.{name} names group {other}, the directory {}: rewriting it", entry.id),
                            &|| {
                                ignore_missing(self.ioctx.call_write(
                                    &id_object(name),
                                    &ID_REMOVE,
                                    &IdRequest { id: other.clone() },
                                ))?;
                                create()
                            },
                        )?,
                        Some(_) => {}
                    }
                }
            },
        }
        Ok(report)
    }
}
