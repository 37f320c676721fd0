//! Mirroring one group in journal mode: set the secondary up, bootstrap it from a group
//! snapshot cut at a known journal position, then replay the primary's journal in order of
//! dependency.
//!
//! Steps, each recorded on the secondary's header (`mirror_set_replay`) so that a daemon that
//! dies anywhere resumes where it was (`docs/MIRRORING.md`, "What the daemon does"):
//! 1. **Set-up** (first time): the group, its member images (same names, sizes, object
//!    sizes, features), its members, its journal (which fences the members: `non-primary`
//!    for librbd), then `mirror_enable` as `NonPrimary` naming the primary. Each step is
//!    idempotent; an interrupted set-up is finished by the next attempt.
//! 2. **Bootstrap**: the daemon registers as a consumer of the primary's journal (so nothing
//!    it needs is trimmed), records the snapshot name it is about to cut, cuts a group
//!    snapshot on the primary (the journal writer cuts it at one position `P`), copies every
//!    member from it in parallel (progress recorded every second, resumed from there), then
//!    records `Replaying` at `P` and removes the snapshot.
//! 3. **Replay**: entries after the position, each applied once what it depends on is
//!    (`crate::waves`); the position is recorded before bytes would be written twice. The consumer position on the primary follows every second, so the primary
//!    trims behind it; a consumer the primary disconnected (it fell behind the journal's
//!    bound) stops replay until `resync`. A demoted primary's last entry is noted; once it is
//!    applied the state is `stopped` and a planned promotion may go ahead.
//!
//! Replay stops, after the entries in flight, when the daemon is told to stop, loses its lease,
//! or the group is promoted (then `mirror_set_replay` answers `EROFS`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rbd_cg_client::journal::JournalOptions;
use rbd_cg_client::snapshots::create::SnapCreateOptions;
use rbd_cg_client::spec::{ImageSpec, PoolSpec};
use rbd_cg_client::{groups::Groups, Error, Result};
use rbd_cg_contract::journal::{ConsumerRecord, ConsumerSetRequest, ConsumerState, EntryOp, JournalState};
use rbd_cg_contract::methods::JOURNAL_CONSUMER_SET;
use rbd_cg_contract::mirror::{
    mirror_consumer, Bootstrap, MemberSync, MirrorMode, MirrorRecord, MirrorRole, MirroredSnapshot, PeerGroup,
    ReplayPhase, ReplayState,
};
use rbd_cg_contract::names::{header_object, MAX_GROUP_MEMBERS};
use rbd_cg_contract::records::ImageRef;
use rbd_cg_journal::apply::{Applier, Target};
use rbd_cg_journal::lease::journal_status;
use rbd_cg_journal::members::{open_members, ImageSlot, Member};
use rbd_cg_journal::reader::JournalReader;
use rbd_cg_rados::direct::DirectImage;
use rbd_cg_rados::image::{image_create_with_order, Image};
use rbd_cg_rados::{Cluster, IoCtx};
use tokio::runtime::Runtime;

use crate::copy::copy_member;
use crate::metrics::{GroupLabel, Metrics};
use crate::waves::Extents;

/// Features a secondary's member image gets from its primary: layering, exclusive-lock,
/// object-map, fast-diff, deep-flatten (never journaling or mirroring bits).
const COPIED_FEATURES: u64 = 1 | 4 | 8 | 16 | 32;
/// How often replay looks at both records and moves the primary's consumer position.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Entries applied at once at most (each waits for what it depends on).
const MAX_APPLYING: usize = 256;
/// Most journal bytes read at once.
const READ_BYTES: usize = 16 << 20;

/// What the daemon shares with every group it mirrors.
pub struct Context {
    /// The secondary (local) cluster.
    pub local: Cluster,
    /// The primary (peer) cluster.
    pub peer: Cluster,
    /// The local cluster's fsid (names our consumer on the primary).
    pub local_fsid: String,
    /// The peer cluster's fsid (recorded as where a copy comes from).
    pub peer_fsid: String,
    /// `rbd-cg mirror daemon on HOST, pid N, client.ID`.
    pub description: String,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM/SIGINT.
    pub stop: Arc<AtomicBool>,
    /// How long replay sleeps when it has caught up.
    pub idle_poll: Duration,
    /// Bytes per second per member copy (`None`: unlimited).
    pub sync_bandwidth: Option<u64>,
}

/// Why [`mirror_group`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do now (not mirrored, local group primary, waiting for `resync`).
    Idle,
    /// The daemon is stopping, or lost its lease.
    Stopped,
    /// The group was promoted here.
    Promoted,
    /// A resync was asked for: start again.
    Again,
}

