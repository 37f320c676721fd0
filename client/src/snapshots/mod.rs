//! Group snapshots: `snap create|ls|info|rename|rm|rollback`, and their repair.
//!
//! A group snapshot is a record in the group header listing the member image snapshots
//! that make it up. Each member snapshot is an ordinary RBD snapshot named
//! `.rbd_cg.<group pool id>_<group id>_<snapshot id>`, so `rbd snap ls` shows it and ties
//! it back to the group. Each operation is its own module, a fixed sequence of steps
//! (`docs/OPERATIONS.md`):
//!
//! - [`create`]: `snap_create_begin` (record `Creating` with the attached members;
//!   membership frozen), the fenced cut of every member (`crate::fence`), then
//!   `snap_create_finish` (image snapshot ids recorded, `Complete`, membership free). The
//!   snapshot ids come from the group's reserve of ids allocated ahead (`reserve`).
//! - [`remove`]: `snap_remove_begin` (`Removing`), remove each image snapshot (already gone
//!   is fine), `snap_remove_finish` (record gone).
//! - [`rollback`]: `snap_rollback_begin` (membership frozen), roll back each image,
//!   `snap_rollback_finish`.
//! - [`repair`]: finishes or undoes whatever a crash interrupted, and removes orphans.
//!
//! A failed create undoes itself (image snapshots removed, record dropped); a crash leaves
//! a `Creating` record that `repair` undoes. Rollback is refused when the membership
//! changed since the snapshot or a member snapshot is gone. This module holds what the
//! operations share: how a snapshot is shown (with each member snapshot checked), listing,
//! renaming, and the per-command cache of what was learned about member images.

pub mod create;
pub mod remove;
pub mod repair;
pub(crate) mod reserve;
pub mod rollback;

pub use create::{FenceMode, SnapCreateOptions};

