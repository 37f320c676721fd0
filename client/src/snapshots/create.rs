//! `snap create`: a crash-consistent group snapshot.
//!
//! Steps (`docs/OPERATIONS.md`): 1 `snap_create_begin` records the snapshot `Creating` with
//! the attached members (membership frozen); 2 inspect and watch the members, take their
//! snapshot ids, quiesce; 3 fence every member; 4 cut every member; 5 release the fences
//! and unquiesce; 6 `snap_create_finish` records the image snapshot ids (`Complete`),
//! together with the ids reserved for the next snapshot. Without fencing (`--no-fence`)
//! steps 2..=N+1 cut one member each through librbd. A failure undoes the snapshot; a
//! crash leaves it `Creating` for `repair` to undo.

use super::{MemberSnapIds, SnapCache, SnapshotInfo};
use crate::error::{Error, Result};
use crate::faults::{FaultPlan, Steps};
use crate::fence::GroupFence;
use crate::groups::{new_group_id, now_ms, Groups};
use crate::images;
use crate::parallel;
use crate::progress::Progress;
use rbd_cg_contract::methods::{
    Empty, SnapCreateRequest, SnapFinishRequest, SnapReservePutRequest, SNAP_CREATE_BEGIN, SNAP_CREATE_FINISH,
    SNAP_RESERVE_GET, SNAP_RESERVE_PUT,
};
use rbd_cg_contract::names::{header_object, image_snap_name, validate_snap_name};
use rbd_cg_contract::records::{ImageRef, SnapIdReserve, SnapshotRecord, SnapshotState};
use rbd_cg_rados::cls::WriteBatch;
use std::time::Duration;

/// How a group snapshot treats the members' writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FenceMode {
    /// Fence every member; refuse members that cannot be fenced. Crash-consistent.
    #[default]
    Fenced,
    /// Fence what can be fenced; snapshot members without the exclusive-lock feature
    /// unfenced while the others are held. Not crash-consistent for those members.
    AllowUnfenced,
    /// No fencing at all: one member snapshot after another through librbd, as the seed's
    /// first iteration did. Not crash-consistent; kept for comparison and tests.
    NoFence,
}

/// Options of `snap create`.
#[derive(Debug, Clone)]
pub struct SnapCreateOptions {
    /// Refuse when the group already has this many snapshots.
    pub max_snapshots: u32,
    /// Fencing.
    pub fence: FenceMode,
    /// Do not notify quiesce hooks (`rbd_quiesce_watch` users) before fencing.
    pub skip_quiesce: bool,
    /// Go on when a quiesce hook fails (the snapshot is still crash-consistent).
    pub ignore_quiesce_error: bool,
    /// How long fencing all members may take before the snapshot is given up.
    pub fence_timeout: Duration,
    /// The OSD drops our watches this long after our client died: the longest a crashed
    /// `rbd-cg` can keep writers waiting.
    pub watch_timeout_secs: u32,
    /// Members worked on at once.
    pub workers: usize,
}

impl Default for SnapCreateOptions {
    fn default() -> Self {
        SnapCreateOptions {
            max_snapshots: rbd_cg_contract::names::MAX_GROUP_SNAPSHOTS,
            fence: FenceMode::Fenced,
            skip_quiesce: false,
            ignore_quiesce_error: false,
            fence_timeout: Duration::from_secs(10),
            watch_timeout_secs: 10,
            workers: parallel::DEFAULT_WORKERS,
        }
    }
}

impl SnapCreateOptions {
    /// Our lock's lifetime, `2 × fence_timeout + 10 s` (30 s by default): long enough to
    /// fence, cut and release, short enough that a fence nobody releases frees writers soon.
    pub fn lock_duration_secs(&self) -> u32 {
        let fence = u32::try_from(self.fence_timeout.as_secs()).unwrap_or(u32::MAX / 4);
        fence.saturating_mul(2).saturating_add(10)
    }
}

