//! Reading the journal in order: segment after segment, every entry checked.
//!
//! A segment's entries end at its `committed_len`, which the class moves in the same
//! transaction as it writes them: bytes beyond it were never acknowledged and are not part of
//! the journal (a "torn tail" cannot be read by construction). Within `committed_len` every
//! header and payload checksum is verified and sequence numbers must be contiguous across
//! segments; anything else is corruption, reported as `EBADMSG` with the segment and offset —
//! replay stops there, it never skips.

use std::sync::Arc;

use rbd_cg_contract::journal::{scan_entries, segment_object, EntryError, EntryHeader, SegmentRecord};
use rbd_cg_contract::methods::{Empty, SEGMENT_GET};
use rbd_cg_rados::{IoCtx, RadosError, RadosResult};

/// One journal entry: its header and payload (a write's data; empty otherwise).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The header.
    pub header: EntryHeader,
    /// The payload.
    pub payload: Arc<[u8]>,
}

/// Where a reader is: the segment, the byte offset in its data, and the sequence number the
/// next entry must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The segment being read.
    pub segment: u64,
    /// Bytes of it already read.
    pub offset: u64,
    /// The sequence number the next entry must carry.
    pub next_seq: u64,
}

/// What one [`JournalReader::read`] call found.
#[derive(Debug, Default)]
pub struct Batch {
    /// Entries in order (possibly none: caught up with the writer).
    pub entries: Vec<Entry>,
    /// Whether the reader reached the end of the journal as it is now.
    pub at_end: bool,
}

/// Reads a group's journal segments (through the I/O context of the group's pool and
/// namespace).
pub struct JournalReader {
    ioctx: IoCtx,
    group_id: String,
}

impl JournalReader {
    /// A reader of group `group_id`'s journal through `ioctx` (its pool and namespace).
    pub fn new(ioctx: IoCtx, group_id: &str) -> JournalReader {
        JournalReader { ioctx, group_id: group_id.to_owned() }
    }

