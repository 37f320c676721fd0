//! Progress of long operations, for a caller that wants to show it (the CLI draws a bar
//! like `rbd`'s "Removing group snapshot: 42% complete").
//!
//! The library only counts: an operation announces how many units of work it has (members
//! to cut, snapshots to remove, …) and ticks as each is done, from any thread. What a
//! caller does with that is up to it; by default nothing happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// `report(what, done, total)`: called as work completes, possibly from worker threads.
pub type ProgressFn = dyn Fn(&str, u64, u64) + Send + Sync;

/// Where operations report progress; cheap to clone. [`Progress::none`] ignores it.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<ProgressFn>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(reporting)" } else { "Progress(none)" })
    }
}

impl Progress {
    /// Reports nowhere.
    pub fn none() -> Progress {
        Progress(None)
    }

    /// Reports to `report(what, done, total)`.
    pub fn new(report: impl Fn(&str, u64, u64) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(report)))
    }

    /// A counter of `total` units of `what`, reported at 0 now.
    pub(crate) fn start(&self, what: &'static str, total: u64) -> Counter {
        let counter = Counter { progress: self.clone(), what, total, done: AtomicU64::new(0) };
        counter.report(0);
        counter
    }
}

/// Units of one operation done so far; [`Counter::tick`] from any thread.
pub(crate) struct Counter {
    progress: Progress,
    what: &'static str,
    total: u64,
    done: AtomicU64,
}

impl Counter {
    fn report(&self, done: u64) {
        if let Some(report) = &self.progress.0 {
            report(self.what, done.min(self.total), self.total);
        }
    }

    /// One more unit done.
    pub(crate) fn tick(&self) {
        self.add(1);
    }

    /// `n` more units done.
    pub(crate) fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.report(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counts_from_zero_to_total() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let progress =
            Progress::new(move |what, done, total| sink.lock().unwrap().push((what.to_owned(), done, total)));
        let counter = progress.start("Removing", 3);
        counter.tick();
        counter.add(2);
        counter.tick(); // never past the total
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 1, 3, 3]);
        assert!(seen.iter().all(|s| s.0 == "Removing" && s.2 == 3));
        Progress::none().start("nothing", 1).tick();
    }
}
