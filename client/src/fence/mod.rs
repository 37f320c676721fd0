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
use crate::rados::{Cluster, IoCtx};
use crate::rbd::{self, Image};
use member::{FenceConfig, FenceTarget, MemberFence};
use rbd_cg_contract::records::ImageRef;

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
    fence: MemberFence,
    /// Has the exclusive-lock feature (else it is cut unfenced, if allowed).
    fenceable: bool,
    /// Where its self-managed snapshot ids come from.
    data_pool: IoCtx,
    /// An id allocated for its snapshot and not yet used by one.
    unused_snap_id: Option<u64>,
}

/// The fences of one group snapshot. Dropping it releases every fence, sends the
/// unquiesce, and frees unused snapshot ids, so every error path leaves writers running.
pub(crate) struct GroupFence {
    slots: Vec<Slot>,
    quiesce_request: Option<u64>,
    deadline: Option<Instant>,
    fence_timeout: Duration,
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

impl GroupFence {
    /// Inspects every member (refusing those that cannot be snapshotted this way), watches
    /// its header and allocates its snapshot id. Nothing is fenced yet.
    pub(crate) fn prepare(
        cluster: &Cluster,
        members: &[ImageRef],
        options: &SnapCreateOptions,
        description: String,
    ) -> Result<GroupFence> {
        let config = FenceConfig {
            watch_timeout_secs: options.watch_timeout_secs,
            lock_duration_secs: options.lock_duration_secs(),
            description,
        };
        let mut sorted = members.to_vec();
        sorted.sort(); // the fence order: the same in every client, so two fences never deadlock
        let mut group = GroupFence {
            slots: Vec::new(),
            quiesce_request: None,
            deadline: None,
            fence_timeout: options.fence_timeout,
        };
        let mut unfenced = Vec::new();
        for image in sorted {
            let mut ioctx = cluster.ioctx_by_id(image.pool_id)?;
            ioctx.set_namespace(&image.namespace)?;
            let opened = Image::open_by_id_read_only(&ioctx, &image.image_id)
                .map_err(|e| Error::from(e).context(format!("opening {}", label_of(cluster, &image, None))))?;
            let label = label_of(cluster, &image, opened.name().ok().as_deref());
            let features = opened.features()?;
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
            if !fenceable {
                if options.fence == FenceMode::Fenced {
                    return Err(Error::new(
                        format!(
                            "{label} has no exclusive-lock feature: its writers cannot be fenced, so the group \
                             snapshot would not be crash-consistent"
                        ),
                        libc::EINVAL,
                    )
                    .with_hint(format!(
                        "Enable it (`rbd feature enable {label} exclusive-lock`) or pass --allow-unfenced."
                    )));
                }
                unfenced.push(label.clone());
            }
            let target = FenceTarget {
                image: image.clone(),
                label,
                object_map: features & rbd::FEATURE_OBJECT_MAP != 0,
                fast_diff: features & rbd::FEATURE_FAST_DIFF != 0,
            };
            let data_pool = cluster.ioctx_by_id(opened.data_pool_id()?)?;
            drop(opened);
            let fence = MemberFence::watch(cluster, target, &config)?;
            group.slots.push(Slot { image, fence, fenceable, data_pool, unused_snap_id: None });
        }
        if !unfenced.is_empty() {
            eprintln!(
                "WARNING: this group snapshot is NOT crash-consistent: {} cannot be fenced (no exclusive-lock)",
                unfenced.join(", ")
            );
        }
        // Snapshot ids are a monitor round trip each: allocate them before anyone waits.
        for slot in group.slots.iter_mut().filter(|s| s.fenceable) {
            slot.unused_snap_id = Some(slot.data_pool.selfmanaged_snap_create()?);
        }
        Ok(group)
    }

    /// Members in fence order.
    pub(crate) fn members(&self) -> impl Iterator<Item = &ImageRef> {
        self.slots.iter().map(|s| &s.image)
    }

    /// Notifies every member's quiesce hooks (skipped with `skip_quiesce`).
    pub(crate) fn quiesce(&mut self, options: &SnapCreateOptions) -> Result<()> {
        if options.skip_quiesce {
            return Ok(());
        }
        let request_id = u64::from(std::process::id()) << 32 | u64::from(rand_u32());
        self.quiesce_request = Some(request_id);
        for slot in &self.slots {
            match slot.fence.quiesce(request_id) {
                Ok(()) => {}
                Err(e) if options.ignore_quiesce_error => {
                    eprintln!("WARNING: {e}; going on (--ignore-quiesce-error)");
                }
                Err(e) => {
                    return Err(e.with_hint("Fix the quiesce hook, or pass --ignore-quiesce-error or --skip-quiesce."))
                }
            }
        }
        Ok(())
    }

    /// Fences member `index` (in [`members`](Self::members) order). The deadline for all
    /// fences starts with the first one.
    pub(crate) fn fence(&mut self, index: usize) -> Result<()> {
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + self.fence_timeout);
        let slot = &mut self.slots[index];
        if slot.fenceable {
            slot.fence.acquire(deadline)?;
        }
        Ok(())
    }

    /// Cuts member `index`'s snapshot while every fence is held; returns its snapshot id.
    /// Unfenced members are cut by `unfenced_cut` (librbd).
    pub(crate) fn cut(
        &mut self,
        index: usize,
        snap_name: &str,
        unfenced_cut: impl FnOnce(&ImageRef) -> Result<u64>,
    ) -> Result<u64> {
        let slot = &mut self.slots[index];
        if !slot.fenceable {
            return unfenced_cut(&slot.image);
        }
        let id = match slot.unused_snap_id {
            Some(id) => id,
            None => slot.data_pool.selfmanaged_snap_create()?,
        };
        slot.unused_snap_id = Some(id);
        match slot.fence.cut(snap_name, id) {
            Ok(()) => {
                slot.unused_snap_id = None;
                Ok(id)
            }
            Err(e) if e.errno() == libc::ESTALE => {
                // A snapshot with a newer id was taken after ours was allocated (before we
                // fenced): allocate again, inside the fence, where nobody can overtake us.
                log::debug!("{}: snapshot id {id} is stale; allocating another", slot.fence.label());
                let fresh = slot.data_pool.selfmanaged_snap_create()?;
                free_snap_id(&slot.data_pool, id);
                slot.unused_snap_id = Some(fresh);
                slot.fence.cut(snap_name, fresh)?;
                slot.unused_snap_id = None;
                Ok(fresh)
            }
            Err(e) => Err(e),
        }
    }

    /// Releases every fence and ends the quiesce. Idempotent.
    pub(crate) fn release(&mut self) {
        for slot in &mut self.slots {
            slot.fence.release();
        }
        if let Some(request_id) = self.quiesce_request.take() {
            for slot in &self.slots {
                slot.fence.unquiesce(request_id);
            }
        }
        for slot in &mut self.slots {
            if let Some(id) = slot.unused_snap_id.take() {
                free_snap_id(&slot.data_pool, id);
            }
        }
    }
}

impl Drop for GroupFence {
    fn drop(&mut self) {
        self.release();
    }
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
