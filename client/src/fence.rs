//! The writer fence of one group snapshot: every member's writers held before the first
//! member snapshot is cut, released after the last.
//!
//! A group snapshot is crash-consistent when, for any write W2 issued after W1 completed
//! (on any members, from any client), a snapshot holding W2 also holds W1. We get that the
//! way stock `rbd group snap create` does, but from outside librbd: our client becomes the
//! exclusive-lock owner of **every** member ([`ExclusiveLock`]) before the **first** member
//! snapshot is cut (writers' I/O stays queued in their own librbd/krbd, never failed), cuts
//! each member snapshot at the RADOS level guarded by that lock, and only then hands the
//! locks back. `docs/FENCING.md` has the protocol, the states, the proof and what a crash
//! leaves.
//!
//! [`GroupFence`] drives all members at once (bounded parallelism), lets go of everything
//! and retries when another fence holds a member (so two group snapshots sharing members
//! never deadlock), and gives each member a snapshot id from the group's reserve
//! ([`crate::snapshots::reserve`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::images::{directory_names, inspect, label_of};
use crate::parallel;
use crate::progress::Counter;
use crate::snapshots::reserve::{free_snap_id, reserve_depth, Reserve, SnapIdReserve};
use crate::snapshots::{FenceMode, SnapCreateOptions};
use rbd_cg_contract::names::MAX_GROUP_MEMBERS;
use rbd_cg_contract::records::{ImageRef, ReservedSnapId};
use rbd_cg_rados::exclusive_lock::{self, Acquired, ExclusiveLock, LockConfig, LockTarget};
use rbd_cg_rados::image::{FEATURE_DIRTY_CACHE, FEATURE_EXCLUSIVE_LOCK, FEATURE_FAST_DIFF, FEATURE_JOURNALING};
use rbd_cg_rados::image::{FEATURE_MIGRATING, FEATURE_NON_PRIMARY, FEATURE_OBJECT_MAP};
use rbd_cg_rados::{Cluster, IoCtx, RadosError};

/// One member of the snapshot being taken.
struct Slot {
    image: ImageRef,
    /// Its name (`None` if the directory has none: an image in the trash).
    name: Option<String>,
    fence: ExclusiveLock,
    /// Has the exclusive-lock feature (else it is cut unfenced, if allowed).
    fenceable: bool,
    /// Where its self-managed snapshot ids come from.
    data_pool: IoCtx,
    /// An id allocated for its snapshot and not yet used by one.
    unused_snap_id: Option<u64>,
}

impl Slot {
    /// Checks one inspected member, watches its header and gives it a reserved snapshot id.
    fn prepare(
        cluster: &Cluster,
        image: &ImageRef,
        name: Option<&str>,
        (features, data_pool_id): (u64, i64),
        options: &SnapCreateOptions,
        config: &LockConfig,
        reserve: &Reserve,
    ) -> Result<Slot> {
        let label = label_of(cluster, image, name);
        let refuse = [
            (FEATURE_JOURNALING, "journaling"),
            (FEATURE_MIGRATING, "migrating"),
            (FEATURE_NON_PRIMARY, "non-primary"),
            (FEATURE_DIRTY_CACHE, "dirty-cache"),
        ];
        if let Some((_, feature)) = refuse.iter().find(|(bit, _)| features & bit != 0) {
            return Err(Error::new(
                format!("{label} has the {feature} feature; group snapshots of such images are not supported"),
                libc::EOPNOTSUPP,
            ));
        }
        let fenceable = features & FEATURE_EXCLUSIVE_LOCK != 0;
        if !fenceable && options.fence == FenceMode::Fenced {
            return Err(Error::new(
                format!(
                    "{label} has no exclusive-lock feature: its writers cannot be fenced, so the group snapshot \
                     would not be crash-consistent"
                ),
                libc::EINVAL,
            )
            .with_hint(format!("Enable it (`rbd feature enable {label} exclusive-lock`) or pass --allow-unfenced.")));
        }
        let target = LockTarget {
            image: image.clone(),
            label,
            object_map: features & FEATURE_OBJECT_MAP != 0,
            fast_diff: features & FEATURE_FAST_DIFF != 0,
        };
        let data_pool = cluster.ioctx_by_id(data_pool_id)?;
        let fence = ExclusiveLock::watch(cluster, target, config)?;
        let mut slot = Slot {
            image: image.clone(),
            name: name.map(str::to_owned),
            fence,
            fenceable,
            data_pool,
            unused_snap_id: None,
        };
        if fenceable {
            // Without a reserved id, `GroupFence::prepare` allocates one for all such
            // members at once.
            slot.unused_snap_id = reserve.take(slot.data_pool.pool_id());
        }
        Ok(slot)
    }

