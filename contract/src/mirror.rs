//! Group mirroring: a second cluster that is always a crash-consistent copy of the whole
//! group (`docs/MIRRORING.md`, `docs/FORMAT.md` §11).
//!
//! One record per mirrored group, `cg_header.<group id>` omap `mirror` → [`MirrorRecord`],
//! on both sides:
//! - on the **primary** it says that the group is mirrored, how ([`MirrorMode`]), and, once
//!   demoted, at which journal position it stopped taking writes;
//! - on a **secondary** (role [`MirrorRole::NonPrimary`]) it also holds where the mirror
//!   daemon is ([`ReplayState`]): which primary it copies, the bootstrap's progress, and the
//!   journal position up to which every entry has been applied to the local members.
//!
//! The record lives on the group's header so that the class can refuse, atomically with the
//! role, what a non-primary group must not do (take the journal writer lease, change
//! membership, create, remove or roll back snapshots, disable its journal), and so that a
//! promotion is one atomic step after which a stale daemon's next `mirror_set_replay` fails.

use serde::{Deserialize, Serialize};

use crate::records::ImageRef;
use crate::versioned;

/// Omap key of the [`MirrorRecord`] on `cg_header.<id>`.
pub const MIRROR_KEY: &str = "mirror";
/// Prefix of the journal consumers that mirror daemons register on the primary:
/// `mirror.<secondary cluster fsid>`.
pub const MIRROR_CONSUMER_PREFIX: &str = "mirror.";
/// Shortest snapshot-mode interval.
pub const MIN_INTERVAL_SECS: u64 = 1;
/// Longest snapshot-mode interval (a week).
pub const MAX_INTERVAL_SECS: u64 = 7 * 24 * 3600;
/// Most members a replay state tracks.
pub const MAX_REPLAY_MEMBERS: usize = 1024;
/// Longest free-text field (descriptions, daemon names).
pub const MAX_TEXT_LEN: usize = 4096;

/// The consumer name of the mirror daemon of the secondary cluster `fsid`.
pub fn mirror_consumer(fsid: &str) -> String {
    format!("{MIRROR_CONSUMER_PREFIX}{fsid}")
}

/// The secondary's member snapshot holding mirrored group snapshot `name` (snapshot mode;
/// an ordinary user-namespace snapshot, visible to `rbd snap ls` on the secondary).
pub fn local_snap_name(name: &str) -> String {
    format!("rbd-cg-mirror.{name}")
}

/// How the group is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MirrorMode {
    /// The group journal is replayed on the secondary in order (requires a journaled group).
    Journal,
    /// Crash-consistent group snapshots on an interval, shipped as differences.
    Snapshot,
}

impl MirrorMode {
    /// `journal` or `snapshot`.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorMode::Journal => "journal",
            MirrorMode::Snapshot => "snapshot",
        }
    }
}

/// Which side takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MirrorRole {
    /// Takes writes; its changes are mirrored.
    Primary,
    /// Read-only; a mirror daemon keeps it a copy of the primary.
    NonPrimary,
}

/// Where a secondary copies from: the primary cluster and its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerGroup {
    /// The primary cluster's fsid.
    pub fsid: String,
    /// The group's pool id there.
    pub pool_id: i64,
    /// The group's namespace there.
    pub namespace: String,
    /// The group's id there.
    pub group_id: String,
}

/// What the mirror daemon is doing with a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplayPhase {
    /// Nothing copied yet (or a resync was asked for).
    Idle,
    /// Copying the members from a snapshot of the primary.
    Syncing,
    /// Applying the primary's journal (or shipping its snapshots) as it grows.
    Replaying,
    /// The primary was demoted and everything up to its last entry is applied.
    Stopped,
    /// The primary trimmed entries the mirror had not applied: `resync` is needed.
    Disconnected,
    /// Replay stopped on an error (the description says which); it is retried.
    Error,
}

impl ReplayPhase {
    /// The state as `mirror status` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayPhase::Idle => "syncing",
            ReplayPhase::Syncing => "syncing",
            ReplayPhase::Replaying => "replaying",
            ReplayPhase::Stopped => "stopped",
            ReplayPhase::Disconnected => "disconnected",
            ReplayPhase::Error => "error",
        }
    }
}

/// One member's copy during a bootstrap (or a snapshot-mode sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSync {
    /// The image's name (the same on both sides).
    pub name: String,
    /// The local image.
    pub image: ImageRef,
    /// Bytes of the image.
    pub size: u64,
    /// Bytes copied so far (everything below this offset is copied).
    pub copied: u64,
}

/// A bootstrap in progress: the primary's group snapshot being copied and the journal
/// position it was cut at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// The group snapshot on the primary.
    pub snap_name: String,
    /// Its journal position (journal mode; 0 in snapshot mode).
    pub position: u64,
    /// The members and their progress.
    pub members: Vec<MemberSync>,
}

/// The last group snapshot mirrored completely (snapshot mode; journal mode's bootstrap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredSnapshot {
    /// The group snapshot's name on the primary.
    pub name: String,
    /// When the primary took it, ms since the Unix epoch.
    pub taken_ms: u64,
    /// When its copy was complete here, ms since the Unix epoch.
    pub complete_ms: u64,
    /// Per member (in member order): the local image snapshot holding it (snapshot mode).
    pub local_snap_ids: Vec<u64>,
}

