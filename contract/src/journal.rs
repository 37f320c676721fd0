//! The group journal: one journal for all members of a group, every write to any member an
//! entry tagged with its member, in one total order (`docs/FORMAT.md`, "Group journal").
//!
//! Layout:
//! - `cg_header.<group id>` omap `journal` → [`JournalRecord`]: configuration, the member
//!   tags, the writer epoch and lease, and which segments exist. Changed rarely (enable,
//!   disable, a new writer, a new segment, trim), always by the class, atomically with the
//!   group's other state — so membership changes and rollbacks can be refused while
//!   journaling is on.
//! - `cg_header.<group id>` omap `journal_consumer_<name>` → [`ConsumerRecord`]: how far a
//!   consumer (the local applier `local`, a mirror peer) has applied the journal.
//! - `cg_journal.<group id>.<segment: 16 hex>`: the entries, back to back in the object
//!   data; omap `segment` → [`SegmentRecord`] (epoch, sequence numbers, committed length,
//!   sealed). Appended to by `segment_append`, which refuses a stale writer epoch
//!   (`ESTALE`), a sequence gap (`ERANGE`) or a full or sealed segment.
//!
//! An entry is a fixed 72-byte little-endian header ([`EntryHeader`], with a CRC32C of its
//! own bytes and of the payload) and the payload (a write's data), padded to 8 bytes. The
//! header is a raw layout rather than an envelope: entries are streamed, appended in
//! batches and scanned by readers, and a reader must tell a torn tail from corruption.

use crate::names::{validate_group_id, HEADER_OBJECT_PREFIX};
use crate::records::ImageRef;
use crate::{versioned, CgError};
use serde::{Deserialize, Serialize};

/// Omap key of the [`JournalRecord`] on `cg_header.<id>`.
pub const JOURNAL_KEY: &str = "journal";
/// Omap key prefix of a [`ConsumerRecord`] on `cg_header.<id>`.
pub const CONSUMER_KEY_PREFIX: &str = "journal_consumer_";
/// Prefix of the segment objects.
pub const SEGMENT_OBJECT_PREFIX: &str = "cg_journal.";
/// Omap key of the [`SegmentRecord`] on a segment object.
pub const SEGMENT_KEY: &str = "segment";
/// `cls_lock` lock (on `cg_header.<id>`) that the journal writer holds: the writer lease.
pub const WRITER_LOCK_NAME: &str = "rbd_cg_journal";
/// The consumer that applies the journal to the group's own member images.
pub const LOCAL_CONSUMER: &str = "local";

/// Smallest and largest segment size (`--object-size`).
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;
/// See [`MIN_SEGMENT_SIZE`]. 128 MiB: Ceph's default `osd_max_object_size`, past which
/// the OSD refuses writes (`EFBIG`).
pub const MAX_SEGMENT_SIZE: u64 = 128 << 20;
/// Default segment size: 16 MiB, like a librbd journal object.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;
/// Default bound of journal space (`--max-size`): 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Longest consumer name.
pub const MAX_CONSUMER_NAME_LEN: usize = 128;
/// Most bytes of a consumer's opaque [`ConsumerRecord::data`].
pub const MAX_CONSUMER_DATA_LEN: usize = 64 * 1024;
/// Most bytes one `segment_append` carries (entries, headers included).
pub const MAX_APPEND_BYTES: usize = 64 << 20;
/// Most entries one `segment_append` carries.
pub const MAX_APPEND_ENTRIES: u32 = 65_536;

/// `cg_journal.<group id>.<segment as 16 hex digits>`.
pub fn segment_object(group_id: &str, segment: u64) -> String {
    format!("{SEGMENT_OBJECT_PREFIX}{group_id}.{segment:016x}")
}

/// `journal_consumer_<name>`.
pub fn consumer_key(name: &str) -> String {
    format!("{CONSUMER_KEY_PREFIX}{name}")
}

/// The header object of the group a segment object belongs to, from its name.
pub fn header_of_segment(segment_oid: &str) -> Option<String> {
    let rest = segment_oid.strip_prefix(SEGMENT_OBJECT_PREFIX)?;
    let (group_id, _) = rest.rsplit_once('.')?;
    validate_group_id(group_id).ok()?;
    Some(format!("{HEADER_OBJECT_PREFIX}{group_id}"))
}

