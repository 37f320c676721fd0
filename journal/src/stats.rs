//! Where a journaled write spends its time: counters and latency histograms of the writer's
//! data path, kept with relaxed atomics (a few per entry, never under the writer's locks) and
//! printed when the writer shuts down with `RUST_LOG=debug` (the `rbd_cg_journal::stats`
//! target), or read through [`JournalWriter::stats`](crate::writer::JournalWriter::stats).
//!
//! Phases of one write, as the writer sees it:
//! - `queued`: from its submission until the append carrying it is sent (gathering into a
//!   batch while earlier appends are in flight, waiting for journal space or a segment roll);
//! - `append`: the `segment_append` RADOS op of its batch (send to completion);
//! - `durable`: from its submission until its append is durable — when the NBD server
//!   acknowledges it (the server-side write latency; fio's latency minus this is the NBD
//!   transport and the client);
//! - `apply wait` / `apply op`: after durable, waiting for earlier entries on the same
//!   objects and the in-flight bound, then writing the member image (RADOS).
//!
//! Histograms are log-linear (8 buckets per power of two: values within 12.5 %), so
//! percentiles are upper bounds of their bucket.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (a power of two itself).
const SUB: u64 = 8;
const SUB_BITS: u32 = SUB.trailing_zeros();
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB as usize;

/// A lock-free log-linear histogram of `u64` values.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn bucket(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BITS
    let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The largest value that falls into bucket `index`.
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let exp = index / SUB - 1 + u64::from(SUB_BITS);
    let sub = index % SUB;
    let low = (SUB + sub) << (exp - u64::from(SUB_BITS));
    low.saturating_add((1u64 << (exp - u64::from(SUB_BITS))) - 1)
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, value: u64) {
        self.buckets[bucket(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Records a duration in microseconds.
    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Their sum.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// Their mean (0 without values).
    pub fn mean(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum() as f64 / n as f64,
        }
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The `q`-quantile (0..=1): the upper bound of its bucket, at most the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return bucket_high(index).min(self.max());
            }
        }
        self.max()
    }

    /// `n=… mean=… p50=… p99=… max=…` in `unit`.
    pub fn summary(&self, unit: &str) -> String {
        format!(
            "n={} mean={:.0}{unit} p50={}{unit} p99={}{unit} max={}{unit}",
            self.count(),
            self.mean(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.max()
        )
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary(""))
    }
}

/// The writer's data-path statistics; see the module documentation. Durations in µs.
#[derive(Default, Debug)]
pub struct WriterStats {
    /// Per entry: submission → its append sent.
    pub queued: Histogram,
    /// Per append: the `segment_append` op, sent → completed.
    pub append: Histogram,
    /// Per entry: submission → durable (acknowledged).
    pub durable: Histogram,
    /// Per append: entries in it.
    pub batch_entries: Histogram,
    /// Per append: bytes of entries in it.
    pub batch_bytes: Histogram,
    /// Per append: appends already in flight when it was sent.
    pub in_flight: Histogram,
    /// Per append that had to wait for journal space: how long.
    pub space_wait: Histogram,
    /// Per segment roll: seal, open, record.
    pub roll: Histogram,
    /// Per applied entry: durable → its image write started (same-object order, bound).
    pub apply_wait: Histogram,
    /// Per applied entry: the image write (RADOS).
    pub apply_op: Histogram,
}

impl fmt::Display for WriterStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "queued      {}", self.queued.summary("us"))?;
        writeln!(f, "append op   {}", self.append.summary("us"))?;
        writeln!(f, "durable     {}", self.durable.summary("us"))?;
        writeln!(f, "batch       {} | bytes {}", self.batch_entries.summary(""), self.batch_bytes.summary(""))?;
        writeln!(f, "in flight   {}", self.in_flight.summary(""))?;
        writeln!(f, "space wait  {}", self.space_wait.summary("us"))?;
        writeln!(f, "roll        {}", self.roll.summary("us"))?;
        writeln!(f, "apply wait  {}", self.apply_wait.summary("us"))?;
        write!(f, "apply op    {}", self.apply_op.summary("us"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS);
            assert!(b >= last, "bucket of {v}");
            last = b;
            assert!(bucket_high(b) >= v, "{v} in bucket {b} up to {}", bucket_high(b));
            // Within 12.5 %.
            assert!(bucket_high(b) - v <= v / SUB, "{v}: bucket up to {}", bucket_high(b));
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        assert!((h.mean() - 500.5).abs() < 1e-9);
        let p50 = h.quantile(0.5);
        assert!((500..=500 + 500 / 8).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
    }
}
