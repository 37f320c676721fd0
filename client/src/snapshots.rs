//! Group snapshots: `snap create|ls|info|rename|rm|rollback`, and their repair.
//!
//! A group snapshot is a record in the group header listing the member image snapshots
//! that make it up. Each member snapshot is an ordinary RBD snapshot named
//! `.rbd_cg.<group pool id>_<group id>_<snapshot id>`, so `rbd snap ls` shows it and ties
//! it back to the group. Steps (see `docs/OPERATIONS.md`):
//!
//! create:   1 `snap_create_begin` (record `Creating` with the attached members; membership frozen)
//!           2..=N+1 one image snapshot per member (librbd)
//!           N+2 `snap_create_finish` (image snapshot ids recorded, `Complete`, membership free)
//! remove:   1 `snap_remove_begin` (`Removing`), 2..=N+1 remove each image snapshot
//!           (already gone is fine), N+2 `snap_remove_finish` (record gone)
//! rollback: 1 `snap_rollback_begin` (membership frozen), 2..=N+1 roll back each image,
//!           N+2 `snap_rollback_finish`
//!
//! A failed create undoes itself (image snapshots removed, record dropped); a crash leaves
//! a `Creating` record that `repair` undoes. Rollback is refused when the membership
//! changed since the snapshot or a member snapshot is gone.

use crate::class;
use crate::error::{ignore_missing, Error, Result};
use crate::faults::{FaultPlan, Steps};
use crate::fence::{self, wire, FenceMode, GroupFence, SnapCreateOptions};
use crate::groups::{new_group_id, Groups};
use crate::parallel;
use crate::progress::Progress;
use crate::rados::Cluster;
use crate::rbd::Image;
use rbd_cg_contract::methods::{Empty, SnapReservePutRequest, SNAP_RESERVE_GET, SNAP_RESERVE_PUT};
use rbd_cg_contract::methods::{
    SnapCreateRequest, SnapFinishRequest, SnapListRequest, SnapRenameRequest, SnapRequest, MAX_LIST_PAGE,
    SNAP_CREATE_BEGIN, SNAP_CREATE_FINISH, SNAP_GET, SNAP_LIST, SNAP_REMOVE_BEGIN, SNAP_REMOVE_FINISH, SNAP_RENAME,
    SNAP_ROLLBACK_BEGIN, SNAP_ROLLBACK_FINISH,
};
use rbd_cg_contract::names::{header_object, image_snap_name, image_snap_prefix, validate_snap_name};
use rbd_cg_contract::records::{ImageRef, SnapIdReserve, SnapInProgress, SnapOperation, SnapshotRecord, SnapshotState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

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
}

/// The image snapshot id cut on each member.
type MemberSnapIds = Vec<(ImageRef, u64)>;

/// What one image holds now: its snapshots (name → id).
#[derive(Clone)]
struct ImageSnaps {
    snaps: HashMap<String, u64>,
}