/// Checks a consumer name: 1..=128 bytes of ASCII letters, digits, `-`, `_`, `.`.
pub fn validate_consumer_name(name: &str) -> Result<(), CgError> {
    if name.is_empty()
        || name.len() > MAX_CONSUMER_NAME_LEN
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(CgError::InvalidArgument(format!("consumer name {name:?} is not valid")));
    }
    Ok(())
}

// ---- records --------------------------------------------------------------------------

/// One member of a journaled group: the tag its entries carry. Tags are handed out at
/// enable time, in member order from 1, and never reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMember {
    /// The tag (≥ 1).
    pub tag: u32,
    /// The image.
    pub image: ImageRef,
}

/// Lifecycle of a group's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalState {
    /// `journal enable` has recorded it; members are being fenced. A rerun or `repair`
    /// finishes it.
    Enabling,
    /// Journaling: every write goes through the journal.
    Enabled,
    /// `journal disable` has begun: the journal is being applied and the members given
    /// back. A rerun or `repair` finishes it.
    Disabling,
}

/// Who holds the writer lease (the `cls_lock` [`WRITER_LOCK_NAME`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterLease {
    /// The epoch this writer appends with.
    pub epoch: u64,
    /// Its entity, e.g. `client.4123`.
    pub client: String,
    /// Its address.
    pub addr: String,
    /// What it is, for messages (`rbd-cg nbd serve on HOST, pid PID`).
    pub description: String,
    /// When it took the lease, ms since the Unix epoch.
    pub since_ms: u64,
}

/// `cg_header.<id>` omap `journal`: the group's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// See [`JournalState`].
    pub state: JournalState,
    /// Bytes per segment object.
    pub segment_size: u64,
    /// Bound of journal space: a consumer further behind than this is disconnected.
    pub max_bytes: u64,
    /// The members and their tags.
    pub members: Vec<JournalMember>,
    /// The newest epoch handed to a writer (0: never written).
    pub epoch: u64,
    /// The writer holding the lease now, if any.
    pub writer: Option<WriterLease>,
    /// The oldest segment not trimmed.
    pub first_segment: u64,
    /// The newest segment (the one being appended to).
    pub active_segment: u64,
    /// The sequence number the active segment starts at.
    pub active_first_seq: u64,
    /// Everything below this sequence number has been trimmed.
    pub trimmed_seq: u64,
    /// When journaling was enabled, ms since the Unix epoch.
    pub created_ms: u64,
}
versioned!(JournalRecord, "JournalRecord", 1, 1, 1024 * 1024);

impl JournalRecord {
    /// The member with `tag`.
    pub fn member(&self, tag: u32) -> Option<&JournalMember> {
        self.members.iter().find(|m| m.tag == tag)
    }
}

/// Whether a consumer still gets entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerState {
    /// Trimming waits for it.
    Connected,
    /// It fell further behind than the journal's bound; trimming no longer waits for it
    /// and it must resynchronize.
    Disconnected,
}

/// `cg_header.<id>` omap `journal_consumer_<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    /// Its name.
    pub name: String,
    /// See [`ConsumerState`].
    pub state: ConsumerState,
    /// Every entry with a sequence number up to this one has been applied by it.
    pub position: u64,
    /// When `position` last moved, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Opaque data of the consumer (a mirror's peer and status), at most 64 KiB.
    pub data: Vec<u8>,
}
versioned!(ConsumerRecord, "ConsumerRecord", 1, 1, 80 * 1024);

/// A segment object's omap `segment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The writer epoch that opened it; only appends with this epoch are accepted.
    pub epoch: u64,
    /// The sequence number of its first entry.
    pub first_seq: u64,
    /// The sequence number the next entry must have.
    pub next_seq: u64,
    /// Bytes of entries in the object data (everything beyond is not part of the journal).
    pub committed_len: u64,
    /// Largest `committed_len` it may reach (the journal's segment size, or more for a
    /// single oversized batch in an empty segment).
    pub capacity: u64,
    /// Closed: no more appends (by the writer moving on, or by a newer writer).
    pub sealed: bool,
}
versioned!(SegmentRecord, "SegmentRecord", 1, 1, 256);