    /// The record of segment `segment`; `None` when it does not exist.
    pub async fn segment(&self, segment: u64) -> RadosResult<Option<SegmentRecord>> {
        match self.ioctx.aio_call(&segment_object(&self.group_id, segment), &SEGMENT_GET, &Empty {}).await {
            Ok(record) => Ok(Some(record)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A cursor at the first entry after sequence number `after`, searching from segment
    /// `first_segment` on. `ERANGE` when the entry after `after` was trimmed already.
    pub async fn seek(&self, first_segment: u64, after: u64) -> RadosResult<Cursor> {
        let mut segment = first_segment;
        loop {
            let Some(record) = self.segment(segment).await? else {
                // Past the last segment: at its end.
                return Ok(Cursor { segment, offset: 0, next_seq: after + 1 });
            };
            if record.first_seq > after + 1 {
                return Err(RadosError::new(
                    format!(
                        "journal of group {}: entry {} is trimmed (segment {segment} starts at {})",
                        self.group_id,
                        after + 1,
                        record.first_seq
                    ),
                    libc::ERANGE,
                ));
            }
            if after < record.next_seq || !record.sealed {
                // The entry lies in this segment (or will): skip the ones up to `after`.
                let mut cursor = Cursor { segment, offset: 0, next_seq: record.first_seq };
                while cursor.next_seq <= after {
                    let batch = self.read_segment(&mut cursor, &record, 4 << 20, after).await?;
                    if batch.entries.is_empty() {
                        break;
                    }
                }
                return Ok(cursor);
            }
            segment += 1;
        }
    }

    /// Reads the next entries at `cursor` (up to about `max_bytes`, at least one entry when
    /// there is one), moving to the next segment when this one is sealed and read, and
    /// advances the cursor.
    pub async fn read(&self, cursor: &mut Cursor, max_bytes: usize) -> RadosResult<Batch> {
        loop {
            let Some(record) = self.segment(cursor.segment).await? else {
                return Ok(Batch { entries: Vec::new(), at_end: true });
            };
            if cursor.offset == 0 && record.first_seq != cursor.next_seq {
                return Err(self.corrupt(
                    cursor,
                    format!("segment starts at entry {}, {} expected", record.first_seq, cursor.next_seq),
                ));
            }
            let batch = self.read_segment(cursor, &record, max_bytes, u64::MAX).await?;
            if !batch.entries.is_empty() {
                return Ok(batch);
            }
            // This segment is read to its end. Go on only when it is closed and a next one
            // exists (a writer seals before it rolls).
            if !record.sealed {
                return Ok(Batch { entries: Vec::new(), at_end: true });
            }
            match self.segment(cursor.segment + 1).await? {
                Some(_) => *cursor = Cursor { segment: cursor.segment + 1, offset: 0, next_seq: cursor.next_seq },
                None => return Ok(Batch { entries: Vec::new(), at_end: true }),
            }
        }
    }

    /// Reads entries of one segment from the cursor on, up to its committed length, and
    /// never past entry `last` (the cursor stays right before the entry after it).
    async fn read_segment(
        &self,
        cursor: &mut Cursor,
        record: &SegmentRecord,
        max_bytes: usize,
        last: u64,
    ) -> RadosResult<Batch> {
        let oid = segment_object(&self.group_id, cursor.segment);
        let mut entries = Vec::new();
        while cursor.offset < record.committed_len && cursor.next_seq <= last {
            let left = record.committed_len - cursor.offset;
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(max_bytes.max(1 << 16));
            let data = self.ioctx.aio_read(&oid, cursor.offset, want).await?;
            if data.is_empty() {
                return Err(self.corrupt(cursor, "segment data shorter than its committed length".into()));
            }
            let (scanned, error) = scan_entries(&data, true);
            let mut consumed = 0usize;
            let mut reached_last = false;
            for found in &scanned {
                if found.header.seq > last {
                    reached_last = true;
                    break;
                }
                if found.header.seq != cursor.next_seq {
                    return Err(self.corrupt(
                        cursor,
                        format!("entry {} where {} was expected", found.header.seq, cursor.next_seq),
                    ));
                }
                let payload = &data[found.payload_at..found.payload_at + found.header.payload_len as usize];
                entries.push(Entry { header: found.header, payload: Arc::from(payload) });
                cursor.next_seq += 1;
                consumed = found.end;
            }
            let read_to = cursor.offset + data.len() as u64;
            cursor.offset += consumed as u64;
            if reached_last {
                return Ok(Batch { entries, at_end: false });
            }
            match error {
                None => {}
                // The read stopped inside an entry: the rest comes with the next read (a longer
                // one if not even one entry fit).
                Some(EntryError::Truncated(_)) if read_to < record.committed_len && scanned.is_empty() => {
                    let needed = entry_len_at(&data).unwrap_or(data.len() * 2);
                    let data = self.ioctx.aio_read(&oid, cursor.offset, needed).await?;
                    let (one, error) = scan_entries(&data, true);
                    match (one.first(), error) {
                        (Some(found), _) if found.header.seq == cursor.next_seq => {
                            let payload = &data[found.payload_at..found.payload_at + found.header.payload_len as usize];
                            entries.push(Entry { header: found.header, payload: Arc::from(payload) });
                            cursor.next_seq += 1;
                            cursor.offset += found.end as u64;
                        }
                        (_, Some(e)) => return Err(self.corrupt(cursor, e.to_string())),
                        _ => return Err(self.corrupt(cursor, "unreadable entry".into())),
                    }
                }
                // Scanned some: the rest comes with the next read.
                Some(EntryError::Truncated(_)) if read_to < record.committed_len => {}
                Some(e) => return Err(self.corrupt(cursor, e.to_string())),
            }
            let bytes: usize = entries.iter().map(|e| e.payload.len() + 72).sum();
            if bytes >= max_bytes {
                break;
            }
        }
        let at_end = cursor.offset >= record.committed_len && !record.sealed;
        Ok(Batch { entries, at_end })
    }

    fn corrupt(&self, cursor: &Cursor, what: String) -> RadosError {
        RadosError::new(
            format!(
                "journal of group {}: segment {} at byte {} (entry {}): {what}",
                self.group_id, cursor.segment, cursor.offset, cursor.next_seq
            ),
            libc::EBADMSG,
        )
    }
}

/// The full length of the entry at the start of `data`, from its header, if the header is
/// readable.
fn entry_len_at(data: &[u8]) -> Option<usize> {
    EntryHeader::decode(data).ok().map(|h| rbd_cg_contract::journal::entry_len(h.payload_len))
}
