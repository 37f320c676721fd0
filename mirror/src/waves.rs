//! Cutting the journal into *waves*: the unit in which the mirror applies entries.
//!
//! A wave is a run of consecutive entries, starting right after the mirror's position, such
//! that
//! 1. no entry in it depends on another one in it: each one's `ack_floor` (every entry the
//!    primary had acknowledged when it took this one) lies before the wave's start, and
//! 2. no two entries in it touch the same bytes of the same member (so the order in which
//!    its entries land cannot matter: non-overlapping writes, discards and zeroings
//!    commute, also within one RADOS object).
//!
//! Waves are applied one after the other, each one's entries in parallel. By (1), any subset
//! of a wave on top of every earlier wave is a state the primary's applications could have
//! seen after a crash: the mirror is crash-consistent at every instant, not only between
//! waves, whatever the daemon, the network or the OSDs do.
//!
//! After a crash the daemon applies again from the position it recorded last. That must
//! never move bytes backwards, so the entries applied since the last record must touch each
//! byte at most once: before applying a wave that touches bytes already written since the
//! last record (or one beyond the `wave_end` recorded), the daemon records its position
//! first (`crate::group`). By (2) a single wave never needs a record in the middle. Marks
//! carry no data and join any wave. [`Extents`] answers "does this range overlap anything
//! so far" in logarithmic time.

use std::collections::{BTreeMap, HashMap};

use rbd_cg_contract::journal::EntryOp;
use rbd_cg_journal::reader::Entry;

/// Byte ranges per member, none overlapping another: what a wave, or everything applied
/// since the last record, has touched.
#[derive(Debug, Default, Clone)]
pub struct Extents {
    /// Per member tag: start → end (exclusive).
    by_tag: HashMap<u32, BTreeMap<u64, u64>>,
}

impl Extents {
    /// Whether `[offset, offset + len)` of member `tag` overlaps a range held.
    pub fn overlaps(&self, tag: u32, offset: u64, len: u64) -> bool {
        let Some(ranges) = self.by_tag.get(&tag) else { return false };
        let end = offset.saturating_add(len);
        if len == 0 {
            return false;
        }
        // The range starting at or before `offset` may reach into it; any range starting
        // inside it overlaps.
        ranges.range(..=offset).next_back().is_some_and(|(_, e)| *e > offset)
            || ranges.range(offset..end).next().is_some()
    }

    /// Adds a range (the caller checked that it overlaps nothing).
    pub fn insert(&mut self, tag: u32, offset: u64, len: u64) {
        if len > 0 {
            self.by_tag.entry(tag).or_default().insert(offset, offset.saturating_add(len));
        }
    }

    /// Whether any range of `other` overlaps one held here.
    pub fn overlaps_any(&self, other: &Extents) -> bool {
        other.by_tag.iter().any(|(tag, ranges)| ranges.iter().any(|(s, e)| self.overlaps(*tag, *s, e - s)))
    }

    /// Adds every range of `other` (which overlaps nothing held).
    pub fn extend(&mut self, other: &Extents) {
        for (tag, ranges) in &other.by_tag {
            let mine = self.by_tag.entry(*tag).or_default();
            for (s, e) in ranges {
                mine.insert(*s, *e);
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.by_tag.clear();
    }
}

/// Most entries in one wave.
pub const MAX_WAVE_ENTRIES: usize = 1024;
/// Most payload bytes in one wave.
pub const MAX_WAVE_BYTES: usize = 64 << 20;

/// A wave being filled.
#[derive(Debug, Default)]
pub struct Wave {
    /// Its entries, in journal order.
    pub entries: Vec<Entry>,
    extents: Extents,
    bytes: usize,
    /// The first sequence number it may hold (the mirror's position + 1).
    start: u64,
}

/// Why an entry does not join the wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It depends on an entry of the wave, shares an object with one, or the wave is full:
    /// apply the wave, then start the next with this entry.
    NextWave,
}

impl Wave {
    /// An empty wave whose first entry is `start`.
    pub fn new(start: u64) -> Wave {
        Wave { start, ..Wave::default() }
    }