// ---- requests ----------------------------------------------------------------------------

/// `journal_enable` (on `cg_header.<id>`): records the journal `Enabling`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEnableRequest {
    /// The group.
    pub group_id: String,
    /// Bytes per segment.
    pub segment_size: u64,
    /// Bound of journal space.
    pub max_bytes: u64,
    /// The members with their tags; must be exactly the group's attached members.
    pub members: Vec<JournalMember>,
    /// Now, ms since the Unix epoch.
    pub created_ms: u64,
}
versioned!(JournalEnableRequest, "JournalEnableRequest", 1, 1, 1024 * 1024);

/// A group and a journal state transition target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalGroupRequest {
    /// The group.
    pub group_id: String,
}
versioned!(JournalGroupRequest, "JournalGroupRequest", 1, 1, 256);

/// `journal_take` (on `cg_header.<id>`, after `lock.assert_locked` on the writer lock in
/// the same op): a new writer epoch, recorded with its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTakeRequest {
    /// The group.
    pub group_id: String,
    /// The new epoch: must be larger than every epoch handed out before.
    pub lease: WriterLease,
}
versioned!(JournalTakeRequest, "JournalTakeRequest", 1, 1, 4096);

/// `journal_release`: the writer with `epoch` gives the lease up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalReleaseRequest {
    /// The group.
    pub group_id: String,
    /// The epoch of the lease being released.
    pub epoch: u64,
}
versioned!(JournalReleaseRequest, "JournalReleaseRequest", 1, 1, 256);

/// `journal_roll`: the writer with `epoch` moved to segment `segment` starting at
/// `first_seq` (already opened). Segments only move forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRollRequest {
    /// The group.
    pub group_id: String,
    /// The writer's epoch (must be the current one).
    pub epoch: u64,
    /// The new active segment.
    pub segment: u64,
    /// Its first sequence number.
    pub first_seq: u64,
}
versioned!(JournalRollRequest, "JournalRollRequest", 1, 1, 256);

/// `journal_trim`: segments below `first_segment` (and entries below `trimmed_seq`) are
/// gone or going; both only move forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTrimRequest {
    /// The group.
    pub group_id: String,
    /// The new oldest segment.
    pub first_segment: u64,
    /// Every entry below this sequence number is trimmed.
    pub trimmed_seq: u64,
}
versioned!(JournalTrimRequest, "JournalTrimRequest", 1, 1, 256);

/// `journal_consumer_set`: registers a consumer or moves it forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSetRequest {
    /// The group.
    pub group_id: String,
    /// The consumer; its position never moves back (`ERANGE`) unless `reset`.
    pub consumer: ConsumerRecord,
    /// Registering anew (resync): the position may move anywhere, the state is reset.
    pub reset: bool,
}
versioned!(ConsumerSetRequest, "ConsumerSetRequest", 1, 1, 80 * 1024 + 256);

/// `journal_consumer_disconnect` / `journal_consumer_remove`: names one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRequest {
    /// The group.
    pub group_id: String,
    /// The consumer.
    pub name: String,
}
versioned!(ConsumerRequest, "ConsumerRequest", 1, 1, 512);

/// Reply of `journal_get`: the journal and its consumers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// The journal.
    pub journal: JournalRecord,
    /// Its consumers, by name.
    pub consumers: Vec<ConsumerRecord>,
}
versioned!(JournalStatus, "JournalStatus", 1, 1, 1024 * 1024);

/// `segment_open` (on `cg_journal.<id>.<n>`): creates the segment for a writer. Repeating it
/// with the same epoch and first sequence number succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentOpenRequest {
    /// The writer's epoch.
    pub epoch: u64,
    /// The sequence number of its first entry.
    pub first_seq: u64,
    /// Its capacity in bytes.
    pub capacity: u64,
}
versioned!(SegmentOpenRequest, "SegmentOpenRequest", 1, 1, 256);

