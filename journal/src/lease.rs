//! The writer lease: at most one process appends to a group's journal.
//!
//! The lease is a `cls_lock` lock ([`WRITER_LOCK_NAME`], tag `rbd_cg_journal`, cookie
//! `auto <watch handle>`, no expiry) on `cg_header.<id>`, held together with a watch on that
//! object. Taking it records a new, larger **epoch** in the journal record
//! (`journal_take`, guarded by `lock.assert_locked` in the same op), and every segment the
//! writer opens carries that epoch: the class refuses appends of any other (`ESTALE`). So a
//! writer that lost the lease — it died, froze, or was cut off — can never append again, even
//! if its requests are still on the wire.
//!
//! A holder is alive when it answers a [`WriterRequest::Ping`] sent by notify on the header:
//! a live one is refused to the newcomer by name; one that does not answer (dead, frozen or
//! partitioned) is blocklisted and its lock broken, as librbd does with a dead exclusive-lock
//! owner.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rbd_cg_contract::journal::{
    JournalGroupRequest, JournalRecord, JournalReleaseRequest, JournalState, JournalStatus, JournalTakeRequest,
    WriterLease, WriterReply, WriterRequest, WRITER_LOCK_NAME,
};
use rbd_cg_contract::methods::{JOURNAL_GET, JOURNAL_RELEASE, JOURNAL_TAKE};
use rbd_cg_contract::names::header_object;
use rbd_cg_contract::{decode, encode};
use rbd_cg_rados::ceph::cls_lock::{self, AssertLocked, LockRequest};
use rbd_cg_rados::ceph::librbd_notify::decode_notify_reply;
use rbd_cg_rados::cls::WriteBatch;
use rbd_cg_rados::{Cluster, IoCtx, RadosError, RadosResult, Watch, WatchHandler};
use tokio::sync::mpsc;

/// The lock tag of the writer lease.
pub const WRITER_LOCK_TAG: &str = "rbd_cg_journal";
/// How long a ping waits for the lease holder's answer.
const PING_TIMEOUT_MS: u64 = 3_000;
/// Our watch's timeout: a dead writer's watch goes away this long after it died.
const WATCH_TIMEOUT_SECS: u32 = 10;

/// A request to this writer. Requests by notify are answered through the snapshot record;
/// requests from within the process can ask for the outcome (the position a snapshot was cut
/// at) on `reply`.
#[derive(Debug)]
pub struct Incoming {
    /// The request.
    pub request: WriterRequest,
    /// Where to send the outcome, if anyone waits for it.
    pub reply: Option<tokio::sync::oneshot::Sender<RadosResult<u64>>>,
}

/// What the watch callback shares with the writer.
struct Shared {
    epoch: AtomicU64,
    description: String,
    lost: AtomicBool,
    requests: Mutex<Option<mpsc::UnboundedSender<Incoming>>>,
}

struct Handler(Arc<Shared>);

impl WatchHandler for Handler {
    fn notify(&self, _notifier_gid: u64, payload: &[u8]) -> Vec<u8> {
        let shared = &self.0;
        let epoch = shared.epoch.load(Ordering::SeqCst);
        let reply = |errno: i32, message: String| encode(&WriterReply { errno, epoch, message }).unwrap_or_default();
        if shared.lost.load(Ordering::SeqCst) {
            return reply(libc::ESTALE, "this writer lost the lease".into());
        }
        match decode::<WriterRequest>(payload) {
            Ok(WriterRequest::Ping) => reply(0, shared.description.clone()),
            Ok(request) => {
                let sender = shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match sender.map(|s| s.send(Incoming { request, reply: None })) {
                    Some(Ok(())) => reply(0, shared.description.clone()),
                    _ => reply(libc::ESHUTDOWN, "the writer is shutting down".into()),
                }
            }
            Err(e) => reply(e.errno(), format!("unreadable request: {e}")),
        }
    }

    fn error(&self, err: i32) {
        log::error!("journal writer: watch on the group header failed ({err}): the lease is lost");
        self.0.lost.store(true, Ordering::SeqCst);
    }
}