/// The primary's member `name` and its image snapshot in group snapshot `info`.
pub(crate) fn member_snapshot<'m>(
    peer_members: &'m [PeerMember],
    info: &rbd_cg_client::snapshots::SnapshotInfo,
    name: &str,
) -> Result<(&'m PeerMember, u64)> {
    let peer_member = peer_members
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::new(format!("member {name} left the primary"), libc::ENOENT))?;
    let snap_id = info
        .images
        .iter()
        .find(|i| i.image == peer_member.image)
        .and_then(|i| i.snap_id)
        .ok_or_else(|| Error::new(format!("snapshot {} lacks {name}", info.name), libc::ENOENT))?;
    Ok((peer_member, snap_id))
}

/// One member's copy: run on a thread of its own with the stop flag and a progress callback
/// (`copied up to`, `bytes read`).
pub(crate) type CopyJob =
    Box<dyn FnOnce(&AtomicBool, &mut dyn FnMut(u64, u64)) -> rbd_cg_rados::RadosResult<()> + Send>;

/// How [`Run::run_copies`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopiesEnd {
    /// Every copy is complete.
    Done,
    /// The group was promoted meanwhile.
    Promoted,
    /// The daemon stops (or lost its lease); progress is recorded.
    Stopped,
}

/// A member of the primary.
pub(crate) struct PeerMember {
    pub(crate) name: String,
    pub(crate) image: ImageRef,
    pub(crate) tag: u32,
    pub(crate) size: u64,
    pub(crate) order: u8,
    pub(crate) features: u64,
    pub(crate) pool: String,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn label(location: &PoolSpec, name: &str) -> String {
    format!("{location}/{name}")
}

/// Mirrors group `name` of `location` once: until it is stopped, promoted, idle or fails.
pub fn mirror_group(
    ctx: &Context,
    rt: &Runtime,
    location: &PoolSpec,
    name: &str,
    lost: &AtomicBool,
) -> Result<Outcome> {
    let group_label = label(location, name);
    let peer = Groups::open(&ctx.peer, location)?;
    let Ok(peer_id) = peer.group_id(name) else { return Ok(Outcome::Idle) };
    let Some(peer_record) = peer.mirror_record(&peer_id)? else { return Ok(Outcome::Idle) };
    let local = Groups::open(&ctx.local, location)
        .map_err(|e| e.context(format!("the local pool and namespace of {group_label}")))?;
    let local_id = local.dir_entry_id(name)?;
    let local_record = match &local_id {
        Some(id) => local.mirror_record(id)?,
        None => None,
    };
    if let Some(record) = &local_record {
        if record.role == MirrorRole::Primary {
            ctx.metrics.set_state(&group_label, "primary");
            return Ok(Outcome::Idle);
        }
        if record.diverged() && !record.resync_requested && record.replay.bootstrap.is_none() {
            // A demoted former primary: its data may have diverged; only `resync` overwrites it.
            ctx.metrics.set_state(&group_label, "stopped");
            return Ok(Outcome::Idle);
        }
        if record.replay.phase == ReplayPhase::Disconnected && !record.resync_requested {
            ctx.metrics.set_state(&group_label, "disconnected");
            return Ok(Outcome::Idle);
        }
    }
    if peer_record.role != MirrorRole::Primary && local_record.is_none() {
        return Ok(Outcome::Idle); // nothing to copy from a demoted primary we never copied
    }
    let source = PeerGroup {
        fsid: ctx.peer_fsid.clone(),
        pool_id: peer.ioctx().pool_id(),
        namespace: location.namespace.clone(),
        group_id: peer_id.clone(),
    };
    // The primary's members: by journal tag (journal mode), in member order (snapshot mode).
    let (peer_members, journal_options) = match peer_record.mode {
        MirrorMode::Journal => {
            let status = journal_status(peer.ioctx(), &peer_id)?;
            let members: Vec<(u32, ImageRef)> =
                status.journal.members.iter().map(|m| (m.tag, m.image.clone())).collect();
            let options =
                JournalOptions { segment_size: status.journal.segment_size, max_bytes: status.journal.max_bytes };
            (peer_members(ctx, &members)?, options)
        }
        MirrorMode::Snapshot => {
            let members: Vec<(u32, ImageRef)> =
                peer.list_images(name)?.into_iter().zip(1u32..).map(|(m, tag)| (tag, m.image)).collect();
            (peer_members(ctx, &members)?, JournalOptions::default())
        }
    };

    // 1. Set-up.
    let local_id = match local_record {
        Some(_) => local_id.unwrap_or_default(),
        None => set_up(ctx, &local, name, &peer_members, &source, &peer_record, &journal_options)?,
    };
    let record = local.mirror_record(&local_id)?.ok_or_else(|| Error::new("mirror record vanished", libc::ENOENT))?;
    if record.mode != peer_record.mode {
        return Err(Error::new(
            format!(
                "group {group_label} is mirrored in {} mode here, in {} mode on the primary",
                record.mode.as_str(),
                peer_record.mode.as_str()
            ),
            libc::EINVAL,
        )
        .with_hint("Disable mirroring here and let the daemon set the copy up again."));
    }

    let local_status = journal_status(local.ioctx(), &local_id)?;
    let held = open_members(&ctx.local, &local_status.journal, &ctx.description)?;
    let targets = targets(&held, &peer_members)?;
    let mut run = Run {
        ctx,
        rt,
        local: &local,
        local_id: local_id.clone(),
        peer: &peer,
        peer_id: peer_id.clone(),
        name,
        group_label: group_label.clone(),
        targets,
        state: record.replay.clone(),
        lost,
        consumer: mirror_consumer(&ctx.local_fsid),
        clear_resync: false,
        held: &held,
    };
    if record.mode == MirrorMode::Snapshot {
        if record.resync_requested || run.state.primary.as_ref() != Some(&source) {
            run.state =
                ReplayState { primary: Some(source.clone()), phase: ReplayPhase::Syncing, ..ReplayState::idle() };
            run.clear_resync = record.resync_requested;
        } else if record.diverged() && run.state.bootstrap.is_none() {
            return Ok(Outcome::Idle);
        }
        return run.snapshots(&peer_members);
    }

    // 2. Bootstrap.
    let needs_bootstrap = record.resync_requested
        || record.diverged()
        || run.state.primary.as_ref() != Some(&source)
        || run.state.bootstrap.is_some()
        || run.state.last_snapshot.is_none();
    if needs_bootstrap {
        if peer_record.role != MirrorRole::Primary {
            return Ok(Outcome::Idle);
        }
        // A resync, a new primary, or a diverged copy starts over; a bootstrap in progress
        // (a resync interrupted by a crash included) resumes.
        let fresh = record.resync_requested
            || run.state.primary.as_ref() != Some(&source)
            || (record.diverged() && run.state.bootstrap.is_none());
        if fresh {
            run.state =
                ReplayState { primary: Some(source.clone()), phase: ReplayPhase::Syncing, ..ReplayState::idle() };
            run.clear_resync = record.resync_requested;
        }
        match run.bootstrap(&peer_members, &record)? {
            Outcome::Again => {}
            other => return Ok(other),
        }
    }

    // 3. Replay.
    run.replay()
}

/// The primary's members (with their journal tags), with what a copy needs of each.
fn peer_members(ctx: &Context, members: &[(u32, ImageRef)]) -> Result<Vec<PeerMember>> {
    let mut out = Vec::with_capacity(members.len());
    for (tag, image) in members {
        let member = rbd_cg_contract::journal::JournalMember { tag: *tag, image: image.clone() };
        let (label, name) = rbd_cg_journal::members::label(&ctx.peer, &member.image);
        let name = name.ok_or_else(|| Error::new(format!("primary member {label} has no name"), libc::ENOENT))?;
        let direct = DirectImage::open(&ctx.peer, &member.image)?;
        out.push(PeerMember {
            name,
            image: member.image.clone(),
            tag: member.tag,
            size: direct.size(),
            order: direct.object_size().trailing_zeros() as u8,
            features: direct.features(),
            pool: ctx.peer.pool_name(member.image.pool_id)?,
        });
    }
    Ok(out)
}

/// Step 1: the secondary group, its images, members, journal (in both modes: it is what
/// fences the members against librbd writers) and mirror record.
fn set_up(
    ctx: &Context,
    local: &Groups,
    name: &str,
    members: &[PeerMember],
    source: &PeerGroup,
    peer_record: &MirrorRecord,
    journal_options: &JournalOptions,
) -> Result<String> {
    let id = match local.dir_entry_id(name)? {
        Some(id) => {
            // Ours from an interrupted set-up only if it holds nothing but the primary's members.
            let existing = local.list_images(name)?;
            let foreign = existing.iter().any(|m| !members.iter().any(|p| Some(&p.name) == m.name.as_ref()));
            if foreign {
                return Err(Error::new(
                    format!("a local group {name} exists and is not a mirror of the primary's"),
                    libc::EEXIST,
                )
                .with_hint("Rename or remove the local group, or disable mirroring of this group."));
            }
            id
        }
        None => local.create(name)?,
    };
    let attached: Vec<String> = local.list_images(name)?.into_iter().filter_map(|m| m.name).collect();
    for member in members {
        let io = ctx.local.ioctx(&member.pool)?;
        let mut io = io;
        io.set_namespace(&member_namespace(member))?;
        match image_create_with_order(
            &io,
            &member.name,
            member.size,
            Some(member.features & COPIED_FEATURES),
            Some(member.order),
        ) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {
                let size = Image::open_read_only(&io, &member.name)?.size()?;
                if size != member.size {
                    return Err(Error::new(
                        format!("local image {} is {size} bytes, the primary's {}", member.name, member.size),
                        libc::EINVAL,
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        }
        if !attached.contains(&member.name) {
            let spec = ImageSpec {
                location: PoolSpec { pool: member.pool.clone(), namespace: member_namespace(member) },
                name: member.name.clone(),
            };
            local.add_image(name, &spec, MAX_GROUP_MEMBERS)?;
        }
    }
    let journaled =
        journal_status(local.ioctx(), &id).map(|s| s.journal.state == JournalState::Enabled).unwrap_or(false);
    if !journaled {
        local.journal_enable(name, journal_options)?;
    }
    local.mirror_record_enable(
        &id,
        peer_record.mode,
        MirrorRole::NonPrimary,
        peer_record.interval_secs.max(rbd_cg_contract::mirror::MIN_INTERVAL_SECS),
        Some(source.clone()),
    )?;
    log::info!("group {}/{name}: secondary set up ({} members)", local.location(), members.len());
    Ok(id)
}

fn member_namespace(member: &PeerMember) -> String {
    member.image.namespace.clone()
}

/// The local members by the primary's journal tags.
fn targets(held: &[Member], peer: &[PeerMember]) -> Result<HashMap<u32, Arc<ImageSlot>>> {
    let mut map = HashMap::new();
    for member in peer {
        let local = held.iter().find(|m| m.name.as_deref() == Some(member.name.as_str())).ok_or_else(|| {
            Error::new(format!("the primary's member {} is not a member here", member.name), libc::ENOENT)
                .with_hint("Membership cannot change while a group is journaled; `rbd-cg mirror resync` after it did.")
        })?;
        map.insert(member.tag, Arc::clone(&local.image_io));
    }
    Ok(map)
}

/// One mirroring run of one group.
pub(crate) struct Run<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) rt: &'a Runtime,
    pub(crate) local: &'a Groups,
    pub(crate) local_id: String,
    pub(crate) peer: &'a Groups,
    pub(crate) peer_id: String,
    pub(crate) name: &'a str,
    pub(crate) group_label: String,
    pub(crate) targets: HashMap<u32, Arc<ImageSlot>>,
    pub(crate) state: ReplayState,
    pub(crate) lost: &'a AtomicBool,
    pub(crate) consumer: String,
    pub(crate) clear_resync: bool,
    /// The local members, held (their locks cut snapshot-mode snapshots).
    pub(crate) held: &'a [Member],
}

impl Run<'_> {
    pub(crate) fn should_stop(&self) -> bool {
        self.ctx.stop.load(Ordering::SeqCst) || self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn gl(&self) -> GroupLabel {
        GroupLabel { group: self.group_label.clone() }
    }

    /// Records the state; `Ok(false)` when the group was promoted (`EROFS`).
    pub(crate) fn save(&mut self) -> Result<bool> {
        self.state.daemon = self.ctx.description.clone();
        self.state.updated_ms = now_ms();
        match self.local.mirror_set_replay(&self.local_id, &self.state, self.clear_resync) {
            Ok(()) => {
                self.clear_resync = false;
                Ok(true)
            }
            Err(e) if e.errno() == libc::EROFS => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs member copies in parallel, each on a thread of its own (`index`: its place in
    /// the round's `bootstrap.members`), and records their progress every 200 ms. The copies
    /// stop early when the daemon stops, loses its lease, or the group is promoted (the
    /// record refuses); the first failure stops the others and is returned.
    pub(crate) fn run_copies(&mut self, jobs: Vec<(usize, CopyJob)>) -> Result<CopiesEnd> {
        let members = self.state.bootstrap.as_ref().map(|b| b.members.clone()).unwrap_or_default();
        let progress = Arc::new(Mutex::new(members));
        let failed: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let synced = self.ctx.metrics.bytes_synced.get_or_create(&self.gl()).clone();
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(index, job)| {
                let (progress, failed, stop, synced) =
                    (Arc::clone(&progress), Arc::clone(&failed), Arc::clone(&stop), synced.clone());
                std::thread::spawn(move || {
                    let mut report = |copied: u64, bytes: u64| {
                        if let Some(member) = progress.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index) {
                            member.copied = copied;
                        }
                        synced.inc_by(bytes);
                    };
                    if let Err(e) = job(&stop, &mut report) {
                        stop.store(true, Ordering::SeqCst);
                        failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e.into());
                    }
                })
            })
            .collect();
        let mut promoted = false;
        while handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(200));
            if self.should_stop() {
                stop.store(true, Ordering::SeqCst);
            }
            if let Some(b) = self.state.bootstrap.as_mut() {
                b.members = progress.lock().unwrap_or_else(PoisonError::into_inner).clone();
            }
            if !stop.load(Ordering::SeqCst) && !self.save()? {
                promoted = true;
                stop.store(true, Ordering::SeqCst);
            }
        }
        for h in handles {
            let _ = h.join();
        }
        if let Some(b) = self.state.bootstrap.as_mut() {
            b.members = progress.lock().unwrap_or_else(PoisonError::into_inner).clone();
        }
        if let Some(e) = failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = self.save();
            return Err(e);
        }
        if promoted {
            return Ok(CopiesEnd::Promoted);
        }
        if self.should_stop() {
            return Ok(if self.save()? { CopiesEnd::Stopped } else { CopiesEnd::Promoted });
        }
        Ok(CopiesEnd::Done)
    }

    /// Our consumer on the primary at `position` (`reset`: registering anew).
    fn set_consumer(&self, position: u64, reset: bool) -> Result<()> {
        let request = ConsumerSetRequest {
            group_id: self.peer_id.clone(),
            consumer: ConsumerRecord {
                name: self.consumer.clone(),
                state: ConsumerState::Connected,
                position,
                updated_ms: now_ms(),
                data: Vec::new(),
            },
            reset,
        };
        Ok(self.peer.ioctx().call_write(&header_object(&self.peer_id), &JOURNAL_CONSUMER_SET, &request)?)
    }

    /// Step 2: bootstrap (or resume one).
    fn bootstrap(&mut self, peer_members: &[PeerMember], record: &MirrorRecord) -> Result<Outcome> {
        let _ = record;
        self.ctx.metrics.set_state(&self.group_label, "syncing");
        self.state.phase = ReplayPhase::Syncing;
        // A recorded snapshot that still exists is resumed; otherwise a new one is cut.
        let resumable = match &self.state.bootstrap {
            Some(b) if !b.members.is_empty() => self.peer.snap_info(self.name, &b.snap_name).is_ok(),
            _ => false,
        };
        if !resumable {
            if let Some(old) = self.state.bootstrap.take() {
                let _ = self.peer.snap_remove(self.name, &old.snap_name);
            }
            let status = journal_status(self.peer.ioctx(), &self.peer_id)?;
            let from = status.consumers.iter().find(|c| c.name == "local").map_or(0, |c| c.position);
            self.set_consumer(from.max(status.journal.trimmed_seq), true)?;
            let fsid8: String = self.ctx.local_fsid.chars().take(8).collect();
            let snap_name = format!("mirror-{fsid8}-{}", now_ms());
            self.state.bootstrap = Some(Bootstrap { snap_name: snap_name.clone(), position: 0, members: Vec::new() });
            self.state.description = format!("bootstrapping from snapshot {snap_name}");
            if !self.save()? {
                return Ok(Outcome::Promoted);
            }
            let info = self.peer.snap_create(self.name, &snap_name, &SnapCreateOptions::default())?;
            let position = info.journal_position.ok_or_else(|| {
                Error::new(format!("snapshot {snap_name} of the primary has no journal position"), libc::EINVAL)
            })?;
            let members = peer_members
                .iter()
                .map(|m| MemberSync { name: m.name.clone(), image: m.image.clone(), size: m.size, copied: 0 })
                .collect();
            self.state.bootstrap = Some(Bootstrap { snap_name, position, members });
            if !self.save()? {
                return Ok(Outcome::Promoted);
            }
        }
        let Some(bootstrap) = self.state.bootstrap.clone() else {
            return Err(Error::new("bootstrap state vanished", libc::EIO));
        };
        let info = self.peer.snap_info(self.name, &bootstrap.snap_name)?;
        let started = Instant::now();
        log::info!(
            "group {}: copying {} members from snapshot {} (journal position {})",
            self.group_label,
            bootstrap.members.len(),
            bootstrap.snap_name,
            bootstrap.position
        );

        // Copy every member in parallel; progress goes to the record as it goes.
        let mut jobs = Vec::new();
        for (index, member) in bootstrap.members.iter().enumerate() {
            let (peer_member, snap_id) = member_snapshot(peer_members, &info, &member.name)?;
            let target =
                Arc::clone(self.targets.get(&peer_member.tag).ok_or_else(|| Error::new("no target", libc::EIO))?);
            let peer_io = self.ctx.peer.ioctx_in(peer_member.image.pool_id, &peer_member.image.namespace)?;
            jobs.push((index, peer_io, peer_member.image.image_id.clone(), snap_id, target, member.copied));
        }
        let bandwidth = self.ctx.sync_bandwidth;
        let jobs: Vec<(usize, CopyJob)> = jobs
            .into_iter()
            .map(|(index, peer_io, image_id, snap_id, target, from)| {
                let job: CopyJob = Box::new(move |stop, report| {
                    copy_member(&peer_io, &image_id, snap_id, target.get(), from, stop, bandwidth, report)
                });
                (index, job)
            })
            .collect();
        match self.run_copies(jobs)? {
            CopiesEnd::Done => {}
            CopiesEnd::Promoted => return Ok(Outcome::Promoted),
            CopiesEnd::Stopped => return Ok(Outcome::Stopped),
        }
        // Complete: replay from the snapshot's position.
        self.state.phase = ReplayPhase::Replaying;
        self.state.position = bootstrap.position;
        self.state.wave_end = bootstrap.position;
        self.state.bootstrap = None;
        self.state.last_snapshot = Some(MirroredSnapshot {
            name: bootstrap.snap_name.clone(),
            taken_ms: info.created_ms,
            complete_ms: now_ms(),
            local_snap_ids: Vec::new(),
        });
        self.state.description =
            format!("synced from snapshot {} in {:.1} s", bootstrap.snap_name, started.elapsed().as_secs_f64());
        if !self.save()? {
            return Ok(Outcome::Promoted);
        }
        log::info!("group {}: {}", self.group_label, self.state.description);
        self.ctx.metrics.last_sync.get_or_create(&self.gl()).set(now_ms() as f64 / 1000.0);
        if let Err(e) = self.set_consumer(bootstrap.position, false) {
            log::warn!("group {}: moving our consumer to {}: {e}", self.group_label, bootstrap.position);
        }
        self.remove_bootstrap_snapshots();
        Ok(Outcome::Again)
    }

    /// Our bootstrap snapshots on the primary that are done with (best effort).
    fn remove_bootstrap_snapshots(&self) {
        let fsid8: String = self.ctx.local_fsid.chars().take(8).collect();
        let prefix = format!("mirror-{fsid8}-");
        let current = self.state.bootstrap.as_ref().map(|b| b.snap_name.clone());
        if let Ok(snaps) = self.peer.snap_list(self.name) {
            for snap in snaps.iter().filter(|s| s.name.starts_with(&prefix) && Some(&s.name) != current.as_ref()) {
                if let Err(e) = self.peer.snap_remove(self.name, &snap.name) {
                    log::warn!("group {}: removing bootstrap snapshot {}: {e}", self.group_label, snap.name);
                }
            }
        }
    }

    /// Step 3: replay until stopped, promoted, disconnected or asked to resync.
    fn replay(&mut self) -> Result<Outcome> {
        let peer_io = self.ctx.peer.ioctx_in(self.peer.ioctx().pool_id(), self.peer.ioctx().namespace())?;
        let reader = JournalReader::new(peer_io, &self.peer_id);
        let status = journal_status(self.peer.ioctx(), &self.peer_id)?;
        // Our position counts in the journal our sync was cut from: a journal the primary
        // disabled and enabled again since starts over, and replaying it from our position
        // would skip its beginning. Only a resync can follow it.
        if self.state.last_snapshot.as_ref().is_some_and(|s| status.journal.created_ms > s.taken_ms) {
            return self.disconnected("the primary's journal was disabled and enabled again since this copy's sync");
        }
        let ours = status.consumers.iter().find(|c| c.name == self.consumer);
        if ours.is_none_or(|c| c.state == ConsumerState::Disconnected) {
            return self.disconnected("the primary no longer keeps entries for this mirror");
        }
        let mut cursor = match self.rt.block_on(reader.seek(status.journal.first_segment, self.state.position)) {
            Ok(cursor) => cursor,
            Err(e) if e.errno == libc::ERANGE => return self.disconnected(&e.to_string()),
            Err(e) => return Err(e.into()),
        };
        self.state.phase = ReplayPhase::Replaying;
        self.state.description = "replaying".into();
        if !self.save()? {
            return Ok(Outcome::Promoted);
        }
        self.ctx.metrics.set_state(&self.group_label, "replaying");
        log::info!("group {}: replaying from entry {}", self.group_label, self.state.position + 1);
        let targets: HashMap<u32, Arc<dyn Target>> =
            self.targets.iter().map(|(tag, slot)| (*tag, Arc::clone(slot) as Arc<dyn Target>)).collect();
        let mut applier = Applier::new(targets, self.state.position, MAX_APPLYING, true);
        let outcome = self.apply_journal(&reader, &mut cursor, &mut applier);
        // What was dispatched lands before the members are let go (a failure stops the rest).
        if let Err(e) = self.rt.block_on(applier.drain()) {
            log::warn!("group {}: {e}", self.group_label);
        }
        outcome
    }

    /// The replay loop: entries go to `applier` in journal order; each is applied once every
    /// entry up to its `ack_floor` and every earlier entry on the same objects is (so every
    /// state of the copy is one the primary could have crashed in). Before an entry that
    /// would write bytes written since the position was last recorded, or one past the
    /// recorded `wave_end`, everything dispatched is drained and the position recorded
    /// (`crate::waves`).
    fn apply_journal(
        &mut self,
        reader: &JournalReader,
        cursor: &mut rbd_cg_journal::reader::Cursor,
        applier: &mut Applier,
    ) -> Result<Outcome> {
        let gl = self.gl();
        let mut last_refresh = Instant::now() - REFRESH_EVERY;
        // Bytes written since the position was last recorded.
        let mut unrecorded = Extents::default();
        let mut bytes_dispatched = 0u64;
        loop {
            self.advance(applier.position(), &mut bytes_dispatched);
            if self.should_stop() {
                self.advance(self.rt.block_on(applier.drain())?, &mut bytes_dispatched);
                let _ = self.save();
                return Ok(Outcome::Stopped);
            }
            if last_refresh.elapsed() >= REFRESH_EVERY {
                last_refresh = Instant::now();
                if let Some(outcome) = self.refresh()? {
                    return Ok(outcome);
                }
            }
            let batch = self.rt.block_on(reader.read(cursor, READ_BYTES))?;
            if batch.entries.is_empty() {
                if applier.position() == applier.submitted() {
                    self.state.oldest_unapplied_ns = 0;
                    self.state.primary_head = self.state.primary_head.max(self.state.position);
                    self.ctx.metrics.last_sync.get_or_create(&gl).set(now_ms() as f64 / 1000.0);
                }
                // Let what is in flight land while waiting for more.
                let pause = self.ctx.idle_poll;
                self.rt.block_on(async move { tokio::time::sleep(pause).await });
                continue;
            }
            self.state.oldest_unapplied_ns = batch.entries[0].header.timestamp_ns;
            let batch_end = batch.entries.last().map_or(self.state.position, |e| e.header.seq);
            for entry in batch.entries {
                let h = entry.header;
                let data = h.op != EntryOp::Mark;
                if data && !self.targets.contains_key(&h.tag) {
                    return Err(Error::new(
                        format!("entry {} is for member tag {}, unknown here", h.seq, h.tag),
                        libc::EINVAL,
                    ));
                }
                if h.seq > self.state.wave_end || (data && unrecorded.overlaps(h.tag, h.offset, h.length)) {
                    let applied = self.rt.block_on(applier.drain())?;
                    self.advance(applied, &mut bytes_dispatched);
                    self.state.wave_end = batch_end.max(h.seq);
                    if !self.save()? {
                        return Ok(Outcome::Promoted);
                    }
                    unrecorded.clear();
                    // Status and metrics stay fresh while a large batch is applied.
                    if last_refresh.elapsed() >= REFRESH_EVERY {
                        last_refresh = Instant::now();
                        if let Some(outcome) = self.refresh()? {
                            return Ok(outcome);
                        }
                    }
                }
                if data {
                    unrecorded.insert(h.tag, h.offset, h.length);
                }
                bytes_dispatched += u64::from(h.payload_len);
                self.rt.block_on(applier.submit(entry))?;
            }
        }
    }

    /// The applied position moved to `applied`: the state and the metrics follow.
    fn advance(&mut self, applied: u64, bytes_dispatched: &mut u64) {
        if applied <= self.state.position {
            return;
        }
        let count = applied - self.state.position;
        self.state.position = applied;
        self.state.entries_applied += count;
        let gl = self.gl();
        self.ctx.metrics.entries_replayed.get_or_create(&gl).inc_by(count);
        // Bytes are counted as dispatched: close enough for a rate, exact once drained.
        let bytes = std::mem::take(bytes_dispatched);
        self.state.bytes_applied += bytes;
        self.ctx.metrics.bytes_replayed.get_or_create(&gl).inc_by(bytes);
    }

    /// Every second: both records, the primary's head, our consumer position, metrics.
    fn refresh(&mut self) -> Result<Option<Outcome>> {
        let gl = self.gl();
        match self.local.mirror_record(&self.local_id)? {
            Some(record) if record.role == MirrorRole::Primary => return Ok(Some(Outcome::Promoted)),
            Some(record) if record.resync_requested => return Ok(Some(Outcome::Again)),
            Some(_) => {}
            None => return Ok(Some(Outcome::Idle)),
        }
        let peer_record = self.peer.mirror_record(&self.peer_id)?;
        let status = journal_status(self.peer.ioctx(), &self.peer_id)?;
        if status.consumers.iter().any(|c| c.name == self.consumer && c.state == ConsumerState::Disconnected) {
            return self.disconnected("the primary trimmed entries this mirror had not applied").map(Some);
        }
        let head = match self.peer.journal_status(self.name) {
            Ok(info) => info.head,
            Err(_) => self.state.primary_head,
        };
        self.state.primary_head = head.max(self.state.position);
        match peer_record {
            Some(r) if r.role == MirrorRole::NonPrimary => {
                self.state.primary_demoted_at = r.demoted_at;
                if r.demoted_at.is_some_and(|at| self.state.position >= at) {
                    if self.state.phase != ReplayPhase::Stopped {
                        log::info!(
                            "group {}: the primary was demoted; everything up to it is applied",
                            self.group_label
                        );
                    }
                    self.state.phase = ReplayPhase::Stopped;
                    self.state.description = "the primary is demoted and every entry it wrote is applied".into();
                    self.ctx.metrics.set_state(&self.group_label, "stopped");
                }
            }
            Some(_) => {
                if self.state.phase == ReplayPhase::Stopped {
                    self.state.phase = ReplayPhase::Replaying;
                    self.state.description = "replaying".into();
                    self.ctx.metrics.set_state(&self.group_label, "replaying");
                }
                self.state.primary_demoted_at = None;
            }
            None => {}
        }
        if !self.save()? {
            return Ok(Some(Outcome::Promoted));
        }
        if let Err(e) = self.set_consumer(self.state.position, false) {
            if e.errno() == libc::ESTALE {
                return self.disconnected("the primary disconnected this mirror").map(Some);
            }
            log::warn!("group {}: recording our position on the primary: {e}", self.group_label);
        }
        let behind = self.state.primary_head.saturating_sub(self.state.position);
        self.ctx.metrics.entries_behind.get_or_create(&gl).set(behind as i64);
        let lag = if self.state.oldest_unapplied_ns > 0 && behind > 0 {
            (now_ms().saturating_mul(1_000_000).saturating_sub(self.state.oldest_unapplied_ns)) as f64 / 1e9
        } else {
            0.0
        };
        self.ctx.metrics.seconds_behind.get_or_create(&gl).set(lag);
        Ok(None)
    }

    fn disconnected(&mut self, why: &str) -> Result<Outcome> {
        log::warn!("group {}: disconnected: {why}; `rbd-cg mirror resync` recovers it", self.group_label);
        self.state.phase = ReplayPhase::Disconnected;
        self.state.description = format!("disconnected: {why}; run `rbd-cg mirror resync`");
        self.ctx.metrics.set_state(&self.group_label, "disconnected");
        Ok(if self.save()? { Outcome::Idle } else { Outcome::Promoted })
    }
}

/// The local I/O context of a group's location.
pub fn location_ioctx(cluster: &Cluster, location: &PoolSpec) -> Result<IoCtx> {
    let mut io = cluster.ioctx(&location.pool)?;
    io.set_namespace(&location.namespace)?;
    Ok(io)
}
