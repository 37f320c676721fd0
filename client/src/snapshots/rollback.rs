//! `snap rollback`: every member back to its member snapshot.
//!
//! Steps (`docs/OPERATIONS.md`): 1 `snap_rollback_begin` marks the rollback (membership
//! frozen; the membership is then compared with the snapshot's and the mark lifted on a
//! mismatch); 2..=N+1 each member is rolled back through librbd; N+2
//! `snap_rollback_finish` lifts the mark. A crash leaves the mark for `repair`, which
//! completes the rollback.

use super::SnapCache;
use crate::error::{Error, Result};
use crate::faults::Steps;
use crate::groups::Groups;
use crate::member_snaps;
use rbd_cg_contract::methods::{SnapRequest, SNAP_ROLLBACK_BEGIN, SNAP_ROLLBACK_FINISH};
use rbd_cg_contract::names::{header_object, image_snap_name, validate_snap_name};
use rbd_cg_contract::records::{ImageRef, SnapshotRecord};
use std::collections::BTreeSet;

impl Groups {
    /// Rolls every member back to group snapshot `name`. `progress(image_index,
    /// image_count, image_id, done, total)` is called from librbd's threads.
    pub fn snap_rollback(
        &self,
        group: &str,
        name: &str,
        progress: &mut (dyn FnMut(usize, usize, &str, u64, u64) + Send),
    ) -> Result<()> {
        validate_snap_name(name)?;
        let context = || format!("rolling back group {} to snapshot {name}", self.spec(group));
        let group_id = self.ready_group_id(group, "rolling back")?;
        let record = self.snap_record(&group_id, name).map_err(|e| e.context(context()))?;
        let info = self.describe(&group_id, &record, &mut SnapCache::default())?;
        match info.state {
            "complete" => {}
            "damaged" => {
                let missing: Vec<&str> =
                    info.images.iter().filter(|i| !i.present).map(|i| i.image.image_id.as_str()).collect();
                return Err(Error::new(
                    format!("{}: member snapshots are missing on images {missing:?}", context()),
                    libc::ENOENT,
                ));
            }
            state => return Err(Error::new(format!("{}: the snapshot is {state}", context()), libc::EBUSY)),
        }
        self.rollback_steps(&group_id, &record, progress, true).map_err(|e| e.context(context()))
    }

    /// The rollback steps. With `check_members`, the membership is compared with the
    /// snapshot's right after the mark is set (so no add or remove can slip in between)
    /// and the mark is lifted again on a mismatch.
    pub(crate) fn rollback_steps(
        &self,
        group_id: &str,
        record: &SnapshotRecord,
        progress: &mut (dyn FnMut(usize, usize, &str, u64, u64) + Send),
        check_members: bool,
    ) -> Result<()> {
        let header = header_object(group_id);
        let request = SnapRequest { group_id: group_id.into(), name: record.name.clone() };
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let count = record.members.len();
        let mut steps = Steps::new("snap-rollback", &self.faults);
        steps.run("mark the rollback", || self.ioctx.call_write(&header, &SNAP_ROLLBACK_BEGIN, &request))?;
        if check_members {
            let now: BTreeSet<ImageRef> = self.member_records(group_id)?.into_iter().map(|m| m.image).collect();
            let then: BTreeSet<ImageRef> = record.members.iter().map(|m| m.image.clone()).collect();
            if now != then {
                self.ioctx.call_write(&header, &SNAP_ROLLBACK_FINISH, &request)?;
                return Err(Error::new(
                    format!(
                        "the group's membership changed since the snapshot ({} images then, {} now)",
                        then.len(),
                        now.len()
                    ),
                    libc::EBUSY,
                )
                .with_hint(
                    "Rollback needs the same members; add or remove images to match, or roll back images one \
                     by one with `rbd snap rollback`.",
                ));
            }
        }
        for (index, member) in record.members.iter().enumerate() {
            let image_id = member.image.image_id.clone();
            steps.run(&format!("roll back image {image_id}"), || {
                let mut snap = member
                    .snap_id
                    .map(|id| member_snaps::by_id(&self.cluster, &member.image, &snap_name, id))
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| {
                        Error::new(format!("the member snapshot of image {image_id} is gone"), libc::ENOENT)
                    })?;
                // A group-namespace snapshot is exposed for librbd's by-name rollback.
                let report = &mut *progress;
                member_snaps::with_exposed(&self.cluster, &mut snap, &self.faults, |image, name| {
                    Ok(image.snap_rollback_with_progress(name, |done, total| {
                        report(index, count, &image_id, done, total)
                    })?)
                })
            })?;
        }
        steps.run("clear the rollback mark", || self.ioctx.call_write(&header, &SNAP_ROLLBACK_FINISH, &request))
    }
}