    /// Cuts this member's snapshot (fenced: at the RADOS level; else through `unfenced_cut`).
    fn cut(&mut self, snap_name: &str, unfenced_cut: &(dyn Fn(&ImageRef) -> Result<u64> + Sync)) -> Result<u64> {
        if !self.fenceable {
            return unfenced_cut(&self.image);
        }
        let id = match self.unused_snap_id {
            Some(id) => id,
            None => self.data_pool.selfmanaged_snap_create()?,
        };
        self.unused_snap_id = Some(id);
        // The snapshot's object map is written while the snapshot is added (the HEAD map
        // cannot change under our lock): one OSD commit less on the path of every member.
        let job = self.fence.snapshot_map_job()?;
        let fence = &self.fence;
        let (added, mapped) = std::thread::scope(|scope| {
            let map = job.map(|(ioctx, image_id)| {
                scope.spawn(move || exclusive_lock::write_snapshot_map(&ioctx, &image_id, id))
            });
            let added = fence.add_snapshot(snap_name, id);
            let mapped = match map {
                Some(handle) => {
                    handle.join().unwrap_or_else(|_| Err(RadosError::new("object map copy panicked", libc::EIO)))
                }
                None => Ok(()),
            };
            (added, mapped)
        });
        let id = match added {
            Ok(()) => {
                if let Err(e) = mapped {
                    // The snapshot exists without its map: fail, and the undo removes it.
                    self.unused_snap_id = None;
                    return Err(e.into());
                }
                id
            }
            Err(e) if e.errno == libc::ESTALE => {
                // A snapshot with a newer id was taken after ours was allocated (before we
                // fenced): allocate again, inside the fence, where nobody can overtake us.
                log::debug!("{}: snapshot id {id} is stale; allocating another", self.fence.label());
                self.fence.drop_snapshot_map(id);
                let fresh = self.data_pool.selfmanaged_snap_create()?;
                free_snap_id(&self.data_pool, id);
                self.unused_snap_id = Some(fresh);
                self.fence.add_snapshot(snap_name, fresh)?;
                // The image snapshot owns the id now: never free it from here.
                self.unused_snap_id = None;
                if let Some((ioctx, image_id)) = self.fence.snapshot_map_job()? {
                    exclusive_lock::write_snapshot_map(&ioctx, &image_id, fresh)?;
                }
                fresh
            }
            Err(e) => {
                // Refused by the lock assert: no snapshot, so its map copy goes. Any other
                // error may have left the snapshot in place (an op applied but not acked);
                // then the map stays for the undo (librbd's snap_remove removes both).
                if e.errno == libc::EBUSY {
                    self.fence.drop_snapshot_map(id);
                }
                return Err(e.into());
            }
        };
        // The image snapshot owns the id now: never free it from here.
        self.unused_snap_id = None;
        self.fence.finish_cut()?;
        Ok(id)
    }

    /// Releases the fence and frees an unused snapshot id.
    fn release(&mut self) {
        self.fence.release();
        if let Some(id) = self.unused_snap_id.take() {
            free_snap_id(&self.data_pool, id);
        }
    }
}

/// The fences of one group snapshot. Dropping it releases every fence, sends the
/// unquiesce, and frees unused snapshot ids, so every error path leaves writers running.
pub(crate) struct GroupFence {
    cluster: Cluster,
    slots: Vec<Slot>,
    quiesce_request: Option<u64>,
    fence_timeout: Duration,
    /// Reserved ids this snapshot did not need (larger than the ones it took).
    leftover: Vec<ReservedSnapId>,
    /// Whether the next snapshot needs the refill (the leftover does not cover it).
    wait_for_refill: bool,
    /// Snapshots' worth of ids the reserve aims at.
    reserve_target: usize,
}

