//! `rbd-cg journal enable|disable|status|replay`: one journal for the whole group.
//!
//! Enabling (steps, `docs/OPERATIONS.md`):
//! 1. `journal_enable` on the header: the journal `Enabling`, member tags, the header's
//!    journaling feature (from now on membership changes, rollback and removal are refused);
//! 2. per member: `image_journal_fence` on its header (librbd's `non-primary` feature and an
//!    operation feature librbd does not know: stock writers get `EROFS` from now on, reads go
//!    on), a `HEADER_UPDATE` notify, and the gate: no other client may have the image open
//!    (a handle opened before the fence might not notice it);
//! 3. `journal_enabled`.
//!
//! Disabling: 1 the journal is applied to the members by a short-lived writer (replay);
//! 2 `journal_disable_begin` (`Disabling`: no writer can start any more); 3 per member the
//! fence comes off (and a `HEADER_UPDATE`); 4 the journal's segments are removed;
//! 5 `journal_disable_finish`. Each step is idempotent: a rerun (or `repair`) finishes an
//! interrupted enable or disable; `journal disable` also undoes an interrupted enable.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::images::label_of;
use rbd_cg_contract::journal::{
    segment_object, ConsumerState, ImageFenceRequest, JournalEnableRequest, JournalGroupRequest, JournalMember,
    JournalRecord, JournalState, JournalStatus, WriterLease, WriterRequest, DEFAULT_MAX_BYTES, DEFAULT_SEGMENT_SIZE,
    LOCAL_CONSUMER, RBD_FEATURE_NON_PRIMARY,
};
use rbd_cg_contract::methods::{
    Empty, IMAGE_GROUP_LIST, IMAGE_JOURNAL_FENCE, JOURNAL_DISABLE_BEGIN, JOURNAL_DISABLE_FINISH, JOURNAL_ENABLE,
    JOURNAL_ENABLED, SEGMENT_GET,
};
use rbd_cg_contract::names::header_object;
use rbd_cg_contract::records::{ImageRef, MemberState, SnapshotState};
use rbd_cg_journal::lease::{ask_writer, journal_status};
use rbd_cg_journal::writer::{JournalWriter, WriterConfig};
use rbd_cg_rados::ceph::cls_rbd::{self, GetFeatures};
use rbd_cg_rados::ceph::librbd_notify;
use rbd_cg_rados::ceph::objects;
use rbd_cg_rados::cls::WriteBatch;
use rbd_cg_rados::image::{Image, FEATURE_JOURNALING, FEATURE_MIGRATING};

/// Options of `journal enable`.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// Bytes per segment object (`--object-size`).
    pub segment_size: u64,
    /// Bound of journal space (`--max-size`).
    pub max_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { segment_size: DEFAULT_SEGMENT_SIZE, max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// One consumer of the journal, as `journal status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// Its name (`local`: the group's own images).
    pub name: String,
    /// Every entry up to this one is applied by it.
    pub position: u64,
    /// `connected` or `disconnected`.
    pub state: &'static str,
    /// When its position last moved, ms since the Unix epoch.
    pub updated_ms: u64,
}

/// What `journal status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalInfo {
    /// Whether the group has a journal at all.
    pub enabled: bool,
    /// `enabling`, `enabled`, `disabling` (or `disabled`).
    pub state: &'static str,
    /// The newest durable entry.
    pub head: u64,
    /// The newest entry applied to every member image (the local consumer's position).
    pub applied: u64,
    /// Journal space in use (bytes of entries in the segments not trimmed).
    pub bytes: u64,
    /// The bound of journal space.
    pub max_bytes: u64,
    /// Bytes per segment object.
    pub segment_size: u64,
    /// Segments: the oldest and the active one.
    pub segments: (u64, u64),
    /// The writer holding the lease, if any.
    pub writer: Option<WriterLease>,
    /// The consumers.
    pub consumers: Vec<ConsumerInfo>,
    /// The members with their tags.
    pub members: Vec<(u32, ImageRef, String)>,
}

