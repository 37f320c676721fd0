//! Snapshot mode: crash-consistent group snapshots of the primary, shipped as differences.
//!
//! For writers that do not go through our data path (QEMU/librbd, krbd) there is no group
//! journal; the group is copied one group snapshot at a time:
//! 1. Every `interval` the daemon cuts a group snapshot `mirror-<fsid>-<ms>` on the primary
//!    (the existing fence: crash-consistent across the members, stock writers included). Its
//!    name is recorded on the secondary *before* it is cut, so a crash never loses track of
//!    one.
//! 2. Each member's changes since the last mirrored group snapshot are shipped in parallel
//!    (librbd's `diff_iterate2` from the previous member snapshot, exposed for the call; a
//!    full copy the first time or when the previous one is gone), progress recorded.
//! 3. Local member snapshots `rbd-cg-mirror.<name>` are cut, and only then is the group
//!    snapshot recorded complete here (`last_snapshot`). Older local snapshots and the
//!    previous primary snapshot are removed afterwards (leftovers of a crash are removed on
//!    the next round).
//!
//! While a round is in progress the members hold a mix of two snapshots; `mirror promote`
//! rolls them back to the last complete one first, so a promoted secondary is always at a
//! complete group snapshot, never in between. A demoted primary (`demoted_at` = the
//! sequence number of its final group snapshot, cut after its members were fenced) is
//! shipped up to that snapshot; then the state is `stopped`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbd_cg_client::snapshots::create::SnapCreateOptions;
use rbd_cg_client::snapshots::SnapshotInfo;
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::mirror::{local_snap_name, Bootstrap, MemberSync, MirrorRole, MirroredSnapshot, ReplayPhase};
use rbd_cg_journal::writer::cut_member;
use rbd_cg_rados::aio::AioImage;
use rbd_cg_rados::direct::DirectImage;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::{IoCtx, RadosError, RadosResult};

use crate::copy::{copy_member, IN_FLIGHT};
use crate::group::{member_snapshot, now_ms, CopiesEnd, CopyJob, Outcome, PeerMember, Run};

/// What one member's round copies.
enum Plan {
    /// Everything (first round, or the previous snapshot is gone).
    Full,
    /// These extents of the new snapshot (`exists` false: now zero).
    Diff(Vec<(u64, u64, bool)>),
}