    /// The sequence number of its first entry.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The sequence number of its last entry (`start - 1` when empty).
    pub fn end(&self) -> u64 {
        self.entries.last().map_or(self.start.saturating_sub(1), |e| e.header.seq)
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The byte ranges it touches.
    pub fn extents(&self) -> &Extents {
        &self.extents
    }

    /// Payload bytes in it.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `entry` (the next in journal order) if the wave rules allow.
    pub fn try_add(&mut self, entry: Entry) -> Result<(), (Entry, Refusal)> {
        let header = &entry.header;
        let first = self.entries.is_empty();
        if !first
            && (header.ack_floor >= self.start
                || self.entries.len() >= MAX_WAVE_ENTRIES
                || self.bytes + header.payload_len as usize > MAX_WAVE_BYTES)
        {
            return Err((entry, Refusal::NextWave));
        }
        let data = header.op != EntryOp::Mark;
        if data && !first && self.extents.overlaps(header.tag, header.offset, header.length) {
            return Err((entry, Refusal::NextWave));
        }
        if data {
            self.extents.insert(header.tag, header.offset, header.length);
        }
        self.bytes += header.payload_len as usize;
        self.entries.push(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_cg_contract::journal::EntryHeader;
    use std::sync::Arc;

    fn entry(seq: u64, ack_floor: u64, tag: u32, offset: u64, len: u64) -> Entry {
        Entry {
            header: EntryHeader {
                op: EntryOp::Write,
                tag,
                payload_len: len as u32,
                seq,
                epoch: 1,
                ack_floor,
                offset,
                length: len,
                timestamp_ns: 0,
                payload_crc: 0,
            },
            payload: Arc::from(vec![0u8; len as usize]),
        }
    }

    #[test]
    fn independent_entries_on_distinct_bytes_share_a_wave() {
        let mut wave = Wave::new(11);
        // Two members, and two ranges of one object of member 1.
        for (i, tag, offset) in [(11, 1, 0), (12, 2, 0), (13, 1, 8192)] {
            assert!(wave.try_add(entry(i, 10, tag, offset, 4096)).is_ok());
        }
        assert_eq!((wave.start(), wave.end(), wave.entries.len()), (11, 13, 3));
    }

    #[test]
    fn a_dependent_entry_starts_the_next_wave() {
        let mut wave = Wave::new(11);
        assert!(wave.try_add(entry(11, 10, 1, 0, 4096)).is_ok());
        // Submitted after 11 was acknowledged (the dependent chain): not in the same wave.
        let refused = wave.try_add(entry(12, 11, 2, 0, 4096));
        assert!(matches!(refused, Err((_, Refusal::NextWave))));
        assert_eq!(wave.end(), 11);
    }

    #[test]
    fn overlapping_bytes_start_the_next_wave() {
        let mut wave = Wave::new(1);
        assert!(wave.try_add(entry(1, 0, 1, 4096, 4096)).is_ok());
        assert!(wave.try_add(entry(2, 0, 1, 6144, 4096)).is_err(), "overlaps the end");
        assert!(wave.try_add(entry(2, 0, 1, 0, 4097)).is_err(), "overlaps the start");
        assert!(wave.try_add(entry(2, 0, 1, 0, 65536)).is_err(), "covers it");
        assert!(wave.try_add(entry(2, 0, 1, 0, 4096)).is_ok(), "touches it only");
        assert!(wave.try_add(entry(3, 0, 1, 8192, 4096)).is_ok(), "touches the other end");
        // The same offset on another member is other bytes.
        assert!(wave.try_add(entry(4, 0, 2, 4096, 4096)).is_ok());
    }

    #[test]
    fn the_first_entry_always_joins() {
        // Even one whose ack_floor is its own predecessor in the wave's terms.
        let mut wave = Wave::new(5);
        assert!(wave.try_add(entry(5, 4, 1, 0, 4096)).is_ok());
        assert_eq!(wave.bytes(), 4096);
    }

    #[test]
    fn extents_answer_overlaps_across_waves() {
        let mut since_record = Extents::default();
        let mut wave = Wave::new(1);
        assert!(wave.try_add(entry(1, 0, 1, 0, 4096)).is_ok());
        assert!(!since_record.overlaps_any(wave.extents()));
        since_record.extend(wave.extents());
        let mut next = Wave::new(2);
        assert!(next.try_add(entry(2, 1, 1, 4096, 4096)).is_ok());
        assert!(!since_record.overlaps_any(next.extents()));
        since_record.extend(next.extents());
        let mut again = Wave::new(3);
        assert!(again.try_add(entry(3, 2, 1, 2048, 4096)).is_ok());
        assert!(since_record.overlaps_any(again.extents()), "rewrites bytes of entries 1 and 2");
        since_record.clear();
        assert!(!since_record.overlaps_any(again.extents()));
    }
}
