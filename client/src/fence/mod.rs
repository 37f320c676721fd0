//! Crash-consistent group snapshots: fence every member's writers, cut, release.
//!
//! A group snapshot is crash-consistent when, for any write W2 issued after W1 completed
//! (on any members, from any client), a snapshot holding W2 also holds W1. We get that the
//! way stock `rbd group snap create` does, but from outside librbd: our client becomes the
//! exclusive-lock owner of **every** member before the **first** member snapshot is cut
//! (writers' I/O stays queued in their own librbd/krbd, never failed), cuts each member
//! snapshot at the RADOS level guarded by that lock, and only then hands the locks back.
//! `docs/FENCING.md` has the protocol, the states, the proof and what a crash leaves.
//!
//! `GroupFence` drives one group snapshot's fences; `member::MemberFence` is one
//! member's; [`wire`] holds the Ceph encodings they speak.

mod member;
pub mod wire;

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::parallel;
use crate::progress::Counter;
use crate::rados::{Cluster, IoCtx};
use crate::rbd;
use member::{Acquired, FenceConfig, FenceTarget, MemberFence};
use rbd_cg_contract::names::MAX_GROUP_MEMBERS;
use rbd_cg_contract::records::ImageRef;
use rbd_cg_contract::records::ReservedSnapId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// How a group snapshot treats the members' writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FenceMode {
    /// Fence every member; refuse members that cannot be fenced. Crash-consistent.
    #[default]
    Fenced,
    /// Fence what can be fenced; snapshot members without the exclusive-lock feature
    /// unfenced while the others are held. Not crash-consistent for those members.
    AllowUnfenced,
    /// No fencing at all: one member snapshot after another through librbd, as the seed's
    /// first iteration did. Not crash-consistent; kept for comparison and tests.
    NoFence,
}

/// Options of `snap create`.
#[derive(Debug, Clone)]
pub struct SnapCreateOptions {
    /// Refuse when the group already has this many snapshots.
    pub max_snapshots: u32,
    /// Fencing.
    pub fence: FenceMode,
    /// Do not notify quiesce hooks (`rbd_quiesce_watch` users) before fencing.
    pub skip_quiesce: bool,
    /// Go on when a quiesce hook fails (the snapshot is still crash-consistent).
    pub ignore_quiesce_error: bool,
    /// How long fencing all members may take before the snapshot is given up.
    pub fence_timeout: Duration,
    /// The OSD drops our watches this long after our client died: the longest a crashed
    /// `rbd-cg` can keep writers waiting.
    pub watch_timeout_secs: u32,
    /// Members worked on at once.
    pub workers: usize,
}

impl Default for SnapCreateOptions {
    fn default() -> Self {
        SnapCreateOptions {
            max_snapshots: rbd_cg_contract::names::MAX_GROUP_SNAPSHOTS,
            fence: FenceMode::Fenced,
            skip_quiesce: false,
            ignore_quiesce_error: false,
            fence_timeout: Duration::from_secs(10),
            watch_timeout_secs: 10,
            workers: parallel::DEFAULT_WORKERS,
        }
    }
}

impl SnapCreateOptions {
    /// Our lock's lifetime, `2 × fence_timeout + 10 s` (30 s by default): long enough to
    /// fence, cut and release, short enough that a fence nobody releases frees writers soon.
    pub fn lock_duration_secs(&self) -> u32 {
        let fence = u32::try_from(self.fence_timeout.as_secs()).unwrap_or(u32::MAX / 4);
        fence.saturating_mul(2).saturating_add(10)
    }
}

