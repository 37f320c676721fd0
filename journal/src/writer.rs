//! The journal writer: the one process that appends to a group's journal and applies it to
//! the member images. The NBD server serves through it; `journal replay`, `journal
//! disable` and snapshots of a journaled group without a server run it briefly.
//!
//! Opening ([`JournalWriter::open`]), in this order:
//! 1. take the writer lease (a new epoch; a live writer is refused by name, a dead one
//!    blocklisted, `lease`);
//! 2. take every member's exclusive lock and open it for RADOS-level writes (`members`);
//! 3. seal the journal's last segment with the new epoch: the previous writer cannot append
//!    any more, even with requests still on the wire;
//! 4. replay: apply every entry after the local consumer's position, in order (recovery);
//! 5. open a new segment for the new epoch and record it (`journal_roll`).
//!
//! Serving: each write is *submitted* synchronously, which fixes its place in the group's one
//! order (the NBD server submits in the order it read requests); entries are appended in
//! batches (group commit: while one append is in flight the next batch gathers), and a write
//! is acknowledged only once its append is durable. Durable entries then go to the applier
//! (`apply`), which writes the member images in the background; a read waits until every
//! write it overlaps has been applied, so reads see every acknowledged write. Journal space is
//! bounded: while the local applier is further behind than the journal's bound, new writes
//! wait.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rbd_cg_contract::journal::{
    encode_append, entry_len, segment_object, ConsumerRecord, ConsumerSetRequest, ConsumerState, EntryHeader, EntryOp,
    JournalRollRequest, SegmentAppend, SegmentOpenRequest, SegmentSealRequest, SnapJournalPositionRequest,
    WriterRequest, LOCAL_CONSUMER, MAX_APPEND_BYTES,
};
use rbd_cg_contract::methods::{
    SnapFinishRequest, SnapRemoveRequest, SnapRequest, JOURNAL_CONSUMER_SET, JOURNAL_ROLL, SEGMENT_APPEND,
    SEGMENT_OPEN, SEGMENT_SEAL, SNAP_CREATE_FINISH, SNAP_GET, SNAP_REMOVE_BEGIN, SNAP_REMOVE_FINISH,
    SNAP_SET_JOURNAL_POSITION,
};
use rbd_cg_contract::names::{exposed_image_snap_name, header_object, image_snap_name, parse_image_snap_name};
use rbd_cg_contract::records::{ImageRef, SnapshotState};
use rbd_cg_contract::CLASS_NAME;
use rbd_cg_rados::ceph::cls_rbd::{PROTECTION_PROTECTED, PROTECTION_UNPROTECTED, PROTECTION_UNPROTECTING};
use rbd_cg_rados::cls::WriteBatch;
use rbd_cg_rados::exclusive_lock::write_snapshot_map;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::snap_record;
use rbd_cg_rados::{Cluster, IoCtx, RadosError, RadosResult};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::apply::{Applier, Target};
use crate::lease::{Incoming, Lease};
use crate::members::{open_members, ImageSlot, Member};
use crate::reader::JournalReader;
use crate::stats::WriterStats;
use crate::trim::Trimmer;

/// The applier's housekeeping period: lease and failure checks; trimming every 5 ticks.
const TICK: Duration = Duration::from_millis(200);

/// How a writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// What it is, shown to whoever finds the lease taken (`rbd-cg nbd serve on HOST, pid N`).
    pub description: String,
    /// Entries applied to member images at once.
    pub max_applying: usize,
    /// Largest append (bytes of entries); a batch is cut there.
    pub max_append_bytes: usize,
    /// Appends in flight at once (pipelined group commit; 1, the default: one at a time).
    /// More let a write wait for about one append instead of one and a half, at the price of
    /// smaller batches, so more OSD operations: no gain measured on a single CPU-bound OSD
    /// (docs/BENCHMARKS.md); for clusters where appends wait on the network, not the OSD.
    pub max_appends_in_flight: usize,
    /// How often the local consumer's position is recorded (and the journal trimmed).
    pub position_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            description: format!("rbd-cg pid {}", std::process::id()),
            max_applying: 64,
            max_append_bytes: 4 << 20,
            max_appends_in_flight: 1,
            position_interval: Duration::from_millis(200),
        }
    }
}

/// A member as exported by the writer.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// Its journal tag.
    pub tag: u32,
    /// The image.
    pub image: ImageRef,
    /// `pool/[namespace/]name`.
    pub label: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The future of a submitted operation.
pub type Completion<T> = Pin<Box<dyn Future<Output = RadosResult<T>> + Send + 'static>>;

/// An entry submitted but not yet appended: its header, its payload (for the applier) and
/// who waits for it to be durable.
/// The instant is when it was submitted (statistics only).
type Submitted = (EntryHeader, Arc<[u8]>, oneshot::Sender<RadosResult<()>>, Instant);

/// Not-yet-applied writes of one member: sequence number → (offset, length), for reads.
type UnappliedWrites = BTreeMap<u64, (u64, u64)>;

/// Entries submitted but not yet appended.
struct Pending {
    /// The sequence number the next submitted entry gets.
    next_seq: u64,
    /// Every entry up to this one is durable (and was acknowledged).
    durable: u64,
    /// Encoded entries waiting for the next append.
    bytes: Vec<u8>,
    /// The entries themselves, for the applier, and who waits for each.
    entries: Vec<Submitted>,
    /// Set when the writer failed or stops: every later submission fails with it.
    closed: Option<RadosError>,
}

struct Inner {
    group_id: String,
    epoch: u64,
    members: Vec<MemberInfo>,
    images: HashMap<u32, Arc<ImageSlot>>,
    pending: Mutex<Pending>,
    appender_wake: Notify,
    /// Not-yet-applied writes per member: sequence number → (offset, length), for reads.
    unapplied: Mutex<HashMap<u32, UnappliedWrites>>,
    applied: watch::Receiver<u64>,
    durable: watch::Sender<u64>,
    /// Journal space in use, and its bound.
    space: Mutex<Space>,
    /// Signalled when trimming freed space.
    space_freed: Notify,
    /// Signalled by an appender waiting for space: record the position and trim now.
    trim_wanted: Notify,
    /// Why the writer failed (lease lost, an append or apply error), once it did.
    failed: watch::Sender<Option<RadosError>>,
    /// Where writes spend their time.
    stats: Arc<WriterStats>,
}

