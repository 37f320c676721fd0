//! `rbd-cg mirror enable|disable|status|promote|demote|resync`: the control plane of group
//! mirroring (`docs/MIRRORING.md`). The data plane, the daemon that copies a primary group to
//! the secondary cluster, is its own crate (`rbd_cg_mirror`); this module is what both sides'
//! operators run, and what the daemon reads and writes its record through.
//!
//! Each command is one atomic class call on the group's header (`mirror_*`, `docs/FORMAT.md`
//! §11), plus, where the data path must be quiet first, documented steps around it:
//!
//! - **demote** (on the primary, journal mode): 1. no `rbd-cg nbd serve` may be writing
//!   (`EBUSY` names it); 2. a short-lived journal writer applies what is pending and releases
//!   the lease cleanly (a crashed server's lease is broken and its client blocklisted);
//!   3. `mirror_set_role` `NonPrimary` with the journal's last entry as `demoted_at`, which
//!   the class refuses while a writer holds the lease (so one that started after step 2 makes
//!   the demotion fail, never half-happen). From then on `journal_take` is refused (`EROFS`).
//! - **promote** (on a secondary): 1. without `--force`, the mirror must have applied
//!   everything up to the primary's demotion; with `--force`, only a finished first sync is
//!   required (the members are then at a crash-consistent state of the primary, whatever
//!   the primary's cluster is doing); 2. `mirror_set_role` `Primary`: the daemon's next
//!   `mirror_set_replay` fails with `EROFS`, so it stops after the entries in flight; 3. wait
//!   (up to 30 s) for the daemon to release the members' locks, else blocklist the holder
//!   and break them (a frozen or unreachable daemon). A rerun finishes an interrupted one.
//! - **resync** (on a secondary): sets `resync_requested`; the daemon copies everything again.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::groups::{now_ms, Groups};
use rbd_cg_contract::journal::{ConsumerRequest, JournalState, WriterRequest};
use rbd_cg_contract::methods::{
    JOURNAL_CONSUMER_REMOVE, MIRROR_DISABLE, MIRROR_ENABLE, MIRROR_GET, MIRROR_RESYNC, MIRROR_SET_REPLAY,
    MIRROR_SET_ROLE,
};
use rbd_cg_contract::mirror::{
    MirrorEnableRequest, MirrorGroupRequest, MirrorMode, MirrorRecord, MirrorReplayRequest, MirrorRole,
    MirrorRoleRequest, PeerGroup, ReplayPhase, ReplayState, MIRROR_CONSUMER_PREFIX,
};
use rbd_cg_contract::names::header_object;
use rbd_cg_journal::lease::ask_writer;
use rbd_cg_rados::ceph::cls_lock::RBD_LOCK_NAME;
use rbd_cg_rados::ceph::objects;

/// How long `promote` waits for the daemon to let go of the members.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// One member as `mirror status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberMirrorStatus {
    /// The image's name.
    pub image: String,
    /// `syncing`, `replaying`, `primary`, ...
    pub state: String,
    /// Percent of the image copied in the current sync (100 when not syncing).
    pub progress: f64,
}

/// A mirror consumer of the primary's journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStatus {
    /// `mirror.<secondary fsid>`.
    pub consumer: String,
    /// `connected` or `disconnected`.
    pub state: &'static str,
    /// Every entry up to this one is applied at the peer.
    pub position: u64,
    /// Entries the peer has yet to apply.
    pub entries_behind: u64,
}