/// Runs `future` to completion on a runtime of its own (the journal writer is asynchronous;
/// the control plane is not).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("starting an async runtime: {e}"), libc::EIO))?;
    Ok(runtime.block_on(future))
}

impl Groups {
    /// The journal of group `group_id`, if it has one.
    pub(crate) fn journal(&self, group_id: &str) -> Result<Option<JournalStatus>> {
        match journal_status(&self.ioctx, group_id) {
            Ok(status) => Ok(Some(status)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Enables one journal for all members of group `group`; see the module documentation.
    pub fn journal_enable(&self, group: &str, options: &JournalOptions) -> Result<()> {
        let context = || format!("enabling the journal of group {}", self.spec(group));
        let group_id = self.ready_group_id(group, "journaling")?;
        let members = self.member_records(&group_id).map_err(|e| e.context(context()))?;
        if members.is_empty() {
            return Err(Error::new(format!("{}: the group has no members", context()), libc::EINVAL));
        }
        if let Some(m) = members.iter().find(|m| m.state != MemberState::Attached) {
            return Err(Error::new(
                format!("{}: member {} is {:?}", context(), m.image.image_id, m.state),
                libc::EBUSY,
            )
            .with_hint("An image add or rm was interrupted: rerun it, or run `rbd-cg repair`."));
        }
        // The tags of a rerun are the recorded ones.
        let existing = self.journal(&group_id)?;
        let tagged: Vec<JournalMember> = match &existing {
            Some(status) => status.journal.members.clone(),
            None => members
                .iter()
                .enumerate()
                .map(|(i, m)| JournalMember { tag: i as u32 + 1, image: m.image.clone() })
                .collect(),
        };
        if let Some(status) = &existing {
            match status.journal.state {
                JournalState::Enabled => {
                    return Err(Error::new(format!("{}: it is enabled already", context()), libc::EEXIST))
                }
                JournalState::Disabling => {
                    return Err(Error::new(format!("{}: a disable was interrupted", context()), libc::EBUSY)
                        .with_hint("Finish it first: `rbd-cg journal disable`."))
                }
                JournalState::Enabling => log::info!("resuming the interrupted journal enable of {}", self.spec(group)),
            }
        } else {
            for member in &tagged {
                self.check_journalable(&group_id, &member.image).map_err(|e| e.context(context()))?;
            }
        }
        let header = header_object(&group_id);
        let mut steps = crate::faults::Steps::new("journal-enable", &self.faults);
        steps.run("record the journal", || {
            let request = JournalEnableRequest {
                group_id: group_id.clone(),
                segment_size: options.segment_size,
                max_bytes: options.max_bytes,
                members: tagged.clone(),
                created_ms: crate::groups::now_ms(),
            };
            self.ioctx.call_write(&header, &JOURNAL_ENABLE, &request)
        })?;
        steps.run(&format!("fence {} members", tagged.len()), || {
            for member in &tagged {
                self.fence_member(&group_id, &member.image, true)?;
            }
            Ok::<_, Error>(())
        })?;
        steps.run("mark the journal enabled", || {
            self.ioctx.call_write(&header, &JOURNAL_ENABLED, &JournalGroupRequest { group_id: group_id.clone() })
        })
    }

    /// What refuses an image as a journaled member: another group, librbd's own journaling,
    /// a migration, mirroring (`non-primary`), a parent (the writer does not copy up).
    fn check_journalable(&self, group_id: &str, image: &ImageRef) -> Result<()> {
        let io = self.cluster.ioctx_in(image.pool_id, &image.namespace)?;
        let header = objects::image_header(&image.image_id);
        let label = label_of(&self.cluster, image, crate::images::directory_name(&io, &image.image_id)?.as_deref());
        let groups = io.call(&header, &IMAGE_GROUP_LIST, &Empty {})?.groups;
        if groups.iter().any(|g| *g != self.group_ref(group_id)) {
            return Err(Error::new(format!("{label} belongs to another group too"), libc::EINVAL)
                .with_hint("A journaled member must belong to this group only: remove it from the others first."));
        }
        let features = io.call(&header, &cls_rbd::GET_FEATURES, &GetFeatures::HEAD_READ_ONLY)?.features;
        for (bit, what) in [
            (FEATURE_JOURNALING, "librbd's own journaling feature (`rbd feature disable IMAGE journaling`)"),
            (FEATURE_MIGRATING, "a migration in progress"),
            (RBD_FEATURE_NON_PRIMARY, "the non-primary feature (it is mirrored)"),
        ] {
            if features & bit != 0 {
                return Err(Error::new(format!("{label} has {what}"), libc::EINVAL));
            }
        }
        let image_handle = Image::open_by_id_read_only(&io, &image.image_id)?;
        if image_handle.parent()?.is_some() {
            return Err(Error::new(format!("{label} is a clone"), libc::EOPNOTSUPP)
                .with_hint(format!("Flatten it first (`rbd flatten {label}`): the journal writer does not copy up.")));
        }
        Ok(())
    }

    /// Turns a member's write fence on or off, tells its watchers, and (on) checks that no
    /// other client has it open.
    fn fence_member(&self, group_id: &str, image: &ImageRef, fenced: bool) -> Result<()> {
        let io = match self.cluster.ioctx_in(image.pool_id, &image.namespace) {
            Ok(io) => io,
            Err(e) if e.is_not_found() && !fenced => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let header = objects::image_header(&image.image_id);
        let request = ImageFenceRequest { image_id: image.image_id.clone(), group: self.group_ref(group_id), fenced };
        match io.call_write(&header, &IMAGE_JOURNAL_FENCE, &request) {
            Err(e) if e.is_not_found() && !fenced => return Ok(()),
            other => other?,
        }
        if let Err(e) = io.notify(&header, &librbd_notify::header_update(), librbd_notify::NOTIFY_TIMEOUT_MS) {
            log::warn!("header update of image {}: {e}", image.image_id);
        }
        if fenced {
            let watchers = Image::open_by_id_read_only(&io, &image.image_id)?.watchers()?;
            if !watchers.is_empty() {
                let label =
                    label_of(&self.cluster, image, crate::images::directory_name(&io, &image.image_id)?.as_deref());
                let who: Vec<String> =
                    watchers.iter().map(|w| format!("client.{} at {}", w.instance_id, w.addr)).collect();
                return Err(Error::new(format!("{label} is open by {}", who.join(", ")), libc::EBUSY).with_hint(
                    "A client that opened it before the journal fence may not notice it: close it (`rbd status` \
                     shows who), then rerun `rbd-cg journal enable` (or `journal disable` to undo).",
                ));
            }
        }
        Ok(())
    }

    /// Disables the journal of group `group` (applying it first); also undoes an
    /// interrupted enable. See the module documentation.
    pub fn journal_disable(&self, group: &str) -> Result<()> {
        let context = || format!("disabling the journal of group {}", self.spec(group));
        let group_id = self.ready_group_id(group, "journaling")?;
        let status =
            self.journal(&group_id)?.ok_or_else(|| Error::new(format!("{}: it has none", context()), libc::ENOENT))?;
        let header = header_object(&group_id);
        let mut steps = crate::faults::Steps::new("journal-disable", &self.faults);
        if status.journal.state == JournalState::Enabled {
            steps.run("apply the journal", || self.journal_replay_id(&group_id).map(drop))?;
        } else {
            steps.skip(1);
        }
        steps.run("mark the journal disabling", || {
            self.ioctx
                .call_write(&header, &JOURNAL_DISABLE_BEGIN, &JournalGroupRequest { group_id: group_id.clone() })
                .map_err(|e| match e.errno {
                    libc::EBUSY => {
                        Error::from(e).with_hint("A journal writer (`rbd-cg nbd serve`) runs: stop it first.")
                    }
                    _ => Error::from(e),
                })
        })?;
        steps.run(&format!("unfence {} members", status.journal.members.len()), || {
            for member in &status.journal.members {
                self.fence_member(&group_id, &member.image, false)?;
            }
            Ok::<_, Error>(())
        })?;
        steps.run("remove the journal's segments", || self.remove_segments(&group_id, &status.journal))?;
        steps
            .run("drop the journal", || {
                self.ioctx.call_write(
                    &header,
                    &JOURNAL_DISABLE_FINISH,
                    &JournalGroupRequest { group_id: group_id.clone() },
                )
            })
            .map_err(|e| e.context(context()))
    }

    /// Removes every segment object of a journal (already gone is fine).
    fn remove_segments(&self, group_id: &str, journal: &JournalRecord) -> Result<()> {
        let mut segment = journal.first_segment.saturating_sub(1);
        loop {
            let mut remove = WriteBatch::new();
            remove.remove();
            match self.ioctx.write_batch(&segment_object(group_id, segment), &remove) {
                Ok(()) => {}
                Err(e) if e.is_not_found() && segment > journal.active_segment => return Ok(()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            segment += 1;
        }
    }

    /// Applies every journal entry not yet applied to the members of group `group` (what a
    /// restarted server does before it serves); returns the applied position. `EBUSY` while a
    /// server runs (it applies by itself).
    pub fn journal_replay(&self, group: &str) -> Result<u64> {
        let group_id = self.ready_group_id(group, "replaying the journal of")?;
        self.journal_replay_id(&group_id)
            .map_err(|e| e.context(format!("replaying the journal of group {}", self.spec(group))))
    }

    fn journal_replay_id(&self, group_id: &str) -> Result<u64> {
        let cluster = self.cluster.clone();
        let ioctx = self.cluster.ioctx_in(self.ioctx.pool_id(), &self.location.namespace)?;
        let group_id = group_id.to_owned();
        let config = WriterConfig {
            description: format!("rbd-cg journal replay, pid {}", std::process::id()),
            ..WriterConfig::default()
        };
        block_on(async move {
            let writer = JournalWriter::open(&cluster, ioctx, &group_id, config).await?;
            let applied = writer.applied();
            writer.shutdown().await?;
            Ok::<u64, rbd_cg_rados::RadosError>(applied)
        })?
        .map_err(Error::from)
    }

    /// The journal of group `group`, as `journal status` shows it.
    pub fn journal_status(&self, group: &str) -> Result<JournalInfo> {
        let entry =
            self.dir_entry(group)?.ok_or_else(|| Error::new(format!("group {}", self.spec(group)), libc::ENOENT))?;
        let Some(status) = self.journal(&entry.id)? else {
            return Ok(JournalInfo {
                enabled: false,
                state: "disabled",
                head: 0,
                applied: 0,
                bytes: 0,
                max_bytes: 0,
                segment_size: 0,
                segments: (0, 0),
                writer: None,
                consumers: Vec::new(),
                members: Vec::new(),
            });
        };
        let journal = &status.journal;
        let mut bytes = 0;
        let mut head = journal.active_first_seq.saturating_sub(1);
        let mut segment = journal.first_segment;
        loop {
            match self.ioctx.call(&segment_object(&entry.id, segment), &SEGMENT_GET, &Empty {}) {
                Ok(record) => {
                    bytes += record.committed_len;
                    head = head.max(record.next_seq.saturating_sub(1));
                }
                Err(e) if e.is_not_found() && segment > journal.active_segment => break,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            segment += 1;
        }
        let consumers: Vec<ConsumerInfo> = status
            .consumers
            .iter()
            .map(|c| ConsumerInfo {
                name: c.name.clone(),
                position: c.position,
                state: match c.state {
                    ConsumerState::Connected => "connected",
                    ConsumerState::Disconnected => "disconnected",
                },
                updated_ms: c.updated_ms,
            })
            .collect();
        let applied = consumers.iter().find(|c| c.name == LOCAL_CONSUMER).map_or(0, |c| c.position);
        let members = journal
            .members
            .iter()
            .map(|m| {
                let name = self
                    .cluster
                    .ioctx_in(m.image.pool_id, &m.image.namespace)
                    .ok()
                    .and_then(|io| crate::images::directory_name(&io, &m.image.image_id).ok().flatten());
                (m.tag, m.image.clone(), label_of(&self.cluster, &m.image, name.as_deref()))
            })
            .collect();
        Ok(JournalInfo {
            enabled: true,
            state: match journal.state {
                JournalState::Enabling => "enabling",
                JournalState::Enabled => "enabled",
                JournalState::Disabling => "disabling",
            },
            head,
            applied,
            bytes,
            max_bytes: journal.max_bytes,
            segment_size: journal.segment_size,
            segments: (journal.first_segment, journal.active_segment),
            writer: journal.writer.clone(),
            consumers,
            members,
        })
    }

    /// A group snapshot of a journaled group, cut by its journal writer at one position: the
    /// running server when there is one, else a short-lived writer of our own (which first
    /// applies what is pending). Step 1 (`snap_create_begin`) is done by the caller. When the
    /// writer cannot cut it, the writer undoes it itself (the record goes away).
    pub(crate) fn journaled_snapshot(&self, group_id: &str, name: &str, timeout: Duration) -> Result<()> {
        self.ask_or_be_writer(group_id, WriterRequest::Snapshot { name: name.to_owned() }, "snap create")?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let record = match self.snap_record(group_id, name) {
                Ok(record) => record,
                Err(e) if e.is_not_found() => return Err(writer_gave_up(name)),
                Err(e) => return Err(e),
            };
            match record.state {
                SnapshotState::Complete => return Ok(()),
                SnapshotState::Removing => return Err(writer_gave_up(name)),
                SnapshotState::Creating if std::time::Instant::now() >= deadline => {
                    return Err(Error::new(
                        format!("the journal writer did not cut snapshot {name:?} in time"),
                        libc::ETIMEDOUT,
                    ))
                }
                SnapshotState::Creating => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Step 2 of removing a snapshot of a journaled group: its member snapshots are removed
    /// by the journal writer (librbd refuses to touch a `non-primary` member), which also
    /// drops the record. The caller marked it `Removing`.
    pub(crate) fn journaled_snapshot_remove(&self, group_id: &str, name: &str, timeout: Duration) -> Result<()> {
        self.ask_or_be_writer(group_id, WriterRequest::RemoveSnapshot { name: name.to_owned() }, "snap rm")?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.snap_record(group_id, name) {
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
                Ok(_) if std::time::Instant::now() >= deadline => {
                    return Err(Error::new(
                        format!("the journal writer did not remove snapshot {name:?} in time (see its log)"),
                        libc::ETIMEDOUT,
                    ))
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends `request` to the running journal writer of `group_id`; when none runs, opens a
    /// writer of our own (which first applies what is pending), runs it, and stops it.
    fn ask_or_be_writer(&self, group_id: &str, request: WriterRequest, what: &str) -> Result<()> {
        let heard = ask_writer(&self.ioctx, group_id, &request, 5_000)?;
        if let Some(answer) = heard.answers.iter().find(|a| a.reply.errno == 0) {
            log::debug!("journal writer {} takes {request:?}", answer.reply.message);
            return Ok(());
        }
        let cluster = self.cluster.clone();
        let ioctx = self.cluster.ioctx_in(self.ioctx.pool_id(), &self.location.namespace)?;
        let group_id = group_id.to_owned();
        let config = WriterConfig {
            description: format!("rbd-cg {what}, pid {}", std::process::id()),
            ..WriterConfig::default()
        };
        block_on(async move {
            let writer = JournalWriter::open(&cluster, ioctx, &group_id, config).await?;
            let done = match request {
                WriterRequest::Snapshot { name } => writer.snapshot(&name).await.map(drop),
                WriterRequest::RemoveSnapshot { name } => writer.remove_snapshot(&name).await,
                WriterRequest::Ping => Ok(()),
            };
            let shut = writer.shutdown().await;
            done.and(shut)
        })?
        .map_err(Error::from)
    }
}

/// The error of a snapshot the journal writer could not cut (and undid).
fn writer_gave_up(name: &str) -> Error {
    Error::new(format!("the journal writer could not cut snapshot {name:?} and undid it"), libc::EIO)
        .with_hint("Its log (`rbd-cg nbd serve` output) says why.")
}
