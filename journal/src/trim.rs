//! Trimming: journal space below the slowest connected consumer is freed, and a consumer that
//! falls further behind than the journal's bound is disconnected instead of the journal
//! growing without end.
//!
//! Steps (each idempotent, `docs/OPERATIONS.md`): 1 `journal_trim` moves `first_segment`
//! forward past every segment all connected consumers have applied; 2 those segment objects
//! are removed. A crash between leaves objects below `first_segment`, which the next trim
//! (and `repair`) removes. The local consumer (this group's own images) is never disconnected:
//! the writer holds new writes back while it is too far behind.

use std::collections::HashMap;

use rbd_cg_contract::journal::{
    segment_object, ConsumerRequest, ConsumerState, JournalGroupRequest, JournalTrimRequest, LOCAL_CONSUMER,
};
use rbd_cg_contract::methods::{Empty, JOURNAL_CONSUMER_DISCONNECT, JOURNAL_GET, JOURNAL_TRIM, SEGMENT_GET};
use rbd_cg_contract::names::header_object;
use rbd_cg_rados::cls::WriteBatch;
use rbd_cg_rados::{IoCtx, RadosResult};

/// What the trimmer knows about sealed segments (they no longer change).
pub struct Trimmer {
    group_id: String,
    /// Whether segments below `first_segment` left by an interrupted trim were looked for.
    swept: bool,
    /// Segment → (first sequence number, last sequence number, bytes) of sealed segments.
    sealed: HashMap<u64, (u64, u64, u64)>,
}

/// What one trim did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrimReport {
    /// Segments removed.
    pub removed: Vec<u64>,
    /// Consumers disconnected.
    pub disconnected: Vec<String>,
}

impl Trimmer {
    /// A trimmer of group `group_id`'s journal.
    pub fn new(group_id: &str) -> Trimmer {
        Trimmer { group_id: group_id.to_owned(), swept: false, sealed: HashMap::new() }
    }

    /// Trims once, through `ioctx` (the group's pool and namespace). A consumer other than
    /// `local` is disconnected when what it still needs exceeds the journal's bound, and,
    /// under `pressure` (an append waits for space), when it is behind the local consumer
    /// and holds segments the local consumer no longer needs.
    pub async fn run(&mut self, ioctx: &IoCtx, pressure: bool) -> RadosResult<TrimReport> {
        let header = header_object(&self.group_id);
        let request = JournalGroupRequest { group_id: self.group_id.clone() };
        let status = ioctx.aio_call(&header, &JOURNAL_GET, &request).await?;
        let journal = &status.journal;
        let mut report = TrimReport::default();
        if !self.swept {
            // Step 2 of an interrupted trim: objects below `first_segment` still there.
            let mut segment = journal.first_segment;
            while segment > 0 {
                segment -= 1;
                let mut remove = WriteBatch::new();
                remove.remove();
                match ioctx.aio_write_batch(&segment_object(&self.group_id, segment), &remove).await {
                    Ok(()) => report.removed.push(segment),
                    Err(e) if e.is_not_found() => break,
                    Err(e) => return Err(e),
                }
            }
            self.swept = true;
        }
        // Sealed segments, oldest first, up to (not including) the active one.
        let mut segments = Vec::new();
        for segment in journal.first_segment..journal.active_segment {
            let range = match self.sealed.get(&segment) {
                Some(range) => *range,
                None => match ioctx.aio_call(&segment_object(&self.group_id, segment), &SEGMENT_GET, &Empty {}).await {
                    Ok(record) if record.sealed => {
                        let range = (record.first_seq, record.next_seq.saturating_sub(1), record.committed_len);
                        self.sealed.insert(segment, range);
                        range
                    }
                    Ok(_) => break,
                    Err(e) if e.is_not_found() => {
                        // Removed by an interrupted trim: nothing in it to keep.
                        self.sealed.insert(segment, (0, 0, 0));
                        (0, 0, 0)
                    }
                    Err(e) => return Err(e),
                },
            };
            segments.push((segment, range));
        }
        // Disconnect consumers that need more than the bound allows.
        let active_bytes = match ioctx
            .aio_call(&segment_object(&self.group_id, journal.active_segment), &SEGMENT_GET, &Empty {})
            .await
        {
            Ok(record) => record.committed_len,
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e),
        };
        // The first segment a consumer at `position` still needs, and the bytes from it on.
        let needs = |position: u64| {
            let from = segments.iter().position(|(_, (_, last, _))| *last > position).unwrap_or(segments.len());
            let bytes: u64 = segments[from..].iter().map(|(_, (_, _, b))| *b).sum::<u64>() + active_bytes;
            (segments.get(from).map_or(journal.active_segment, |(segment, _)| *segment), bytes)
        };
        let local = status.consumers.iter().find(|c| c.name == LOCAL_CONSUMER).map_or(0, |c| c.position);
        let (local_from, _) = needs(local);
        for consumer in status.consumers.iter().filter(|c| c.state == ConsumerState::Connected) {
            if consumer.name == LOCAL_CONSUMER {
                continue;
            }
            let (needed_from, needed_bytes) = needs(consumer.position);
            let over_bound = needed_bytes > journal.max_bytes;
            let holds_it_full = pressure && consumer.position < local && needed_from < local_from;
            if over_bound || holds_it_full {
                log::warn!(
                    "journal of group {}: consumer {} needs {needed_bytes} bytes from entry {} on (bound {}{}): \
                     disconnecting it",
                    self.group_id,
                    consumer.name,
                    consumer.position + 1,
                    journal.max_bytes,
                    if holds_it_full { ", and the journal is full" } else { "" }
                );
                let request = ConsumerRequest { group_id: self.group_id.clone(), name: consumer.name.clone() };
                ioctx.aio_call_write(&header, &JOURNAL_CONSUMER_DISCONNECT, &request).await?;
                report.disconnected.push(consumer.name.clone());
            }
        }
        let slowest = status
            .consumers
            .iter()
            .filter(|c| c.state == ConsumerState::Connected && !report.disconnected.contains(&c.name))
            .map(|c| c.position)
            .min()
            .unwrap_or(0);
        // Every segment whose last entry everyone connected has applied goes.
        let mut first = journal.first_segment;
        let mut trimmed_seq = journal.trimmed_seq;
        for (segment, (_, last, _)) in &segments {
            if *last > slowest {
                break;
            }
            first = segment + 1;
            trimmed_seq = trimmed_seq.max(*last);
        }
        if first > journal.first_segment {
            let trim = JournalTrimRequest { group_id: self.group_id.clone(), first_segment: first, trimmed_seq };
            ioctx.aio_call_write(&header, &JOURNAL_TRIM, &trim).await?;
            for segment in journal.first_segment..first {
                let mut remove = WriteBatch::new();
                remove.remove();
                match ioctx.aio_write_batch(&segment_object(&self.group_id, segment), &remove).await {
                    Ok(()) => report.removed.push(segment),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
                self.sealed.remove(&segment);
            }
        }
        Ok(report)
    }
}
