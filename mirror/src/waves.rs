//! The order in which the mirror applies journal entries, and what it must record.
//!
//! Entries are applied in parallel, but each one only once (1) every entry up to its
//! `ack_floor` is applied (the primary had acknowledged those when it took this one: the
//! application may have depended on them) and (2) every earlier entry on the same RADOS
//! objects of the same member is (the journal's `Applier` with `respect_ack_floor`, in
//! `crate::group`). So the set of applied entries is always closed under "depends on", with
//! each object's entries in journal order: a state the primary's applications could have seen
//! after a crash. The copy is crash-consistent at every instant, whatever the daemon, the
//! network or the OSDs do.
//!
//! After a crash the daemon applies again from the position it recorded last. That must
//! never move bytes backwards, so the entries dispatched since the last record must touch
//! each byte at most once: before dispatching an entry that overlaps bytes written since the
//! last record (or one past the `wave_end` recorded), the daemon drains what is in flight and
//! records its position first. [`Extents`] answers "does this range overlap anything so far"
//! in logarithmic time.

use std::collections::{BTreeMap, HashMap};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_found_on_both_sides_and_only_per_member() {
        let mut written = Extents::default();
        written.insert(1, 4096, 4096);
        assert!(written.overlaps(1, 6144, 4096), "overlaps the end");
        assert!(written.overlaps(1, 0, 4097), "overlaps the start");
        assert!(written.overlaps(1, 0, 65536), "covers it");
        assert!(written.overlaps(1, 5000, 10), "inside it");
        assert!(!written.overlaps(1, 0, 4096), "touches it only");
        assert!(!written.overlaps(1, 8192, 4096), "touches the other end");
        assert!(!written.overlaps(2, 4096, 4096), "another member");
        assert!(!written.overlaps(1, 4096, 0), "nothing");
    }

    #[test]
    fn extents_combine_and_clear() {
        let mut since_record = Extents::default();
        let mut wave = Extents::default();
        wave.insert(1, 0, 4096);
        wave.insert(2, 0, 4096);
        assert!(!since_record.overlaps_any(&wave));
        since_record.extend(&wave);
        let mut next = Extents::default();
        next.insert(1, 2048, 4096);
        assert!(since_record.overlaps_any(&next), "rewrites bytes of member 1");
        since_record.clear();
        assert!(!since_record.overlaps_any(&next));
    }
}