/// What `mirror status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorStatus {
    /// `pool[/namespace]/group`.
    pub group: String,
    /// Whether the group is mirrored at all.
    pub enabled: bool,
    /// `journal` or `snapshot`.
    pub mode: &'static str,
    /// `primary` or `non-primary`.
    pub role: &'static str,
    /// `primary`, `syncing`, `replaying`, `stopped`, `disconnected`, `error`.
    pub state: String,
    /// What happened last.
    pub description: String,
    /// The primary's newest journal entry (as last seen, on a secondary).
    pub primary_position: u64,
    /// Every entry up to this one is applied on the mirror (on a primary: the slowest peer).
    pub mirror_position: u64,
    /// Entries not applied yet.
    pub entries_behind: u64,
    /// How old the oldest entry not applied yet is.
    pub seconds_behind: f64,
    /// The last group snapshot copied completely.
    pub last_snapshot: Option<String>,
    /// When it was complete here, ms since the Unix epoch.
    pub last_snapshot_ms: Option<u64>,
    /// Journal mode, demoted: the primary stopped at this entry.
    pub demoted_at: Option<u64>,
    /// A secondary: `resync` was asked for and not started yet.
    pub resync_requested: bool,
    /// The members.
    pub members: Vec<MemberMirrorStatus>,
    /// A primary in journal mode: its mirror consumers.
    pub peers: Vec<PeerStatus>,
    /// The daemon last at work on it.
    pub daemon: String,
    /// When the daemon last recorded its state, ms since the Unix epoch.
    pub updated_ms: u64,
}

fn role_str(role: MirrorRole) -> &'static str {
    match role {
        MirrorRole::Primary => "primary",
        MirrorRole::NonPrimary => "non-primary",
    }
}