/// The first error of a parallel phase, if any (all results are looked at, so every
/// success is kept by the caller).
fn first_error<T, E: Clone + Into<Error>>(results: &[Result<T, E>]) -> Option<Error> {
    results.iter().find_map(|r| r.as_ref().err().cloned().map(Into::into))
}

impl GroupFence {
    /// Inspects every member (refusing those that cannot be snapshotted this way), watches
    /// its header and gives it a snapshot id (from `reserved`, the ids allocated ahead, or
    /// a fresh one), all members in parallel. Nothing is fenced. With `reserved` (`None`:
    /// the class keeps no reserve), the ids for the next snapshot are allocated meanwhile.
    pub(crate) fn prepare(
        cluster: &Cluster,
        members: &[ImageRef],
        options: &SnapCreateOptions,
        description: String,
        reserved: Option<Vec<ReservedSnapId>>,
        refills: &SnapIdReserve,
        progress: &Counter,
    ) -> Result<GroupFence> {
        let config = LockConfig {
            watch_timeout_secs: options.watch_timeout_secs,
            lock_duration_secs: options.lock_duration_secs(),
            description,
            refuse_with: libc::EBUSY,
        };
        let mut sorted = members.to_vec();
        sorted.sort();
        let keeps_reserve = reserved.is_some();
        // The header's ids, and those of a refill this client finished meanwhile.
        let mut ids = reserved.unwrap_or_default();
        if keeps_reserve {
            ids.extend(refills.take_ready());
        }
        let reserve = Reserve::new(ids);
        // The reserve aims at `target` snapshots' worth of ids, so that a snapshot rarely
        // waits for the monitor. When it covers this snapshot but its leftover would not
        // cover the next one, the refill back to the target is allocated from the start,
        // overlapping all of this snapshot, and waited for at its end. When the leftover
        // covers the next snapshot, a refill runs only for a client that refills ahead (it
        // is harvested by a later snapshot of this client, never waited for): so the reserve
        // drains by one snapshot's worth per snapshot and is refilled in full once every
        // `target` snapshots. When it does not cover this snapshot, the refill starts only
        // after this snapshot's own fresh ids, so that the refill is larger (`snapshot_add`
        // refuses an id below the image's newest; members take the smallest reserved ids,
        // the next snapshot the rest).
        // No name (an image in the trash) is still an image to snapshot.
        let names = directory_names(cluster, &sorted)?;
        let inspected = parallel::map(&sorted, options.workers, |_, image| {
            let ioctx = cluster.ioctx_in(image.pool_id, &image.namespace)?;
            let name = names.get(image).and_then(Option::as_deref);
            inspect(&ioctx, image).map_err(|e| e.context(format!("inspecting {}", label_of(cluster, image, name))))
        });
        let inspected = inspected.into_iter().collect::<Result<Vec<(u64, i64)>>>()?;
        // Ids come from the members' data pools (the image's own pool unless it has one).
        let id_pools: Vec<i64> = inspected
            .iter()
            .filter(|(features, _)| features & FEATURE_EXCLUSIVE_LOCK != 0)
            .map(|(_, data_pool)| *data_pool)
            .collect();
        let target = reserve_depth(id_pools.len());
        let depth = (1..=target).take_while(|d| reserve.covers(&id_pools, *d)).count();
        let covered = depth >= 1;
        let wait_for_refill = depth < 2;
        if keeps_reserve && covered && (wait_for_refill || refills.refills_ahead()) {
            refills.refill(&(0..(target + 1 - depth)).flat_map(|_| id_pools.iter().copied()).collect::<Vec<_>>());
        }
        let prepared = parallel::map(&sorted, options.workers, |i, image| {
            let name = names.get(image).and_then(Option::as_deref);
            let slot = Slot::prepare(cluster, image, name, inspected[i], options, &config, &reserve);
            progress.tick();
            slot
        });
        let error = first_error(&prepared);
        // Built even on error, so that dropping it frees what the successful members hold
        // and the reserved ids nobody took.
        let mut group = GroupFence {
            cluster: cluster.clone(),
            slots: prepared.into_iter().filter_map(Result::ok).collect(),
            quiesce_request: None,
            fence_timeout: options.fence_timeout,
            leftover: reserve.into_ids(),
            wait_for_refill,
            reserve_target: target,
        };
        if let Some(e) = error {
            return Err(e);
        }
        group.allocate_missing_ids();
        let unfenced: Vec<&str> = group.slots.iter().filter(|s| !s.fenceable).map(|s| s.fence.label()).collect();
        if !unfenced.is_empty() {
            eprintln!(
                "WARNING: this group snapshot is NOT crash-consistent: {} cannot be fenced (no exclusive-lock)",
                unfenced.join(", ")
            );
        }
        if keeps_reserve && !covered {
            refills.refill(&(0..target).flat_map(|_| id_pools.iter().copied()).collect::<Vec<_>>());
        }
        Ok(group)
    }