/// The writer lease of one group, held until released or dropped.
pub struct Lease {
    group_id: String,
    watch: Watch,
    cookie: String,
    shared: Arc<Shared>,
    /// The lease as recorded.
    pub lease: WriterLease,
    /// The journal as it was when the lease was taken (epoch included).
    pub status: JournalStatus,
    released: bool,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Reads the journal of `group_id` (`ENOENT` when the group does not journal).
pub fn journal_status(ioctx: &IoCtx, group_id: &str) -> RadosResult<JournalStatus> {
    ioctx.call(&header_object(group_id), &JOURNAL_GET, &JournalGroupRequest { group_id: group_id.into() }).map_err(
        |e| match e.errno {
            libc::ENOENT => e.context(format!("group {group_id} has no journal")),
            _ => e,
        },
    )
}

/// One watcher's answer to [`ask_writer`].
#[derive(Debug, Clone)]
pub struct WriterAnswer {
    /// The answering client's global id (`client.<gid>`).
    pub gid: u64,
    /// Its watch cookie.
    pub cookie: u64,
    /// What it said.
    pub reply: WriterReply,
}

/// What [`ask_writer`] heard.
#[derive(Debug, Clone)]
pub struct WriterAnswers {
    /// The answers of every watcher that answered with a [`WriterReply`].
    pub answers: Vec<WriterAnswer>,
    /// Whether some watcher did not answer in time.
    pub silent: bool,
}

/// Asks the writer of `group_id`, if any, something.
pub fn ask_writer(
    ioctx: &IoCtx,
    group_id: &str,
    request: &WriterRequest,
    timeout_ms: u64,
) -> RadosResult<WriterAnswers> {
    let header = header_object(group_id);
    let payload = encode(request).map_err(|e| RadosError::new(e.to_string(), e.errno()))?;
    let outcome = ioctx.notify(&header, &payload, timeout_ms)?;
    let reply = decode_notify_reply(&outcome.reply)
        .map_err(|e| RadosError::new(format!("notify reply from {header}: {e}"), libc::EIO))?;
    let answers = reply
        .acks
        .into_iter()
        .filter_map(|ack| {
            decode::<WriterReply>(&ack.payload).ok().map(|reply| WriterAnswer {
                gid: ack.gid,
                cookie: ack.cookie,
                reply,
            })
        })
        .collect();
    Ok(WriterAnswers { answers, silent: outcome.timed_out || !reply.timeouts.is_empty() })
}

impl Lease {
    /// Takes the writer lease of group `group_id` (whose header is in `ioctx`'s pool and
    /// namespace) for `description`. `EBUSY` naming the holder when a live writer has it;
    /// a writer that does not answer is blocklisted and replaced. Requests to the writer
    /// (snapshots) arrive on the returned receiver.
    pub fn acquire(
        cluster: &Cluster,
        ioctx: IoCtx,
        group_id: &str,
        description: &str,
    ) -> RadosResult<(Lease, mpsc::UnboundedReceiver<Incoming>)> {
        let header = header_object(group_id);
        let status = journal_status(&ioctx, group_id)?;
        match status.journal.state {
            JournalState::Enabled => {}
            other => {
                return Err(RadosError::new(
                    format!("the journal of group {group_id} is {other:?}"),
                    libc::EBUSY,
                )
                .with_hint("An earlier `rbd-cg journal enable` or `disable` was interrupted: rerun it, or run `rbd-cg repair`."))
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            description: description.to_owned(),
            lost: AtomicBool::new(false),
            requests: Mutex::new(Some(tx)),
        });
        let watch = Watch::new(ioctx, &header, WATCH_TIMEOUT_SECS, Box::new(Handler(Arc::clone(&shared))))
            .map_err(|e| e.context(format!("watching {header}")))?;
        let cookie = cls_lock::lock_cookie(watch.cookie());
        let client = format!("client.{}", cluster.instance_id());
        let lock = LockRequest {
            name: WRITER_LOCK_NAME.into(),
            cookie: cookie.clone(),
            tag: WRITER_LOCK_TAG.into(),
            description: description.into(),
            duration_secs: 0,
            may_renew: false,
        };
        for round in 0..5 {
            match watch.ioctx().call_write(&header, &cls_lock::LOCK, &lock) {
                Ok(()) => break,
                Err(e) if e.errno == libc::EEXIST => break, // ours already
                Err(e) if e.errno == libc::EBUSY && round < 4 => {}
                Err(e) => return Err(e.context(format!("taking the journal writer lease of group {group_id}"))),
            }
            let info = watch.ioctx().list_lockers(&header, WRITER_LOCK_NAME)?;
            let Some(holder) = info.lockers.first() else { continue };
            let holder_handle = cls_lock::parse_lock_cookie(&holder.cookie);
            let WriterAnswers { answers, silent } =
                ask_writer(watch.ioctx(), group_id, &WriterRequest::Ping, PING_TIMEOUT_MS)?;
            let named = status.journal.writer.as_ref().map_or_else(
                || format!("{} at {}", holder.client, holder.addr),
                |w| {
                    let age = now_ms().saturating_sub(w.since_ms) / 1000;
                    format!("{} ({} at {}, epoch {}, for {age} s)", w.description, w.client, holder.addr, w.epoch)
                },
            );
            let answered = answers.iter().any(|a| {
                Some(a.cookie) == holder_handle && format!("client.{}", a.gid) == holder.client && a.reply.errno == 0
            });
            if answered {
                return Err(RadosError::new(
                    format!("the journal of group {group_id} is held by a running writer: {named}"),
                    libc::EBUSY,
                )
                .with_hint("Stop that server first (SIGTERM), or use it."));
            }
            log::warn!(
                "journal of group {group_id}: writer {named} does not answer{}; blocklisting {} and breaking its lease",
                if silent { " in time" } else { "" },
                holder.addr
            );
            cluster.blocklist_add(&holder.addr, 0)?;
            match watch.ioctx().break_lock(&header, WRITER_LOCK_NAME, &holder.client, &holder.cookie) {
                Ok(()) => {}
                Err(e) if e.errno == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        // A new epoch, recorded only while we hold the lock.
        let epoch = status.journal.epoch + 1;
        // Our address as the OSD sees it (what `ceph osd blocklist` takes), from the lock.
        let addr = watch
            .ioctx()
            .list_lockers(&header, WRITER_LOCK_NAME)
            .ok()
            .and_then(|info| info.lockers.into_iter().find(|l| l.cookie == cookie).map(|l| l.addr))
            .unwrap_or_default();
        let lease = WriterLease { epoch, client, addr, description: description.into(), since_ms: now_ms() };
        let mut take = WriteBatch::new();
        take.add(
            &cls_lock::ASSERT_LOCKED,
            &AssertLocked { name: WRITER_LOCK_NAME.into(), cookie: cookie.clone(), tag: WRITER_LOCK_TAG.into() },
        )?
        .add(&JOURNAL_TAKE, &JournalTakeRequest { group_id: group_id.into(), lease: lease.clone() })?;
        watch.ioctx().write_batch(&header, &take).map_err(|e| e.context("recording the new writer epoch"))?;
        shared.epoch.store(epoch, Ordering::SeqCst);
        let status = journal_status(watch.ioctx(), group_id)?;
        log::info!("journal of group {group_id}: writer lease taken, epoch {epoch}");
        Ok((Lease { group_id: group_id.into(), watch, cookie, shared, lease, status, released: false }, rx))
    }

    /// The epoch this writer appends with.
    pub fn epoch(&self) -> u64 {
        self.lease.epoch
    }

    /// The I/O context of the group's pool and namespace.
    pub fn ioctx(&self) -> &IoCtx {
        self.watch.ioctx()
    }

    /// The journal record as it was when the lease was taken.
    pub fn record(&self) -> &JournalRecord {
        &self.status.journal
    }

    /// Whether the lease was lost (the watch failed): the writer must stop.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst) || self.watch.check().is_err()
    }

    /// Where requests to this writer can be queued from within the process.
    pub fn request_sender(&self) -> Option<mpsc::UnboundedSender<Incoming>> {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops taking requests (shutdown).
    pub fn close_requests(&self) {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// Gives the lease up: the record forgets this writer, then the lock goes.
    pub fn release(&mut self) -> RadosResult<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        self.close_requests();
        let header = header_object(&self.group_id);
        let request = JournalReleaseRequest { group_id: self.group_id.clone(), epoch: self.lease.epoch };
        let released = self.ioctx().call_write(&header, &JOURNAL_RELEASE, &request);
        let unlocked = self.ioctx().unlock(&header, WRITER_LOCK_NAME, &self.cookie);
        released?;
        match unlocked {
            Err(e) if e.errno != libc::ENOENT => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            log::warn!("releasing the journal writer lease of group {}: {e}", self.group_id);
        }
    }
}