/// `segment_seal`: closes the segment to appends. `epoch` is the sealer's: the segment's own
/// writer, or a newer writer taking over (then the segment's last entries are final).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSealRequest {
    /// The sealer's epoch (at least the segment's).
    pub epoch: u64,
}
versioned!(SegmentSealRequest, "SegmentSealRequest", 1, 1, 64);

/// `cg_header.<id>` omap `journalpos_<snapshot seq: 16 hex>`: the journal position a group
/// snapshot of a journaled group was cut at: every entry up to it, and none after it, is in
/// the member snapshots. Kept beside the `SnapshotRecord` (whose layout older clients read
/// bare inside `snap_list` replies) rather than in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapJournalPosition {
    /// The group snapshot's sequence number.
    pub snap_seq: u64,
    /// The journal position.
    pub position: u64,
}
versioned!(SnapJournalPosition, "SnapJournalPosition", 1, 1, 64);

/// Omap key prefix of a [`SnapJournalPosition`] on `cg_header.<id>`.
pub const SNAP_JOURNAL_KEY_PREFIX: &str = "journalpos_";

/// `journalpos_<seq as 16 hex digits>` (not under `snap_`, which `snap_list` walks, nor
/// under `journal_consumer_`).
pub fn snap_journal_key(snap_seq: u64) -> String {
    format!("{SNAP_JOURNAL_KEY_PREFIX}{snap_seq:016x}")
}

/// `snap_set_journal_position`: records the position a snapshot being created was cut at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapJournalPositionRequest {
    /// The group.
    pub group_id: String,
    /// The snapshot's name (it must be `Creating`).
    pub name: String,
    /// The journal position.
    pub position: u64,
}
versioned!(SnapJournalPositionRequest, "SnapJournalPositionRequest", 1, 1, 1024);

/// The fixed part of a `segment_append` request (see [`encode_append`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentAppend {
    /// The writer's epoch: must be the segment's (`ESTALE` otherwise).
    pub epoch: u64,
    /// The sequence number of the first entry: must be the segment's `next_seq` (`ERANGE`).
    pub first_seq: u64,
    /// Number of entries that follow.
    pub count: u32,
}
versioned!(SegmentAppend, "SegmentAppend", 1, 1, 64);

