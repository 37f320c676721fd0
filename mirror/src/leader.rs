//! One active daemon per group: a `cls_lock` lease on `rbd_cg_mirror_leader.<group name>` in
//! the group's local pool and namespace.
//!
//! Every daemon of a secondary cluster tries to take each group's lease; the one that holds
//! it mirrors the group, the others stand by and retry. The lease expires
//! [`LEASE_SECS`] after it was last renewed, so when the active daemon dies (or is frozen)
//! a standby takes over within that time. A frozen daemon that wakes up after losing its
//! lease is fenced by what the new one does on taking the group: it takes the members'
//! exclusive locks, which breaks and blocklists an owner that no longer watches them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rbd_cg_rados::ceph::cls_lock::{self, LockRequest};
use rbd_cg_rados::{IoCtx, RadosResult};

/// The lease's lifetime without renewal.
pub const LEASE_SECS: u32 = 15;
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// `cls_lock` name of the lease.
const LOCK_NAME: &str = "rbd_cg_mirror";

/// The lease object of group `name`.
pub fn leader_object(name: &str) -> String {
    format!("rbd_cg_mirror_leader.{name}")
}

/// A held lease, renewed by a thread of its own until dropped.
pub struct Leadership {
    ioctx: IoCtx,
    oid: String,
    cookie: String,
    lost: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

impl Leadership {
    /// Takes the lease of group `name` for the daemon `description` whose lock cookie is
    /// `cookie`; `None` while another daemon holds it. `ioctx` and `renew_io` are I/O
    /// contexts of the group's pool and namespace (the second one for the renewing thread).
    pub fn try_take(
        ioctx: IoCtx,
        renew_io: IoCtx,
        name: &str,
        description: &str,
        cookie: &str,
    ) -> RadosResult<Option<Leadership>> {
        let oid = leader_object(name);
        let request = lock_request(cookie, description, false);
        match ioctx.call_write(&oid, &cls_lock::LOCK, &request) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {}
            Err(e) if e.errno == libc::EBUSY => return Ok(None),
            Err(e) => return Err(e.context(format!("taking the mirror lease {oid}"))),
        }
        let lost = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (ioctx, oid, lost, done) = (renew_io, oid.clone(), Arc::clone(&lost), Arc::clone(&done));
            let request = lock_request(cookie, description, true);
            std::thread::Builder::new()
                .name("mirror-lease".into())
                .spawn(move || {
                    let mut waited = Duration::ZERO;
                    while !done.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                        waited += Duration::from_millis(100);
                        if waited < RENEW_EVERY {
                            continue;
                        }
                        waited = Duration::ZERO;
                        if let Err(e) = ioctx.call_write(&oid, &cls_lock::LOCK, &request) {
                            log::warn!("mirror lease {oid} lost: {e}");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                })
                .ok()
        };
        Ok(Some(Leadership { ioctx, oid, cookie: cookie.to_owned(), lost, done, renewer }))
    }

    /// Whether renewing failed: another daemon may have the group now; stop at once.
    pub fn lost(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost)
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        if !self.lost.load(Ordering::SeqCst) {
            if let Err(e) = self.ioctx.unlock(&self.oid, LOCK_NAME, &self.cookie) {
                log::debug!("releasing the mirror lease {}: {e}", self.oid);
            }
        }
    }
}

fn lock_request(cookie: &str, description: &str, may_renew: bool) -> LockRequest {
    LockRequest {
        name: LOCK_NAME.into(),
        cookie: cookie.into(),
        tag: "rbd_cg_mirror".into(),
        description: description.into(),
        duration_secs: LEASE_SECS,
        may_renew,
    }
}
