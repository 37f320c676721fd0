//! librbd's exclusive lock, taken from outside librbd: our client becomes an image's
//! exclusive-lock owner the way librbd and the kernel's rbd driver understand it, keeps
//! every writer's I/O queued (answering lock requests with `-EBUSY`; or refused, with
//! `-EROFS`) while it owns the lock, can cut a snapshot at the RADOS level under it, and
//! hands the lock back. The protocol, and why each step is there, is in `docs/FENCING.md`.
//!
//! State: `Watching` (watch registered) → `Owned` (our `rbd_lock`; the watch callback
//! answers every lock request with the configured errno) → `Released`. A broken watch or a
//! foreign `ACQUIRED_LOCK` while owned marks the lock lost; a guarded write then fails
//! `assert_locked` instead of landing without the lock.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::ceph::cls_lock::{self, AssertLocked, LockRequest, RBD_LOCK_NAME, RBD_LOCK_TAG};
use crate::ceph::cls_rbd::{self, SetProtectionStatus, SnapshotAdd, SnapshotNamespace};
use crate::ceph::librbd_notify::{self as notify, op, ClientId};
use crate::ceph::objects;
use crate::cls::WriteBatch;
use crate::error::{RadosError as Error, RadosResult as Result};
use crate::image::Image;
use crate::{Cluster, IoCtx, LockInfo, Watch, WatchHandler};
use rbd_cg_contract::records::ImageRef;

/// How long before our lock expires we stop claiming to own it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(2);
/// Largest object map we copy for a snapshot (2 bits per object: 256 Mi objects).
const MAX_OBJECT_MAP_BYTES: usize = 64 << 20;

/// How a lock is held.
#[derive(Debug, Clone)]
pub struct LockConfig {
    /// The OSD drops our watch this long after our client went silent.
    pub watch_timeout_secs: u32,
    /// Our `rbd_lock` expires this long after it was taken: the dead-man switch (0: never;
    /// then only a watch timeout, blocklisting and breaking by another client end it).
    pub lock_duration_secs: u32,
    /// Lock description, shown by `rados lock info` / `rbd lock ls`.
    pub description: String,
    /// What lock requests are answered with while we own the lock: `EBUSY` keeps the
    /// requesters' I/O queued (librbd and krbd wait and ask again), `EROFS` fails it.
    pub refuse_with: i32,
}

/// What the watch callback and the fencing thread share.
struct Shared {
    label: String,
    refuse_with: i32,
    me: OnceLock<ClientId>,
    epoch: Instant,
    /// Milliseconds after `epoch` until which we claim the lock; 0 = not owned.
    owned_until_ms: AtomicU64,
    /// Another client announced `ACQUIRED_LOCK` while we owned it, or the watch broke.
    lost: AtomicBool,
    /// Someone else wants the lock: it asked us for it while we held it, or we took it from
    /// them. Only then is `RELEASED_LOCK` worth a notify round trip at release.
    wanted: AtomicBool,
    /// Errno of a watch error, 0 if none.
    watch_error: AtomicI32,
    /// Count of `RELEASED_LOCK` notifications from other clients.
    released: Mutex<u64>,
    released_cv: Condvar,
}

impl Shared {
    fn owned_now(&self) -> bool {
        let until = self.owned_until_ms.load(Ordering::SeqCst);
        until != 0 && (self.epoch.elapsed().as_millis() as u64) < until
    }