    /// Gives every fenceable member without a reserved id a fresh one: all requests of a
    /// pool in flight together, so the monitor commits them in a round or two. A member whose
    /// allocation failed allocates its own when it is cut (and fails then if it must).
    fn allocate_missing_ids(&mut self) {
        let mut by_pool: BTreeMap<i64, Vec<&mut Slot>> = BTreeMap::new();
        for slot in self.slots.iter_mut().filter(|s| s.fenceable && s.unused_snap_id.is_none()) {
            by_pool.entry(slot.data_pool.pool_id()).or_default().push(slot);
        }
        for (pool_id, slots) in by_pool {
            let Ok(pool) = self.cluster.ioctx_by_id(pool_id) else { continue };
            let ids = pool.selfmanaged_snap_create_many(slots.len());
            for (slot, id) in slots.into_iter().zip(ids) {
                match id {
                    Ok(id) => slot.unused_snap_id = Some(id),
                    Err(e) => log::debug!("allocating a snapshot id in pool {pool_id}: {e}"),
                }
            }
        }
    }

    /// The ids for the group's next snapshots: what this one left over, plus the refill.
    /// When the leftover already covers the next snapshot, a refill still running is not
    /// waited for: it stays with the client's reserve for a later snapshot.
    pub(crate) fn take_next_reserve(&mut self, refills: &SnapIdReserve) -> Vec<ReservedSnapId> {
        let mut ids = std::mem::take(&mut self.leftover);
        if self.wait_for_refill {
            ids.extend(refills.take_waiting());
        } else {
            ids.extend(refills.take_ready());
        }
        // Per data pool, keep the newest `target` snapshots' worth for the members that use
        // it (an older id would more likely be refused as stale); pools no member uses any
        // more keep none. That stays within the class's limit of MAX_GROUP_MEMBERS ids.
        let mut wanted: HashMap<i64, usize> = HashMap::new();
        for slot in self.slots.iter().filter(|s| s.fenceable) {
            *wanted.entry(slot.data_pool.pool_id()).or_default() += self.reserve_target;
        }
        ids.sort_by_key(|id| (id.pool_id, std::cmp::Reverse(id.snap_id)));
        let mut kept: HashMap<i64, usize> = HashMap::new();
        ids.retain(|id| {
            let kept = kept.entry(id.pool_id).or_default();
            *kept += 1;
            *kept <= wanted.get(&id.pool_id).copied().unwrap_or(0)
        });
        ids.truncate(MAX_GROUP_MEMBERS as usize);
        ids
    }