/// Encodes a `segment_append` input: `u32 LE` length of the [`SegmentAppend`] envelope, the
/// envelope, then the entries exactly as they are to be stored. Not one envelope, because
/// the entries can be megabytes and are copied once, as they are.
pub fn encode_append(append: &SegmentAppend, entries: &[u8]) -> Result<Vec<u8>, CgError> {
    let header = crate::encode(append)?;
    let mut out = Vec::with_capacity(4 + header.len() + entries.len());
    out.extend_from_slice(&u32::try_from(header.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(entries);
    Ok(out)
}

/// Decodes a `segment_append` input into its header and the entry bytes (`ERANGE` when
/// larger than [`MAX_APPEND_BYTES`], `EINVAL` when malformed).
pub fn decode_append(input: &[u8]) -> Result<(SegmentAppend, &[u8]), CgError> {
    if input.len() > MAX_APPEND_BYTES + 128 {
        return Err(CgError::OutOfRange(format!("append of {} bytes", input.len())));
    }
    let Some((len, rest)) = input.split_first_chunk::<4>() else {
        return Err(CgError::InvalidArgument("append without a header".into()));
    };
    let len = u32::from_le_bytes(*len) as usize;
    let Some((header, entries)) = rest.split_at_checked(len) else {
        return Err(CgError::InvalidArgument("append header cut short".into()));
    };
    let append: SegmentAppend = crate::decode(header)?;
    if append.count == 0 || append.count > MAX_APPEND_ENTRIES {
        return Err(CgError::OutOfRange(format!("append of {} entries", append.count)));
    }
    Ok((append, entries))
}

// ---- the write fence on member images ----------------------------------------------------

/// librbd's `non-primary` feature bit: its images are read-only to every librbd client
/// (writes and maintenance operations get `EROFS`), reads keep working.
pub const RBD_FEATURE_NON_PRIMARY: u64 = 1 << 10;
/// librbd's `operations` feature bit: the image has operation features (`op_features`).
pub const RBD_FEATURE_OPERATIONS: u64 = 1 << 8;
/// The operation feature a journaled member carries. librbd knows only bits 0..=3, so an
/// image with this one has its operations disabled: `rbd rm`, `snap rm`, clone and the like
/// are refused even after the writer died (`non-primary` alone would let `rbd rm` through).
pub const OP_FEATURE_RBD_CG_JOURNAL: u64 = 1 << 20;
/// `cls_rbd`'s omap key of the feature bits on `rbd_header.<id>` (an encoded `u64`).
pub const RBD_FEATURES_KEY: &str = "features";
/// `cls_rbd`'s omap key of the operation feature bits (an encoded `u64`).
pub const RBD_OP_FEATURES_KEY: &str = "op_features";

/// `image_journal_fence` on `rbd_header.<image id>`: turns a member's write fence on or off in
/// one atomic step (see [`RBD_FEATURE_NON_PRIMARY`] and [`OP_FEATURE_RBD_CG_JOURNAL`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFenceRequest {
    /// The image (checked against nothing else: the object name carries it).
    pub image_id: String,
    /// The journaled group; fencing requires the image's back-reference to it.
    pub group: crate::records::GroupRef,
    /// On or off.
    pub fenced: bool,
}
versioned!(ImageFenceRequest, "ImageFenceRequest", 1, 1, 1024);

// ---- talking to the writer -------------------------------------------------------------

/// What another client asks the journal writer, by `rados_notify` on `cg_header.<id>` (the
/// writer watches it while it holds the lease). The writer answers each with a
/// [`WriterReply`] as its notify acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriterRequest {
    /// Are you there, and with which lease? (A lease holder that answers is alive.)
    Ping,
    /// Cut group snapshot `name` (recorded `Creating` by the caller) at one journal
    /// position: the writer stops applying, cuts every member snapshot, records the
    /// position and completes the snapshot (`snap_set_journal_position` +
    /// `snap_create_finish`), then resumes. The acknowledgement only says it was accepted;
    /// the caller waits for the snapshot record to become `Complete`. If the cut fails the
    /// writer undoes it (the record goes `Removing`, then away).
    Snapshot {
        /// The group snapshot's name.
        name: String,
    },
    /// Remove the member snapshots of group snapshot `name` (marked `Removing` by the
    /// caller) and drop its record (`snap_remove_finish`): a journaled member is
    /// `non-primary`, so librbd refuses to remove its snapshots, and the writer holds its
    /// lock. The acknowledgement only says it was accepted; the caller waits for the record
    /// to be gone.
    RemoveSnapshot {
        /// The group snapshot's name.
        name: String,
    },
}
versioned!(WriterRequest, "WriterRequest", 1, 1, 1024);

/// The writer's acknowledgement of a [`WriterRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterReply {
    /// 0, or the errno of a refusal.
    pub errno: i32,
    /// The lease epoch of the writer answering.
    pub epoch: u64,
    /// What it is (its lease description), or why it refused.
    pub message: String,
}
versioned!(WriterReply, "WriterReply", 1, 1, 4096);

// ---- entries -----------------------------------------------------------------------------

/// Magic of an entry header: `CGJ1` as bytes.
pub const ENTRY_MAGIC: [u8; 4] = *b"CGJ1";
/// Version of the entry layout this build writes and reads.
pub const ENTRY_VERSION: u8 = 1;
/// Size of an entry header in bytes.
pub const ENTRY_HEADER_LEN: usize = 72;
/// Largest payload of one entry (an NBD request is at most 32 MiB).
pub const MAX_ENTRY_PAYLOAD: u32 = 32 << 20;

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryOp {
    /// Write the payload at `offset` (`length` = payload length).
    Write,
    /// Discard `length` bytes at `offset` (reads then return zeros).
    Discard,
    /// Write `length` zero bytes at `offset`.
    WriteZeroes,
    /// No data: a position marker (a group snapshot, a demotion), `tag` 0; `offset` and
    /// `length` carry the marker's meaning.
    Mark,
}