/// What one command learned about member images, fetched once each.
#[derive(Default)]
struct SnapCache {
    /// Full snapshot lists (repair). `None`: the image (or its pool) is gone.
    images: HashMap<ImageRef, Option<ImageSnaps>>,
    /// Image names. `None`: the image (or its pool) is gone.
    names: HashMap<ImageRef, Option<String>>,
    /// Whether image snapshot id N of an image exists under the expected name.
    present: HashMap<(ImageRef, u64), bool>,
    pools: HashMap<i64, String>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Groups {
    fn open_image(&self, image: &ImageRef) -> Result<Image> {
        open_member(&self.cluster, image)
    }

    fn image_snaps<'c>(&self, cache: &'c mut SnapCache, image: &ImageRef) -> Result<&'c Option<ImageSnaps>> {
        if !cache.images.contains_key(image) {
            let entry = fetch_image_snaps(&self.cluster, image)?;
            cache.images.insert(image.clone(), entry);
        }
        Ok(&cache.images[image])
    }

    /// Fetches the snapshots of every image not cached yet, in parallel.
    fn prefetch_image_snaps<'i>(
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
        let fetched = parallel::map(&missing, parallel::DEFAULT_WORKERS, |_, image| fetch_image_snaps(cluster, image));
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

    fn snap_record(&self, group_id: &str, name: &str) -> Result<SnapshotRecord> {
        let request = SnapRequest { group_id: group_id.into(), name: name.into() };
        class::read(&self.ioctx, &header_object(group_id), &SNAP_GET, &request)
    }

    /// Every snapshot record of the group (page by page) and the operation in progress.
    fn snap_records(&self, group_id: &str) -> Result<(Vec<SnapshotRecord>, Option<SnapInProgress>)> {
        let mut records = Vec::new();
        let mut after = 0;
        loop {
            let request = SnapListRequest { start_after_seq: after, max_entries: MAX_LIST_PAGE };
            let page = class::read(&self.ioctx, &header_object(group_id), &SNAP_LIST, &request)?;
            after = page.snapshots.last().map_or(after, |s| s.seq);
            let done = !page.more || page.snapshots.is_empty();
            records.extend(page.snapshots);
            if done {
                return Ok((records, page.in_progress));
            }
        }
    }

    /// Fetches, in parallel, the names of the members of `records` and whether each
    /// member snapshot exists: two small `cls_rbd` reads per image and snapshot, no
    /// image open.
    fn prefetch_member_status(&self, cache: &mut SnapCache, group_id: &str, records: &[&SnapshotRecord]) -> Result<()> {
        let cluster = &self.cluster;
        let images: Vec<ImageRef> = records
            .iter()
            .flat_map(|r| r.members.iter().map(|m| &m.image))
            .filter(|i| !cache.names.contains_key(*i))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        cache.names.extend(fence::directory_names(cluster, &images)?);
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
            image_snapshots_are(cluster, image, snaps)
        });
        for ((image, snaps), present) in by_image.into_iter().zip(found) {
            for ((snap_id, _), present) in snaps.into_iter().zip(present?) {
                cache.present.insert((image.clone(), snap_id), present);
            }
        }
        Ok(())
    }

    fn describe(&self, group_id: &str, record: &SnapshotRecord, cache: &mut SnapCache) -> Result<SnapshotInfo> {
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
        })
    }

    /// Creates group snapshot `name` of group `group`: crash-consistent across the members
    /// unless `options` say otherwise (see [`crate::fence`]).
    pub fn snap_create(&self, group: &str, name: &str, options: &SnapCreateOptions) -> Result<SnapshotInfo> {
        validate_snap_name(name)?;
        let context = || format!("creating group snapshot {}@{name}", self.spec(group));
        let group_id = self.ready_group_id(group, "snapshotting")?;
        let snap_id = new_group_id()?;
        let mut cache = SnapCache::default();
        let record = match self.snap_create_steps(&group_id, &snap_id, name, options, &mut cache) {
            Ok(record) => record,
            // `snap_create_begin` refuses an existing name; say whether it is complete or
            // the remains of an interrupted attempt.
            Err(e) if e.errno() == libc::EEXIST => match self.snap_record(&group_id, name) {
                Ok(existing) if existing.state != SnapshotState::Complete => {
                    return Err(Error::new(
                        format!("{}: an earlier attempt is {:?}", context(), existing.state),
                        libc::EBUSY,
                    )
                    .with_hint(format!("Run `rbd-cg repair {}` to clean it up, then retry.", self.spec(group))))
                }
                _ => return Err(e.context(context())),
            },
            Err(e) => return Err(e.context(context())),
        };
        self.describe(&group_id, &record, &mut cache)
    }

    /// The steps of `snap create`; what they learn about the members goes into `cache`.
    fn snap_create_steps(
        &self,
        group_id: &str,
        snap_id: &str,
        name: &str,
        options: &SnapCreateOptions,
        cache: &mut SnapCache,
    ) -> Result<SnapshotRecord> {
        let header = header_object(group_id);
        let mut steps = Steps::new("snap-create", &self.faults);
        steps.run("record the snapshot", || {
            let request = SnapCreateRequest {
                group_id: group_id.into(),
                snap_id: snap_id.into(),
                name: name.into(),
                created_ms: now_ms(),
                max_snapshots: options.max_snapshots,
            };
            class::write(&self.ioctx, &header, &SNAP_CREATE_BEGIN, &request)
        })?;
        let record = self.snap_record(group_id, name)?;
        let cut = match options.fence {
            FenceMode::NoFence => self.cut_member_snapshots(&mut steps, group_id, &record).map(|ids| (ids, None)),
            FenceMode::Fenced | FenceMode::AllowUnfenced => {
                self.cut_fenced(&mut steps, group_id, &record, options, cache)
            }
        };
        let result = cut.and_then(|(image_snaps, next_reserve)| {
            steps.run("complete the snapshot", || {
                let finish = SnapFinishRequest { group_id: group_id.into(), name: name.into(), image_snaps };
                match next_reserve {
                    None => class::write(&self.ioctx, &header, &SNAP_CREATE_FINISH, &finish),
                    // One atomic op: the next snapshot's ids are stored only with this one complete.
                    Some(reserve) => {
                        let put = SnapReservePutRequest { group_id: group_id.into(), reserve };
                        let calls = [class::call(&SNAP_RESERVE_PUT, &put)?, class::call(&SNAP_CREATE_FINISH, &finish)?];
                        class::write_batch(&self.ioctx, &header, &calls)
                    }
                }
            })
        });
        match result {
            Ok(()) => self.snap_record(group_id, name),
            // Fault injection stops the operation dead, as a crash would: no undo.
            Err(e) if e.is_injected() => Err(e),
            Err(e) => {
                log::warn!("group snapshot {name:?} failed ({e}); undoing it");
                // The undo is not part of the fault plan: it runs to completion.
                self.snap_remove_steps_with(group_id, &record, &FaultPlan::none(), &Progress::none()).map_err(
                    |undo| e.clone().with_hint(format!("Undoing it failed too ({undo}); run `rbd-cg repair`.")),
                )?;
                Err(e)
            }
        }
    }

    /// The fenced cut (see [`crate::fence`]); returns the image snapshot ids. Steps after
    /// step 1 (record): 2 inspect and watch the members, allocate snapshot ids, quiesce;
    /// 3 fence every member; 4 cut every member; 5 release the fences and unquiesce. Each
    /// step works on all members in parallel; every fence is held before the first cut and
    /// released only after the last one.
    fn cut_fenced(
        &self,
        steps: &mut Steps,
        group_id: &str,
        record: &SnapshotRecord,
        options: &SnapCreateOptions,
        cache: &mut SnapCache,
    ) -> Result<(MemberSnapIds, Option<SnapIdReserve>)> {
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let members: Vec<ImageRef> = record.members.iter().map(|m| m.image.clone()).collect();
        let description = format!("rbd-cg fence {group_id}/{}", record.id);
        // The ids `snap_create_begin` handed to this snapshot (an older class keeps none).
        let reserved = match class::read(&self.ioctx, &header_object(group_id), &SNAP_RESERVE_GET, &Empty {}) {
            Ok(reserve) => Some(reserve.ids),
            Err(e) if e.errno() == libc::EOPNOTSUPP => None,
            Err(e) => return Err(e),
        };
        let keeps_reserve = reserved.is_some();
        // Four passes over the members: prepare, fence, cut, release.
        let counter = self.progress.start("Creating group snapshot", 4 * members.len() as u64);
        let mut fences = steps.run("watch and quiesce the members", || {
            let mut fences = GroupFence::prepare(&self.cluster, &members, options, description, reserved, &counter)?;
            fences.quiesce(options)?;
            Ok(fences)
        })?;
        let quiesced = std::time::Instant::now();
        let count = fences.len();
        steps.run(&format!("fence {count} members"), || fences.fence_all(options.workers))?;
        counter.add(count as u64);
        let cluster = &self.cluster;
        let ids = steps.run(&format!("snapshot {count} members"), || {
            fences.cut_all(options.workers, &snap_name, &|image| cut_with_librbd(cluster, image, &snap_name), &counter)
        })?;
        // librbd resumes quiesced applications by itself after 10 s.
        if !options.skip_quiesce && quiesced.elapsed() > std::time::Duration::from_secs(10) {
            eprintln!(
                "WARNING: fencing and cutting took {:.1} s; quiesce hooks may have resumed before the last cut, \
                 so the snapshot is crash-consistent but perhaps not application-consistent",
                quiesced.elapsed().as_secs_f64()
            );
        }
        steps.run("release the fences", || {
            fences.release();
            Ok(())
        })?;
        counter.add(count as u64);
        // What `describe` would look up: the members' names, and that every cut exists.
        cache.names.extend(fences.names().map(|(image, name)| (image.clone(), name.map(str::to_owned))));
        cache.present.extend(ids.iter().map(|(image, id)| ((image.clone(), *id), true)));
        let next = keeps_reserve.then(|| SnapIdReserve { ids: fences.take_next_reserve() });
        Ok((ids, next))
    }

    /// One image snapshot per member through librbd, each a step, without fencing;
    /// returns the ids in member order.
    fn cut_member_snapshots(
        &self,
        steps: &mut Steps,
        group_id: &str,
        record: &SnapshotRecord,
    ) -> Result<Vec<(ImageRef, u64)>> {
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let mut ids = Vec::with_capacity(record.members.len());
        let counter = self.progress.start("Creating group snapshot", record.members.len() as u64);
        for member in &record.members {
            let id = steps.run(&format!("snapshot image {}", member.image.image_id), || {
                cut_with_librbd(&self.cluster, &member.image, &snap_name)
            })?;
            ids.push((member.image.clone(), id));
            counter.tick();
        }
        Ok(ids)
    }

    /// Lists the group's snapshots in creation order, checking each member snapshot.
    pub fn snap_list(&self, group: &str) -> Result<Vec<SnapshotInfo>> {
        let context = || format!("listing snapshots of group {}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let (records, _) = self.snap_records(&entry.id).map_err(|e| e.context(context()))?;
        let mut cache = SnapCache::default();
        self.prefetch_member_status(&mut cache, &entry.id, &records.iter().collect::<Vec<_>>())?;
        records.iter().map(|r| self.describe(&entry.id, r, &mut cache)).collect()
    }

    /// Shows one group snapshot.
    pub fn snap_info(&self, group: &str, name: &str) -> Result<SnapshotInfo> {
        validate_snap_name(name)?;
        let context = || format!("group snapshot {}@{name}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let record = self.snap_record(&entry.id, name).map_err(|e| e.context(context()))?;
        self.describe(&entry.id, &record, &mut SnapCache::default())
    }

    /// Renames a group snapshot (one atomic step; member snapshot names carry the id,
    /// not the name, so nothing else changes).
    pub fn snap_rename(&self, group: &str, old: &str, new: &str) -> Result<()> {
        let group_id = self.ready_group_id(group, "renaming a snapshot of")?;
        let request = SnapRenameRequest { group_id: group_id.clone(), old_name: old.into(), new_name: new.into() };
        class::write(&self.ioctx, &header_object(&group_id), &SNAP_RENAME, &request)
            .map_err(|e| e.context(format!("renaming group snapshot {}@{old} to {new:?}", self.spec(group))))
    }

    /// Removes a group snapshot and its member image snapshots.
    pub fn snap_remove(&self, group: &str, name: &str) -> Result<()> {
        validate_snap_name(name)?;
        let context = || format!("removing group snapshot {}@{name}", self.spec(group));
        let entry = self.dir_entry(group)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        let record = self.snap_record(&entry.id, name).map_err(|e| e.context(context()))?;
        if record.state == SnapshotState::Complete {
            self.unprotect_member_snapshots(&entry.id, &record).map_err(|e| e.context(context()))?;
        }
        self.snap_remove_steps(&entry.id, &record).map_err(|e| e.context(context()))
    }

    /// Before a removal begins: member snapshots protected for clone-v1 children (by `clone`
    /// or by hand) are unprotected, so the removal cannot stop half-way on one that still
    /// has children. If any has, the ones unprotected here are protected again and the
    /// removal is refused with `EBUSY`, nothing changed.
    fn unprotect_member_snapshots(&self, group_id: &str, record: &SnapshotRecord) -> Result<()> {
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let cluster = &self.cluster;
        // Per member: Ok(true) if this call unprotected it.
        let results = parallel::map(&record.members, parallel::DEFAULT_WORKERS, |_, member| -> Result<bool> {
            let mut image = match open_member(cluster, &member.image) {
                Err(e) if e.is_not_found() => return Ok(false),
                other => other?,
            };
            match image.snap_is_protected(&snap_name) {
                Ok(true) => image.snap_unprotect(&snap_name).map(|()| true).map_err(Error::from),
                Ok(false) => Ok(false),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e.into()),
            }
        });
        let Some(failure) = results.iter().find_map(|r| r.as_ref().err().cloned()) else { return Ok(()) };
        for (member, result) in record.members.iter().zip(&results) {
            if matches!(result, Ok(true)) {
                if let Err(e) = open_member(cluster, &member.image)
                    .and_then(|mut image| image.snap_protect(&snap_name).map_err(Error::from))
                {
                    log::warn!("could not protect {snap_name} of image {} again: {e}", member.image.image_id);
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

    fn snap_remove_steps(&self, group_id: &str, record: &SnapshotRecord) -> Result<()> {
        self.snap_remove_steps_with(group_id, record, &self.faults, &self.progress)
    }

    fn snap_remove_steps_with(
        &self,
        group_id: &str,
        record: &SnapshotRecord,
        faults: &FaultPlan,
        progress: &Progress,
    ) -> Result<()> {
        let header = header_object(group_id);
        let request = SnapRequest { group_id: group_id.into(), name: record.name.clone() };
        let snap_name = image_snap_name(self.ioctx.pool_id(), group_id, &record.id);
        let mut steps = Steps::new("snap-remove", faults);
        steps.run("mark the snapshot removing", || class::write(&self.ioctx, &header, &SNAP_REMOVE_BEGIN, &request))?;
        let cluster = &self.cluster;
        let counter = progress.start("Removing group snapshot", record.members.len() as u64);
        steps.run(&format!("remove the snapshots of {} images", record.members.len()), || {
            let removed = parallel::map(&record.members, parallel::DEFAULT_WORKERS, |_, member| {
                let removed = remove_image_snapshot(cluster, &member.image, &snap_name);
                counter.tick();
                removed
            });
            removed.into_iter().collect::<Result<Vec<()>>>().map(drop)
        })?;
        steps.run("drop the snapshot record", || {
            ignore_missing(class::write(&self.ioctx, &header, &SNAP_REMOVE_FINISH, &request))
        })
    }

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
    fn rollback_steps(
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
        steps.run("mark the rollback", || class::write(&self.ioctx, &header, &SNAP_ROLLBACK_BEGIN, &request))?;
        if check_members {
            let now: BTreeSet<ImageRef> = self.member_records(group_id)?.into_iter().map(|m| m.image).collect();
            let then: BTreeSet<ImageRef> = record.members.iter().map(|m| m.image.clone()).collect();
            if now != then {
                class::write(&self.ioctx, &header, &SNAP_ROLLBACK_FINISH, &request)?;
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
                let mut image = self.open_image(&member.image)?;
                let report = &mut *progress;
                Ok(image.snap_rollback_with_progress(&snap_name, |done, total| {
                    report(index, count, &image_id, done, total)
                })?)
            })?;
        }
        steps.run("clear the rollback mark", || class::write(&self.ioctx, &header, &SNAP_ROLLBACK_FINISH, &request))
    }

    /// Removes every snapshot of group `group_id` (used by `rm --force`).
    pub(crate) fn remove_all_snapshots(&self, group_id: &str) -> Result<()> {
        let (records, _) = self.snap_records(group_id)?;
        let counter = self.progress.start("Removing group snapshots", records.len() as u64);
        records.iter().try_for_each(|record| {
            self.snap_remove_steps_with(group_id, record, &self.faults, &Progress::none())?;
            counter.tick();
            Ok(())
        })
    }

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
                        self.snap_remove_steps(group_id, record)?;
                    }
                }
                SnapshotState::Removing => {
                    findings.push(format!("removal of snapshot {:?} was interrupted: completing it", record.name));
                    if !check_only {
                        self.snap_remove_steps(group_id, record)?;
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
                                class::write(&self.ioctx, &header_object(group_id), &SNAP_ROLLBACK_FINISH, &request)?;
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
        let prefix = image_snap_prefix(self.ioctx.pool_id(), group_id);
        let mut images: BTreeSet<ImageRef> = self.member_records(group_id)?.into_iter().map(|m| m.image).collect();
        images.extend(records.iter().flat_map(|r| r.members.iter().map(|m| m.image.clone())));
        let mut cache = SnapCache::default();
        self.prefetch_image_snaps(&mut cache, &images)?;
        let (fresh, in_progress) = self.snap_records(group_id)?;
        if in_progress.is_some_and(|p| p.operation == SnapOperation::Create) {
            return Ok(findings);
        }
        let known: BTreeSet<String> = fresh.iter().map(|r| r.id.clone()).collect();
        for image in &images {
            let Some(now) = self.image_snaps(&mut cache, image)?.clone() else { continue };
            for snap in now.snaps.keys() {
                // Snapshots of existing records (including ones undone above) are not orphans.
                let Some(snap_id) = snap.strip_prefix(&prefix) else { continue };
                if known.contains(snap_id) {
                    continue;
                }
                findings.push(format!("image {} has orphan group snapshot {snap}: removing it", image.image_id));
                if !check_only {
                    ignore_missing(self.open_image(image)?.snap_remove(snap).map_err(Error::from))?;
                }
            }
        }
        Ok(findings)
    }
}

/// Opens a member image read-write by id.
fn open_member(cluster: &Cluster, image: &ImageRef) -> Result<Image> {
    Ok(Image::open_by_id(&cluster.ioctx_in(image.pool_id, &image.namespace)?, &image.image_id)?)
}

/// Snapshots one image through librbd (a rerun finding it already there is fine).
fn cut_with_librbd(cluster: &Cluster, image_ref: &ImageRef, snap_name: &str) -> Result<u64> {
    let mut image = open_member(cluster, image_ref)?;
    match image.snap_create(snap_name) {
        Ok(()) => {}
        Err(e) if e.errno == libc::EEXIST => {}
        Err(e) => return Err(e.into()),
    }
    image
        .snap_list()?
        .iter()
        .find(|s| s.name == snap_name)
        .map(|s| s.id)
        .ok_or_else(|| Error::new(format!("snapshot {snap_name} vanished"), libc::ENOENT))
}

/// An image's snapshots (`None`: the image or its pool is gone), through a
/// read-only open (no watch; works with read-only caps).
fn fetch_image_snaps(cluster: &Cluster, image: &ImageRef) -> Result<Option<ImageSnaps>> {
    let opened = cluster
        .ioctx_in(image.pool_id, &image.namespace)
        .and_then(|ioctx| Image::open_by_id_read_only(&ioctx, &image.image_id));
    match opened {
        Ok(opened) => {
            let snaps = opened.snap_list()?.into_iter().map(|s| (s.name, s.id)).collect();
            Ok(Some(ImageSnaps { snaps }))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes image snapshot `snap_name` of one member; a gone image, pool or snapshot is fine.
fn remove_image_snapshot(cluster: &Cluster, image_ref: &ImageRef, snap_name: &str) -> Result<()> {
    match open_member(cluster, image_ref) {
        Ok(mut image) => ignore_missing(image.snap_remove(snap_name).map_err(Error::from)),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Most member-snapshot probes batched into one read op.
const PROBES_PER_OP: usize = 256;

/// Whether each image snapshot `(snap_id, snap_name)` exists on `image` with that name,
/// in one read op (`cls_rbd.get_snapshot_name` per snapshot). A gone pool or image has none.
fn image_snapshots_are(cluster: &Cluster, image: &ImageRef, snaps: &[(u64, String)]) -> Result<Vec<bool>> {
    let mut ioctx = match cluster.ioctx_by_id(image.pool_id) {
        Ok(ioctx) => ioctx,
        Err(e) if e.is_not_found() => return Ok(vec![false; snaps.len()]),
        Err(e) => return Err(e.into()),
    };
    ioctx.set_namespace(&image.namespace)?;
    let header = format!("rbd_header.{}", image.image_id);
    let mut present = Vec::with_capacity(snaps.len());
    for chunk in snaps.chunks(PROBES_PER_OP) {
        let requests: Vec<Vec<u8>> = chunk.iter().map(|(id, _)| wire::snap_id_request(*id)).collect();
        let calls: Vec<(&str, &str, &[u8])> =
            requests.iter().map(|r| ("rbd", "get_snapshot_name", r.as_slice())).collect();
        let replies = match ioctx.exec_read_batch(&header, &calls) {
            Ok(replies) => replies,
            Err(e) if e.is_not_found() => return Ok(vec![false; snaps.len()]),
            Err(e) => return Err(e.into()),
        };
        for ((_, snap_name), reply) in chunk.iter().zip(replies) {
            present.push(match reply {
                Ok(reply) => wire::decode_string(&reply).is_ok_and(|name| name == *snap_name),
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e.into()),
            });
        }
    }
    Ok(present)
}