    fn released_count(&self) -> u64 {
        *self.released.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a `RELEASED_LOCK` after `seen` arrives or `until` passes.
    fn wait_released(&self, seen: u64, until: Instant) {
        let mut count = self.released.lock().unwrap_or_else(PoisonError::into_inner);
        while *count == seen {
            let Some(left) = until.checked_duration_since(Instant::now()) else { return };
            count = self.released_cv.wait_timeout(count, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn is_me(&self, client: Option<ClientId>) -> bool {
        client.is_some() && client == self.me.get().copied()
    }
}

/// The watch callback: answers as a blocked exclusive-lock owner (librbd's
/// `block_requests(-EBUSY)`, or `-EROFS`) while owned, and as a bystander otherwise.
struct Handler(Arc<Shared>);

impl WatchHandler for Handler {
    fn notify(&self, _notifier_gid: u64, payload: &[u8]) -> Vec<u8> {
        let shared = &self.0;
        if log::log_enabled!(log::Level::Trace) {
            let hex: Vec<String> = payload.iter().map(|b| format!("{b:02x}")).collect();
            log::trace!("{}: notification from client.{_notifier_gid}: {}", shared.label, hex.join(" "));
        }
        let Ok(message) = notify::decode_notification(payload) else {
            log::debug!("{}: undecodable notification ({} bytes)", shared.label, payload.len());
            return Vec::new();
        };
        let owned = shared.owned_now();
        let from_me = shared.is_me(message.client);
        match message.op {
            op::RELEASED_LOCK if !from_me => {
                *shared.released.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                shared.released_cv.notify_all();
                Vec::new()
            }
            op::ACQUIRED_LOCK if !from_me && owned => {
                log::warn!("{}: {:?} announced it acquired the lock we hold", shared.label, message.client);
                shared.lost.store(true, Ordering::SeqCst);
                Vec::new()
            }
            op::REQUEST_LOCK if owned && !from_me => {
                shared.wanted.store(true, Ordering::SeqCst);
                log::debug!(
                    "{}: lock requested by {:?}: refused ({})",
                    shared.label,
                    message.client,
                    shared.refuse_with
                );
                notify::response(-shared.refuse_with)
            }
            op::FIRST_OWNER_REQUEST..=op::LAST_OWNER_REQUEST if owned => notify::response(-shared.refuse_with),
            unknown if unknown > op::UNQUIESCE && owned => notify::response(-libc::EOPNOTSUPP),
            _ => Vec::new(),
        }
    }

    fn error(&self, err: i32) {
        log::warn!("{}: watch error ({err}); the fence is lost", self.0.label);
        self.0.watch_error.store(err, Ordering::SeqCst);
        self.0.lost.store(true, Ordering::SeqCst);
    }
}

/// A watcher's answer to a notify: its instance id and the `ResponseMessage` result.
type Answer = (u64, i32);
/// A watcher: instance id and watch cookie.
type WatcherId = (u64, u64);

/// The image whose lock is taken.
#[derive(Debug, Clone)]
pub struct LockTarget {
    /// The image.
    pub image: ImageRef,
    /// `pool/[namespace/]name` for messages.
    pub label: String,
    /// It has the object-map feature (its map has a lock of its own).
    pub object_map: bool,
    /// It has the fast-diff feature.
    pub fast_diff: bool,
}

/// How an attempt to fence a member ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// We own the member's lock.
    Owned,
    /// Another fence (a group snapshot of ours or a stock one) holds it and answers
    /// `-EBUSY`: the caller lets go of everything and retries, so that two group snapshots
    /// never each hold part of the other's members.
    Contended,
}

/// Our exclusive lock on one image. Dropping it releases whatever it still holds.
pub struct ExclusiveLock {
    target: LockTarget,
    header: String,
    cluster: Cluster,
    watch: Watch,
    shared: Arc<Shared>,
    me: ClientId,
    cookie: String,
    config: LockConfig,
    header_locked: bool,
    object_map_locked: bool,
    /// Whether our `QUIESCE` reached a watcher other than ourselves (only those need the
    /// `UNQUIESCE`).
    quiesced_others: bool,
    /// A group member snapshot [`Self::add_snapshot`] cut, for [`Self::finish_cut`] to protect.
    pending_protect: Mutex<Option<u64>>,
}

impl ExclusiveLock {
    /// Registers the watch on the image's header (state `Watching`).
    pub fn watch(cluster: &Cluster, target: LockTarget, config: &LockConfig) -> Result<ExclusiveLock> {
        let ioctx = cluster.ioctx_in(target.image.pool_id, &target.image.namespace)?;
        let header = objects::image_header(&target.image.image_id);
        let shared = Arc::new(Shared {
            label: target.label.clone(),
            refuse_with: config.refuse_with,
            me: OnceLock::new(),
            epoch: Instant::now(),
            owned_until_ms: AtomicU64::new(0),
            lost: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            watch_error: AtomicI32::new(0),
            released: Mutex::new(0),
            released_cv: Condvar::new(),
        });
        let watch = Watch::new(ioctx, &header, config.watch_timeout_secs, Box::new(Handler(Arc::clone(&shared))))
            .map_err(|e| e.context(format!("watching {}", target.label)))?;
        let me = ClientId { gid: cluster.instance_id(), handle: watch.cookie() };
        let _ = shared.me.set(me);
        Ok(ExclusiveLock {
            header,
            cluster: cluster.clone(),
            cookie: cls_lock::lock_cookie(me.handle),
            watch,
            shared,
            me,
            config: config.clone(),
            header_locked: false,
            object_map_locked: false,
            quiesced_others: false,
            pending_protect: Mutex::new(None),
            target,
        })
    }

    /// `pool/[namespace/]name`.
    pub fn label(&self) -> &str {
        &self.target.label
    }

    fn ioctx(&self) -> &IoCtx {
        self.watch.ioctx()
    }

    /// Answers (non-empty acks) to a notify, decoded as `ResponseMessage` results, and the
    /// (instance id, watch cookie) of every watcher that did not ack in time.
    fn notify(&self, payload: &[u8]) -> Result<(Vec<Answer>, Vec<WatcherId>)> {
        self.notify_all(payload).map(|(answers, timeouts, _)| (answers, timeouts))
    }

    /// [`Self::notify`], plus whether it reached any watcher but our own watch.
    fn notify_all(&self, payload: &[u8]) -> Result<(Vec<Answer>, Vec<WatcherId>, bool)> {
        let outcome = self.ioctx().notify(&self.header, payload, notify::NOTIFY_TIMEOUT_MS)?;
        let reply = notify::decode_notify_reply(&outcome.reply)
            .map_err(|e| Error::new(format!("notify reply from {}: {e}", self.header), libc::EIO))?;
        let mut answers = Vec::new();
        for ack in reply.acks.iter().filter(|a| !a.payload.is_empty()) {
            if log::log_enabled!(log::Level::Trace) {
                let hex: Vec<String> = ack.payload.iter().map(|b| format!("{b:02x}")).collect();
                log::trace!("{}: answer from client.{}: {}", self.target.label, ack.gid, hex.join(" "));
            }
            match notify::decode_response(&ack.payload) {
                Ok(result) => answers.push((ack.gid, result)),
                Err(e) => log::debug!("{}: unreadable answer from client.{}: {e}", self.target.label, ack.gid),
            }
        }
        let mut timeouts = reply.timeouts;
        if outcome.timed_out && timeouts.is_empty() {
            timeouts.push((0, 0)); // librados said ETIMEDOUT without naming anyone
        }
        let others =
            !timeouts.is_empty() || reply.acks.iter().any(|a| (a.gid, a.cookie) != (self.me.gid, self.me.handle));
        Ok((answers, timeouts, others))
    }

    /// Sends `QUIESCE` (librbd runs the image's quiesce hooks, e.g. rbd-nbd's, and answers
    /// with their result). Retries a notify that timed out, as librbd does.
    pub fn quiesce(&mut self, request_id: u64) -> Result<()> {
        const ATTEMPTS: u32 = 3;
        // Until a reply says who got it, assume someone did (an error after delivery must
        // still be followed by UNQUIESCE).
        self.quiesced_others = true;
        let mut reached_others = false;
        for attempt in 1..=ATTEMPTS {
            let (answers, timeouts, others) = self.notify_all(&notify::quiesce(self.me, request_id))?;
            reached_others |= others;
            self.quiesced_others = reached_others;
            if let Some((gid, r)) = answers.iter().find(|(_, r)| *r < 0 && *r != -libc::EOPNOTSUPP) {
                return Err(Error::new(
                    format!("quiescing {}: a quiesce hook of client.{gid} failed", self.target.label),
                    -r,
                ));
            }
            if timeouts.is_empty() {
                return Ok(());
            }
            log::debug!("{}: quiesce attempt {attempt} timed out", self.target.label);
        }
        Err(Error::new(format!("quiescing {}: a watcher did not answer", self.target.label), libc::ETIMEDOUT))
    }

    /// Sends `UNQUIESCE` for `request_id` to a member whose `QUIESCE` reached another
    /// watcher; watchers also resume by themselves after 10 s.
    pub fn unquiesce(&self, request_id: u64) {
        if !self.quiesced_others {
            return;
        }
        if let Err(e) = self.notify(&notify::unquiesce(self.me, request_id)) {
            log::warn!("unquiescing {}: {e} (its watchers resume by themselves)", self.target.label);
        }
    }

    /// Fails if the fence broke (watch error, foreign owner, lock expiry near).
    /// The `assert_locked` that guards a write with our header lock.
    fn assertion(&self) -> AssertLocked {
        AssertLocked { name: RBD_LOCK_NAME.into(), cookie: self.cookie.clone(), tag: RBD_LOCK_TAG.into() }
    }

    fn check_not_lost(&self) -> Result<()> {
        let err = self.shared.watch_error.load(Ordering::SeqCst);
        if self.shared.lost.load(Ordering::SeqCst) || self.watch.check().is_err() {
            return Err(Error::new(
                format!("the fence on {} was lost (watch error {err})", self.target.label),
                if err > 0 { err } else { libc::ENOTCONN },
            ));
        }
        if self.header_locked && !self.shared.owned_now() {
            return Err(Error::new(format!("the fence on {} expired", self.target.label), libc::ETIMEDOUT));
        }
        Ok(())
    }

    /// Whether we hold the member's lock now.
    pub fn is_owned(&self) -> bool {
        self.header_locked
    }

    /// Becomes the member's exclusive-lock owner (state `Owned`), or reports that another
    /// fence holds it, or fails by `deadline`.
    pub fn acquire(&mut self, deadline: Instant) -> Result<Acquired> {
        let request = LockRequest {
            name: RBD_LOCK_NAME.into(),
            cookie: self.cookie.clone(),
            tag: RBD_LOCK_TAG.into(),
            description: self.config.description.clone(),
            duration_secs: self.config.lock_duration_secs,
            may_renew: false,
        };
        let mut rounds = 0u32;
        let mut holder = String::from("nobody");
        loop {
            self.check_not_lost()?;
            if Instant::now() >= deadline {
                return Err(Error::new(
                    format!("could not fence {} in time (lock held by {holder})", self.target.label),
                    libc::ETIMEDOUT,
                )
                .with_hint("Retry, or raise --fence-timeout; `rbd status` and `rbd lock ls` show who holds it."));
            }
            rounds += 1;
            let seen = self.shared.released_count();
            let sent = Instant::now();
            match self.ioctx().call_write(&self.header, &cls_lock::LOCK, &request) {
                Ok(()) => {
                    // A lock without expiry (duration 0) is ours until released or broken.
                    let until = match self.config.lock_duration_secs {
                        0 => u64::MAX,
                        secs => {
                            let owned_for = Duration::from_secs(secs.into()).saturating_sub(EXPIRY_MARGIN);
                            (sent + owned_for).duration_since(self.shared.epoch).as_millis() as u64
                        }
                    };
                    self.shared.owned_until_ms.store(until.max(1), Ordering::SeqCst);
                    self.header_locked = true;
                    break;
                }
                Err(e) if e.errno == libc::EBUSY => {}
                Err(e) => return Err(e.context(format!("locking {}", self.target.label))),
            }
            let info = match self.ioctx().list_lockers(&self.header, RBD_LOCK_NAME) {
                Ok(info) => info,
                Err(e) if e.errno == libc::ENOENT => {
                    return Err(Error::new(format!("{} is gone", self.target.label), libc::ENOENT))
                }
                Err(e) => return Err(e),
            };
            if info.lockers.is_empty() {
                continue; // released (or expired) in between: take it now
            }
            holder = info.lockers.iter().map(|l| l.client.as_str()).collect::<Vec<_>>().join(", ");
            if !info.exclusive
                || info.tag != RBD_LOCK_TAG
                || info.lockers.iter().any(|l| cls_lock::parse_lock_cookie(&l.cookie).is_none())
            {
                return Err(Error::new(
                    format!("{} is locked by an external mechanism ({holder}, tag {:?})", self.target.label, info.tag),
                    libc::EBUSY,
                )
                .with_hint("`rbd lock ls` shows the lock; `rbd lock rm` removes it if its owner is gone."));
            }
            // Whoever holds it now gets the lock back from us, so tell them at release.
            self.shared.wanted.store(true, Ordering::SeqCst);
            let (answers, _) = self.notify(&notify::request_lock(self.me))?;
            match answers.as_slice() {
                [(_, 0)] => {
                    // The owner releases: take the lock as soon as it says so.
                    self.shared.wait_released(seen, (Instant::now() + Duration::from_secs(2)).min(deadline));
                }
                [(gid, r)] if *r == -libc::EROFS => {
                    return Err(Error::new(
                        format!("client.{gid} refuses to give up the lock of {}", self.target.label),
                        libc::EROFS,
                    )
                    .with_hint(
                        "It holds the lock explicitly (rbd_lock_acquire, or krbd mapped with -o exclusive); \
                         such a member cannot be fenced without failing that client's I/O.",
                    ));
                }
                [(gid, r)] => {
                    log::debug!("{}: client.{gid} is fencing it too ({r})", self.target.label);
                    return Ok(Acquired::Contended);
                }
                [] => {
                    if self.owner_dead(&info)? {
                        self.break_dead_owner(&info)?;
                    } else {
                        backoff(rounds);
                    }
                }
                _ => backoff(rounds), // several claim to own it: let them sort it out
            }
        }
        log::debug!("{}: fenced after {rounds} round(s)", self.target.label);
        // No ACQUIRED_LOCK: librbd and krbd only use it to ask the new owner sooner, and
        // every request would be answered "busy" anyway; it would cost a round trip each.
        if self.target.object_map {
            self.lock_object_map()?;
        }
        Ok(Acquired::Owned)
    }

    /// Whether every holder of the lock is dead. A holder counts as alive when any watcher
    /// of the header has its lock cookie's handle **or** its address: stricter than
    /// librbd's `BreakRequest` (alive = both match), so we never blocklist a client that
    /// librbd would spare, nor one that still watches this header through another handle.
    fn owner_dead(&self, info: &LockInfo) -> Result<bool> {
        let image = Image::open_by_id_read_only(self.ioctx(), &self.target.image.image_id)?;
        let watchers = image.watchers()?;
        let alive = info.lockers.iter().any(|locker| {
            let handle = cls_lock::parse_lock_cookie(&locker.cookie);
            watchers.iter().any(|w| Some(w.cookie) == handle || same_addr(&w.addr, &locker.addr))
        });
        Ok(!alive)
    }

    /// Blocklists the dead holders (so a half-dead one cannot write any more) and breaks
    /// their lock, as librbd and krbd do before taking over from a dead owner. Like
    /// librbd's `BreakRequest`, it reads the lock again first and gives up (the caller
    /// retries) if the holders changed, and it never blocklists its own client.
    fn break_dead_owner(&self, seen: &LockInfo) -> Result<()> {
        let now = self.ioctx().list_lockers(&self.header, RBD_LOCK_NAME)?;
        if now.lockers != seen.lockers {
            log::debug!("{}: the lock changed hands meanwhile; not breaking it", self.target.label);
            return Ok(());
        }
        let me = format!("client.{}", self.me.gid);
        for locker in &seen.lockers {
            if locker.client == me {
                continue; // a stale lock of this very client: only expiry clears it
            }
            log::warn!(
                "{}: lock holder {} is dead: blocklisting {} and breaking its lock",
                self.target.label,
                locker.client,
                locker.addr
            );
            self.cluster.blocklist_add(&locker.addr, 0)?;
            match self.ioctx().break_lock(&self.header, RBD_LOCK_NAME, &locker.client, &locker.cookie) {
                Ok(()) => {}
                Err(e) if e.errno == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Takes the object map's own lock (cookie and tag empty, as librbd's
    /// `object_map::LockRequest`), breaking stale holders: the header lock is the guard.
    fn lock_object_map(&mut self) -> Result<()> {
        let oid = objects::object_map(&self.target.image.image_id, None);
        let request = LockRequest {
            name: RBD_LOCK_NAME.into(),
            cookie: String::new(),
            tag: String::new(),
            description: self.config.description.clone(),
            duration_secs: self.config.lock_duration_secs,
            may_renew: false,
        };
        for _ in 0..3 {
            match self.ioctx().call_write(&oid, &cls_lock::LOCK, &request) {
                Ok(()) => {
                    self.object_map_locked = true;
                    return Ok(());
                }
                Err(e) if e.errno == libc::EEXIST => {
                    self.object_map_locked = true;
                    return Ok(());
                }
                Err(e) if e.errno == libc::EBUSY => {
                    for locker in self.ioctx().list_lockers(&oid, RBD_LOCK_NAME)?.lockers {
                        match self.ioctx().break_lock(&oid, RBD_LOCK_NAME, &locker.client, &locker.cookie) {
                            Ok(()) => {}
                            Err(e) if e.errno == libc::ENOENT => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e.context(format!("locking the object map of {}", self.target.label))),
            }
        }
        Err(Error::new(format!("the object map of {} stays locked", self.target.label), libc::EBUSY))
    }

    /// Adds the member snapshot `snap_name` with id `snap_id` to the image header, in one
    /// atomic op guarded by our lock. `ESTALE` means a newer snapshot id exists on the
    /// image: allocate another and call again. Once this succeeded the id belongs to the
    /// snapshot (librbd's `snap_remove` releases it); [`Self::finish_cut`] completes it.
    ///
    /// The namespace follows from the name ([`snapshot_namespace_for`]): a group member
    /// snapshot name (`rbd_cg_contract::names::image_snap_name`) goes into cls_rbd's
    /// `group` namespace, where stock `rbd snap ls`/`rm`/`purge` cannot touch it, and
    /// [`Self::finish_cut`] protects it; any other name is an ordinary user snapshot.
    pub fn add_snapshot(&self, snap_name: &str, snap_id: u64) -> Result<()> {
        self.check_not_lost()?;
        self.cut(snap_name, snap_id, true)
    }

    /// [`Self::add_snapshot`] for an image without the exclusive-lock feature, which has no
    /// lock to guard the cut with (librbd cuts such images the same way): no fence, so
    /// not crash-consistent with its writers.
    pub fn add_snapshot_unfenced(&self, snap_name: &str, snap_id: u64) -> Result<()> {
        self.cut(snap_name, snap_id, false)
    }

    /// The one place a member snapshot is cut: `snapshot_add` (after `assert_locked` when
    /// `guarded`), in the namespace its name calls for.
    fn cut(&self, snap_name: &str, snap_id: u64, guarded: bool) -> Result<()> {
        let mut batch = WriteBatch::new();
        if guarded {
            batch.add(&cls_lock::ASSERT_LOCKED, &self.assertion())?;
        }
        let namespace = snapshot_namespace_for(snap_name);
        let protect = matches!(namespace, SnapshotNamespace::Group { .. });
        let add = SnapshotAdd { name: snap_name.into(), snap_id, namespace };
        batch.add(&cls_rbd::SNAPSHOT_ADD, &add)?;
        self.ioctx().write_batch(&self.header, &batch).map_err(|e| {
            let errno = e.errno;
            let e = e.context(format!("snapshotting {}", self.target.label));
            if errno == libc::EBUSY {
                e.with_hint("Our fence was lost (lock expired or broken): nothing inconsistent was recorded.")
            } else {
                e
            }
        })?;
        if protect {
            *self.pending_protect.lock().unwrap_or_else(PoisonError::into_inner) = Some(snap_id);
        }
        Ok(())
    }

    /// What [`protect_snapshot`] needs on another thread: the assert of our lock when we
    /// hold it, the header, and a label.
    fn protect_job(&self) -> (Option<AssertLocked>, String, String) {
        (self.header_locked.then(|| self.assertion()), self.header.clone(), self.target.label.clone())
    }

    /// Removes image snapshot `snap_name` under our lock, at the RADOS level, the way
    /// librbd's `SnapshotRemoveRequest` does (librbd itself refuses while the image is
    /// `non-primary`, as a journaled member is): with the object-map feature, the snapshot's
    /// map is merged into the next newer map (fast-diff) and removed; the snapshot id is
    /// released in the data pool (the OSDs trim its clones); the snapshot leaves the header
    /// (`lock.assert_locked` + `snapshot_remove` in one op); every watcher must acknowledge
    /// the header update. `Ok(false)` when there is no such snapshot. A rerun after a crash
    /// at any point finishes it.
    ///
    /// With `snap_id` the snapshot is found by id (whatever its namespace; it must still
    /// carry `snap_name` or, for a group member snapshot an interrupted command left
    /// exposed, its exposed name), else by name. A protected group member snapshot (cut
    /// protected, see [`Self::add_snapshot`]) is unprotected first as librbd's unprotect
    /// does: `UNPROTECTING`, no clone child of either format in any pool, `UNPROTECTED`.
    /// Refused (`EBUSY`) while the snapshot has clone children, or while any other snapshot
    /// is protected, before anything changed.
    pub fn remove_snapshot(&self, data_pool: &IoCtx, snap_name: &str, snap_id: Option<u64>) -> Result<bool> {
        self.check_not_lost()?;
        let context = |e: Error| e.context(format!("removing snapshot {snap_name} of {}", self.target.label));
        let snapc = self.ioctx().call(&self.header, &cls_rbd::GET_SNAPCONTEXT, &()).map_err(context)?;
        let member = rbd_cg_contract::names::parse_image_snap_name(snap_name);
        let exposed = member
            .as_ref()
            .map(|m| rbd_cg_contract::names::exposed_image_snap_name(m.group_pool_id, &m.group_id, &m.snap_id));
        let candidates: Vec<u64> = match snap_id {
            Some(id) => snapc.snaps.iter().copied().filter(|s| *s == id).collect(),
            None => snapc.snaps.clone(),
        };
        if candidates.is_empty() {
            return Ok(false);
        }
        let names = self.ioctx().call_many(&self.header, &cls_rbd::GET_SNAPSHOT_NAME, &candidates).map_err(context)?;
        let matches = |name: &str| name == snap_name || (snap_id.is_some() && exposed.as_deref() == Some(name));
        let Some(snap_id) = candidates.iter().zip(names).find_map(|(id, name)| matches(&name.ok()?).then_some(*id))
        else {
            return Ok(false);
        };
        // What makes `snapshot_remove` refuse, checked before anything is changed.
        let protection = self.ioctx().call(&self.header, &cls_rbd::GET_PROTECTION_STATUS, &snap_id).map_err(context)?;
        if protection != cls_rbd::ProtectionStatus::UNPROTECTED {
            if member.is_none() {
                return Err(context(Error::new("it is protected", libc::EBUSY)));
            }
            self.unprotect_member_snapshot(snap_id).map_err(context)?;
        }
        // (`ENOENT`: no children key, none.)
        let children = match self.ioctx().call(&self.header, &cls_rbd::CHILDREN_LIST, &snap_id) {
            Ok(children) => children,
            Err(e) if e.is_not_found() => cls_rbd::ChildCount(0),
            Err(e) => return Err(context(e)),
        };
        if children.0 > 0 {
            return Err(context(Error::new(format!("it has {} clone children", children.0), libc::EBUSY)));
        }
        if self.target.object_map {
            let io = self.own_ioctx()?;
            let image_id = &self.target.image.image_id;
            let removed_map = objects::object_map(image_id, Some(snap_id));
            if self.target.fast_diff {
                match io.read_full(&removed_map, MAX_OBJECT_MAP_BYTES) {
                    Ok(map) => {
                        // The next newer snapshot's map, or the head's (under our map lock).
                        let newer = snapc.snaps.iter().filter(|id| **id > snap_id).min().copied();
                        let mut batch = WriteBatch::new();
                        let target = match newer {
                            Some(id) => objects::object_map(image_id, Some(id)),
                            None => {
                                let guard = AssertLocked {
                                    name: RBD_LOCK_NAME.into(),
                                    cookie: String::new(),
                                    tag: String::new(),
                                };
                                batch.add(&cls_lock::ASSERT_LOCKED, &guard)?;
                                objects::object_map(image_id, None)
                            }
                        };
                        batch.add(&cls_rbd::OBJECT_MAP_SNAP_REMOVE, &cls_rbd::EncodedObjectMap(map))?;
                        match io.write_batch(&target, &batch) {
                            Ok(()) => {}
                            // A newer snapshot without a map (made without object-map): nothing to merge.
                            Err(e) if e.is_not_found() && newer.is_some() => {}
                            Err(e) => return Err(context(e)),
                        }
                    }
                    Err(e) if e.is_not_found() => {} // merged and removed by an earlier attempt
                    Err(e) => return Err(context(e)),
                }
            }
            match io.remove(&removed_map) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(context(e)),
            }
        }
        match data_pool.selfmanaged_snap_remove(snap_id) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(context(e)),
        }
        let mut batch = WriteBatch::new();
        batch.add(&cls_lock::ASSERT_LOCKED, &self.assertion())?;
        batch.add(&cls_rbd::SNAPSHOT_REMOVE, &snap_id)?;
        match self.ioctx().write_batch(&self.header, &batch) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(context(e)),
        }
        self.header_update().map_err(context)?;
        Ok(true)
    }

    /// Unprotects group member snapshot `snap_id` under our lock as librbd's unprotect does
    /// (librbd refuses a `non-primary` image): `UNPROTECTING` (a clone-v1 of it is refused
    /// from now on), then no clone child of either format in any pool (librbd's
    /// `list_children`), then `UNPROTECTED`; with children it is `PROTECTED` again and the
    /// answer is `EBUSY`. A crash in between leaves it `UNPROTECTING`, which a rerun
    /// finishes the same way.
    fn unprotect_member_snapshot(&self, snap_id: u64) -> Result<()> {
        self.set_protection(snap_id, cls_rbd::PROTECTION_UNPROTECTING)?;
        let children = Image::open_by_id_read_only(&self.own_ioctx()?, &self.target.image.image_id)
            .and_then(|mut image| image.snap_children_count(snap_id));
        match children {
            Ok(0) => self.set_protection(snap_id, cls_rbd::PROTECTION_UNPROTECTED),
            Ok(count) => {
                self.set_protection(snap_id, cls_rbd::PROTECTION_PROTECTED)?;
                Err(Error::new(format!("it has {count} clone children"), libc::EBUSY))
            }
            Err(e) => {
                if let Err(again) = self.set_protection(snap_id, cls_rbd::PROTECTION_PROTECTED) {
                    log::warn!("protecting snapshot {snap_id} of {} again: {again}", self.target.label);
                }
                Err(e.context("listing its clone children"))
            }
        }
    }

    /// Sets the protection status of snapshot `snap_id` (`cls_rbd::PROTECTION_*`) under an
    /// assert of our lock.
    fn set_protection(&self, snap_id: u64, status: u8) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.add(&cls_lock::ASSERT_LOCKED, &self.assertion())?;
        batch.add(&cls_rbd::SET_PROTECTION_STATUS, &SetProtectionStatus { snap_id, status })?;
        self.ioctx().write_batch(&self.header, &batch)
    }

    /// An I/O context of its own on the member's pool (I/O contexts are not shared between
    /// our threads), for object-map work that overlaps the header's.
    fn own_ioctx(&self) -> Result<IoCtx> {
        self.cluster.ioctx_in(self.target.image.pool_id, &self.target.image.namespace)
    }

    /// What [`write_snapshot_map`] needs to run on another thread (an I/O context of its
    /// own and the image id); `None` without the object-map feature.
    pub fn snapshot_map_job(&self) -> Result<Option<(IoCtx, String)>> {
        if !self.target.object_map {
            return Ok(None);
        }
        Ok(Some((self.own_ioctx()?, self.target.image.image_id.clone())))
    }

    /// Removes a snapshot object map written for an id that no snapshot got (best effort:
    /// a leftover is a few bytes nobody reads).
    pub fn drop_snapshot_map(&self, snap_id: u64) {
        if !self.target.object_map {
            return;
        }
        let removed = self
            .own_ioctx()
            .and_then(|ioctx| ioctx.remove(&objects::object_map(&self.target.image.image_id, Some(snap_id))));
        if let Err(e) = removed {
            if !e.is_not_found() {
                log::warn!(
                    "{}: could not remove the unused object map of snapshot id {snap_id}: {e}",
                    self.target.label
                );
            }
        }
    }

    /// Completes a snapshot [`Self::add_snapshot`] added (its object map written by
    /// [`write_snapshot_map`]): with fast-diff, marks the HEAD objects clean
    /// (`object_map_snap_add`, librbd's order: after the snapshot exists), under an assert
    /// of our object-map lock; protects a group member snapshot; all overlapped with a
    /// `HEADER_UPDATE` that every watcher must acknowledge before we let go of the lock.
    pub fn finish_cut(&self) -> Result<()> {
        let head_map = match self.target.object_map {
            true => Some((self.own_ioctx()?, objects::object_map(&self.target.image.image_id, None))),
            false => None,
        };
        let fast_diff = self.target.fast_diff;
        let protect = self.pending_protect.lock().unwrap_or_else(PoisonError::into_inner).take();
        let protect_ioctx = match protect {
            Some(_) => Some(self.own_ioctx()?),
            None => None,
        };
        std::thread::scope(|scope| {
            let protected = protect.zip(protect_ioctx).map(|(snap_id, ioctx)| {
                let (guard, header, label) = self.protect_job();
                scope.spawn(move || protect_snapshot(&ioctx, &header, guard, snap_id, &label))
            });
            let mark = head_map.map(|(ioctx, head)| {
                scope.spawn(move || -> Result<()> {
                    let guard = AssertLocked { name: RBD_LOCK_NAME.into(), cookie: String::new(), tag: String::new() };
                    if fast_diff {
                        let mut batch = WriteBatch::new();
                        batch.add(&cls_lock::ASSERT_LOCKED, &guard)?;
                        batch.add(&cls_rbd::OBJECT_MAP_SNAP_ADD, &())?;
                        ioctx.write_batch(&head, &batch)?;
                    } else {
                        ioctx.call(&head, &cls_lock::ASSERT_LOCKED, &guard)?;
                    }
                    Ok(())
                })
            });
            let updated = self.header_update();
            let marked = match mark {
                Some(handle) => {
                    handle.join().unwrap_or_else(|_| Err(Error::new("object map update panicked", libc::EIO)))
                }
                None => Ok(()),
            };
            let protected = match protected {
                Some(handle) => {
                    handle.join().unwrap_or_else(|_| Err(Error::new("snapshot protection panicked", libc::EIO)))
                }
                None => Ok(()),
            };
            marked.and(updated).and(protected)
        })
    }

    /// Sends `HEADER_UPDATE` until every watcher acknowledged it.
    fn header_update(&self) -> Result<()> {
        // Every watcher must switch to the new snapshot context before it writes again:
        // librbd flags a refresh (done before it re-acquires the lock), krbd refreshes,
        // then they ack. A watcher that never acks but whose watch is gone refreshes when
        // it re-watches; one that is still there could write with the old context, so the
        // snapshot is given up instead.
        let mut silent = Vec::new();
        for attempt in 1..=3 {
            silent = self.notify(&notify::header_update())?.1;
            if silent.is_empty() {
                return Ok(());
            }
            log::warn!(
                "{}: watchers {silent:?} did not acknowledge the header update (attempt {attempt})",
                self.target.label
            );
        }
        let image = Image::open_by_id_read_only(self.ioctx(), &self.target.image.image_id)?;
        let watchers = image.watchers()?;
        let still_there: Vec<String> = watchers
            .iter()
            .filter(|w| {
                silent.iter().any(|&(gid, cookie)| gid == 0 || (w.instance_id as u64 == gid && w.cookie == cookie))
            })
            .map(|w| format!("client.{} ({})", w.instance_id, w.addr))
            .collect();
        if still_there.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            format!(
                "{}: {} did not acknowledge the new snapshot; it could write over it",
                self.target.label,
                still_there.join(", ")
            ),
            libc::ETIMEDOUT,
        ))
    }

    /// Hands the lock back: unlock, stop answering as owner, announce `RELEASED_LOCK` so
    /// queued writers acquire at once. Idempotent.
    pub fn release(&mut self) {
        if self.object_map_locked {
            let oid = objects::object_map(&self.target.image.image_id, None);
            if let Err(e) = self.ioctx().unlock(&oid, RBD_LOCK_NAME, "") {
                log::debug!("{}: object map unlock: {e}", self.target.label);
            }
            self.object_map_locked = false;
        }
        if !self.header_locked {
            return;
        }
        self.header_locked = false;
        let mut unlocked = self.ioctx().unlock(&self.header, RBD_LOCK_NAME, &self.cookie);
        for _ in 0..3 {
            match &unlocked {
                Err(e) if e.errno != libc::ENOENT => {
                    log::debug!("{}: unlock failed ({e}); retrying", self.target.label);
                    std::thread::sleep(Duration::from_millis(100));
                    unlocked = self.ioctx().unlock(&self.header, RBD_LOCK_NAME, &self.cookie);
                }
                _ => break,
            }
        }
        self.shared.owned_until_ms.store(0, Ordering::SeqCst);
        match unlocked {
            // Waiters acquire at once on RELEASED_LOCK. A writer that wanted the lock while
            // we held it has asked us (so `wanted` is set); one that starts later finds it free.
            Ok(()) if self.shared.wanted.load(Ordering::SeqCst) => {
                if let Err(e) = self.notify(&notify::released_lock(self.me)) {
                    log::debug!("{}: RELEASED_LOCK notify: {e}", self.target.label);
                }
            }
            Ok(()) => {}
            Err(e) if e.errno == libc::ENOENT => {
                log::warn!("{}: our lock was already gone (expired or broken)", self.target.label)
            }
            Err(e) => log::warn!("{}: could not unlock ({e}); the lock expires by itself", self.target.label),
        }
    }
}

impl Drop for ExclusiveLock {
    fn drop(&mut self) {
        self.release();
    }
}

/// Protects member snapshot `snap_id` on `header` (`set_protection_status`, after `guard`,
/// the assert of our lock, when we hold it), so that even `rbd snap rm --snap-id` refuses
/// it. It cannot share the op of `snapshot_add` (cls_rbd's second call does not see the
/// first one's key). An image without the layering feature cannot protect (`ENOEXEC`): its
/// member snapshots are still out of reach of every by-name stock command.
fn protect_snapshot(ioctx: &IoCtx, header: &str, guard: Option<AssertLocked>, snap_id: u64, label: &str) -> Result<()> {
    let mut batch = WriteBatch::new();
    if let Some(guard) = guard {
        batch.add(&cls_lock::ASSERT_LOCKED, &guard)?;
    }
    let request = SetProtectionStatus { snap_id, status: cls_rbd::PROTECTION_PROTECTED };
    batch.add(&cls_rbd::SET_PROTECTION_STATUS, &request)?;
    match ioctx.write_batch(header, &batch) {
        Err(e) if e.errno == libc::ENOEXEC => Ok(()),
        other => other.map_err(|e| e.context(format!("protecting the new snapshot of {label}"))),
    }
}

/// The namespace a snapshot named `snap_name` is cut in: cls_rbd's `group` namespace for a
/// group member snapshot (`.rbd_cg.<group pool>_<group id>_<snapshot id>`), the user
/// namespace for anything else.
///
/// The group namespace's `group_pool` is `-1`: stock librbd looks the group up (to show
/// `group (pool/group@snap)` in `rbd snap ls --all`) in `rbd_group_directory` of that pool,
/// which for `-1` fails at once and silently, so no stock group can ever match one of ours
/// and no lookup error is printed for each snapshot. Our group's pool is in the name.
pub fn snapshot_namespace_for(snap_name: &str) -> SnapshotNamespace {
    match rbd_cg_contract::names::parse_image_snap_name(snap_name) {
        Some(member) if !member.exposed => {
            SnapshotNamespace::Group { group_pool: -1, group_id: member.group_id, group_snapshot_id: member.snap_id }
        }
        _ => SnapshotNamespace::User,
    }
}

/// Writes the object map of snapshot `snap_id` of image `image_id`: a copy of the HEAD
/// map, which cannot change while we are the lock owner, so the copy can overlap
/// `snapshot_add` instead of following it. [`ExclusiveLock::finish_cut`] then asserts our
/// object-map lock, which proves the copy was taken under it; if the snapshot is not added
/// after all, [`ExclusiveLock::drop_snapshot_map`] removes the copy.
pub fn write_snapshot_map(ioctx: &IoCtx, image_id: &str, snap_id: u64) -> Result<()> {
    let map = ioctx.read_full(&objects::object_map(image_id, None), MAX_OBJECT_MAP_BYTES)?;
    ioctx.write_full(&objects::object_map(image_id, Some(snap_id)), &map)?;
    Ok(())
}

/// Waits a little longer each round (100 ms … 500 ms) while someone else holds the lock.
fn backoff(round: u32) {
    std::thread::sleep(Duration::from_millis(100 * u64::from(round.clamp(1, 5))));
}

/// Whether two entity addresses name the same client (`v1:`/`v2:`/`any:` prefixes and
/// a `[...]` vector wrapper ignored, as krbd's `ceph_addr_equal_no_type`).
fn same_addr(a: &str, b: &str) -> bool {
    fn bare(addr: &str) -> &str {
        let addr = addr.trim().trim_start_matches('[').trim_end_matches(']');
        let addr = addr.split(',').next().unwrap_or(addr);
        ["v1:", "v2:", "any:"].iter().find_map(|p| addr.strip_prefix(p)).unwrap_or(addr)
    }
    !a.is_empty() && bare(a) == bare(b)
}

#[cfg(test)]
mod tests {
    use super::{same_addr, snapshot_namespace_for, SnapshotNamespace};

    #[test]
    fn member_snapshots_go_into_the_group_namespace() {
        let name = rbd_cg_contract::names::image_snap_name(3, "0123456789abcdef", "5a");
        assert_eq!(
            snapshot_namespace_for(&name),
            SnapshotNamespace::Group {
                group_pool: -1,
                group_id: "0123456789abcdef".into(),
                group_snapshot_id: "5a".into()
            }
        );
        let exposed = rbd_cg_contract::names::exposed_image_snap_name(3, "0123456789abcdef", "5a");
        assert_eq!(snapshot_namespace_for(&exposed), SnapshotNamespace::User);
        assert_eq!(snapshot_namespace_for("before-upgrade"), SnapshotNamespace::User);
    }

    #[test]
    fn addresses_compare_without_their_type() {
        assert!(same_addr("127.0.0.1:0/2881234", "127.0.0.1:0/2881234"));
        assert!(same_addr("v1:127.0.0.1:0/2881234", "127.0.0.1:0/2881234"));
        assert!(same_addr("[any:127.0.0.1:0/2881234]", "127.0.0.1:0/2881234"));
        assert!(!same_addr("127.0.0.1:0/2881234", "127.0.0.1:0/2881235"));
        assert!(!same_addr("", ""));
    }
}