use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::images::{self, ImageSnaps};
use crate::parallel;
use rbd_cg_contract::methods::{SnapRenameRequest, SnapRequest, SNAP_GET_JOURNAL_POSITION, SNAP_RENAME};
use rbd_cg_contract::names::{header_object, image_snap_name, validate_snap_name};
use rbd_cg_contract::records::{ImageRef, SnapshotRecord, SnapshotState};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One member image snapshot of a group snapshot, as `snap info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotImage {
    /// The image.
    pub image: ImageRef,
    /// Pool name (or the id as text if the pool is gone).
    pub pool: String,
    /// Image name, `None` if the image no longer exists.
    pub image_name: Option<String>,
    /// The image snapshot's name.
    pub snap_name: String,
    /// The image snapshot's id, once cut.
    pub snap_id: Option<u64>,
    /// Whether that image snapshot exists now.
    pub present: bool,
}

/// A group snapshot, as `snap ls`/`snap info` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshot id.
    pub id: String,
    /// Snapshot name.
    pub name: String,
    /// Creation order.
    pub seq: u64,
    /// `creating` / `removing` (interrupted: run repair), `complete`, or `damaged` (a
    /// member image snapshot was removed by hand or its image deleted).
    pub state: &'static str,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Member image snapshots.
    pub images: Vec<SnapshotImage>,
    /// Of a journaled group: the journal position the snapshot was cut at (every entry up
    /// to it, none after it).
    pub journal_position: Option<u64>,
}

/// The image snapshot id cut on each member.
pub(crate) type MemberSnapIds = Vec<(ImageRef, u64)>;

/// What one command learned about member images, fetched once each.
#[derive(Default)]
pub(crate) struct SnapCache {
    /// Full snapshot lists (repair). `None`: the image (or its pool) is gone.
    images: HashMap<ImageRef, Option<ImageSnaps>>,
    /// Image names. `None`: the image (or its pool) is gone.
    names: HashMap<ImageRef, Option<String>>,
    /// Whether image snapshot id N of an image exists under the expected name.
    present: HashMap<(ImageRef, u64), bool>,
    pools: HashMap<i64, String>,
    /// Journal positions of snapshots (by sequence number), for a journaled group.
    positions: HashMap<u64, u64>,
}

impl Groups {
    pub(crate) fn image_snaps<'c>(&self, cache: &'c mut SnapCache, image: &ImageRef) -> Result<&'c Option<ImageSnaps>> {
        if !cache.images.contains_key(image) {
            let entry = images::fetch_image_snaps(&self.cluster, image)?;
            cache.images.insert(image.clone(), entry);
        }
        Ok(&cache.images[image])
    }

    /// Fetches the snapshots of every image not cached yet, in parallel.
    pub(crate) fn prefetch_image_snaps<'i>(
        &self,
        cache: &mut SnapCache,
        images: impl IntoIterator<Item = &'i ImageRef>,
    ) -> Result<()> {
        let missing: Vec<ImageRef> = images
            .into_iter()
            .filter(|i| !cache.images.contains_key(*i))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let cluster = &self.cluster;
        let fetched =
            parallel::map(&missing, parallel::DEFAULT_WORKERS, |_, image| images::fetch_image_snaps(cluster, image));
        for (image, entry) in missing.into_iter().zip(fetched) {
            cache.images.insert(image, entry?);
        }
        Ok(())
    }

    fn pool_name_cached(&self, cache: &mut SnapCache, pool_id: i64) -> String {
        cache
            .pools
            .entry(pool_id)
            .or_insert_with(|| self.cluster.pool_name(pool_id).unwrap_or_else(|_| pool_id.to_string()))
            .clone()
    }

    /// Fetches, in parallel, the names of the members of `records` and whether each
    /// member snapshot exists: two small `cls_rbd` reads per image and snapshot, no
    /// image open.
    pub(crate) fn prefetch_member_status(
        &self,
        cache: &mut SnapCache,
        group_id: &str,
        records: &[&SnapshotRecord],
    ) -> Result<()> {
        let cluster = &self.cluster;
        let images: Vec<ImageRef> = records
            .iter()
            .flat_map(|r| r.members.iter().map(|m| &m.image))
            .filter(|i| !cache.names.contains_key(*i))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        cache.names.extend(images::directory_names(cluster, &images)?);
        let mut probes: Vec<(ImageRef, u64, String)> = Vec::new();
        for record in records {
            let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
            for member in &record.members {
                let Some(snap_id) = member.snap_id else { continue };
                // Probed even when the name is gone: an image in the trash keeps its snapshots.
                if !cache.present.contains_key(&(member.image.clone(), snap_id)) {
                    probes.push((member.image.clone(), snap_id, snap_name.clone()));
                }
            }
        }
        // One read op per image, however many of its snapshots are probed.
        let mut by_image: BTreeMap<ImageRef, Vec<(u64, String)>> = BTreeMap::new();
        for (image, snap_id, snap_name) in probes {
            by_image.entry(image).or_default().push((snap_id, snap_name));
        }
        let by_image: Vec<(ImageRef, Vec<(u64, String)>)> = by_image.into_iter().collect();
        let found = parallel::map(&by_image, parallel::DEFAULT_WORKERS, |_, (image, snaps)| {
            images::image_snapshots_are(cluster, image, snaps)
        });
        for ((image, snaps), present) in by_image.into_iter().zip(found) {
            for ((snap_id, _), present) in snaps.into_iter().zip(present?) {
                cache.present.insert((image.clone(), snap_id), present);
            }
        }
        Ok(())
    }

    /// The journal positions of `records`, in one read op, when the group journals.
    pub(crate) fn prefetch_journal_positions(
        &self,
        cache: &mut SnapCache,
        group_id: &str,
        records: &[&SnapshotRecord],
    ) -> Result<()> {
        if records.is_empty() || self.journal(group_id)?.is_none() {
            return Ok(());
        }
        let requests: Vec<SnapRequest> =
            records.iter().map(|r| SnapRequest { group_id: group_id.into(), name: r.name.clone() }).collect();
        let replies = self.ioctx.call_many(&header_object(group_id), &SNAP_GET_JOURNAL_POSITION, &requests)?;
        for reply in replies {
            match reply {
                Ok(position) => {
                    cache.positions.insert(position.snap_seq, position.position);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub(crate) fn describe(
        &self,
        group_id: &str,
        record: &SnapshotRecord,
        cache: &mut SnapCache,
    ) -> Result<SnapshotInfo> {
        self.prefetch_member_status(cache, group_id, &[record])?;
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let mut images = Vec::with_capacity(record.members.len());
        let mut damaged = false;
        for member in &record.members {
            let pool = self.pool_name_cached(cache, member.image.pool_id);
            let image_name = cache.names.get(&member.image).cloned().flatten();
            let present = member
                .snap_id
                .is_some_and(|id| cache.present.get(&(member.image.clone(), id)).copied().unwrap_or(false));
            damaged |= record.state == SnapshotState::Complete && !present;
            images.push(SnapshotImage {
                image: member.image.clone(),
                pool,
                image_name,
                snap_name: snap_name.clone(),
                snap_id: member.snap_id,
                present,
            });
        }
        let state = match record.state {
            SnapshotState::Creating => "creating",
            SnapshotState::Removing => "removing",
            SnapshotState::Complete if damaged => "damaged",
            SnapshotState::Complete => "complete",
        };
        Ok(SnapshotInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            seq: record.seq,
            state,
            created_ms: record.created_ms,
            images,
            journal_position: cache.positions.get(&record.seq).copied(),
        })
    }

    /// Lists the group's snapshots in creation order, checking each member snapshot.
    pub fn snap_list(&self, group: &str) -> Result<Vec<SnapshotInfo>> {
        let context = || format!("listing snapshots of group {}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let (records, _) = self.snap_records(&entry.id).map_err(|e| e.context(context()))?;
        let mut cache = SnapCache::default();
        self.prefetch_member_status(&mut cache, &entry.id, &records.iter().collect::<Vec<_>>())?;
        self.prefetch_journal_positions(&mut cache, &entry.id, &records.iter().collect::<Vec<_>>())?;
        records.iter().map(|r| self.describe(&entry.id, r, &mut cache)).collect()
    }

    /// Shows one group snapshot.
    pub fn snap_info(&self, group: &str, name: &str) -> Result<SnapshotInfo> {
        validate_snap_name(name)?;
        let context = || format!("group snapshot {}@{name}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let record = self.snap_record(&entry.id, name).map_err(|e| e.context(context()))?;
        let mut cache = SnapCache::default();
        self.prefetch_journal_positions(&mut cache, &entry.id, &[&record])?;
        self.describe(&entry.id, &record, &mut cache)
    }

    /// Renames a group snapshot (one atomic step; member snapshot names carry the id,
    /// not the name, so nothing else changes).
    pub fn snap_rename(&self, group: &str, old: &str, new: &str) -> Result<()> {
        let group_id = self.ready_group_id(group, "renaming a snapshot of")?;
        let request = SnapRenameRequest { group_id: group_id.clone(), old_name: old.into(), new_name: new.into() };
        self.ioctx.call_write(&header_object(&group_id), &SNAP_RENAME, &request).map_err(|e| {
            Error::from(e).context(format!("renaming group snapshot {}@{old} to {new:?}", self.spec(group)))
        })
    }
}

impl Groups {
    /// The member snapshot of `image` in group snapshot `group@snap`, by its recorded id.
    fn member_snapshot(&self, group: &str, snap: &str, image: &ImageRef) -> Result<crate::member_snaps::MemberSnap> {
        validate_snap_name(snap)?;
        let context = || format!("member snapshot of image {} in {}@{snap}", image.image_id, self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let record = self.snap_record(&entry.id, snap).map_err(|e| e.context(context()))?;
        let member = record.members.iter().find(|m| m.image == *image).and_then(|m| m.snap_id);
        let name = image_snap_name(self.ioctx.pool_id(), &entry.id, &record.id);
        member
            .map(|id| crate::member_snaps::by_id(&self.cluster, image, &name, id))
            .transpose()?
            .flatten()
            .ok_or_else(|| Error::new(context(), libc::ENOENT))
    }

    /// Moves the member snapshot of `image` in `group@snap` into the user namespace (if it
    /// is in the group namespace) and returns the name stock tools and librbd's by-name
    /// calls know it by until [`Groups::hide_member_snapshot`] (for callers that must use
    /// librbd themselves, like the Cinder driver's volume from a member snapshot). It stays
    /// protected meanwhile; a crash leaves it exposed, and `repair` hides it again.
    pub fn expose_member_snapshot(&self, group: &str, snap: &str, image: &ImageRef) -> Result<String> {
        let mut member = self.member_snapshot(group, snap, image)?;
        crate::member_snaps::expose(&self.cluster, &mut member)
    }

    /// Moves an exposed member snapshot back into the group namespace (nothing to do for
    /// one that is not exposed).
    pub fn hide_member_snapshot(&self, group: &str, snap: &str, image: &ImageRef) -> Result<()> {
        let mut member = self.member_snapshot(group, snap, image)?;
        crate::member_snaps::hide(&self.cluster, &mut member)
    }
}