impl EntryOp {
    /// The byte stored in the header.
    pub const fn code(self) -> u8 {
        match self {
            EntryOp::Write => 1,
            EntryOp::Discard => 2,
            EntryOp::WriteZeroes => 3,
            EntryOp::Mark => 4,
        }
    }

    /// The op for a stored byte.
    pub fn from_code(code: u8) -> Option<EntryOp> {
        Some(match code {
            1 => EntryOp::Write,
            2 => EntryOp::Discard,
            3 => EntryOp::WriteZeroes,
            4 => EntryOp::Mark,
            _ => return None,
        })
    }
}

/// The header of one journal entry. Layout (little-endian):
///
/// ```text
/// 0  [u8; 4] magic "CGJ1"   4  u8 version    5  u8 op    6  u16 flags (0)
/// 8  u32 tag                12 u32 payload_len
/// 16 u64 seq                24 u64 epoch
/// 32 u64 ack_floor          40 u64 offset
/// 48 u64 length             56 u64 timestamp_ns
/// 64 u32 payload_crc32c     68 u32 header_crc32c (of bytes 0..68)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// What it does.
    pub op: EntryOp,
    /// The member it is for (its journal tag; 0 for marks).
    pub tag: u32,
    /// Payload bytes following the header (the data of a write; 0 otherwise).
    pub payload_len: u32,
    /// Its position in the group's one total order, from 1.
    pub seq: u64,
    /// The writer epoch that appended it.
    pub epoch: u64,
    /// Every entry up to this sequence number had been acknowledged to the application
    /// when this one was submitted: this entry may depend on those, and on no later one.
    pub ack_floor: u64,
    /// Byte offset in the member image.
    pub offset: u64,
    /// Byte length in the member image.
    pub length: u64,
    /// When the writer received it, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// CRC32C of the payload.
    pub payload_crc: u32,
}

/// Why entry bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Fewer bytes than the entry needs: at the end of a segment, a torn (never
    /// acknowledged) tail; anywhere else, corruption.
    #[error("entry cut short: {0}")]
    Truncated(&'static str),
    /// The bytes are not an entry, or do not match their checksum: corruption.
    #[error("corrupt entry: {0}")]
    Corrupt(String),
}

impl From<EntryError> for CgError {
    fn from(e: EntryError) -> CgError {
        CgError::InvalidArgument(e.to_string())
    }
}

/// Bytes an entry with `payload_len` payload bytes takes in a segment (padded to 8).
pub const fn entry_len(payload_len: u32) -> usize {
    (ENTRY_HEADER_LEN + payload_len as usize + 7) & !7
}

impl EntryHeader {
    /// Appends this header, `payload` and the padding to `out`; fills in `payload_len`
    /// and `payload_crc` from `payload`.
    pub fn encode_entry(mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.payload_crc = crc32c::crc32c(payload);
        let start = out.len();
        out.extend_from_slice(&self.header_bytes());
        out.extend_from_slice(payload);
        out.resize(start + entry_len(self.payload_len), 0);
    }

