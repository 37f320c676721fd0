//! Applying journal entries to member images, in parallel where that cannot change the
//! outcome.
//!
//! Entries arrive in journal order. Two entries that touch the same RADOS object of the same
//! member are applied one after the other, in journal order (so the last write wins, as in
//! the journal); entries on different objects run concurrently, up to a bound. The
//! *applied position* is the largest sequence number such that it and every entry before it
//! have been applied; it is what a consumer records, and where a restart resumes (entries
//! after it may have been applied already: applying them again in order is harmless, every
//! operation is idempotent in sequence).
//!
//! With `respect_ack_floor` (the mirror), an entry is also held back until every entry up
//! to its `ack_floor` has been applied: the writer had acknowledged those before it took
//! this one, so an application may have depended on them. Then every state of the images,
//! at any moment, is one the primary's applications could have seen after a crash: a
//! crash-consistent state across all members, never "B without the A it depended on".

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rbd_cg_contract::journal::EntryOp;
use rbd_cg_rados::{RadosError, RadosResult};
use tokio::sync::{watch, Semaphore};

use crate::reader::Entry;
use crate::stats::WriterStats;

/// A boxed, sendable future of a RADOS outcome.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = RadosResult<T>> + Send + 'static>>;

/// Where entries of one member are applied: its image, at the RADOS level.
pub trait Target: Send + Sync + 'static {
    /// Bytes per RADOS object of the image.
    fn object_size(&self) -> u64;
    /// Writes `data` at `offset`.
    fn write(self: Arc<Self>, offset: u64, data: Arc<[u8]>) -> BoxFuture<()>;
    /// Discards `len` bytes at `offset`.
    fn discard(self: Arc<Self>, offset: u64, len: u64) -> BoxFuture<()>;
    /// Writes `len` zero bytes at `offset`.
    fn write_zeroes(self: Arc<Self>, offset: u64, len: u64) -> BoxFuture<()>;
}

/// Progress shared with the tasks applying entries.
struct Progress {
    /// Every entry up to this one has been applied.
    applied: u64,
    /// Entries after `applied` that have been applied.
    done: BTreeSet<u64>,
    /// The first failure; after it nothing more is applied.
    failed: Option<RadosError>,
}

/// Applies entries to member images; see the module documentation.
pub struct Applier {
    targets: HashMap<u32, Arc<dyn Target>>,
    /// Per (member tag, object number): the sequence number of the last entry dispatched on
    /// it and a signal of its completion.
    objects: HashMap<(u32, u64), (u64, watch::Receiver<bool>)>,
    progress: Arc<Mutex<Progress>>,
    applied_tx: Arc<watch::Sender<u64>>,
    limit: Arc<Semaphore>,
    respect_ack_floor: bool,
    /// The sequence number of the last entry submitted.
    submitted: u64,
    /// Where to record wait and write times, if anywhere.
    stats: Option<Arc<WriterStats>>,
}

impl Applier {
    /// An applier whose images hold every entry up to `position`; the next entry submitted
    /// must be `position + 1`. At most `max_in_flight` entries are applied at once.
    pub fn new(
        targets: HashMap<u32, Arc<dyn Target>>,
        position: u64,
        max_in_flight: usize,
        respect_ack_floor: bool,
    ) -> Applier {
        let (applied_tx, _) = watch::channel(position);
        Applier {
            targets,
            objects: HashMap::new(),
            progress: Arc::new(Mutex::new(Progress { applied: position, done: BTreeSet::new(), failed: None })),
            applied_tx: Arc::new(applied_tx),
            limit: Arc::new(Semaphore::new(max_in_flight.max(1))),
            respect_ack_floor,
            submitted: position,
            stats: None,
        }
    }