impl Groups {
    /// Creates group snapshot `name` of group `group`: crash-consistent across the members
    /// unless `options` say otherwise (`docs/FENCING.md`).
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
        self.prefetch_journal_positions(&mut cache, &group_id, &[&record])?;
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
            self.ioctx.call_write(&header, &SNAP_CREATE_BEGIN, &request)
        })?;
        let record = self.snap_record(group_id, name)?;
        if self.journal(group_id)?.is_some() {
            // A journaled group: its journal writer cuts the snapshot at one journal position
            // (it holds the members) and completes it (`crate::journal`).
            let cut = steps.run("cut the snapshot at a journal position", || {
                self.journaled_snapshot(group_id, name, options.fence_timeout.max(Duration::from_secs(30)) * 2)
            });
            return match cut {
                Ok(()) => self.snap_record(group_id, name),
                Err(e) if e.is_injected() => Err(e),
                Err(e) => {
                    // The writer undoes a cut it could not make; one that never took the
                    // request (or died) leaves the record to us.
                    log::warn!("group snapshot {name:?} failed ({e}); undoing it");
                    match self.snap_remove_steps_with(group_id, &record, &FaultPlan::none(), &Progress::none(), true) {
                        Ok(()) => Err(e),
                        Err(undo) if undo.is_not_found() => Err(e),
                        Err(undo) => Err(e.with_hint(format!("Undoing it failed too ({undo}); run `rbd-cg repair`."))),
                    }
                }
            };
        }
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
                    None => self.ioctx.call_write(&header, &SNAP_CREATE_FINISH, &finish),
                    // One atomic op: the next snapshot's ids are stored only with this one complete.
                    Some(reserve) => {
                        let put = SnapReservePutRequest { group_id: group_id.into(), reserve };
                        let mut batch = WriteBatch::new();
                        batch.add(&SNAP_RESERVE_PUT, &put)?.add(&SNAP_CREATE_FINISH, &finish)?;
                        self.ioctx.write_batch(&header, &batch)
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
                self.snap_remove_steps_with(group_id, &record, &FaultPlan::none(), &Progress::none(), true).map_err(
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
        let reserved = match self.ioctx.call(&header_object(group_id), &SNAP_RESERVE_GET, &Empty {}) {
            Ok(reserve) => Some(reserve.ids),
            Err(e) if e.errno == libc::EOPNOTSUPP => None,
            Err(e) => return Err(e.into()),
        };
        let keeps_reserve = reserved.is_some();
        // Four passes over the members: prepare, fence, cut, release.
        let counter = self.progress.start("Creating group snapshot", 4 * members.len() as u64);
        let mut fences = steps.run("watch and quiesce the members", || {
            let mut fences =
                GroupFence::prepare(&self.cluster, &members, options, description, reserved, &self.reserve, &counter)?;
            fences.quiesce(options)?;
            Ok::<_, Error>(fences)
        })?;
        let quiesced = std::time::Instant::now();
        let count = fences.len();
        steps.run(&format!("fence {count} members"), || fences.fence_all(options.workers))?;
        counter.add(count as u64);
        let cluster = &self.cluster;
        let ids = steps.run(&format!("snapshot {count} members"), || {
            fences.cut_all(
                options.workers,
                &snap_name,
                &|image| images::cut_unfenced(cluster, image, &snap_name),
                &counter,
            )
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
            Ok::<_, Error>(())
        })?;
        counter.add(count as u64);
        // What `describe` would look up: the members' names, and that every cut exists.
        cache.names.extend(fences.names().map(|(image, name)| (image.clone(), name.map(str::to_owned))));
        cache.present.extend(ids.iter().map(|(image, id)| ((image.clone(), *id), true)));
        let next = keeps_reserve.then(|| SnapIdReserve { ids: fences.take_next_reserve(&self.reserve) });
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
                images::cut_unfenced(&self.cluster, &member.image, &snap_name)
            })?;
            ids.push((member.image.clone(), id));
            counter.tick();
        }
        Ok(ids)
    }
}