    /// The 72 header bytes.
    pub fn header_bytes(&self) -> [u8; ENTRY_HEADER_LEN] {
        let mut b = [0u8; ENTRY_HEADER_LEN];
        b[0..4].copy_from_slice(&ENTRY_MAGIC);
        b[4] = ENTRY_VERSION;
        b[5] = self.op.code();
        b[8..12].copy_from_slice(&self.tag.to_le_bytes());
        b[12..16].copy_from_slice(&self.payload_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.epoch.to_le_bytes());
        b[32..40].copy_from_slice(&self.ack_floor.to_le_bytes());
        b[40..48].copy_from_slice(&self.offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.length.to_le_bytes());
        b[56..64].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[64..68].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..68]);
        b[68..72].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header (magic, version, op, header checksum, lengths); the
    /// payload is checked by [`check_payload`].
    pub fn decode(bytes: &[u8]) -> Result<EntryHeader, EntryError> {
        let Some(b) = bytes.first_chunk::<ENTRY_HEADER_LEN>() else {
            return Err(EntryError::Truncated("header"));
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        if b[0..4] != ENTRY_MAGIC {
            return Err(EntryError::Corrupt("bad magic".into()));
        }
        if crc32c::crc32c(&b[..68]) != u32_at(68) {
            return Err(EntryError::Corrupt("header checksum mismatch".into()));
        }
        if b[4] != ENTRY_VERSION {
            return Err(EntryError::Corrupt(format!("entry version {} is unknown", b[4])));
        }
        let op = EntryOp::from_code(b[5]).ok_or_else(|| EntryError::Corrupt(format!("unknown op {}", b[5])))?;
        let header = EntryHeader {
            op,
            tag: u32_at(8),
            payload_len: u32_at(12),
            seq: u64_at(16),
            epoch: u64_at(24),
            ack_floor: u64_at(32),
            offset: u64_at(40),
            length: u64_at(48),
            timestamp_ns: u64_at(56),
            payload_crc: u32_at(64),
        };
        if header.payload_len > MAX_ENTRY_PAYLOAD {
            return Err(EntryError::Corrupt(format!("payload of {} bytes", header.payload_len)));
        }
        let consistent = match op {
            EntryOp::Write => u64::from(header.payload_len) == header.length && header.tag != 0,
            EntryOp::Discard | EntryOp::WriteZeroes => header.payload_len == 0 && header.tag != 0,
            EntryOp::Mark => header.payload_len == 0 && header.tag == 0,
        };
        if !consistent || header.seq == 0 || header.ack_floor >= header.seq {
            return Err(EntryError::Corrupt(format!("inconsistent entry {header:?}")));
        }
        Ok(header)
    }
}

/// Checks an entry's payload against its header's checksum.
pub fn check_payload(header: &EntryHeader, payload: &[u8]) -> Result<(), EntryError> {
    if payload.len() != header.payload_len as usize {
        return Err(EntryError::Truncated("payload"));
    }
    if crc32c::crc32c(payload) != header.payload_crc {
        return Err(EntryError::Corrupt(format!("payload checksum mismatch in entry {}", header.seq)));
    }
    Ok(())
}

/// One entry found in segment bytes: its header, where its payload is, and its full length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedEntry {
    /// The header.
    pub header: EntryHeader,
    /// Offset of the payload in the scanned bytes.
    pub payload_at: usize,
    /// Offset just past the entry (and its padding).
    pub end: usize,
}

/// Walks the entries in `bytes` (the data of a segment, or of an append), checking headers
/// and (with `check_payloads`) payload checksums. Stops at the first error, which is returned
/// with the entries before it.
pub fn scan_entries(bytes: &[u8], check_payloads: bool) -> (Vec<ScannedEntry>, Option<EntryError>) {
    let mut entries = Vec::new();
    for entry in iter_entries(bytes, check_payloads) {
        match entry {
            Ok(entry) => entries.push(entry),
            Err(e) => return (entries, Some(e)),
        }
    }
    (entries, None)
}

/// The entries in `bytes` one at a time, checked exactly as [`scan_entries`] checks them,
/// without collecting them: the class validates an append with it and allocates nothing
/// per entry. Yields an error at most once, as its last item.
pub fn iter_entries(bytes: &[u8], check_payloads: bool) -> EntryIter<'_> {
    EntryIter { bytes, at: 0, check_payloads, failed: false }
}

/// Iterator of [`iter_entries`].
#[derive(Debug, Clone)]
pub struct EntryIter<'a> {
    bytes: &'a [u8],
    at: usize,
    check_payloads: bool,
    failed: bool,
}

impl EntryIter<'_> {
    fn next_entry(&self) -> Result<ScannedEntry, EntryError> {
        let at = self.at;
        let rest = self.bytes.get(at..).unwrap_or_default();
        let header = EntryHeader::decode(rest)?;
        let payload_at = at + ENTRY_HEADER_LEN;
        let end = at + entry_len(header.payload_len);
        let Some(payload) = self.bytes.get(payload_at..payload_at + header.payload_len as usize) else {
            return Err(EntryError::Truncated("payload"));
        };
        if end > self.bytes.len() {
            return Err(EntryError::Truncated("padding"));
        }
        if self.check_payloads {
            check_payload(&header, payload)?;
        }
        Ok(ScannedEntry { header, payload_at, end })
    }
}