impl Groups {
    /// The mirror record of group `group_id` (`None`: not mirrored).
    pub fn mirror_record(&self, group_id: &str) -> Result<Option<MirrorRecord>> {
        let request = MirrorGroupRequest { group_id: group_id.into() };
        match self.ioctx.call(&header_object(group_id), &MIRROR_GET, &request) {
            Ok(record) => Ok(Some(record)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The id of group `name` if it exists and is complete (`None` when absent).
    pub fn dir_entry_id(&self, name: &str) -> Result<Option<String>> {
        match self.dir_entry(name)? {
            None => Ok(None),
            Some(entry) if entry.state == rbd_cg_contract::records::DirState::Ready => Ok(Some(entry.id)),
            Some(entry) => Err(Error::new(format!("group {} is {:?}", self.spec(name), entry.state), libc::EBUSY)
                .with_hint("An earlier operation on it was interrupted: rerun it, or run `rbd-cg repair`.")),
        }
    }

    /// The id of group `name` (complete), for the mirror daemon.
    pub fn group_id(&self, name: &str) -> Result<String> {
        self.ready_group_id(name, "mirroring")
    }

    /// Records the group mirrored; the low-level step behind `mirror enable` and the daemon's
    /// creation of a secondary.
    pub fn mirror_record_enable(
        &self,
        group_id: &str,
        mode: MirrorMode,
        role: MirrorRole,
        interval_secs: u64,
        primary: Option<PeerGroup>,
    ) -> Result<()> {
        let request =
            MirrorEnableRequest { group_id: group_id.into(), mode, role, interval_secs, now_ms: now_ms(), primary };
        Ok(self.ioctx.call_write(&header_object(group_id), &MIRROR_ENABLE, &request)?)
    }

    /// The daemon records its state; `EROFS` once the group was promoted.
    pub fn mirror_set_replay(&self, group_id: &str, replay: &ReplayState, clear_resync: bool) -> Result<()> {
        let request = MirrorReplayRequest { group_id: group_id.into(), replay: replay.clone(), clear_resync };
        Ok(self.ioctx.call_write(&header_object(group_id), &MIRROR_SET_REPLAY, &request)?)
    }

    /// `mirror enable`: group `group` becomes the primary of a mirrored group. Journal mode
    /// needs its journal enabled; snapshot mode takes a group snapshot every `interval_secs`.
    pub fn mirror_enable(&self, group: &str, mode: MirrorMode, interval_secs: u64) -> Result<()> {
        let id = self.ready_group_id(group, "mirror enable")?;
        if mode == MirrorMode::Journal {
            let journaled = self.journal(&id)?.is_some_and(|s| s.journal.state == JournalState::Enabled);
            if !journaled {
                return Err(Error::new(
                    format!("group {} has no journal: journal mode replays it", self.spec(group)),
                    libc::EINVAL,
                )
                .with_hint("Run `rbd-cg journal enable` on it first, or use `--mode snapshot`."));
            }
        }
        if let Some(existing) = self.mirror_record(&id)? {
            if existing.mode != mode || existing.role != MirrorRole::Primary {
                return Err(Error::new(
                    format!(
                        "group {} is mirrored already ({} mode, {})",
                        self.spec(group),
                        existing.mode.as_str(),
                        role_str(existing.role)
                    ),
                    libc::EEXIST,
                )
                .with_hint("`rbd-cg mirror disable` it first to change the mode."));
            }
            return Ok(());
        }
        self.mirror_record_enable(&id, mode, MirrorRole::Primary, interval_secs, None)
    }

    /// `mirror disable`: the group is no longer mirrored. On a primary the mirror consumers
    /// of its journal go too, so that trimming no longer waits for them. The secondary's
    /// copy stays as it is (`non-primary`) until mirroring is disabled there as well.
    pub fn mirror_disable(&self, group: &str) -> Result<()> {
        let id = self.ready_group_id(group, "mirror disable")?;
        let header = header_object(&id);
        self.ioctx.call_write(&header, &MIRROR_DISABLE, &MirrorGroupRequest { group_id: id.clone() })?;
        if let Some(status) = self.journal(&id)? {
            for consumer in status.consumers.iter().filter(|c| c.name.starts_with(MIRROR_CONSUMER_PREFIX)) {
                let request = ConsumerRequest { group_id: id.clone(), name: consumer.name.clone() };
                self.ioctx.call_write(&header, &JOURNAL_CONSUMER_REMOVE, &request)?;
            }
        }
        Ok(())
    }

    /// `mirror status`.
    pub fn mirror_status(&self, group: &str) -> Result<MirrorStatus> {
        let id = self.ready_group_id(group, "mirror status")?;
        let spec = self.spec(group);
        let Some(record) = self.mirror_record(&id)? else {
            return Ok(MirrorStatus {
                group: spec,
                enabled: false,
                mode: "",
                role: "",
                state: "disabled".into(),
                description: "mirroring is not enabled".into(),
                primary_position: 0,
                mirror_position: 0,
                entries_behind: 0,
                seconds_behind: 0.0,
                last_snapshot: None,
                last_snapshot_ms: None,
                demoted_at: None,
                resync_requested: false,
                members: Vec::new(),
                peers: Vec::new(),
                daemon: String::new(),
                updated_ms: 0,
            });
        };
        let replay = &record.replay;
        let member_names: Vec<String> = self
            .list_images(group)?
            .into_iter()
            .map(|m| m.name.unwrap_or_else(|| format!("id {}", m.image.image_id)))
            .collect();
        let mut status = MirrorStatus {
            group: spec,
            enabled: true,
            mode: record.mode.as_str(),
            role: role_str(record.role),
            state: String::new(),
            description: replay.description.clone(),
            primary_position: replay.primary_head,
            mirror_position: replay.position,
            entries_behind: replay.primary_head.saturating_sub(replay.position),
            seconds_behind: 0.0,
            last_snapshot: replay.last_snapshot.as_ref().map(|s| s.name.clone()),
            last_snapshot_ms: replay.last_snapshot.as_ref().map(|s| s.complete_ms),
            demoted_at: record.demoted_at.or(replay.primary_demoted_at),
            resync_requested: record.resync_requested,
            members: Vec::new(),
            peers: Vec::new(),
            daemon: replay.daemon.clone(),
            updated_ms: replay.updated_ms,
        };
        match record.role {
            MirrorRole::Primary => {
                status.state = "primary".into();
                status.description = match record.mode {
                    MirrorMode::Journal => "local group is primary (journal mode)".into(),
                    MirrorMode::Snapshot => {
                        format!("local group is primary (snapshot mode, every {} s)", record.interval_secs)
                    }
                };
                if let Some(journal) = self.journal(&id)? {
                    let head = self.journal_status(group)?.head;
                    status.primary_position = head;
                    status.peers = journal
                        .consumers
                        .iter()
                        .filter(|c| c.name.starts_with(MIRROR_CONSUMER_PREFIX))
                        .map(|c| PeerStatus {
                            consumer: c.name.clone(),
                            state: match c.state {
                                rbd_cg_contract::journal::ConsumerState::Connected => "connected",
                                rbd_cg_contract::journal::ConsumerState::Disconnected => "disconnected",
                            },
                            position: c.position,
                            entries_behind: head.saturating_sub(c.position),
                        })
                        .collect();
                    status.mirror_position = status.peers.iter().map(|p| p.position).min().unwrap_or(0);
                    status.entries_behind = head.saturating_sub(status.mirror_position);
                }
                status.members = member_names
                    .into_iter()
                    .map(|image| MemberMirrorStatus { image, state: "primary".into(), progress: 100.0 })
                    .collect();
            }
            MirrorRole::NonPrimary => {
                status.state = replay.phase.as_str().into();
                if record.diverged() {
                    status.state = "stopped".into();
                    status.description = "demoted: `rbd-cg mirror resync` makes it a copy of the new primary".into();
                }
                if replay.oldest_unapplied_ns > 0 {
                    let now_ns = now_ms().saturating_mul(1_000_000);
                    status.seconds_behind = now_ns.saturating_sub(replay.oldest_unapplied_ns) as f64 / 1e9;
                }
                status.members = member_names
                    .into_iter()
                    .map(|image| {
                        let sync = replay.bootstrap.as_ref().and_then(|b| b.members.iter().find(|m| m.name == image));
                        match sync {
                            Some(m) => MemberMirrorStatus {
                                image,
                                state: "syncing".into(),
                                progress: if m.size == 0 { 100.0 } else { m.copied as f64 * 100.0 / m.size as f64 },
                            },
                            None => MemberMirrorStatus {
                                image,
                                state: status.state.clone(),
                                progress: if replay.last_snapshot.is_some() { 100.0 } else { 0.0 },
                            },
                        }
                    })
                    .collect();
            }
        }
        Ok(status)
    }

    /// `mirror demote`; see the module documentation.
    pub fn mirror_demote(&self, group: &str) -> Result<()> {
        let id = self.ready_group_id(group, "mirror demote")?;
        let record = self.mirror_record(&id)?.ok_or_else(|| not_mirrored(&self.spec(group)))?;
        if record.role == MirrorRole::NonPrimary {
            return Ok(());
        }
        let demoted_at = match record.mode {
            MirrorMode::Journal => {
                let heard = ask_writer(&self.ioctx, &id, &WriterRequest::Ping, 5_000)?;
                if let Some(answer) = heard.answers.iter().find(|a| a.reply.errno == 0) {
                    return Err(Error::new(
                        format!(
                            "group {} is being written by {}: stop it before demoting",
                            self.spec(group),
                            answer.reply.message
                        ),
                        libc::EBUSY,
                    ));
                }
                self.journal_replay(group)?;
                Some(self.journal_status(group)?.head)
            }
            MirrorMode::Snapshot => {
                // 1. Fence the members (the journal's fence: stock writers get EROFS), so
                // that 2. the final group snapshot holds every write the group took.
                // The mirror daemon cuts its snapshots on this group: while one is being cut
                // the header refuses others with EBUSY, for a moment.
                let options = crate::journal::JournalOptions::default();
                match self.journal(&id)? {
                    // Absent, or an enable a crash or a refusal interrupted: (finish) enabling.
                    None => retry_busy(|| self.journal_enable(group, &options))?,
                    Some(status) if status.journal.state != JournalState::Enabled => {
                        retry_busy(|| self.journal_enable(group, &options))?
                    }
                    Some(_) => {
                        let heard = ask_writer(&self.ioctx, &id, &WriterRequest::Ping, 5_000)?;
                        if let Some(answer) = heard.answers.iter().find(|a| a.reply.errno == 0) {
                            return Err(Error::new(
                                format!(
                                    "group {} is being written by {}: stop it first",
                                    self.spec(group),
                                    answer.reply.message
                                ),
                                libc::EBUSY,
                            ));
                        }
                    }
                }
                let name = format!("mirror-final-{}", now_ms());
                let info =
                    retry_busy(|| self.snap_create(group, &name, &crate::snapshots::SnapCreateOptions::default()))?;
                Some(info.seq)
            }
        };
        let request =
            MirrorRoleRequest { group_id: id.clone(), role: MirrorRole::NonPrimary, demoted_at, now_ms: now_ms() };
        self.ioctx
            .call_write(&header_object(&id), &MIRROR_SET_ROLE, &request)
            .map_err(|e| Error::from(e).context(format!("demoting group {}", self.spec(group))))?;
        Ok(())
    }

    /// `mirror promote`; see the module documentation.
    pub fn mirror_promote(&self, group: &str, force: bool) -> Result<()> {
        let id = self.ready_group_id(group, "mirror promote")?;
        let spec = self.spec(group);
        let record = self.mirror_record(&id)?.ok_or_else(|| not_mirrored(&spec))?;
        if record.role == MirrorRole::NonPrimary {
            let replay = &record.replay;
            // Snapshot mode: a round in progress is rolled back to the last complete one.
            let synced =
                replay.last_snapshot.is_some() && (replay.bootstrap.is_none() || record.mode == MirrorMode::Snapshot);
            if !synced && !record.diverged() {
                return Err(Error::new(
                    format!("group {spec} has not finished its first sync: its members are not a consistent copy"),
                    libc::EBUSY,
                )
                .with_hint("Wait for `rbd-cg mirror status` to say `replaying`."));
            }
            if !force {
                let caught_up = match (record.mode, replay.primary_demoted_at) {
                    (MirrorMode::Journal, Some(at)) => replay.position >= at,
                    (MirrorMode::Snapshot, Some(_)) => true,
                    (_, None) => false,
                };
                if !caught_up && !record.diverged() {
                    return Err(Error::new(
                        format!(
                            "group {spec}: the primary is not demoted, or the mirror has not applied everything up \
                             to its demotion (applied {}, demoted at {})",
                            replay.position,
                            replay.primary_demoted_at.map_or_else(|| "-".to_owned(), |p| p.to_string())
                        ),
                        libc::EBUSY,
                    )
                    .with_hint(
                        "Demote the primary and wait for `mirror status` to say `stopped`, or use --force if the \
                         primary is lost.",
                    ));
                }
            }
            let request = MirrorRoleRequest {
                group_id: id.clone(),
                role: MirrorRole::Primary,
                demoted_at: None,
                now_ms: now_ms(),
            };
            self.ioctx.call_write(&header_object(&id), &MIRROR_SET_ROLE, &request)?;
        }
        let record = self.mirror_record(&id)?.ok_or_else(|| not_mirrored(&spec))?;
        self.wait_members_released(group, &record.replay.daemon)?;
        if record.mode == MirrorMode::Snapshot {
            self.promote_snapshot_mode(group, &id, &record)?;
        }
        Ok(())
    }

    /// The steps of a snapshot-mode promotion after the role changed: the members go back
    /// to librbd writers (the journal's fence comes off), and a round that was in progress
    /// is rolled back to the last complete group snapshot.
    ///
    /// The record keeps the round (a primary's replay state no longer changes), so the
    /// journal tells a rerun what is done: once it is gone, the promotion finished (or a
    /// crash fell between the journal's removal and the rollback, the one window a rerun
    /// does not close; `docs/OPERATIONS.md`). A rerun never rolls back a group that writers
    /// may have used since.
    fn promote_snapshot_mode(&self, group: &str, id: &str, record: &MirrorRecord) -> Result<()> {
        if self.journal(id)?.is_none() {
            return Ok(());
        }
        self.journal_disable(group)?;
        let (Some(_), Some(last)) = (&record.replay.bootstrap, &record.replay.last_snapshot) else {
            return Ok(());
        };
        let snap = rbd_cg_contract::mirror::local_snap_name(&last.name);
        for member in self.list_images(group)? {
            let Some(name) = member.name else { continue };
            let io = self.cluster.ioctx_in(member.image.pool_id, &member.image.namespace)?;
            let mut image = rbd_cg_rados::image::Image::open(&io, &name)?;
            image.snap_rollback_with_progress(&snap, |_, _| {})?;
            log::info!("{name}: rolled back to {snap}, the last complete group snapshot");
        }
        Ok(())
    }

    /// Step 3 of promote: the daemon lets go of the members' locks, or is fenced.
    /// `daemon` is the daemon's description, which ends with its entity (`client.N`).
    fn wait_members_released(&self, group: &str, daemon: &str) -> Result<()> {
        let members = self.list_images(group)?;
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        for member in members {
            let io = self.cluster.ioctx_in(member.image.pool_id, &member.image.namespace)?;
            let header = objects::image_header(&member.image.image_id);
            loop {
                let lockers = io.list_lockers(&header, RBD_LOCK_NAME)?.lockers;
                let Some(holder) = lockers.first() else { break };
                if daemon.is_empty() || !daemon.ends_with(&format!(" {}", holder.client)) {
                    break; // a writer of the promoted group already
                }
                // A holder that no longer watches the header is dead (killed, or its watch
                // timed out): no need to wait for it.
                let watching = rbd_cg_rados::image::Image::open_by_id_read_only(&io, &member.image.image_id)
                    .and_then(|image| image.watchers())
                    .map(|w| w.iter().any(|w| w.addr == holder.addr))
                    .unwrap_or(true);
                if !watching || Instant::now() >= deadline {
                    log::warn!(
                        "mirror daemon {} ({}) still holds {}: blocklisting it and breaking its lock",
                        holder.client,
                        holder.addr,
                        member.name.as_deref().unwrap_or(&member.image.image_id)
                    );
                    self.cluster.blocklist_add(&holder.addr, 0)?;
                    match io.break_lock(&header, RBD_LOCK_NAME, &holder.client, &holder.cookie) {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// `mirror resync`: the daemon copies the whole group again from the primary.
    pub fn mirror_resync(&self, group: &str) -> Result<()> {
        let id = self.ready_group_id(group, "mirror resync")?;
        let spec = self.spec(group);
        let record = self.mirror_record(&id)?.ok_or_else(|| not_mirrored(&spec))?;
        if record.role == MirrorRole::Primary {
            return Err(Error::new(format!("group {spec} is primary: only a copy is resynchronized"), libc::EINVAL)
                .with_hint("Demote it first (`rbd-cg mirror demote`)."));
        }
        Ok(self.ioctx.call_write(&header_object(&id), &MIRROR_RESYNC, &MirrorGroupRequest { group_id: id.clone() })?)
    }
}

/// A daemon's record of "nothing yet".
pub fn idle_replay() -> ReplayState {
    ReplayState { phase: ReplayPhase::Idle, ..ReplayState::idle() }
}

/// Runs `step` again while it fails with `EBUSY`, for up to 30 s (another client's group
/// snapshot, e.g. the mirror daemon's, holds the header for a moment).
fn retry_busy<T>(mut step: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match step() {
            Err(e) if e.errno() == libc::EBUSY && Instant::now() < deadline => {
                log::debug!("busy, retrying: {e}");
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

fn not_mirrored(spec: &str) -> Error {
    Error::new(format!("group {spec} is not mirrored"), libc::ENOENT)
        .with_hint("`rbd-cg mirror enable` it on the primary first.")
}
