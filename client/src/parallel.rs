//! Bounded parallelism for per-member work.
//!
//! A group operation does the same few round trips for every member: open, watch, allocate
//! a snapshot id (a monitor commit), lock, cut, release, remove. Done one member after
//! another, their latencies add up; done together they overlap (and the monitor batches
//! concurrent snapshot-id allocations into one commit). These helpers run a closure over
//! the members on at most `workers` scoped threads and return the results in input order,
//! so callers stay sequential code with one parallel line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Worker threads per group operation: enough to overlap round trips for large groups,
/// few enough not to flood one OSD.
pub const DEFAULT_WORKERS: usize = 32;

/// `f(index, &item)` for every item, on at most `workers` threads; results in input order.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().enumerate().map(|(i, item)| f(i, item)).collect();
    }
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(i, item);
                *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            // Every index below `items.len()` was claimed by exactly one worker, and a
            // worker panic propagates out of `scope` above, so each slot is filled.
            slot.into_inner().unwrap_or_else(PoisonError::into_inner).unwrap_or_else(|| unreachable!("unfilled slot"))
        })
        .collect()
}

/// `f(&mut item)` for every item, on at most `workers` threads; results in input order.
pub fn for_each_mut<T: Send, R: Send>(items: &mut [T], workers: usize, f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let cells: Vec<Mutex<&mut T>> = items.iter_mut().map(Mutex::new).collect();
    map(&cells, workers, |_, cell| f(&mut cell.lock().unwrap_or_else(PoisonError::into_inner)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_keep_input_order() {
        let items: Vec<u64> = (0..100).collect();
        let out = map(&items, 8, |i, x| {
            std::thread::sleep(Duration::from_micros((100 - x) * 10));
            (i, x * 2)
        });
        assert_eq!(out, (0..100).map(|x| (x as usize, x * 2)).collect::<Vec<_>>());
        assert!(map(&Vec::<u8>::new(), 8, |_, x| *x).is_empty());
    }

    #[test]
    fn never_more_workers_than_the_bound() {
        let (active, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        map(&[(); 24], 3, |_, _| {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            active.fetch_sub(1, Ordering::SeqCst);
        });
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} ran at once");
    }

    #[test]
    fn mutates_every_item_once() {
        let mut items = vec![1, 2, 3, 4, 5];
        let old = for_each_mut(&mut items, 3, |x| {
            *x *= 10;
            *x / 10
        });
        assert_eq!(items, [10, 20, 30, 40, 50]);
        assert_eq!(old, [1, 2, 3, 4, 5]);
    }
}