/// One member of the snapshot being taken.
struct Slot {
    image: ImageRef,
    /// Its name (`None` if the directory has none: an image in the trash).
    name: Option<String>,
    fence: MemberFence,
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
        config: &FenceConfig,
        reserve: &Reserve,
    ) -> Result<Slot> {
        let label = label_of(cluster, image, name);
        let refuse = [
            (rbd::FEATURE_JOURNALING, "journaling"),
            (rbd::FEATURE_MIGRATING, "migrating"),
            (rbd::FEATURE_NON_PRIMARY, "non-primary"),
            (rbd::FEATURE_DIRTY_CACHE, "dirty-cache"),
        ];
        if let Some((_, feature)) = refuse.iter().find(|(bit, _)| features & bit != 0) {
            return Err(Error::new(
                format!("{label} has the {feature} feature; group snapshots of such images are not supported"),
                libc::EOPNOTSUPP,
            ));
        }
        let fenceable = features & rbd::FEATURE_EXCLUSIVE_LOCK != 0;
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
        let target = FenceTarget {
            image: image.clone(),
            label,
            object_map: features & rbd::FEATURE_OBJECT_MAP != 0,
            fast_diff: features & rbd::FEATURE_FAST_DIFF != 0,
        };
        let data_pool = cluster.ioctx_by_id(data_pool_id)?;
        let fence = MemberFence::watch(cluster, target, config)?;
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
            let map =
                job.map(|(ioctx, image_id)| scope.spawn(move || member::write_snapshot_map(&ioctx, &image_id, id)));
            let added = fence.add_snapshot(snap_name, id);
            let mapped = match map {
                Some(handle) => {
                    handle.join().unwrap_or_else(|_| Err(Error::new("object map copy panicked", libc::EIO)))
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
                    return Err(e);
                }
                id
            }
            Err(e) if e.errno() == libc::ESTALE => {
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
                    member::write_snapshot_map(&ioctx, &image_id, fresh)?;
                }
                fresh
            }
            Err(e) => {
                // Refused by the lock assert: no snapshot, so its map copy goes. Any other
                // error may have left the snapshot in place (an op applied but not acked);
                // then the map stays for the undo (librbd's snap_remove removes both).
                if e.errno() == libc::EBUSY {
                    self.fence.drop_snapshot_map(id);
                }
                return Err(e);
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
    /// Ids being allocated, meanwhile, for the group's next snapshots.
    next_reserve: Option<std::thread::JoinHandle<Vec<ReservedSnapId>>>,
    /// Reserved ids this snapshot did not need (larger than the ones it took).
    leftover: Vec<ReservedSnapId>,
    /// Whether the next snapshot needs the refill (the leftover does not cover it).
    wait_for_refill: bool,
    /// Snapshots' worth of ids the reserve aims at.
    reserve_target: usize,
}

/// A member's features and data pool, read straight from `cls_rbd` in one read op (a
/// librbd open costs several round trips more and serializes when many run).
fn inspect(ioctx: &IoCtx, image: &ImageRef) -> Result<(u64, i64)> {
    let header = format!("rbd_header.{}", image.image_id);
    let undecodable = |what: &str, e: wire::DecodeError| Error::new(format!("{what} of {header}: {e}"), libc::EIO);
    let features_request = wire::get_features_request();
    let calls: [(&str, &str, &[u8]); 2] = [("rbd", "get_features", &features_request), ("rbd", "get_data_pool", &[])];
    let mut replies = ioctx.exec_read_batch(&header, &calls)?.into_iter();
    let (Some(features), Some(data_pool)) = (replies.next(), replies.next()) else {
        return Err(Error::new(format!("inspecting {header}: replies missing"), libc::EIO));
    };
    let (features, _) = wire::decode_features(&features?).map_err(|e| undecodable("features", e))?;
    let data_pool = match wire::decode_data_pool(&data_pool?).map_err(|e| undecodable("data pool", e))? {
        -1 => image.pool_id,
        pool => pool,
    };
    Ok((features, data_pool))
}

/// Most calls batched into one read op by [`directory_names`].
const NAMES_PER_OP: usize = 256;

