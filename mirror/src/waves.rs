//! Cutting the journal into *waves*: the unit in which the mirror applies entries.
//!
//! A wave is a run of consecutive entries, starting right after the mirror's position, such
//! that
//! 1. no entry in it depends on another one in it: each one's `ack_floor` (every entry the
//!    primary had acknowledged when it took this one) lies before the wave's start, and
//! 2. no two entries in it touch the same RADOS object of the same member.
//!
//! Waves are applied one after the other, each one's entries in parallel. By (1), any subset
//! of a wave on top of every earlier wave is a state the primary's applications could have
//! seen after a crash: the mirror is crash-consistent at every instant, not only between
//! waves, whatever the daemon, the network or the OSDs do.
//!
//! After a crash the daemon applies again from the position it recorded last. That must
//! never move an object backwards, so the entries applied since the last record must touch
//! each object at most once: before applying a wave that touches an object already written
//! since the last record (or one beyond the `wave_end` recorded), the daemon records its
//! position first (`crate::group`). By (2) a single wave never needs a record in the middle.
//! Marks carry no data and join any wave.

use std::collections::HashSet;

use rbd_cg_contract::journal::EntryOp;
use rbd_cg_journal::apply::objects_of;
use rbd_cg_journal::reader::Entry;

/// Most entries in one wave.
pub const MAX_WAVE_ENTRIES: usize = 1024;
/// Most payload bytes in one wave.
pub const MAX_WAVE_BYTES: usize = 64 << 20;

/// A wave being filled.
#[derive(Debug, Default)]
pub struct Wave {
    /// Its entries, in journal order.
    pub entries: Vec<Entry>,
    objects: HashSet<(u32, u64)>,
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

    /// The (member tag, object number) pairs it touches.
    pub fn objects(&self) -> &HashSet<(u32, u64)> {
        &self.objects
    }

    /// Payload bytes in it.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `entry` (the next in journal order) if the wave rules allow; `object_size` gives
    /// the object size of a member by its tag (`None`: unknown member, which the caller
    /// refuses before).
    pub fn try_add(&mut self, entry: Entry, object_size: impl Fn(u32) -> Option<u64>) -> Result<(), (Entry, Refusal)> {
        let header = &entry.header;
        let first = self.entries.is_empty();
        if !first
            && (header.ack_floor >= self.start
                || self.entries.len() >= MAX_WAVE_ENTRIES
                || self.bytes + header.payload_len as usize > MAX_WAVE_BYTES)
        {
            return Err((entry, Refusal::NextWave));
        }
        let touched: Vec<(u32, u64)> = match (header.op, object_size(header.tag)) {
            (EntryOp::Mark, _) | (_, None) => Vec::new(),
            (_, Some(size)) => objects_of(header.offset, header.length, size).map(|o| (header.tag, o)).collect(),
        };
        if !first && touched.iter().any(|o| self.objects.contains(o)) {
            return Err((entry, Refusal::NextWave));
        }
        self.objects.extend(touched);
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

    const MB4: u64 = 4 << 20;

    #[test]
    fn independent_entries_on_distinct_objects_share_a_wave() {
        let mut wave = Wave::new(11);
        for (i, tag) in [(11, 1), (12, 2), (13, 1)] {
            let offset = if i == 13 { MB4 } else { 0 };
            assert!(wave.try_add(entry(i, 10, tag, offset, 4096), |_| Some(MB4)).is_ok());
        }
        assert_eq!((wave.start(), wave.end(), wave.entries.len()), (11, 13, 3));
    }

    #[test]
    fn a_dependent_entry_starts_the_next_wave() {
        let mut wave = Wave::new(11);
        assert!(wave.try_add(entry(11, 10, 1, 0, 4096), |_| Some(MB4)).is_ok());
        // Submitted after 11 was acknowledged (the dependent chain): not in the same wave.
        let refused = wave.try_add(entry(12, 11, 2, 0, 4096), |_| Some(MB4));
        assert!(matches!(refused, Err((_, Refusal::NextWave))));
        assert_eq!(wave.end(), 11);
    }

    #[test]
    fn the_same_object_twice_starts_the_next_wave() {
        let mut wave = Wave::new(1);
        assert!(wave.try_add(entry(1, 0, 1, 0, 4096), |_| Some(MB4)).is_ok());
        assert!(wave.try_add(entry(2, 0, 1, 8192, 4096), |_| Some(MB4)).is_err());
        // The same offset on another member is another object.
        assert!(wave.try_add(entry(2, 0, 2, 0, 4096), |_| Some(MB4)).is_ok());
        // An entry spanning objects 0 and 1 of member 3 conflicts with one on object 1.
        assert!(wave.try_add(entry(3, 0, 3, MB4 - 512, 1024), |_| Some(MB4)).is_ok());
        assert!(wave.try_add(entry(4, 0, 3, MB4 + 4096, 512), |_| Some(MB4)).is_err());
    }

    #[test]
    fn the_first_entry_always_joins() {
        // Even one whose ack_floor is its own predecessor in the wave's terms.
        let mut wave = Wave::new(5);
        assert!(wave.try_add(entry(5, 4, 1, 0, 4096), |_| Some(MB4)).is_ok());
        assert_eq!(wave.bytes(), 4096);
    }
}