    /// A receiver of the applied position.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The applied position now.
    pub fn position(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// The sequence number of the last entry submitted.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// The first failure, if applying has failed.
    pub fn failure(&self) -> Option<RadosError> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner).failed.clone()
    }

    /// Records how long entries wait and how long their image writes take in `stats`.
    pub fn set_stats(&mut self, stats: Arc<WriterStats>) {
        self.stats = Some(stats);
    }

    /// Replaces the targets (after a snapshot refreshed them, or a member was reopened).
    pub fn set_targets(&mut self, targets: HashMap<u32, Arc<dyn Target>>) {
        self.targets = targets;
    }

    /// Starts applying `entry`, which must be the entry after the last one submitted. Waits
    /// while the in-flight bound is reached; the entry itself runs in the background.
    pub async fn submit(&mut self, entry: Entry) -> RadosResult<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let seq = entry.header.seq;
        let queued = Instant::now();
        if seq != self.submitted + 1 {
            return Err(RadosError::new(
                format!("applying entry {seq} after entry {}: out of order", self.submitted),
                libc::EINVAL,
            ));
        }
        let permit = Arc::clone(&self.limit)
            .acquire_owned()
            .await
            .map_err(|_| RadosError::new("applier closed", libc::ESHUTDOWN))?;
        let work = match entry.header.op {
            EntryOp::Mark => None,
            op => {
                let target = self.targets.get(&entry.header.tag).cloned().ok_or_else(|| {
                    RadosError::new(
                        format!("entry {seq} is for unknown member tag {}", entry.header.tag),
                        libc::EBADMSG,
                    )
                })?;
                Some((op, target))
            }
        };
        // What must finish first: earlier entries on the same objects (and, for a mirror,
        // everything up to the ack floor).
        let mut waits = Vec::new();
        let (done_tx, done_rx) = watch::channel(false);
        if let Some((_, target)) = &work {
            for objno in objects_of(entry.header.offset, entry.header.length, target.object_size()) {
                let key = (entry.header.tag, objno);
                if let Some((_, previous)) = self.objects.insert(key, (seq, done_rx.clone())) {
                    waits.push(previous);
                }
            }
        }
        let ack_floor = if self.respect_ack_floor { entry.header.ack_floor } else { 0 };
        let mut applied_rx = self.applied_tx.subscribe();
        let progress = Arc::clone(&self.progress);
        let applied_tx = Arc::clone(&self.applied_tx);
        let stats = self.stats.clone();
        self.submitted = seq;
        tokio::spawn(async move {
            for mut previous in waits {
                let _ = previous.wait_for(|done| *done).await;
            }
            if ack_floor > 0 {
                let _ = applied_rx.wait_for(|applied| *applied >= ack_floor).await;
            }
            let failed = progress.lock().unwrap_or_else(PoisonError::into_inner).failed.is_some();
            let started = Instant::now();
            let outcome = match (&work, failed) {
                (_, true) => Err(RadosError::new("an earlier entry failed", libc::ECANCELED)),
                (None, false) => Ok(()),
                (Some((op, target)), false) => apply_one(*op, Arc::clone(target), &entry).await,
            };
            if let Some(stats) = &stats {
                stats.apply_wait.record_duration(started - queued);
                stats.apply_op.record_duration(started.elapsed());
            }
            complete(&progress, &applied_tx, seq, outcome);
            let _ = done_tx.send(true);
            drop(permit);
        });
        // Forget objects whose last entry has completed (keeps the map small).
        if self.objects.len() > 4096 {
            self.objects.retain(|_, (_, done)| !*done.borrow());
        }
        Ok(())
    }

    /// Waits until every submitted entry has been applied; returns the applied position
    /// (the failure, if any entry failed).
    pub async fn drain(&mut self) -> RadosResult<u64> {
        let target = self.submitted;
        let mut applied = self.applied_tx.subscribe();
        let mut failed_check = tokio::time::interval(std::time::Duration::from_millis(50));
        loop {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if *applied.borrow() >= target {
                self.objects.clear();
                return Ok(target);
            }
            tokio::select! {
                _ = applied.changed() => {}
                _ = failed_check.tick() => {}
            }
        }
    }
}

/// Runs one entry's operation on its member.
async fn apply_one(op: EntryOp, target: Arc<dyn Target>, entry: &Entry) -> RadosResult<()> {
    let h = &entry.header;
    match op {
        EntryOp::Write => target.write(h.offset, Arc::clone(&entry.payload)).await,
        EntryOp::Discard => target.discard(h.offset, h.length).await,
        EntryOp::WriteZeroes => target.write_zeroes(h.offset, h.length).await,
        EntryOp::Mark => Ok(()),
    }
}

/// Records that entry `seq` is done (or failed) and moves the applied position.
fn complete(progress: &Mutex<Progress>, applied_tx: &watch::Sender<u64>, seq: u64, outcome: RadosResult<()>) {
    let mut p = progress.lock().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = outcome {
        if p.failed.is_none() {
            log::error!("applying journal entry {seq} failed: {e}");
            p.failed = Some(e.context(format!("applying journal entry {seq}")));
        }
        return;
    }
    p.done.insert(seq);
    let mut moved = false;
    loop {
        let next = p.applied + 1;
        if !p.done.remove(&next) {
            break;
        }
        p.applied = next;
        moved = true;
    }
    if moved {
        let applied = p.applied;
        drop(p);
        applied_tx.send_replace(applied);
    }
}