/// The names of `images` from their pools' `rbd_directory`, one read op per pool and
/// namespace (and per 256 images); `None` for an image the directory does not have
/// (deleted, or in the trash) or whose pool is gone.
pub(crate) fn directory_names(cluster: &Cluster, images: &[ImageRef]) -> Result<HashMap<ImageRef, Option<String>>> {
    let mut by_location: BTreeMap<(i64, &str), Vec<&ImageRef>> = BTreeMap::new();
    for image in images {
        by_location.entry((image.pool_id, image.namespace.as_str())).or_default().push(image);
    }
    let mut names = HashMap::with_capacity(images.len());
    for ((pool_id, namespace), images) in by_location {
        let mut ioctx = match cluster.ioctx_by_id(pool_id) {
            Ok(ioctx) => ioctx,
            Err(e) if e.is_not_found() => {
                names.extend(images.into_iter().map(|i| (i.clone(), None)));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        ioctx.set_namespace(namespace)?;
        for chunk in images.chunks(NAMES_PER_OP) {
            let requests: Vec<Vec<u8>> = chunk.iter().map(|i| wire::string_request(&i.image_id)).collect();
            let calls: Vec<(&str, &str, &[u8])> =
                requests.iter().map(|r| ("rbd", "dir_get_name", r.as_slice())).collect();
            let replies = match ioctx.exec_read_batch("rbd_directory", &calls) {
                Ok(replies) => replies,
                Err(e) if e.is_not_found() => vec![Err(e); chunk.len()],
                Err(e) => return Err(e.into()),
            };
            for (image, reply) in chunk.iter().zip(replies) {
                let name = match reply {
                    Ok(reply) => Some(wire::decode_string(&reply).map_err(|e| {
                        Error::new(format!("rbd_directory name of image {}: {e}", image.image_id), libc::EIO)
                    })?),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e.into()),
                };
                names.insert((*image).clone(), name);
            }
        }
    }
    Ok(names)
}

/// The name of image `image_id` in `ioctx`'s `rbd_directory` (`cls_rbd.dir_get_name`);
/// `None` when the directory has no such image (deleted, or in the trash).
pub(crate) fn directory_name(ioctx: &IoCtx, image_id: &str) -> Result<Option<String>> {
    match ioctx.exec_read("rbd_directory", "rbd", "dir_get_name", &wire::string_request(image_id)) {
        Ok(reply) => wire::decode_string(&reply)
            .map(Some)
            .map_err(|e| Error::new(format!("rbd_directory name of image {image_id}: {e}"), libc::EIO)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `pool/[namespace/]image` of a member, for messages.
fn label_of(cluster: &Cluster, image: &ImageRef, name: Option<&str>) -> String {
    let pool = cluster.pool_name(image.pool_id).unwrap_or_else(|_| image.pool_id.to_string());
    let name = name.map_or_else(|| format!("id {}", image.image_id), str::to_owned);
    if image.namespace.is_empty() {
        format!("{pool}/{name}")
    } else {
        format!("{pool}/{}/{name}", image.namespace)
    }
}

/// The first error of a parallel phase, if any (all results are looked at, so every
/// success is kept by the caller).
fn first_error<T>(results: &[Result<T>]) -> Option<Error> {
    results.iter().find_map(|r| r.as_ref().err().cloned())
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
        progress: &Counter,
    ) -> Result<GroupFence> {
        let config = FenceConfig {
            watch_timeout_secs: options.watch_timeout_secs,
            lock_duration_secs: options.lock_duration_secs(),
            description,
        };
        let mut sorted = members.to_vec();
        sorted.sort();
        let keeps_reserve = reserved.is_some();
        let reserve = Reserve::new(reserved.unwrap_or_default());
        // The reserve aims at `target` snapshots' worth of ids, so that a snapshot rarely
        // waits for the monitor. When it covers this snapshot, the refill back to the target
        // is allocated from the start, overlapping all of it, and waited for only when the
        // leftover would not cover the next snapshot: a refill that is still running when
        // the snapshot completes is dropped (a monitor commit takes about as long as a whole
        // snapshot), so the reserve drains by one snapshot's worth per snapshot and is
        // refilled in full once every `target - 1` snapshots. When it does not cover this
        // snapshot, the refill starts only after this snapshot's own fresh ids, so that the
        // refill is larger (`snapshot_add` refuses an id below the image's newest; members
        // take the smallest reserved ids, the next snapshot the rest).
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
            .filter(|(features, _)| features & rbd::FEATURE_EXCLUSIVE_LOCK != 0)
            .map(|(_, data_pool)| *data_pool)
            .collect();
        let target = reserve_depth(id_pools.len());
        let depth = (1..=target).take_while(|d| reserve.covers(&id_pools, *d)).count();
        let covered = depth >= 1;
        let mut next_reserve = None;
        if keeps_reserve && covered {
            let refill: Vec<i64> = (0..(target + 1 - depth)).flat_map(|_| id_pools.iter().copied()).collect();
            next_reserve = Some(spawn_allocation(cluster, refill));
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
            next_reserve,
            leftover: reserve.into_ids(),
            wait_for_refill: depth < 2,
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
        if keeps_reserve && group.next_reserve.is_none() {
            let refill: Vec<i64> = (0..target).flat_map(|_| id_pools.iter().copied()).collect();
            group.next_reserve = Some(spawn_allocation(cluster, refill));
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
    /// waited for (its ids are never used: harmless, see `docs/FENCING.md`).
    pub(crate) fn take_next_reserve(&mut self) -> Vec<ReservedSnapId> {
        let mut ids = std::mem::take(&mut self.leftover);
        if let Some(refill) = self.next_reserve.take() {
            if self.wait_for_refill || refill.is_finished() {
                ids.extend(refill.join().unwrap_or_default());
            } else {
                background::keep(refill);
            }
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

    /// Drops the refill without waiting and without handing any id on (failure paths).
    fn unused_ids(&mut self) -> Vec<ReservedSnapId> {
        let mut ids = std::mem::take(&mut self.leftover);
        ids.extend(self.next_reserve.take().and_then(|h| h.join().ok()).unwrap_or_default());
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
        // Not handed to the class (the snapshot failed): give the ids back.
        let unused = self.unused_ids();
        let cluster = &self.cluster;
        parallel::map(&unused, parallel::DEFAULT_WORKERS, |_, id| {
            if let Ok(pool) = cluster.ioctx_by_id(id.pool_id) {
                free_snap_id(&pool, id.snap_id);
            }
        });
    }
}

/// Snapshot-id refills that nobody waits for, still running. Kept (not detached) so that a
/// process can wait for them before it ends: an allocation still inside librados must not
/// meet librados' static teardown (see [`wait_for_background_work`]).
mod background {
    use rbd_cg_contract::records::ReservedSnapId;
    use std::sync::{Mutex, PoisonError};
    use std::thread::JoinHandle;

    static PENDING: Mutex<Vec<JoinHandle<Vec<ReservedSnapId>>>> = Mutex::new(Vec::new());

    /// Keeps a running refill; finished ones are reaped on the way.
    pub(super) fn keep(refill: JoinHandle<Vec<ReservedSnapId>>) {
        let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        let (finished, running): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *pending).into_iter().partition(|h| h.is_finished());
        finished.into_iter().for_each(|h| drop(h.join()));
        *pending = running;
        pending.push(refill);
    }

    /// Waits for every kept refill (their ids are not used).
    pub(super) fn wait() {
        let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(PoisonError::into_inner));
        pending.into_iter().for_each(|h| drop(h.join()));
    }
}

/// Waits for background snapshot-id allocations that no snapshot waited for (at most about
/// one monitor commit). A process that ends by `exit()` (C/C++ teardown) should call this
/// first, e.g. from Python's `atexit`; `rbd-cg` ends by `_exit` instead.
pub fn wait_for_background_work() {
    background::wait();
}

/// Most snapshots' worth of ids the reserve aims at.
const RESERVE_DEPTH: usize = 4;

/// Snapshots' worth of ids the reserve of a group with `members` members aims at: up to
/// [`RESERVE_DEPTH`], fewer when the class's limit of `MAX_GROUP_MEMBERS` reserved ids binds.
fn reserve_depth(members: usize) -> usize {
    (MAX_GROUP_MEMBERS as usize / members.max(1)).clamp(1, RESERVE_DEPTH)
}

/// Snapshot ids allocated ahead, by data pool, for the members to take from.
struct Reserve(Mutex<HashMap<i64, Vec<u64>>>);

impl Reserve {
    fn new(ids: Vec<ReservedSnapId>) -> Reserve {
        let mut by_pool: HashMap<i64, Vec<u64>> = HashMap::new();
        for id in ids {
            by_pool.entry(id.pool_id).or_default().push(id.snap_id);
        }
        // Largest first, so that `take` hands out the smallest (oldest) ids.
        by_pool.values_mut().for_each(|ids| ids.sort_unstable_by(|a, b| b.cmp(a)));
        Reserve(Mutex::new(by_pool))
    }

    /// Whether it holds `times` ids for every entry of `pools`.
    fn covers(&self, pools: &[i64], times: usize) -> bool {
        let by_pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needed: HashMap<i64, usize> = HashMap::new();
        pools.iter().for_each(|p| *needed.entry(*p).or_default() += times);
        needed.iter().all(|(pool, n)| by_pool.get(pool).is_some_and(|ids| ids.len() >= *n))
    }

    /// The ids nobody took.
    fn into_ids(self) -> Vec<ReservedSnapId> {
        let by_pool = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        by_pool
            .into_iter()
            .flat_map(|(pool_id, ids)| ids.into_iter().map(move |snap_id| ReservedSnapId { pool_id, snap_id }))
            .collect()
    }

    fn take(&self, pool_id: i64) -> Option<u64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&pool_id)?.pop()
    }
}

/// [`allocate_reserve`] on a thread of its own.
fn spawn_allocation(cluster: &Cluster, pools: Vec<i64>) -> std::thread::JoinHandle<Vec<ReservedSnapId>> {
    let cluster = cluster.clone();
    std::thread::spawn(move || allocate_reserve(&cluster, &pools))
}

/// One fresh snapshot id per entry of `pools`, each pool's all in flight together (they
/// share monitor commits). An allocation that fails is left out: that member allocates its
/// own later.
fn allocate_reserve(cluster: &Cluster, pools: &[i64]) -> Vec<ReservedSnapId> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    pools.iter().for_each(|p| *counts.entry(*p).or_default() += 1);
    let mut ids = Vec::with_capacity(pools.len());
    for (pool_id, count) in counts {
        let Ok(pool) = cluster.ioctx_by_id(pool_id) else { continue };
        let allocated = pool.selfmanaged_snap_create_many(count);
        ids.extend(allocated.into_iter().flatten().map(|snap_id| ReservedSnapId { pool_id, snap_id }));
    }
    ids
}

fn free_snap_id(pool: &IoCtx, id: u64) {
    if let Err(e) = pool.selfmanaged_snap_remove(id) {
        log::debug!("releasing unused snapshot id {id}: {e}");
    }
}

/// A random 32-bit number (request ids only need to differ between concurrent requests).
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}