/// Journal space in use: the bytes of entries in every segment not trimmed, and the
/// journal's bound (`--max-size`). An append waits while it would pass the bound; trimming
/// (below the slowest connected consumer, disconnecting one that holds the journal full)
/// frees space.
struct Space {
    /// (segment, bytes of entries in it), oldest first, the active one last.
    segments: std::collections::VecDeque<(u64, u64)>,
    /// Their sum.
    total: u64,
    /// The bound.
    bound: u64,
}

impl Space {
    fn add(&mut self, segment: u64, bytes: u64) {
        match self.segments.back_mut() {
            Some((last, used)) if *last == segment => *used += bytes,
            _ => self.segments.push_back((segment, bytes)),
        }
        self.total += bytes;
    }

    /// Forgets trimmed segments; whether that freed anything.
    fn trimmed(&mut self, segments: &[u64]) -> bool {
        let before = self.total;
        self.segments.retain(|(segment, bytes)| {
            let gone = segments.contains(segment);
            if gone {
                self.total -= bytes;
            }
            !gone
        });
        self.total < before
    }
}

/// A running journal writer; see the module documentation.
pub struct JournalWriter {
    inner: Arc<Inner>,
    appender: Option<tokio::task::JoinHandle<RadosResult<()>>>,
    applier: Option<tokio::task::JoinHandle<RadosResult<()>>>,
    stop_applier: Option<oneshot::Sender<()>>,
    lease: Arc<Mutex<Lease>>,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn now_ms() -> u64 {
    now_ns() / 1_000_000
}

impl JournalWriter {
    /// Opens the writer of group `group_id` (header in `ioctx`'s pool and namespace): steps
    /// 1–5 of the module documentation. Runs blocking librados calls: call it from a blocking
    /// context (e.g. `spawn_blocking`) or before the runtime's work starts.
    pub async fn open(
        cluster: &Cluster,
        ioctx: IoCtx,
        group_id: &str,
        config: WriterConfig,
    ) -> RadosResult<JournalWriter> {
        let (lease, requests) = {
            let (cluster, group_id, description) = (cluster.clone(), group_id.to_owned(), config.description.clone());
            tokio::task::spawn_blocking(move || Lease::acquire(&cluster, ioctx, &group_id, &description))
                .await
                .map_err(|_| RadosError::new("taking the lease panicked", libc::EIO))??
        };
        let record = lease.record().clone();
        let epoch = lease.epoch();
        let members = {
            let (cluster, record, description) = (cluster.clone(), record.clone(), config.description.clone());
            tokio::task::spawn_blocking(move || open_members(&cluster, &record, &description))
                .await
                .map_err(|_| RadosError::new("taking the members panicked", libc::EIO))??
        };
        let group_ioctx = cluster.ioctx_in(lease.ioctx().pool_id(), lease.ioctx().namespace())?;
        let reader = JournalReader::new(cluster.ioctx_in(group_ioctx.pool_id(), group_ioctx.namespace())?, group_id);

        // 3. Seal the last segment: the previous writer's appends end here.
        let mut last = record.active_segment;
        while reader.segment(last + 1).await?.is_some() {
            last += 1;
        }
        let mut tail = reader.segment(last).await?;
        if tail.is_some() {
            group_ioctx
                .aio_call_write(&segment_object(group_id, last), &SEGMENT_SEAL, &SegmentSealRequest { epoch })
                .await
                .map_err(|e| e.context(format!("sealing segment {last}")))?;
            tail = reader.segment(last).await?;
        }

        // The journal space in use: every segment from the first on.
        let mut space = Space { segments: std::collections::VecDeque::new(), total: 0, bound: record.max_bytes };
        for number in record.first_segment..=last {
            if let Some(found) = reader.segment(number).await? {
                space.add(number, found.committed_len);
            }
        }

        // 4. Replay what the local applier had not applied.
        let local = lease.status.consumers.iter().find(|c| c.name == LOCAL_CONSUMER).map_or(0, |c| c.position);
        let targets: HashMap<u32, Arc<dyn Target>> =
            members.iter().map(|m| (m.tag, Arc::clone(&m.image_io) as Arc<dyn Target>)).collect();
        let stats = Arc::new(WriterStats::default());
        let mut applier = Applier::new(targets.clone(), local, config.max_applying, false);
        let mut cursor = reader.seek(record.first_segment, local).await?;
        let started = Instant::now();
        loop {
            let batch = reader.read(&mut cursor, 8 << 20).await?;
            if batch.entries.is_empty() {
                break;
            }
            for entry in batch.entries {
                applier.submit(entry).await?;
            }
        }
        let replayed_to = applier.drain().await?;
        if replayed_to > local {
            log::info!(
                "journal of group {group_id}: replayed entries {}..={replayed_to} in {:.1} s",
                local + 1,
                started.elapsed().as_secs_f64()
            );
        }
        let head = cursor.next_seq - 1;
        record_position(&group_ioctx, group_id, head).await?;

        // 5. A new segment for this epoch, after the last one.
        let segment = if tail.is_some() { last + 1 } else { last };
        let capacity = record.segment_size;
        group_ioctx
            .aio_call_write(
                &segment_object(group_id, segment),
                &SEGMENT_OPEN,
                &SegmentOpenRequest { epoch, first_seq: head + 1, capacity },
            )
            .await
            .map_err(|e| e.context(format!("opening segment {segment}")))?;
        group_ioctx
            .aio_call_write(
                &header_object(group_id),
                &JOURNAL_ROLL,
                &JournalRollRequest { group_id: group_id.into(), epoch, segment, first_seq: head + 1 },
            )
            .await?;

        let infos: Vec<MemberInfo> = members
            .iter()
            .map(|m| MemberInfo { tag: m.tag, image: m.image.clone(), label: m.label.clone(), size: m.image_io.size() })
            .collect();
        let images = members.iter().map(|m| (m.tag, Arc::clone(&m.image_io))).collect();
        let (durable_tx, _) = watch::channel(head);
        let inner = Arc::new(Inner {
            group_id: group_id.to_owned(),
            epoch,
            members: infos,
            images,
            pending: Mutex::new(Pending {
                next_seq: head + 1,
                durable: head,
                bytes: Vec::new(),
                entries: Vec::new(),
                closed: None,
            }),
            appender_wake: Notify::new(),
            unapplied: Mutex::new(HashMap::new()),
            applied: applier.applied(),
            durable: durable_tx,
            space: Mutex::new(space),
            space_freed: Notify::new(),
            trim_wanted: Notify::new(),
            failed: watch::channel(None).0,
            stats,
        });
        applier.set_stats(Arc::clone(&inner.stats));
        let (entries_tx, entries_rx) = mpsc::unbounded_channel();
        let appender = tokio::spawn(append_loop(
            Arc::clone(&inner),
            cluster.ioctx_in(group_ioctx.pool_id(), group_ioctx.namespace())?,
            AppendState { segment, committed: 0, capacity },
            entries_tx,
            config.max_append_bytes.min(MAX_APPEND_BYTES),
            config.max_appends_in_flight,
        ));
        let lease = Arc::new(Mutex::new(lease));
        let (stop_tx, stop_rx) = oneshot::channel();
        let applier_task = tokio::spawn(apply_loop(
            Arc::clone(&inner),
            applier,
            Arc::new(Mutex::new(members)),
            cluster.clone(),
            group_ioctx,
            entries_rx,
            requests,
            stop_rx,
            config.position_interval,
            Arc::clone(&lease),
        ));
        log::info!("journal of group {group_id}: writing with epoch {epoch} from entry {}", head + 1);
        Ok(JournalWriter {
            inner,
            appender: Some(appender),
            applier: Some(applier_task),
            stop_applier: Some(stop_tx),
            lease,
        })
    }