impl Run<'_> {
    fn prefix(&self) -> String {
        let fsid8: String = self.ctx.local_fsid.chars().take(8).collect();
        format!("mirror-{fsid8}-")
    }

    /// Snapshot mode until stopped, promoted or asked to resync.
    pub(crate) fn snapshots(&mut self, peer_members: &[PeerMember]) -> Result<Outcome> {
        let mut last_check = Instant::now() - Duration::from_secs(10);
        loop {
            if self.should_stop() {
                let _ = self.save();
                return Ok(Outcome::Stopped);
            }
            if last_check.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            last_check = Instant::now();
            match self.local.mirror_record(&self.local_id)? {
                Some(r) if r.role == MirrorRole::Primary => return Ok(Outcome::Promoted),
                Some(r) if r.resync_requested => return Ok(Outcome::Again),
                Some(_) => {}
                None => return Ok(Outcome::Idle),
            }
            let Some(peer_record) = self.peer.mirror_record(&self.peer_id)? else { return Ok(Outcome::Idle) };
            let snaps = self.peer.snap_list(self.name)?;
            let last_name = self.state.last_snapshot.as_ref().map(|s| s.name.clone());
            let target = match (peer_record.role, peer_record.demoted_at) {
                (MirrorRole::NonPrimary, Some(seq)) => {
                    // Demoted: its final snapshot, then nothing more.
                    match snaps.iter().find(|s| s.seq == seq) {
                        Some(last) if Some(&last.name) == last_name.as_ref() => {
                            if self.state.phase != ReplayPhase::Stopped {
                                self.state.phase = ReplayPhase::Stopped;
                                self.state.primary_demoted_at = Some(seq);
                                self.state.description =
                                    format!("the primary is demoted; its final snapshot {} is here", last.name);
                                self.ctx.metrics.set_state(&self.group_label, "stopped");
                                if !self.save()? {
                                    return Ok(Outcome::Promoted);
                                }
                            }
                            continue;
                        }
                        Some(last) => Some(last.name.clone()),
                        None => continue,
                    }
                }
                (MirrorRole::NonPrimary, None) => continue,
                (MirrorRole::Primary, _) => {
                    if self.state.phase == ReplayPhase::Stopped {
                        self.state.phase = ReplayPhase::Replaying;
                        self.state.primary_demoted_at = None;
                    }
                    let due = self.state.last_snapshot.as_ref().is_none_or(|s| {
                        now_ms().saturating_sub(s.taken_ms) >= peer_record.interval_secs.saturating_mul(1000)
                    });
                    if self.state.bootstrap.is_none() && !due {
                        continue;
                    }
                    None
                }
            };
            if !self.round(peer_members, target, &snaps)? {
                return Ok(Outcome::Promoted);
            }
        }
    }

    /// One round: cut (or resume, or take `target`), ship, record; `Ok(false)` if promoted.
    fn round(&mut self, peer_members: &[PeerMember], target: Option<String>, snaps: &[SnapshotInfo]) -> Result<bool> {
        let started = Instant::now();
        // The round's snapshot: one in progress if it still exists, else the target, else new.
        let in_progress = self.state.bootstrap.clone().filter(|b| snaps.iter().any(|s| s.name == b.snap_name));
        let name = match (in_progress, target) {
            (Some(b), _) => b.snap_name,
            (None, target) => {
                let name = target.unwrap_or_else(|| format!("{}{}", self.prefix(), now_ms()));
                let members = peer_members
                    .iter()
                    .map(|m| MemberSync { name: m.name.clone(), image: m.image.clone(), size: m.size, copied: 0 })
                    .collect();
                self.state.bootstrap = Some(Bootstrap { snap_name: name.clone(), position: 0, members });
                if self.state.last_snapshot.is_none() {
                    self.state.phase = ReplayPhase::Syncing;
                    self.ctx.metrics.set_state(&self.group_label, "syncing");
                }
                self.state.description = format!("shipping snapshot {name}");
                if !self.save()? {
                    return Ok(false);
                }
                if !snaps.iter().any(|s| s.name == name) {
                    self.peer.snap_create(self.name, &name, &SnapCreateOptions::default())?;
                }
                name
            }
        };
        let info = self.peer.snap_info(self.name, &name)?;
        let base =
            self.state.last_snapshot.as_ref().map(|s| s.name.clone()).filter(|b| snaps.iter().any(|s| &s.name == b));
        let Some(bootstrap) = self.state.bootstrap.clone() else {
            return Err(Error::new("round state vanished", libc::EIO));
        };

        // Plan every member (exposing the base member snapshot for the diff), then ship.
        let mut jobs = Vec::new();
        for (index, member) in bootstrap.members.iter().enumerate() {
            let (peer_member, snap_id) = member_snapshot(peer_members, &info, &member.name)?;
            let peer_io = self.ctx.peer.ioctx_in(peer_member.image.pool_id, &peer_member.image.namespace)?;
            let plan = match &base {
                Some(base) => {
                    let exposed = self.peer.expose_member_snapshot(self.name, base, &peer_member.image)?;
                    let extents = (|| {
                        let mut image = Image::open_by_id_read_only(&peer_io, &peer_member.image.image_id)?;
                        image.set_snap_by_id(Some(snap_id))?;
                        let size = image.size()?;
                        image.changed_extents(Some(&exposed), 0, size)
                    })();
                    self.peer.hide_member_snapshot(self.name, base, &peer_member.image)?;
                    Plan::Diff(extents?)
                }
                None => Plan::Full,
            };
            let target = self
                .targets
                .get(&peer_member.tag)
                .map(Arc::clone)
                .ok_or_else(|| Error::new(format!("no local member {}", member.name), libc::EIO))?;
            jobs.push((index, peer_io, peer_member.image.image_id.clone(), snap_id, target, member.copied, plan));
        }
        let bandwidth = self.ctx.sync_bandwidth;
        let jobs: Vec<(usize, CopyJob)> = jobs
            .into_iter()
            .map(|(index, peer_io, image_id, snap_id, target, from, plan)| {
                let job: CopyJob = Box::new(move |stop, report| match plan {
                    Plan::Full => {
                        copy_member(&peer_io, &image_id, snap_id, target.get(), from, stop, bandwidth, report)
                    }
                    Plan::Diff(extents) => {
                        ship(&peer_io, &image_id, snap_id, target.get(), &extents, from, stop, report)
                    }
                });
                (index, job)
            })
            .collect();
        match self.run_copies(jobs)? {
            CopiesEnd::Done => {}
            CopiesEnd::Promoted => return Ok(false),
            CopiesEnd::Stopped => return Ok(true),
        }

        // Cut the local member snapshots, then record the group snapshot complete.
        let local_name = local_snap_name(&name);
        let mut local_ids = Vec::new();
        for peer_member in peer_members {
            let held = self
                .held
                .iter()
                .find(|m| m.name.as_deref() == Some(peer_member.name.as_str()))
                .ok_or_else(|| Error::new(format!("no local member {}", peer_member.name), libc::EIO))?;
            let io = self.ctx.local.ioctx_in(held.image.pool_id, &held.image.namespace)?;
            let existing = Image::open_by_id_read_only(&io, &held.image.image_id)?
                .snap_list()?
                .into_iter()
                .find(|s| s.name == local_name)
                .map(|s| s.id);
            let id = match existing {
                Some(id) => id,
                None => {
                    let id = cut_member(held, &local_name)?;
                    held.image_io.reopen()?;
                    id
                }
            };
            local_ids.push(id);
        }
        let previous = self.state.last_snapshot.replace(MirroredSnapshot {
            name: name.clone(),
            taken_ms: info.created_ms,
            complete_ms: now_ms(),
            local_snap_ids: local_ids,
        });
        self.state.bootstrap = None;
        if self.state.phase == ReplayPhase::Syncing || self.state.phase == ReplayPhase::Error {
            self.state.phase = ReplayPhase::Replaying;
        }
        self.state.description = format!("snapshot {name} shipped in {:.1} s", started.elapsed().as_secs_f64());
        if !self.save()? {
            return Ok(false);
        }
        log::info!("group {}: {}", self.group_label, self.state.description);
        self.ctx.metrics.set_state(&self.group_label, "replaying");
        self.ctx.metrics.last_sync.get_or_create(&self.gl()).set(now_ms() as f64 / 1000.0);
        self.clean_up(&name, previous.as_ref());
        Ok(true)
    }

    /// Older local snapshots and our older snapshots on the primary (best effort).
    fn clean_up(&self, current: &str, previous: Option<&MirroredSnapshot>) {
        let keep = local_snap_name(current);
        for held in self.held {
            let Ok(io) = self.ctx.local.ioctx_in(held.image.pool_id, &held.image.namespace) else { continue };
            let Ok(snaps) = Image::open_by_id_read_only(&io, &held.image.image_id).and_then(|i| i.snap_list()) else {
                continue;
            };
            for snap in snaps.iter().filter(|s| s.name.starts_with("rbd-cg-mirror.") && s.name != keep) {
                match held.lock.remove_snapshot(&held.data_pool, &snap.name, Some(snap.id)) {
                    Ok(_) => {
                        if let Err(e) = held.image_io.reopen() {
                            log::warn!("group {}: reopening {}: {e}", self.group_label, held.label);
                        }
                    }
                    Err(e) => log::warn!("group {}: removing {} of {}: {e}", self.group_label, snap.name, held.label),
                }
            }
        }
        let _ = previous;
        let prefix = self.prefix();
        if let Ok(snaps) = self.peer.snap_list(self.name) {
            for snap in snaps.iter().filter(|s| s.name.starts_with(&prefix) && s.name != current) {
                if let Err(e) = self.peer.snap_remove(self.name, &snap.name) {
                    log::warn!("group {}: removing primary snapshot {}: {e}", self.group_label, snap.name);
                }
            }
        }
    }
}

