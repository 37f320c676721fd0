//! `snap rm`, and the removal other operations share (`rm --force`, the undo of a failed
//! create, `repair`).
//!
//! Steps (`docs/OPERATIONS.md`): 1 `snap_remove_begin` marks the snapshot `Removing`;
//! 2 every member snapshot is removed, in parallel (already gone is fine); 3
//! `snap_remove_finish` drops the record. Before step 1, `snap rm` unprotects member
//! snapshots protected for clone-v1 children, or refuses with nothing changed.

use crate::error::{ignore_missing, Error, Result};
use crate::faults::{FaultPlan, Steps};
use crate::groups::Groups;
use crate::member_snaps;
use crate::parallel;
use crate::progress::Progress;
use rbd_cg_contract::journal::JournalState;
use rbd_cg_contract::methods::{SnapRemoveRequest, SnapRequest, SNAP_REMOVE_BEGIN, SNAP_REMOVE_FINISH};
use rbd_cg_contract::names::{header_object, image_snap_name, validate_snap_name};
use rbd_cg_contract::records::{SnapshotRecord, SnapshotState};
use std::time::Duration;

/// How long a snapshot removal waits for the journal writer of a journaled group.
const JOURNAL_WRITER_WAIT: Duration = Duration::from_secs(120);

impl Groups {
    /// Removes a group snapshot and its member image snapshots.
    pub fn snap_remove(&self, group: &str, name: &str) -> Result<()> {
        validate_snap_name(name)?;
        let context = || format!("removing group snapshot {}@{name}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let record = self.snap_record(&entry.id, name).map_err(|e| e.context(context()))?;
        if record.state == SnapshotState::Complete {
            let checked = match self.journal(&entry.id)? {
                // Its members are `non-primary` (librbd refuses to unprotect): the journal
                // writer unprotects them; checked here so that a refusal changes nothing.
                Some(_) => self.refuse_clone_children(&entry.id, &record),
                None => self.unprotect_member_snapshots(&entry.id, &record),
            };
            checked.map_err(|e| e.context(context()))?;
        }
        self.snap_remove_steps(&entry.id, &record, false).map_err(|e| e.context(context()))
    }

    /// Before the removal of a journaled group's snapshot begins: `EBUSY` when a member
    /// snapshot still has clone children of either format (librbd's `list_children`), which
    /// would make the journal writer refuse it half way.
    fn refuse_clone_children(&self, group_id: &str, record: &SnapshotRecord) -> Result<()> {
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let cluster = &self.cluster;
        let counts = parallel::map(&record.members, parallel::DEFAULT_WORKERS, |_, member| -> Result<usize> {
            let Some(snap_id) = member.snap_id else { return Ok(0) };
            match member_snaps::by_id(cluster, &member.image, &snap_name, snap_id)? {
                Some(snap) => member_snaps::children(cluster, &snap),
                None => Ok(0),
            }
        });
        for (member, count) in record.members.iter().zip(counts) {
            let count = count?;
            if count > 0 {
                return Err(Error::new(
                    format!(
                        "member snapshot {snap_name} of image {} has {count} clone children",
                        member.image.image_id
                    ),
                    libc::EBUSY,
                )
                .with_hint("Flatten (`rbd flatten`) or remove the clones first."));
            }
        }
        Ok(())
    }

    /// Before a removal begins: member snapshots protected for clone-v1 children (by `clone`
    /// or by hand; every member snapshot cut since group-namespace snapshots is protected)
    /// are unprotected, so the removal cannot stop half-way on one that still has children.
    /// If any has, the ones unprotected here are protected again and the removal is refused
    /// with `EBUSY`, nothing changed.
    fn unprotect_member_snapshots(&self, group_id: &str, record: &SnapshotRecord) -> Result<()> {
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let (cluster, faults) = (&self.cluster, &self.faults);
        // Per member: the snapshot this call unprotected, if any.
        let results = parallel::map(&record.members, parallel::DEFAULT_WORKERS, |_, member| -> Result<Option<_>> {
            let Some(snap_id) = member.snap_id else { return Ok(None) };
            let Some(mut snap) = member_snaps::by_id(cluster, &member.image, &snap_name, snap_id)? else {
                return Ok(None);
            };
            match member_snaps::unprotect(cluster, &mut snap, faults) {
                Ok(true) => Ok(Some(snap)),
                Ok(false) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        });
        let Some(failure) = results.iter().find_map(|r| r.as_ref().err().cloned()) else { return Ok(()) };
        for result in results {
            if let Ok(Some(mut snap)) = result {
                if let Err(e) = member_snaps::protect(cluster, &mut snap) {
                    log::warn!("could not protect {snap_name} of image {} again: {e}", snap.image.image_id);
                }
            }
        }
        Err(match failure.errno() {
            libc::EBUSY => failure.with_hint(
                "A member snapshot still has clone-v1 children (e.g. from `rbd-cg clone`): flatten \
                 (`rbd flatten`) or remove them first.",
            ),
            _ => failure,
        })
    }

    /// The removal steps; `undo` also removes a snapshot still `Creating` (the creator's own
    /// undo, or `repair`): a plain removal leaves that to whoever is creating it.
    pub(crate) fn snap_remove_steps(&self, group_id: &str, record: &SnapshotRecord, undo: bool) -> Result<()> {
        self.snap_remove_steps_with(group_id, record, &self.faults, &self.progress, undo)
    }

    pub(crate) fn snap_remove_steps_with(
        &self,
        group_id: &str,
        record: &SnapshotRecord,
        faults: &FaultPlan,
        progress: &Progress,
        undo: bool,
    ) -> Result<()> {
        let header = header_object(group_id);
        let request = SnapRequest { group_id: group_id.into(), name: record.name.clone() };
        let begin = SnapRemoveRequest { group_id: group_id.into(), name: record.name.clone(), undo_create: undo };
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let mut steps = Steps::new("snap-remove", faults);
        steps.run("mark the snapshot removing", || {
            self.ioctx.call_write(&header, &SNAP_REMOVE_BEGIN, &begin).map_err(|e| match e.errno {
                libc::EBUSY if record.state == SnapshotState::Creating => Error::from(e).with_hint(
                    "Another command is creating this snapshot; if it was interrupted, `rbd-cg repair` undoes it.",
                ),
                _ => Error::from(e),
            })
        })?;
        let cluster = &self.cluster;
        let counter = progress.start("Removing group snapshot", record.members.len() as u64);
        let journaled = self.journal(group_id)?.map(|status| status.journal.state);
        steps.run(&format!("remove the snapshots of {} images", record.members.len()), || {
            match journaled {
                // Its members are `non-primary`: the journal writer removes their snapshots
                // (and drops the record).
                Some(JournalState::Enabled) => {
                    return self.journaled_snapshot_remove(group_id, &record.name, JOURNAL_WRITER_WAIT);
                }
                Some(state) => {
                    return Err(Error::new(
                        format!("the group's journal is {state:?}: its members' snapshots cannot be removed now"),
                        libc::EBUSY,
                    )
                    .with_hint("Finish `rbd-cg journal enable` or `journal disable` first."));
                }
                None => {}
            }
            let removed = parallel::map(&record.members, parallel::DEFAULT_WORKERS, |_, member| {
                let removed =
                    member_snaps::remove_member_snapshot(cluster, &member.image, &snap_name, member.snap_id, faults);
                counter.tick();
                removed
            });
            removed.into_iter().collect::<Result<Vec<()>>>().map(drop)
        })?;
        steps.run("drop the snapshot record", || {
            ignore_missing(self.ioctx.call_write(&header, &SNAP_REMOVE_FINISH, &request))
        })
    }

    /// Removes every snapshot of group `group_id` (used by `rm`).
    pub(crate) fn remove_all_snapshots(&self, group_id: &str) -> Result<()> {
        let (records, _) = self.snap_records(group_id)?;
        let counter = self.progress.start("Removing group snapshots", records.len() as u64);
        records.iter().try_for_each(|record| {
            // As `snap rm`: refused before its first step while clone-v1 children need it.
            if record.state == SnapshotState::Complete {
                self.unprotect_member_snapshots(group_id, record)?;
            }
            self.snap_remove_steps_with(group_id, record, &self.faults, &Progress::none(), false)?;
            counter.tick();
            Ok(())
        })
    }
}