    /// Resolves with the error once the writer failed (it lost its lease, or an append or
    /// an apply failed): everything submitted since fails too, so whoever serves through it
    /// should stop. Never resolves for a writer that is shut down normally.
    pub fn failure(&self) -> impl Future<Output = RadosError> + Send + 'static {
        let mut failed = self.inner.failed.subscribe();
        async move {
            loop {
                if let Some(e) = failed.borrow_and_update().clone() {
                    return e;
                }
                if failed.changed().await.is_err() {
                    // The writer is gone without failing: never resolve.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// The members, in tag order.
    pub fn members(&self) -> &[MemberInfo] {
        &self.inner.members
    }

    /// The epoch this writer appends with.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// Every entry up to this sequence number is durable.
    pub fn durable(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// Every entry up to this sequence number is applied to the member images.
    pub fn applied(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Where writes spent their time so far (printed at shutdown with `RUST_LOG=debug`).
    pub fn stats(&self) -> Arc<WriterStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Submits a write of `data` at `offset` of member `tag`. Its place in the journal is
    /// fixed by this call; the future resolves once the entry is durable.
    pub fn submit_write(&self, tag: u32, offset: u64, data: Vec<u8>) -> Completion<()> {
        let length = data.len() as u64;
        self.submit(EntryOp::Write, tag, offset, length, Arc::from(data))
    }

    /// Submits a discard.
    pub fn submit_discard(&self, tag: u32, offset: u64, length: u64) -> Completion<()> {
        self.submit(EntryOp::Discard, tag, offset, length, Arc::from(Vec::new()))
    }

    /// Submits a write of zeros.
    pub fn submit_write_zeroes(&self, tag: u32, offset: u64, length: u64) -> Completion<()> {
        self.submit(EntryOp::WriteZeroes, tag, offset, length, Arc::from(Vec::new()))
    }

    /// A flush: every write acknowledged so far is durable already (a write is acknowledged
    /// only once durable), so this waits for the writes submitted before it.
    pub fn submit_flush(&self) -> Completion<()> {
        let target = {
            let pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = &pending.closed {
                let e = e.clone();
                return Box::pin(async move { Err(e) });
            }
            pending.next_seq - 1
        };
        let mut durable = self.inner.durable.subscribe();
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            loop {
                if *durable.borrow() >= target {
                    return Ok(());
                }
                if let Some(e) = inner.pending.lock().unwrap_or_else(PoisonError::into_inner).closed.clone() {
                    return Err(e);
                }
                if durable.changed().await.is_err() {
                    return Err(RadosError::new("journal writer stopped", libc::ESHUTDOWN));
                }
            }
        })
    }

    /// Reads `len` bytes at `offset` of member `tag`, after every write it overlaps that was
    /// submitted before it has been applied.
    pub fn submit_read(&self, tag: u32, offset: u64, len: u64) -> Completion<Vec<u8>> {
        let Some(image) = self.inner.images.get(&tag).cloned() else {
            return Box::pin(async move { Err(RadosError::new(format!("no member with tag {tag}"), libc::ENOENT)) });
        };
        let wait_for = {
            let unapplied = self.inner.unapplied.lock().unwrap_or_else(PoisonError::into_inner);
            unapplied.get(&tag).and_then(|writes| {
                writes
                    .iter()
                    .rev()
                    .find(|(_, (o, l))| *o < offset.saturating_add(len) && offset < o.saturating_add(*l))
                    .map(|(seq, _)| *seq)
            })
        };
        let mut applied = self.inner.applied.clone();
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if let Some(seq) = wait_for {
                loop {
                    if *applied.borrow() >= seq {
                        break;
                    }
                    if let Some(e) = inner.pending.lock().unwrap_or_else(PoisonError::into_inner).closed.clone() {
                        return Err(e);
                    }
                    if applied.changed().await.is_err() {
                        return Err(RadosError::new("journal writer stopped", libc::ESHUTDOWN));
                    }
                }
            }
            image.get().read(offset, len).await
        })
    }

    fn submit(&self, op: EntryOp, tag: u32, offset: u64, length: u64, payload: Arc<[u8]>) -> Completion<()> {
        let (tx, rx) = oneshot::channel();
        let submitted = Instant::now();
        {
            let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = &pending.closed {
                let e = e.clone();
                return Box::pin(async move { Err(e) });
            }
            let seq = pending.next_seq;
            pending.next_seq += 1;
            let header = EntryHeader {
                op,
                tag,
                payload_len: 0,
                seq,
                epoch: self.inner.epoch,
                ack_floor: pending.durable,
                offset,
                length,
                timestamp_ns: now_ns(),
                payload_crc: 0,
            };
            let start = pending.bytes.len();
            header.encode_entry(&payload, &mut pending.bytes);
            // The header as stored (with the payload's length and checksum filled in).
            let stored = EntryHeader::decode(&pending.bytes[start..]).unwrap_or(header);
            pending.entries.push((stored, payload, tx, submitted));
            if op != EntryOp::Mark {
                self.inner
                    .unapplied
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(tag)
                    .or_default()
                    .insert(seq, (offset, length));
            }
        }
        self.inner.appender_wake.notify_one();
        Box::pin(async move {
            match rx.await {
                Ok(outcome) => outcome,
                Err(_) => Err(RadosError::new("journal writer stopped", libc::ESHUTDOWN)),
            }
        })
    }

    /// Cuts group snapshot `name` (recorded `Creating`) at the journal position where it is
    /// applied to, as a request by notify would; returns that position.
    pub async fn snapshot(&self, name: &str) -> RadosResult<u64> {
        self.request(WriterRequest::Snapshot { name: name.into() }).await
    }

    /// Removes group snapshot `name` (marked `Removing`), as a request by notify would.
    pub async fn remove_snapshot(&self, name: &str) -> RadosResult<()> {
        self.request(WriterRequest::RemoveSnapshot { name: name.into() }).await.map(drop)
    }

    async fn request(&self, request: WriterRequest) -> RadosResult<u64> {
        let sender = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .request_sender()
            .ok_or_else(|| RadosError::new("the journal writer is shutting down", libc::ESHUTDOWN))?;
        let (tx, rx) = oneshot::channel();
        sender
            .send(Incoming { request, reply: Some(tx) })
            .map_err(|_| RadosError::new("the journal writer stopped", libc::ESHUTDOWN))?;
        rx.await.map_err(|_| RadosError::new("the journal writer stopped", libc::ESHUTDOWN))?
    }

    /// Stops: no new submissions; everything submitted is appended and applied, the local
    /// position recorded, the segment sealed, and the lease and member locks released.
    pub async fn shutdown(mut self) -> RadosResult<()> {
        {
            let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.closed.is_none() {
                pending.closed = Some(RadosError::new("journal writer is shutting down", libc::ESHUTDOWN));
            }
        }
        self.inner.appender_wake.notify_one();
        let appended = match self.appender.take() {
            Some(task) => task.await.map_err(|_| RadosError::new("appender panicked", libc::EIO))?,
            None => Ok(()),
        };
        if let Some(stop) = self.stop_applier.take() {
            let _ = stop.send(());
        }
        let applied = match self.applier.take() {
            Some(task) => task.await.map_err(|_| RadosError::new("applier panicked", libc::EIO))?,
            None => Ok(()),
        };
        if log::log_enabled!(target: "rbd_cg_journal::stats", log::Level::Debug) {
            log::debug!(
                target: "rbd_cg_journal::stats",
                "journal of group {}: data path (durations in µs):\n{}",
                self.inner.group_id,
                self.inner.stats
            );
        }
        let lease = Arc::clone(&self.lease);
        let released =
            tokio::task::spawn_blocking(move || lease.lock().unwrap_or_else(PoisonError::into_inner).release())
                .await
                .map_err(|_| RadosError::new("releasing panicked", libc::EIO))?;
        appended?;
        applied?;
        released
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.closed.is_none() {
            pending.closed = Some(RadosError::new("journal writer dropped", libc::ESHUTDOWN));
        }
        drop(pending);
        self.inner.appender_wake.notify_one();
        if let Some(stop) = self.stop_applier.take() {
            let _ = stop.send(());
        }
    }
}

/// The appender's segment.
struct AppendState {
    segment: u64,
    committed: u64,
    capacity: u64,
}

/// Fails every pending and later submission with `error`, and tells [`JournalWriter::failure`].
fn fail(inner: &Inner, error: &RadosError) {
    inner.failed.send_if_modified(|failed| {
        let first = failed.is_none();
        if first {
            *failed = Some(error.clone());
        }
        first
    });
    let entries = {
        let mut pending = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.closed.is_none() {
            pending.closed = Some(error.clone());
        }
        pending.bytes.clear();
        std::mem::take(&mut pending.entries)
    };
    for (_, _, waiter, _) in entries {
        let _ = waiter.send(Err(error.clone()));
    }
}

/// A batch taken from the pending entries, to append.
struct Batch {
    bytes: Vec<u8>,
    entries: Vec<Submitted>,
}

/// An append sent to the OSD and not yet answered.
struct InFlight {
    op: Completion<()>,
    entries: Vec<Submitted>,
    segment: u64,
    len: u64,
    sent: Instant,
}

/// Takes whole entries up to `max_append` bytes off the pending ones; whether the writer is
/// stopping.
fn take_batch(inner: &Inner, max_append: usize) -> (Option<Batch>, bool) {
    let mut pending = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
    let stopping = pending.closed.is_some();
    if pending.entries.is_empty() {
        return (None, stopping);
    }
    let mut take = 0usize;
    let mut cut = 0usize;
    for (header, _, _, _) in &pending.entries {
        let len = entry_len(header.payload_len);
        if cut > 0 && take + len > max_append {
            break;
        }
        take += len;
        cut += 1;
    }
    let rest = pending.bytes.split_off(take);
    let bytes = std::mem::replace(&mut pending.bytes, rest);
    let entries: Vec<_> = pending.entries.drain(..cut).collect();
    (Some(Batch { bytes, entries }), stopping)
}

/// Fails the waiters of `entries` with `error`.
fn fail_entries(entries: impl IntoIterator<Item = Submitted>, error: &RadosError) {
    for (_, _, waiter, _) in entries {
        let _ = waiter.send(Err(error.clone()));
    }
}

/// Group commit: appends what was submitted, batches gathering while appends are in flight
/// (up to `max_in_flight` at once, pipelined on the one segment object: RADOS runs one
/// client's ops on an object in the order sent, and the class refuses an append that does
/// not start at the segment's next sequence number, so an append lands only if every earlier
/// one did); acknowledges each entry once its append and every earlier one are durable, in
/// journal order, and hands it to the applier.
async fn append_loop(
    inner: Arc<Inner>,
    ioctx: IoCtx,
    mut segment: AppendState,
    to_applier: mpsc::UnboundedSender<(EntryHeader, Arc<[u8]>)>,
    max_append: usize,
    max_in_flight: usize,
) -> RadosResult<()> {
    let group_id = inner.group_id.clone();
    let header_oid = header_object(&group_id);
    let max_in_flight = max_in_flight.max(1);
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // A batch taken but not sent yet (it waits for a roll or for space).
    let mut ready: Option<Batch> = None;
    let mut stopping = false;
    let result: RadosResult<()> = async {
        loop {
            if ready.is_none() && in_flight.len() < max_in_flight {
                (ready, stopping) = take_batch(&inner, max_append);
            }
            if let Some(batch) = ready.take() {
                let len = batch.bytes.len() as u64;
                let sending: u64 = in_flight.iter().map(|f| f.len).sum();
                // A batch never spans segments: roll when it does not fit (before waiting for
                // space, so that the full segment can be trimmed once applied), once every
                // append to the full one has been answered.
                if segment.committed + sending > 0 && segment.committed + sending + len > segment.capacity {
                    if !in_flight.is_empty() {
                        ready = Some(batch);
                        complete_front(&inner, &mut in_flight, &mut segment, &to_applier).await?;
                        continue;
                    }
                    let started = Instant::now();
                    let first_seq = batch.entries[0].0.seq;
                    if let Err(e) = roll(&ioctx, &group_id, &header_oid, inner.epoch, &mut segment, first_seq).await {
                        let e = e.context("moving to a new journal segment");
                        fail_entries(batch.entries, &e);
                        return Err(e);
                    }
                    inner.space.lock().unwrap_or_else(PoisonError::into_inner).add(segment.segment, 0);
                    inner.stats.roll.record_duration(started.elapsed());
                }
                // Journal space: wait while the bound would be passed (a batch alone may pass
                // it); appends in flight are answered first.
                let fits = {
                    let space = inner.space.lock().unwrap_or_else(PoisonError::into_inner);
                    space.total + sending == 0 || space.total + sending + len <= space.bound
                };
                if !fits {
                    if !in_flight.is_empty() {
                        ready = Some(batch);
                        complete_front(&inner, &mut in_flight, &mut segment, &to_applier).await?;
                        continue;
                    }
                    let waited = Instant::now();
                    loop {
                        let freed = inner.space_freed.notified();
                        {
                            let space = inner.space.lock().unwrap_or_else(PoisonError::into_inner);
                            if space.total == 0 || space.total + len <= space.bound {
                                break;
                            }
                        }
                        inner.trim_wanted.notify_one();
                        let _ = tokio::time::timeout(TICK, freed).await;
                    }
                    inner.stats.space_wait.record_duration(waited.elapsed());
                }
                let first_seq = batch.entries[0].0.seq;
                let count = u32::try_from(batch.entries.len()).unwrap_or(u32::MAX);
                let append = SegmentAppend { epoch: inner.epoch, first_seq, count };
                let sent = Instant::now();
                for (_, _, _, submitted) in &batch.entries {
                    inner.stats.queued.record_duration(sent.saturating_duration_since(*submitted));
                }
                inner.stats.batch_entries.record(u64::from(count));
                inner.stats.batch_bytes.record(len);
                inner.stats.in_flight.record(in_flight.len() as u64);
                let op: Completion<()> = match encode_append(&append, &batch.bytes) {
                    Ok(input) => {
                        let mut ops = WriteBatch::new();
                        ops.add_raw(CLASS_NAME, SEGMENT_APPEND.name, input);
                        Box::pin(ioctx.aio_write_batch(&segment_object(&group_id, segment.segment), &ops))
                    }
                    Err(e) => {
                        let e = RadosError::new(e.to_string(), e.errno());
                        Box::pin(async move { Err(e) })
                    }
                };
                in_flight.push_back(InFlight { op, entries: batch.entries, segment: segment.segment, len, sent });
                continue;
            }
            if in_flight.is_empty() {
                if stopping {
                    // Nothing more will come: close our segment so a successor starts cleanly.
                    let seal = SegmentSealRequest { epoch: inner.epoch };
                    let _ =
                        ioctx.aio_call_write(&segment_object(&group_id, segment.segment), &SEGMENT_SEAL, &seal).await;
                    return Ok(());
                }
                inner.appender_wake.notified().await;
                continue;
            }
            if in_flight.len() < max_in_flight && !stopping {
                // Answer the oldest append, or send what was submitted meanwhile.
                let wake = inner.appender_wake.notified();
                let answered = match in_flight.front_mut() {
                    Some(front) => tokio::select! {
                        biased;
                        outcome = &mut front.op => Some(outcome),
                        () = wake => None,
                    },
                    None => None,
                };
                if let Some(outcome) = answered {
                    finish_front(&inner, &mut in_flight, &mut segment, &to_applier, outcome)?;
                }
            } else {
                complete_front(&inner, &mut in_flight, &mut segment, &to_applier).await?;
            }
        }
    }
    .await;
    if let Err(e) = &result {
        log::error!("journal of group {group_id}: {e}");
        for flight in in_flight {
            fail_entries(flight.entries, e);
        }
        if let Some(batch) = ready {
            fail_entries(batch.entries, e);
        }
        fail(&inner, e);
    }
    result
}

/// Waits for the oldest append in flight and finishes it ([`finish_front`]).
async fn complete_front(
    inner: &Inner,
    in_flight: &mut VecDeque<InFlight>,
    segment: &mut AppendState,
    to_applier: &mpsc::UnboundedSender<(EntryHeader, Arc<[u8]>)>,
) -> RadosResult<()> {
    let Some(front) = in_flight.front_mut() else { return Ok(()) };
    let outcome = (&mut front.op).await;
    finish_front(inner, in_flight, segment, to_applier, outcome)
}

/// The oldest append in flight was answered with `outcome`: on success its entries (and,
/// appends being answered in order, every earlier one) are durable — acknowledged and handed
/// to the applier; a failure fails the writer.
fn finish_front(
    inner: &Inner,
    in_flight: &mut VecDeque<InFlight>,
    segment: &mut AppendState,
    to_applier: &mpsc::UnboundedSender<(EntryHeader, Arc<[u8]>)>,
    outcome: RadosResult<()>,
) -> RadosResult<()> {
    let Some(flight) = in_flight.pop_front() else { return Ok(()) };
    let first_seq = flight.entries.first().map_or(0, |(h, _, _, _)| h.seq);
    if let Err(e) = outcome {
        let e = e.context(format!("appending entries {first_seq}.. to segment {}", flight.segment));
        fail_entries(flight.entries, &e);
        return Err(e);
    }
    debug_assert_eq!(flight.segment, segment.segment);
    segment.committed += flight.len;
    let last = flight.entries.last().map_or(first_seq, |(h, _, _, _)| h.seq);
    inner.space.lock().unwrap_or_else(PoisonError::into_inner).add(flight.segment, flight.len);
    inner.pending.lock().unwrap_or_else(PoisonError::into_inner).durable = last;
    inner.durable.send_replace(last);
    let durable = Instant::now();
    inner.stats.append.record_duration(durable - flight.sent);
    for (header, payload, waiter, submitted) in flight.entries {
        let _ = to_applier.send((header, payload));
        let _ = waiter.send(Ok(()));
        inner.stats.durable.record_duration(durable.saturating_duration_since(submitted));
    }
    Ok(())
}

/// Seals the current segment, opens the next at `first_seq` and records it.
async fn roll(
    ioctx: &IoCtx,
    group_id: &str,
    header_oid: &str,
    epoch: u64,
    segment: &mut AppendState,
    first_seq: u64,
) -> RadosResult<()> {
    ioctx
        .aio_call_write(&segment_object(group_id, segment.segment), &SEGMENT_SEAL, &SegmentSealRequest { epoch })
        .await?;
    let next = segment.segment + 1;
    let open = SegmentOpenRequest { epoch, first_seq, capacity: segment.capacity };
    ioctx.aio_call_write(&segment_object(group_id, next), &SEGMENT_OPEN, &open).await?;
    let roll = JournalRollRequest { group_id: group_id.into(), epoch, segment: next, first_seq };
    ioctx.aio_call_write(header_oid, &JOURNAL_ROLL, &roll).await?;
    *segment = AppendState { segment: next, committed: 0, capacity: segment.capacity };
    Ok(())
}

/// Records the local consumer's position (never backwards: the class refuses that).
async fn record_position(ioctx: &IoCtx, group_id: &str, position: u64) -> RadosResult<()> {
    let consumer = ConsumerRecord {
        name: LOCAL_CONSUMER.into(),
        state: ConsumerState::Connected,
        position,
        updated_ms: now_ms(),
        data: Vec::new(),
    };
    let request = ConsumerSetRequest { group_id: group_id.into(), consumer, reset: false };
    match ioctx.aio_call_write(&header_object(group_id), &JOURNAL_CONSUMER_SET, &request).await {
        Err(e) if e.errno == libc::ERANGE => Ok(()), // already further (an earlier record)
        other => other,
    }
}

/// The applier task: durable entries to the member images, snapshot requests, and the local
/// position and trimming on an interval.
#[allow(clippy::too_many_arguments)]
async fn apply_loop(
    inner: Arc<Inner>,
    mut applier: Applier,
    members: Arc<Mutex<Vec<Member>>>,
    cluster: Cluster,
    ioctx: IoCtx,
    mut entries: mpsc::UnboundedReceiver<(EntryHeader, Arc<[u8]>)>,
    mut requests: mpsc::UnboundedReceiver<Incoming>,
    mut stop: oneshot::Receiver<()>,
    interval: Duration,
    lease: Arc<Mutex<Lease>>,
) -> RadosResult<()> {
    let group_id = inner.group_id.clone();
    // The lease and the applier are checked every tick; the position is recorded every
    // `interval` (at least a tick); trimming runs every five ticks.
    let mut ticker = tokio::time::interval(interval.min(TICK));
    let mut recorded = applier.position();
    let mut recorded_at = Instant::now();
    let mut trimmer = Trimmer::new(&group_id);
    let mut ticks = 0u64;
    let mut stopping = false;
    let result: RadosResult<()> = async {
        loop {
            tokio::select! {
                entry = entries.recv() => match entry {
                    Some((header, payload)) => applier.submit(crate::reader::Entry { header, payload }).await?,
                    None => {
                        // The appender is done: apply the rest and stop.
                        applier.drain().await?;
                        forget_applied(&inner, applier.position());
                        record_position(&ioctx, &group_id, applier.position()).await?;
                        return Ok(());
                    }
                },
                request = requests.recv(), if !stopping => match request {
                    Some(Incoming { request, reply }) if request != WriterRequest::Ping => {
                        // Snapshots change the members' snapshot contexts: nothing is being
                        // applied meanwhile (and every member is opened again afterwards).
                        let position = applier.drain().await?;
                        forget_applied(&inner, position);
                        let io = cluster.ioctx_in(ioctx.pool_id(), ioctx.namespace())?;
                        let (members, group_id, cluster) = (Arc::clone(&members), group_id.clone(), cluster.clone());
                        let done = tokio::task::spawn_blocking(move || {
                            let members = members.lock().unwrap_or_else(PoisonError::into_inner);
                            snapshot_request(&cluster, &io, &group_id, &request, position, &members)
                        })
                        .await
                        .unwrap_or_else(|_| Err(RadosError::new("a snapshot request panicked", libc::EIO)));
                        if let Some(reply) = reply {
                            let _ = reply.send(done.map(|()| position));
                        }
                    }
                    Some(Incoming { .. }) => {}
                    None => stopping = true,
                },
                _ = ticker.tick() => {
                    if lease.lock().unwrap_or_else(PoisonError::into_inner).is_lost() {
                        return Err(RadosError::new("the journal writer lease was lost", libc::ESTALE));
                    }
                    if let Some(e) = applier.failure() {
                        return Err(e);
                    }
                    let position = applier.position();
                    forget_applied(&inner, position);
                    if position > recorded && recorded_at.elapsed() >= interval {
                        record_position(&ioctx, &group_id, position).await?;
                        recorded = position;
                        recorded_at = Instant::now();
                    }
                    // Trim (and disconnect consumers past the bound) every few ticks.
                    ticks += 1;
                    if ticks.is_multiple_of(5) {
                        trim(&mut trimmer, &inner, &ioctx, false).await;
                    }
                }
                _ = inner.trim_wanted.notified() => {
                    // An append waits for journal space: record what is applied, trim now,
                    // and disconnect a consumer that keeps the journal full.
                    let position = applier.position();
                    forget_applied(&inner, position);
                    if position > recorded {
                        record_position(&ioctx, &group_id, position).await?;
                        recorded = position;
                        recorded_at = Instant::now();
                    }
                    trim(&mut trimmer, &inner, &ioctx, true).await;
                }
                _ = &mut stop, if !stopping => stopping = true,
            }
        }
    }
    .await;
    if let Err(e) = &result {
        log::error!("journal of group {group_id}: the applier stopped: {e}");
        fail(&inner, e);
    }
    drop(members);
    result
}

/// Trims once and frees the space of the segments removed.
async fn trim(trimmer: &mut Trimmer, inner: &Inner, ioctx: &IoCtx, pressure: bool) {
    match trimmer.run(ioctx, pressure).await {
        Ok(report) => {
            let freed = inner.space.lock().unwrap_or_else(PoisonError::into_inner).trimmed(&report.removed);
            if freed {
                inner.space_freed.notify_waiters();
            }
        }
        Err(e) => log::warn!("journal of group {}: trimming: {e}", inner.group_id),
    }
}

/// Drops the read index of applied writes.
fn forget_applied(inner: &Inner, position: u64) {
    let mut unapplied = inner.unapplied.lock().unwrap_or_else(PoisonError::into_inner);
    for writes in unapplied.values_mut() {
        let keep = writes.split_off(&(position + 1));
        *writes = keep;
    }
}

/// Runs a snapshot request (the applier is drained: every entry up to `position` applied,
/// none after it), then opens every member again so that later writes carry the new snapshot
/// context whatever happened (a snapshot added before a failure must be preserved too).
fn snapshot_request(
    cluster: &Cluster,
    ioctx: &IoCtx,
    group_id: &str,
    request: &WriterRequest,
    position: u64,
    members: &[Member],
) -> RadosResult<()> {
    let done = match request {
        WriterRequest::Snapshot { name } => match cut_snapshot(ioctx, group_id, name, position, members) {
            Ok(()) => Ok(()),
            Err(e) => {
                log::error!(
                    "journal of group {group_id}: snapshot {name:?} at entry {position} failed: {e}; undoing it"
                );
                let undo = SnapRemoveRequest { group_id: group_id.into(), name: name.clone(), undo_create: true };
                let undone = ioctx
                    .call_write(&header_object(group_id), &SNAP_REMOVE_BEGIN, &undo)
                    .and_then(|()| remove_snapshot(cluster, ioctx, group_id, name, members));
                if let Err(undo) = undone {
                    log::error!("journal of group {group_id}: undoing snapshot {name:?} failed too: {undo}");
                }
                Err(e)
            }
        },
        WriterRequest::RemoveSnapshot { name } => remove_snapshot(cluster, ioctx, group_id, name, members),
        WriterRequest::Ping => Ok(()),
    };
    let mut reopened = Ok(());
    for member in members {
        if let Err(e) = member.image_io.reopen() {
            log::error!("journal of group {group_id}: opening {} again: {e}", member.label);
            reopened = Err(e);
        }
    }
    // Writing on with a stale snapshot context would corrupt the snapshots: stop instead.
    reopened.map_err(|e| e.context("after a snapshot"))?;
    done
}

/// Removes the member snapshots of group snapshot `name` (`Removing`) under our locks and
/// drops its record.
fn remove_snapshot(
    cluster: &Cluster,
    ioctx: &IoCtx,
    group_id: &str,
    name: &str,
    members: &[Member],
) -> RadosResult<()> {
    let header = header_object(group_id);
    let request = SnapRequest { group_id: group_id.into(), name: name.into() };
    let record = match ioctx.call(&header, &SNAP_GET, &request) {
        Ok(record) => record,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if record.state != SnapshotState::Removing {
        return Err(RadosError::new(
            format!("snapshot {name:?} is {:?}, not being removed", record.state),
            libc::EINVAL,
        ));
    }
    let snap_name = image_snap_name(ioctx.pool_id(), group_id, &record.id);
    for member in &record.members {
        match members.iter().find(|m| m.image == member.image) {
            // Found by id when it was cut (by name only for an undone cut).
            Some(held) => {
                held.lock.remove_snapshot(&held.data_pool, &snap_name, member.snap_id)?;
            }
            // An image that left the group before the journal was enabled (membership is
            // frozen since): not fenced, so librbd removes its snapshot.
            None => remove_with_librbd(cluster, &member.image, &snap_name, member.snap_id)?,
        }
    }
    ioctx.call_write(&header, &SNAP_REMOVE_FINISH, &request)?;
    log::info!("journal of group {group_id}: snapshot {name:?} removed");
    Ok(())
}

/// Removes member snapshot `snap_name` (id `snap_id` when it was cut) of a non-member
/// through librbd, by id: it is in cls_rbd's group namespace, where no by-name call reaches
/// it (or a user snapshot, from release 0.1.0). Protected as every member snapshot is cut,
/// it is first unprotected as librbd's unprotect does (`UNPROTECTING`, no clone children
/// anywhere, `UNPROTECTED`; `EBUSY` and protected again while it has some). A gone image,
/// pool or snapshot is fine.
fn remove_with_librbd(cluster: &Cluster, image: &ImageRef, snap_name: &str, snap_id: Option<u64>) -> RadosResult<()> {
    let ignore_missing = |result: RadosResult<()>| match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    };
    let context = |e: RadosError| e.context(format!("removing snapshot {snap_name} of image {}", image.image_id));
    let io = match cluster.ioctx_in(image.pool_id, &image.namespace) {
        Ok(io) => io,
        Err(e) => return ignore_missing(Err(e)),
    };
    let mut opened = match Image::open_by_id(&io, &image.image_id) {
        Ok(opened) => opened,
        Err(e) => return ignore_missing(Err(e)),
    };
    let parts = parse_image_snap_name(snap_name);
    let exposed = parts.map(|p| exposed_image_snap_name(p.group_pool_id, &p.group_id, &p.snap_id));
    let ids: Vec<u64> = match snap_id {
        Some(id) => vec![id],
        None => opened.snap_list()?.into_iter().filter(|s| s.name == snap_name).map(|s| s.id).collect(),
    };
    for (id, record) in ids.iter().zip(snap_record::read_snapshots(&io, &image.image_id, &ids)?) {
        let Some(record) = record else { continue };
        if record.name != snap_name && Some(&record.name) != exposed.as_ref() {
            continue; // not (or no longer) this member snapshot
        }
        if record.protection_status != PROTECTION_UNPROTECTED {
            snap_record::set_protection(&io, &image.image_id, *id, PROTECTION_UNPROTECTING).map_err(context)?;
            match opened.snap_children_count(*id).map_err(context)? {
                0 => snap_record::set_protection(&io, &image.image_id, *id, PROTECTION_UNPROTECTED).map_err(context)?,
                count => {
                    snap_record::set_protection(&io, &image.image_id, *id, PROTECTION_PROTECTED).map_err(context)?;
                    return Err(context(RadosError::new(format!("it has {count} clone children"), libc::EBUSY)));
                }
            }
        }
        ignore_missing(opened.snap_remove_by_id(*id)).map_err(context)?;
    }
    Ok(())
}

/// Cuts group snapshot `name` at journal position `position` (every entry up to it applied,
/// none after it): every member snapshot under our lock, then the position and the
/// snapshot's completion in one atomic op on the header.
fn cut_snapshot(ioctx: &IoCtx, group_id: &str, name: &str, position: u64, members: &[Member]) -> RadosResult<()> {
    let header = header_object(group_id);
    let request = SnapRequest { group_id: group_id.into(), name: name.into() };
    let record = ioctx.call(&header, &SNAP_GET, &request)?;
    if record.state != SnapshotState::Creating {
        return Err(RadosError::new(format!("snapshot {name:?} is {:?}", record.state), libc::EINVAL));
    }
    let snap_name = image_snap_name(ioctx.pool_id(), group_id, &record.id);
    let mut image_snaps = Vec::with_capacity(record.members.len());
    for member in &record.members {
        let held = members.iter().find(|m| m.image == member.image).ok_or_else(|| {
            RadosError::new(format!("snapshot member {} is not journaled", member.image.image_id), libc::EINVAL)
        })?;
        let id = cut_member(held, &snap_name)?;
        image_snaps.push((member.image.clone(), id));
    }
    let mut finish = WriteBatch::new();
    finish
        .add(
            &SNAP_SET_JOURNAL_POSITION,
            &SnapJournalPositionRequest { group_id: group_id.into(), name: name.into(), position },
        )?
        .add(&SNAP_CREATE_FINISH, &SnapFinishRequest { group_id: group_id.into(), name: name.into(), image_snaps })?;
    ioctx.write_batch(&header, &finish)?;
    log::info!("journal of group {group_id}: snapshot {name:?} cut at entry {position}");
    Ok(())
}

/// Cuts one member's snapshot under our lock and makes later writes preserve it (after the
/// caller reopens the member's [`crate::members::ImageSlot`]). The mirror daemon cuts its
/// snapshot-mode copies with it too.
pub fn cut_member(member: &Member, snap_name: &str) -> RadosResult<u64> {
    let data_pool = &member.data_pool;
    let mut id = data_pool.selfmanaged_snap_create()?;
    if let Some((map_io, image_id)) = member.lock.snapshot_map_job()? {
        write_snapshot_map(&map_io, &image_id, id)?;
    }
    match member.lock.add_snapshot(snap_name, id) {
        Ok(()) => {}
        Err(e) if e.errno == libc::ESTALE => {
            member.lock.drop_snapshot_map(id);
            id = data_pool.selfmanaged_snap_create()?;
            if let Some((map_io, image_id)) = member.lock.snapshot_map_job()? {
                write_snapshot_map(&map_io, &image_id, id)?;
            }
            member.lock.add_snapshot(snap_name, id)?;
        }
        Err(e) => return Err(e),
    }
    member.lock.finish_cut()?;
    Ok(id)
}