/// Ships `extents` of image `image_id` at snapshot `snap_id` onto `target`: extents that
/// exist are read and written, the others discarded. Extents ending at or below `from` were
/// shipped already (an interrupted round).
#[allow(clippy::too_many_arguments)]
fn ship(
    peer_io: &IoCtx,
    image_id: &str,
    snap_id: u64,
    target: Arc<DirectImage>,
    extents: &[(u64, u64, bool)],
    from: u64,
    stop: &AtomicBool,
    mut progress: impl FnMut(u64, u64),
) -> RadosResult<()> {
    let mut image = Image::open_by_id_read_only(peer_io, image_id)?;
    image.set_snap_by_id(Some(snap_id))?;
    let source = Arc::new(AioImage::new(image));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RadosError::new(format!("starting a runtime: {e}"), libc::EIO))?;
    // Pieces of at most one object, so that reads and writes stay bounded.
    let piece = target.object_size().max(4096);
    let mut pieces = Vec::new();
    for (offset, len, exists) in extents.iter().copied().filter(|(o, l, _)| o + l > from) {
        let mut o = offset;
        while o < offset + len {
            let l = (piece - o % piece).min(offset + len - o);
            pieces.push((o, l, exists));
            o += l;
        }
    }
    for round in pieces.chunks(IN_FLIGHT) {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let bytes = runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (o, len, exists) in round.iter().copied() {
                let (source, target) = (Arc::clone(&source), Arc::clone(&target));
                set.spawn(async move {
                    if !exists {
                        return target.discard(o, len).await.map(|()| 0u64);
                    }
                    let data = source.aio_read(o, len as usize).await?;
                    target.write(o, &data).await.map(|()| len)
                });
            }
            let mut bytes = 0u64;
            while let Some(done) = set.join_next().await {
                bytes += done.map_err(|_| RadosError::new("shipping an extent panicked", libc::EIO))??;
            }
            Ok::<u64, RadosError>(bytes)
        })?;
        progress(round.last().map_or(from, |(o, l, _)| o + l), bytes);
    }
    Ok(())
}