    /// Every member with its name.
    pub(crate) fn names(&self) -> impl Iterator<Item = (&ImageRef, Option<&str>)> {
        self.slots.iter().map(|s| (&s.image, s.name.as_deref()))
    }

    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Notifies every member's quiesce hooks (skipped with `skip_quiesce`).
    pub(crate) fn quiesce(&mut self, options: &SnapCreateOptions) -> Result<()> {
        if options.skip_quiesce {
            return Ok(());
        }
        let request_id = u64::from(std::process::id()) << 32 | u64::from(rand_u32());
        self.quiesce_request = Some(request_id);
        let results = parallel::for_each_mut(&mut self.slots, options.workers, |slot| slot.fence.quiesce(request_id));
        match first_error(&results) {
            None => Ok(()),
            Some(e) if options.ignore_quiesce_error => {
                eprintln!("WARNING: {e}; going on (--ignore-quiesce-error)");
                Ok(())
            }
            Some(e) => Err(e.with_hint("Fix the quiesce hook, or pass --ignore-quiesce-error or --skip-quiesce.")),
        }
    }

    /// Fences every member, in parallel, within the fence timeout. When another fence
    /// holds one of them, lets go of all and retries after a random pause, so that two
    /// group snapshots with shared members cannot hold parts of each other's set.
    pub(crate) fn fence_all(&mut self, workers: usize) -> Result<()> {
        let deadline = Instant::now() + self.fence_timeout;
        for round in 1u32.. {
            let results = parallel::for_each_mut(&mut self.slots, workers, |slot| {
                if !slot.fenceable || slot.fence.is_owned() {
                    return Ok(Acquired::Owned);
                }
                slot.fence.acquire(deadline)
            });
            if let Some(e) = first_error(&results) {
                return Err(e);
            }
            if results.iter().all(|r| matches!(r, Ok(Acquired::Owned))) {
                return Ok(());
            }
            parallel::for_each_mut(&mut self.slots, workers, |slot| slot.fence.release());
            let pause = Duration::from_millis(50 + u64::from(rand_u32() % 100) * u64::from(round.min(5)));
            if Instant::now() + pause >= deadline {
                return Err(Error::new(
                    "could not fence every member in time: another group snapshot holds some",
                    libc::ETIMEDOUT,
                )
                .with_hint("Retry, or raise --fence-timeout."));
            }
            std::thread::sleep(pause);
        }
        unreachable!("the loop returns")
    }

    /// Cuts every member's snapshot while every fence is held, in parallel; returns the
    /// snapshot ids in member order. Unfenced members are cut by `unfenced_cut` (librbd).
    pub(crate) fn cut_all(
        &mut self,
        workers: usize,
        snap_name: &str,
        unfenced_cut: &(dyn Fn(&ImageRef) -> Result<u64> + Sync),
        progress: &Counter,
    ) -> Result<Vec<(ImageRef, u64)>> {
        let results = parallel::for_each_mut(&mut self.slots, workers, |slot| {
            let cut = slot.cut(snap_name, unfenced_cut).map(|id| (slot.image.clone(), id));
            progress.tick();
            cut
        });
        results.into_iter().collect()
    }

    /// Releases every fence, ends the quiesce, frees unused snapshot ids. Idempotent.
    pub(crate) fn release(&mut self) {
        parallel::for_each_mut(&mut self.slots, parallel::DEFAULT_WORKERS, Slot::release);
        if let Some(request_id) = self.quiesce_request.take() {
            parallel::for_each_mut(&mut self.slots, parallel::DEFAULT_WORKERS, |slot| slot.fence.unquiesce(request_id));
        }
    }
}

impl Drop for GroupFence {
    fn drop(&mut self) {
        self.release();
        // Each member's watch goes with a round trip (unwatch): all at once, not one by one.
        let mut slots: Vec<Option<Slot>> = std::mem::take(&mut self.slots).into_iter().map(Some).collect();
        parallel::for_each_mut(&mut slots, parallel::DEFAULT_WORKERS, |slot| drop(slot.take()));
        // Not handed to the class (the snapshot failed): give the ids back. (A refill
        // stays with the client's reserve.)
        let unused = std::mem::take(&mut self.leftover);
        let cluster = &self.cluster;
        parallel::map(&unused, parallel::DEFAULT_WORKERS, |_, id| {
            if let Ok(pool) = cluster.ioctx_by_id(id.pool_id) {
                free_snap_id(&pool, id.snap_id);
            }
        });
    }
}

/// A random 32-bit number (request ids only need to differ between concurrent requests).
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}
