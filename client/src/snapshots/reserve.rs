//! Snapshot ids allocated ahead, so that a group snapshot need not wait for the monitor.
//!
//! Every member snapshot needs a self-managed snapshot id from its data pool, and each
//! allocation is a monitor commit (stock `rbd group snap create` spends most of its time
//! there). A group therefore keeps ids for its next snapshots in its header
//! (`reserved_snap_ids`, `docs/FORMAT.md`): `snap_create_begin` hands them to the snapshot
//! being created, which takes one per member and stores the rest, plus fresh ones, with
//! `snap_create_finish` in one atomic op — so every id reaches exactly one snapshot attempt.
//!
//! Two values here:
//! - [`Reserve`]: the ids one snapshot may take, by data pool (from the header, and from
//!   the client's own refills).
//! - [`SnapIdReserve`]: the client's refills, owned by [`crate::groups::Groups`]. A refill
//!   is a batch of asynchronous librados requests started when a snapshot starts; the
//!   snapshot waits for it only when the header's ids would not cover the next snapshot.
//!   With refill-ahead (long-lived clients: the Python binding, Cinder) a refill may also
//!   stay in flight past the snapshot, to be harvested by the next one. No thread of ours
//!   waits for a refill in the background, so none is inside librados when the process
//!   ends; dropping the reserve collects a refill still in flight (at most about one
//!   monitor commit). The one-shot CLI does not refill ahead, so it never waits at exit.
//!
//! Ids that were allocated but never handed to a group are simply not used: an unused
//! self-managed snapshot id costs the cluster nothing (`docs/FENCING.md`).

use rbd_cg_contract::names::MAX_GROUP_MEMBERS;
use rbd_cg_contract::records::ReservedSnapId;
use rbd_cg_rados::{Cluster, IoCtx, PendingSnapIds};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// Most snapshots' worth of ids the reserve aims at.
const RESERVE_DEPTH: usize = 4;

/// Snapshots' worth of ids the reserve of a group with `members` members aims at: up to
/// [`RESERVE_DEPTH`], fewer when the class's limit of `MAX_GROUP_MEMBERS` reserved ids binds.
pub(crate) fn reserve_depth(members: usize) -> usize {
    (MAX_GROUP_MEMBERS as usize / members.max(1)).clamp(1, RESERVE_DEPTH)
}

/// Snapshot ids allocated ahead, by data pool, for the members of one snapshot to take from.
pub(crate) struct Reserve(Mutex<HashMap<i64, Vec<u64>>>);

impl Reserve {
    pub(crate) fn new(ids: Vec<ReservedSnapId>) -> Reserve {
        let mut by_pool: HashMap<i64, Vec<u64>> = HashMap::new();
        for id in ids {
            by_pool.entry(id.pool_id).or_default().push(id.snap_id);
        }
        // Largest first, so that `take` hands out the smallest (oldest) ids.
        by_pool.values_mut().for_each(|ids| ids.sort_unstable_by(|a, b| b.cmp(a)));
        Reserve(Mutex::new(by_pool))
    }

    /// Whether it holds `times` ids for every entry of `pools`.
    pub(crate) fn covers(&self, pools: &[i64], times: usize) -> bool {
        let by_pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needed: HashMap<i64, usize> = HashMap::new();
        pools.iter().for_each(|p| *needed.entry(*p).or_default() += times);
        needed.iter().all(|(pool, n)| by_pool.get(pool).is_some_and(|ids| ids.len() >= *n))
    }

    /// The ids nobody took.
    pub(crate) fn into_ids(self) -> Vec<ReservedSnapId> {
        let by_pool = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        by_pool
            .into_iter()
            .flat_map(|(pool_id, ids)| ids.into_iter().map(move |snap_id| ReservedSnapId { pool_id, snap_id }))
            .collect()
    }

    pub(crate) fn take(&self, pool_id: i64) -> Option<u64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&pool_id)?.pop()
    }
}

/// The refills of one client ([`crate::groups::Groups`]): ids being allocated ahead and not
/// yet handed to a group. A refill is a set of asynchronous librados requests, one batch per
/// data pool; no thread of ours waits for them unless a snapshot needs their ids.
pub(crate) struct SnapIdReserve {
    cluster: Cluster,
    /// Whether a refill may run past the snapshot that started it.
    refill_ahead: bool,
    /// The refill in flight, per data pool (empty: none).
    running: Mutex<Vec<PendingSnapIds>>,
}

impl SnapIdReserve {
    pub(crate) fn new(cluster: &Cluster, refill_ahead: bool) -> SnapIdReserve {
        SnapIdReserve { cluster: cluster.clone(), refill_ahead, running: Mutex::new(Vec::new()) }
    }

    pub(crate) fn set_refill_ahead(&mut self, refill_ahead: bool) {
        self.refill_ahead = refill_ahead;
    }

    /// Whether a refill that the current snapshot does not need may be started.
    pub(crate) fn refills_ahead(&self) -> bool {
        self.refill_ahead
    }

    /// Starts allocating one id per entry of `pools`, each pool's all in flight together
    /// (they share monitor commits), unless a refill is already in flight (its ids serve as
    /// well). A pool whose requests cannot start is left out: its members allocate their
    /// own later.
    pub(crate) fn refill(&self, pools: &[i64]) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if !running.is_empty() {
            return;
        }
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        pools.iter().for_each(|p| *counts.entry(*p).or_default() += 1);
        for (pool_id, count) in counts {
            let started = self.cluster.ioctx_by_id(pool_id).and_then(|pool| pool.start_selfmanaged_snap_create(count));
            match started {
                Ok(pending) => running.push(pending),
                Err(e) => log::debug!("allocating snapshot ids ahead in pool {pool_id}: {e}"),
            }
        }
    }

    /// The ids of a refill that has completed (none while it is in flight).
    pub(crate) fn take_ready(&self) -> Vec<ReservedSnapId> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.iter().all(PendingSnapIds::is_complete) {
            collect(std::mem::take(&mut *running))
        } else {
            Vec::new()
        }
    }

    /// The ids of the refill in flight, waiting for it.
    pub(crate) fn take_waiting(&self) -> Vec<ReservedSnapId> {
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(PoisonError::into_inner));
        collect(running)
    }
}

/// The ids of a refill's requests (failed allocations are left out).
fn collect(pending: Vec<PendingSnapIds>) -> Vec<ReservedSnapId> {
    let mut ids = Vec::new();
    for pool in pending {
        let pool_id = pool.pool_id();
        ids.extend(pool.wait().into_iter().flatten().map(|snap_id| ReservedSnapId { pool_id, snap_id }));
    }
    ids
}

impl Drop for SnapIdReserve {
    /// A refill still in flight is waited for (by dropping its requests), so librados never
    /// completes into freed memory. Its ids are not used (harmless).
    fn drop(&mut self) {
        let running = std::mem::take(self.running.get_mut().unwrap_or_else(PoisonError::into_inner));
        if !running.is_empty() {
            log::debug!("{} snapshot ids allocated ahead were not needed", collect(running).len());
        }
    }
}

/// Releases an id that no snapshot uses (failure paths).
pub(crate) fn free_snap_id(pool: &IoCtx, id: u64) {
    if let Err(e) = pool.selfmanaged_snap_remove(id) {
        log::debug!("releasing unused snapshot id {id}: {e}");
    }
}
