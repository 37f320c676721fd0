//! The snapshot part of `repair`: a `Creating` snapshot is undone, a `Removing` one removed,
//! an interrupted rollback completed; then member snapshots with this group's prefix that
//! no record names (orphans) are removed, in either namespace, and recorded ones left
//! exposed in the user namespace by an interrupted command are hidden again.

use super::SnapCache;
use crate::error::Result;
use crate::groups::Groups;
use crate::member_snaps;
use rbd_cg_contract::methods::{SnapRequest, SNAP_ROLLBACK_FINISH};
use rbd_cg_contract::names::{header_object, image_snap_name, parse_image_snap_name};
use rbd_cg_contract::records::{ImageRef, SnapOperation, SnapshotState};
use rbd_cg_rados::image::rbd_list;
use std::collections::BTreeSet;

impl Groups {
    /// Finishes or undoes interrupted snapshot operations of group `group_id`, and
    /// removes orphan member snapshots (our reserved name, no record). Returns findings.
    pub(crate) fn repair_snapshots(&self, group_id: &str, check_only: bool) -> Result<Vec<String>> {
        let mut findings = Vec::new();
        let (records, in_progress) = self.snap_records(group_id)?;
        for record in &records {
            let rollback =
                in_progress.as_ref().is_some_and(|p| p.seq == record.seq && p.operation == SnapOperation::Rollback);
            match record.state {
                SnapshotState::Creating => {
                    findings
                        .push(format!("snapshot {:?} was interrupted while being created: undoing it", record.name));
                    if !check_only {
                        self.snap_remove_steps(group_id, record, true)?;
                    }
                }
                SnapshotState::Removing => {
                    findings.push(format!("removal of snapshot {:?} was interrupted: completing it", record.name));
                    if !check_only {
                        self.snap_remove_steps(group_id, record, true)?;
                    }
                }
                SnapshotState::Complete if rollback => {
                    findings.push(format!("rollback to snapshot {:?} was interrupted: completing it", record.name));
                    if !check_only {
                        match self.rollback_steps(group_id, record, &mut |_, _, _, _, _| {}, false) {
                            Ok(()) => {}
                            // A member image or its snapshot is gone: the rollback cannot be
                            // completed. Lift the mark so the group is usable again.
                            Err(e) if e.is_not_found() => {
                                findings.push(format!(
                                    "rollback to {:?} cannot complete ({e}); lifting the mark: the snapshot is damaged",
                                    record.name
                                ));
                                let request = SnapRequest { group_id: group_id.into(), name: record.name.clone() };
                                self.ioctx.call_write(&header_object(group_id), &SNAP_ROLLBACK_FINISH, &request)?;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                SnapshotState::Complete => {}
            }
        }
        // Orphans: member snapshots with this group's prefix whose snapshot id has no record.
        // Judged against a fresh list taken after the images are read, and skipped while
        // another client is creating a snapshot (its new image snapshots have a record
        // only from its first step on). Run repair when no other command is running.
        // Looked for on every image of the group's pool and namespace and of its members'
        // (current and recorded ones): an image that left the group may carry one too.
        let mut images: BTreeSet<ImageRef> = self.member_records(group_id)?.into_iter().map(|m| m.image).collect();
        images.extend(records.iter().flat_map(|r| r.members.iter().map(|m| m.image.clone())));
        let mut locations: BTreeSet<(i64, String)> = images.iter().map(|i| (i.pool_id, i.namespace.clone())).collect();
        locations.insert((self.ioctx.pool_id(), self.location.namespace.clone()));
        for (pool_id, namespace) in locations {
            let io = match self.cluster.ioctx_in(pool_id, &namespace) {
                Ok(io) => io,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            for (_, image_id) in rbd_list(&io)? {
                images.insert(ImageRef { pool_id, namespace: namespace.clone(), image_id });
            }
        }
        let mut cache = SnapCache::default();
        self.prefetch_image_snaps(&mut cache, &images)?;
        let (fresh, in_progress) = self.snap_records(group_id)?;
        if in_progress.is_some_and(|p| p.operation == SnapOperation::Create) {
            return Ok(findings);
        }
        let known: BTreeSet<String> = fresh.iter().map(|r| r.id.clone()).collect();
        let pool_id = self.ioctx.pool_id();
        for image in &images {
            let Some(now) = self.image_snaps(&mut cache, image)?.clone() else { continue };
            for (snap, id) in &now.snaps {
                // Ours: this group's member snapshot names, hidden, exposed, or of 0.1.0.
                let Some(parts) = parse_image_snap_name(snap) else { continue };
                if parts.group_pool_id != pool_id || parts.group_id != group_id {
                    continue;
                }
                let name = image_snap_name(pool_id, group_id, &parts.snap_id);
                if known.contains(&parts.snap_id) {
                    // Snapshots of existing records (including ones undone above) are not
                    // orphans; one left exposed by an interrupted command goes back.
                    if parts.exposed {
                        findings.push(format!(
                            "image {} has member snapshot {name} left in the user namespace: hiding it",
                            image.image_id
                        ));
                        if !check_only {
                            if let Some(mut member) = member_snaps::by_id(&self.cluster, image, &name, *id)? {
                                member_snaps::hide(&self.cluster, &mut member)?;
                            }
                        }
                    }
                    continue;
                }
                findings.push(format!("image {} has orphan group snapshot {snap}: removing it", image.image_id));
                if !check_only {
                    if let Some(member) = member_snaps::by_id(&self.cluster, image, &name, *id)? {
                        member_snaps::remove(&self.cluster, member, &self.faults)?;
                    }
                }
            }
        }
        Ok(findings)
    }
}