impl Iterator for EntryIter<'_> {
    type Item = Result<ScannedEntry, EntryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        match self.next_entry() {
            Ok(entry) => {
                self.at = entry.end;
                Some(Ok(entry))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(seq: u64, data: &[u8]) -> EntryHeader {
        EntryHeader {
            op: EntryOp::Write,
            tag: 1,
            payload_len: 0,
            seq,
            epoch: 3,
            ack_floor: seq - 1,
            offset: 4096,
            length: data.len() as u64,
            timestamp_ns: 7,
            payload_crc: 0,
        }
    }

    #[test]
    fn entries_round_trip_and_are_padded() {
        let mut bytes = Vec::new();
        write(1, b"hello").encode_entry(b"hello", &mut bytes);
        assert_eq!(bytes.len(), 80);
        let mut zero = write(2, b"");
        zero.op = EntryOp::WriteZeroes;
        zero.length = 8192;
        zero.encode_entry(&[], &mut bytes);
        let (entries, error) = scan_entries(&bytes, true);
        assert_eq!(error, None);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].header.seq, 1);
        assert_eq!(&bytes[entries[0].payload_at..entries[0].payload_at + 5], b"hello");
        assert_eq!(entries[1].header.op, EntryOp::WriteZeroes);
        assert_eq!(entries[1].end, bytes.len());
    }

    #[test]
    fn a_torn_tail_is_truncated_and_a_flipped_bit_is_corrupt() {
        let mut bytes = Vec::new();
        write(1, b"abc").encode_entry(b"abc", &mut bytes);
        write(2, b"defg").encode_entry(b"defg", &mut bytes);
        for cut in 81..bytes.len() {
            let (entries, error) = scan_entries(&bytes[..cut], true);
            assert_eq!(entries.len(), 1, "cut at {cut}");
            assert!(matches!(error, Some(EntryError::Truncated(_))), "cut at {cut}: {error:?}");
        }
        for flip in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[flip] ^= 0x10;
            let (entries, error) = scan_entries(&bad, true);
            let is_padding = (75..80).contains(&flip) || (156..160).contains(&flip);
            if is_padding {
                continue;
            }
            assert!(entries.len() < 2 && error.is_some(), "flip at {flip} went unnoticed");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x1234_5678_u32;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = scan_entries(&bytes, true);
            let _ = decode_append(&bytes);
        }
    }

    #[test]
    fn append_framing_round_trips() {
        let append = SegmentAppend { epoch: 2, first_seq: 10, count: 1 };
        let mut entries = Vec::new();
        write(10, b"x").encode_entry(b"x", &mut entries);
        let input = encode_append(&append, &entries).unwrap();
        let (decoded, rest) = decode_append(&input).unwrap();
        assert_eq!(decoded, append);
        assert_eq!(rest, &entries[..]);
        assert_eq!(decode_append(&input[..3]).unwrap_err().errno(), libc::EINVAL);
        let zero = encode_append(&SegmentAppend { count: 0, ..append }, &entries).unwrap();
        assert_eq!(decode_append(&zero).unwrap_err().errno(), libc::ERANGE);
    }

    #[test]
    fn names() {
        assert_eq!(segment_object("0123456789abcdef", 2), "cg_journal.0123456789abcdef.0000000000000002");
        assert_eq!(
            header_of_segment("cg_journal.0123456789abcdef.0000000000000002").as_deref(),
            Some("cg_header.0123456789abcdef")
        );
        assert_eq!(header_of_segment("cg_header.x"), None);
        assert_eq!(consumer_key("local"), "journal_consumer_local");
        assert_eq!(snap_journal_key(2), "journalpos_0000000000000002");
        assert!(!snap_journal_key(2).starts_with(crate::names::SNAP_KEY_PREFIX));
        assert!(validate_consumer_name("peer-1.site_a").is_ok());
        assert!(validate_consumer_name("a/b").is_err());
    }
}