/// The object numbers `[offset, offset + len)` touches, with objects of `object_size` bytes.
pub fn objects_of(offset: u64, len: u64, object_size: u64) -> std::ops::Range<u64> {
    let object_size = object_size.max(1);
    if len == 0 {
        return 0..0;
    }
    let first = offset / object_size;
    let last = offset.saturating_add(len - 1) / object_size;
    first..last.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_cg_contract::journal::EntryHeader;
    use std::time::Duration;

    /// An in-memory image that records the order of writes and can be slow (with jitter, so
    /// that a later entry would overtake an earlier one if nothing ordered them).
    struct MemTarget {
        data: Mutex<Vec<u8>>,
        delay_ms: u64,
        log: Mutex<Vec<(u64, u64)>>,
    }

    impl MemTarget {
        fn new(size: usize, delay_ms: u64) -> Arc<MemTarget> {
            Arc::new(MemTarget { data: Mutex::new(vec![0; size]), delay_ms, log: Mutex::new(Vec::new()) })
        }
    }

    impl Target for MemTarget {
        fn object_size(&self) -> u64 {
            4096
        }
        fn write(self: Arc<Self>, offset: u64, data: Arc<[u8]>) -> BoxFuture<()> {
            Box::pin(async move {
                let jitter = self.delay_ms * (1 + (offset / 4096 + u64::from(data[0])) % 3);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                self.data.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
                self.log.lock().unwrap().push((offset, u64::from(data[0])));
                Ok(())
            })
        }
        fn discard(self: Arc<Self>, offset: u64, len: u64) -> BoxFuture<()> {
            Box::pin(async move {
                self.data.lock().unwrap()[offset as usize..(offset + len) as usize].fill(0);
                Ok(())
            })
        }
        fn write_zeroes(self: Arc<Self>, offset: u64, len: u64) -> BoxFuture<()> {
            self.discard(offset, len)
        }
    }

    fn write(seq: u64, tag: u32, offset: u64, byte: u8, len: usize, ack_floor: u64) -> Entry {
        Entry {
            header: EntryHeader {
                op: EntryOp::Write,
                tag,
                payload_len: len as u32,
                seq,
                epoch: 1,
                ack_floor,
                offset,
                length: len as u64,
                timestamp_ns: 0,
                payload_crc: 0,
            },
            payload: Arc::from(vec![byte; len]),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_object_in_order_other_objects_in_parallel_and_position_is_a_prefix() {
        let target = MemTarget::new(16 * 4096, 5);
        let mut targets: HashMap<u32, Arc<dyn Target>> = HashMap::new();
        targets.insert(1, target.clone());
        let mut applier = Applier::new(targets, 0, 16, false);
        // Ten overwrites of object 0 interleaved with writes to other objects.
        let mut seq = 0;
        for round in 0..10u8 {
            seq += 1;
            applier.submit(write(seq, 1, 0, round + 1, 4096, seq - 1)).await.unwrap();
            seq += 1;
            applier.submit(write(seq, 1, 4096 * (1 + u64::from(round) % 8), round + 1, 4096, seq - 1)).await.unwrap();
        }
        assert_eq!(applier.drain().await.unwrap(), 20);
        let data = target.data.lock().unwrap();
        assert!(data[..4096].iter().all(|&b| b == 10), "the last write to object 0 wins");
        let order: Vec<u64> = target.log.lock().unwrap().iter().filter(|(o, _)| *o == 0).map(|(_, b)| *b).collect();
        assert_eq!(order, (1..=10).collect::<Vec<u64>>(), "object 0 written in journal order");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn out_of_order_and_unknown_members_are_refused() {
        let target = MemTarget::new(4096, 0);
        let mut targets: HashMap<u32, Arc<dyn Target>> = HashMap::new();
        targets.insert(1, target.clone());
        let mut applier = Applier::new(targets, 5, 4, false);
        assert_eq!(applier.submit(write(7, 1, 0, 1, 10, 0)).await.unwrap_err().errno, libc::EINVAL);
        assert_eq!(applier.submit(write(6, 9, 0, 1, 10, 0)).await.unwrap_err().errno, libc::EBADMSG);
    }

    #[test]
    fn object_ranges() {
        assert_eq!(objects_of(0, 4096, 4096), 0..1);
        assert_eq!(objects_of(4095, 2, 4096), 0..2);
        assert_eq!(objects_of(8192, 0, 4096), 0..0);
        assert_eq!(objects_of(u64::MAX - 10, 10, 4096), (u64::MAX - 10) / 4096..(u64::MAX - 1) / 4096 + 1);
    }
}