/// The mirror daemon's state of a non-primary group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayState {
    /// The primary copied from (`None` until the first bootstrap starts).
    pub primary: Option<PeerGroup>,
    /// See [`ReplayPhase`].
    pub phase: ReplayPhase,
    /// Journal mode: every entry up to this sequence number is applied to the members.
    pub position: u64,
    /// Journal mode: entries `position + 1 ..= wave_end` may be partly applied. Each is
    /// applied only after what it depends on, and they write no byte twice since this
    /// record: what is applied is a crash-consistent state, and applying them again is
    /// harmless.
    pub wave_end: u64,
    /// The primary's newest entry when last seen.
    pub primary_head: u64,
    /// When the entry after `position` was written on the primary (ns since the Unix
    /// epoch; 0 when caught up): how far behind the mirror is in time.
    pub oldest_unapplied_ns: u64,
    /// The primary was demoted at this position (journal mode); a planned promotion waits
    /// for `position` to reach it.
    pub primary_demoted_at: Option<u64>,
    /// A bootstrap (or snapshot sync) in progress.
    pub bootstrap: Option<Bootstrap>,
    /// The last group snapshot copied completely.
    pub last_snapshot: Option<MirroredSnapshot>,
    /// Entries applied since the daemon registered (for status and metrics).
    pub entries_applied: u64,
    /// Bytes applied since the daemon registered.
    pub bytes_applied: u64,
    /// What happened last, for status (an error, a disconnection).
    pub description: String,
    /// The daemon that wrote this (`rbd-cg mirror daemon on HOST, pid PID, client.N`).
    pub daemon: String,
    /// When this was written, ms since the Unix epoch.
    pub updated_ms: u64,
}

impl ReplayState {
    /// Nothing copied yet.
    pub fn idle() -> ReplayState {
        ReplayState {
            primary: None,
            phase: ReplayPhase::Idle,
            position: 0,
            wave_end: 0,
            primary_head: 0,
            oldest_unapplied_ns: 0,
            primary_demoted_at: None,
            bootstrap: None,
            last_snapshot: None,
            entries_applied: 0,
            bytes_applied: 0,
            description: String::new(),
            daemon: String::new(),
            updated_ms: 0,
        }
    }
}

/// `cg_header.<id>` omap `mirror`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRecord {
    /// See [`MirrorMode`].
    pub mode: MirrorMode,
    /// See [`MirrorRole`].
    pub role: MirrorRole,
    /// Snapshot mode: seconds between group snapshots.
    pub interval_secs: u64,
    /// When the role last changed, ms since the Unix epoch.
    pub since_ms: u64,
    /// Journal mode, a demoted primary: its journal's last entry when it was demoted.
    pub demoted_at: Option<u64>,
    /// Set by `mirror resync` on a secondary: copy everything again.
    pub resync_requested: bool,
    /// The daemon's state (a secondary; [`ReplayState::idle`] on a primary).
    pub replay: ReplayState,
}
versioned!(MirrorRecord, "MirrorRecord", 1, 1, 256 * 1024);

impl MirrorRecord {
    /// A demoted former primary whose data may have diverged from the primary's: it was
    /// demoted, and no sync of it completed since. Such a copy is never replayed onto (the
    /// journal positions would not match its data); only `resync` makes it follow again, and
    /// it may be promoted back without `--force` (its data is its own).
    pub fn diverged(&self) -> bool {
        self.role == MirrorRole::NonPrimary
            && self.demoted_at.is_some()
            && self.replay.last_snapshot.as_ref().is_none_or(|s| s.complete_ms < self.since_ms)
    }
}

// ---- requests ----------------------------------------------------------------------------

/// `mirror_enable`: records the group mirrored. `role` `Primary` for `mirror enable`,
/// `NonPrimary` for a secondary a daemon creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEnableRequest {
    /// The group.
    pub group_id: String,
    /// See [`MirrorMode`].
    pub mode: MirrorMode,
    /// See [`MirrorRole`].
    pub role: MirrorRole,
    /// Snapshot mode's interval (ignored in journal mode).
    pub interval_secs: u64,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
    /// A secondary's primary.
    pub primary: Option<PeerGroup>,
}
versioned!(MirrorEnableRequest, "MirrorEnableRequest", 1, 1, 8 * 1024);

/// `mirror_disable`, `mirror_resync`, `mirror_get`: names the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorGroupRequest {
    /// The group.
    pub group_id: String,
}
versioned!(MirrorGroupRequest, "MirrorGroupRequest", 1, 1, 1024);

/// `mirror_set_role`: promotes (to `Primary`) or demotes (to `NonPrimary`, with the journal
/// position it stops at).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRoleRequest {
    /// The group.
    pub group_id: String,
    /// The new role.
    pub role: MirrorRole,
    /// Demotion in journal mode: the journal's last entry.
    pub demoted_at: Option<u64>,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
}
versioned!(MirrorRoleRequest, "MirrorRoleRequest", 1, 1, 1024);

/// `mirror_set_replay`: the daemon records its state (only while the group is non-primary:
/// `EROFS` after a promotion, which is what stops a stale daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorReplayRequest {
    /// The group.
    pub group_id: String,
    /// The new state.
    pub replay: ReplayState,
    /// Clears `resync_requested` (the daemon starts the resync it asked for).
    pub clear_resync: bool,
}
versioned!(MirrorReplayRequest, "MirrorReplayRequest", 1, 1, 256 * 1024);
