//! Watch/notify, advisory locks, self-managed snapshot ids and blocklisting: the librados
//! calls an exclusive-lock owner ([`crate::exclusive_lock`]) needs, made safe.
//!
//! The one delicate part is the watch callback. librados calls it on its own threads with a
//! `void *` we handed over; here that pointer is a leaked `Box<WatchContext>` that lives until
//! [`Watch`]'s `Drop` has unwatched *and* flushed every queued callback (`rados_watch_flush`).
//! The callback catches panics (unwinding into C is undefined behaviour) and acks every
//! notification exactly once, so a notifier never waits out its timeout because of us.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use crate::error::{check, cstring, RadosError, RadosResult};
use crate::ioctx::IoCtx;
use crate::op::RadosBuffer;
use crate::sys;

/// What a watch does with notifications; called on librados threads, so it must not block.
pub trait WatchHandler: Send + Sync + 'static {
    /// A notification from client `notifier_gid`; returns the ack payload (empty: no answer).
    fn notify(&self, notifier_gid: u64, payload: &[u8]) -> Vec<u8>;
    /// The watch broke (`err` is a positive errno, e.g. `ENOTCONN` or `ETIMEDOUT`).
    fn error(&self, err: i32);
}

/// What the callbacks reach through librados' `arg`.
struct WatchContext {
    handler: Box<dyn WatchHandler>,
    /// The watch's I/O context, for `rados_notify_ack`.
    ioctx: sys::rados_ioctx_t,
    oid: CString,
}

/// `rados_watchcb2_t`. Nothing may unwind out of it: the whole body runs under
/// `catch_unwind` (loggers included).
unsafe extern "C" fn watch_callback(
    arg: *mut c_void,
    notify_id: u64,
    handle: u64,
    notifier_id: u64,
    data: *mut c_void,
    data_len: usize,
) {
    let body = || {
        // SAFETY: `arg` is the `Box<WatchContext>` leaked in `Watch::new`; it is freed only
        // after `rados_unwatch2` and `rados_watch_flush` returned, so no callback can still
        // be running or queued when it goes.
        let ctx = unsafe { &*arg.cast::<WatchContext>() };
        let payload: &[u8] = if data.is_null() || data_len == 0 {
            &[]
        } else {
            // SAFETY: librados passes `data_len` readable bytes at `data`, valid for the call.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), data_len) }
        };
        let answer =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.handler.notify(notifier_id, payload)))
                .unwrap_or_default();
        let len = i32::try_from(answer.len()).unwrap_or(0);
        // SAFETY: `ctx.ioctx` is alive (the Watch owns it and destroys it only after the
        // flush). librados I/O contexts may issue operations from several threads at once
        // (only the namespace and snapshot-context setters must not race, and a Watch's
        // context never changes them), so acking here while the fence's own thread uses
        // the same context is sound. `oid` is NUL-terminated; `answer` is readable for
        // `len` bytes and copied.
        let ret = unsafe {
            sys::rados_notify_ack(ctx.ioctx, ctx.oid.as_ptr(), notify_id, handle, answer.as_ptr().cast::<c_char>(), len)
        };
        if ret < 0 {
            log::warn!("acking notify {notify_id} on {:?}: {}", ctx.oid, RadosError::new("rados_notify_ack", ret));
        }
    };
    // A panic (a logger's included) is dropped: the notifier then sees no ack from us,
    // which it handles like a slow watcher.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
}

/// `rados_watcherrcb_t`; panic-guarded like `watch_callback`.
unsafe extern "C" fn watch_error_callback(arg: *mut c_void, _cookie: u64, err: i32) {
    let body = || {
        // SAFETY: as in `watch_callback`.
        let ctx = unsafe { &*arg.cast::<WatchContext>() };
        ctx.handler.error(err.saturating_abs());
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
}

/// A watch on one object; unwatched (and its callbacks drained) on drop.
pub struct Watch {
    ioctx: IoCtx,
    cookie: u64,
    context: *mut WatchContext,
}

// SAFETY: the raw context is only dereferenced by librados callbacks (shared access to a
// `Send + Sync` handler) and freed once in Drop; the IoCtx is `Send`.
unsafe impl Send for Watch {}

impl Watch {
    /// Watches `oid` in `ioctx`'s pool and namespace. The OSD drops the watch when this
    /// client has been silent for `timeout_secs` (0: `osd_client_watch_timeout`).
    pub fn new(ioctx: IoCtx, oid: &str, timeout_secs: u32, handler: Box<dyn WatchHandler>) -> RadosResult<Watch> {
        let what = || format!("rados_watch3({oid})");
        let c_oid = cstring(oid, what)?;
        let context = Box::into_raw(Box::new(WatchContext { handler, ioctx: ioctx.raw, oid: c_oid.clone() }));
        let mut cookie = 0u64;
        // SAFETY: valid ioctx and NUL-terminated oid; `cookie` is a valid out-pointer;
        // `context` stays valid until Drop (or is reclaimed right below on failure, when
        // librados registered nothing).
        let ret = unsafe {
            sys::rados_watch3(
                ioctx.raw,
                c_oid.as_ptr(),
                &mut cookie,
                Some(watch_callback),
                Some(watch_error_callback),
                timeout_secs,
                context.cast::<c_void>(),
            )
        };
        if ret < 0 {
            // SAFETY: the watch was not registered, so nothing else holds `context`.
            drop(unsafe { Box::from_raw(context) });
            return Err(RadosError::new(what(), ret));
        }
        Ok(Watch { ioctx, cookie, context })
    }

    /// The watch cookie (librbd calls it the watch handle).
    pub fn cookie(&self) -> u64 {
        self.cookie
    }

    /// The I/O context the watch lives in (pool and namespace of the object).
    pub fn ioctx(&self) -> &IoCtx {
        &self.ioctx
    }

    /// 0-based age check: `Ok` while the watch is connected.
    pub fn check(&self) -> RadosResult<()> {
        // SAFETY: valid ioctx and a cookie registered by this Watch.
        let ret = unsafe { sys::rados_watch_check(self.ioctx.raw, self.cookie) };
        check(ret, || "rados_watch_check".into()).map(drop)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: the cookie was registered on this ioctx and is unwatched exactly once.
        let ret = unsafe { sys::rados_unwatch2(self.ioctx.raw, self.cookie) };
        if ret < 0 {
            log::debug!("{}", RadosError::new("rados_unwatch2", ret));
        }
        // SAFETY: the cluster handle is alive (the IoCtx holds it); after this returns no
        // callback for the cookie is running or queued.
        unsafe { sys::rados_watch_flush(self.ioctx.cluster.raw) };
        // SAFETY: leaked in `new`, no longer reachable by librados (see above).
        drop(unsafe { Box::from_raw(self.context) });
    }
}

/// A notify's outcome: the raw reply (decode with [`crate::ceph::librbd_notify::decode_notify_reply`])
/// and whether some watcher did not answer in time.
#[derive(Debug, Clone)]
pub struct NotifyOutcome {
    /// Acks and timeouts, as librados encodes them.
    pub reply: Vec<u8>,
    /// `rados_notify2` returned `ETIMEDOUT`: at least one watcher did not ack.
    pub timed_out: bool,
}

/// Self-managed snapshot ids being allocated by librados ([`IoCtx::start_selfmanaged_snap_create`]).
/// [`PendingSnapIds::wait`] collects them; dropping it waits for the requests still in
/// flight (their ids are then not used), so librados never writes into freed memory.
pub struct PendingSnapIds {
    /// The pool's I/O context, kept open while requests use it.
    ioctx: IoCtx,
    /// One slot per started request, written by librados when it completes.
    ids: Box<[u64]>,
    /// The started requests, in slot order; empty once collected.
    completions: Vec<sys::rados_completion_t>,
    /// How many ids were asked for (requests that could not start count as failed).
    requested: usize,
}

// SAFETY: librados completions have no thread affinity (any thread may wait for, query or
// release them), and the id slots are only read after their request completed.
unsafe impl Send for PendingSnapIds {}

impl PendingSnapIds {
    /// Whether every request has completed (waiting would not block).
    pub fn is_complete(&self) -> bool {
        // SAFETY: each completion is live (released only in `collect`).
        self.completions.iter().all(|&c| unsafe { sys::rados_aio_is_complete(c) } != 0)
    }

    /// Waits for every request; one result per id asked for.
    pub fn wait(mut self) -> Vec<RadosResult<u64>> {
        self.collect()
    }

    fn collect(&mut self) -> Vec<RadosResult<u64>> {
        let what = || "rados_aio_ioctx_selfmanaged_snap_create".to_owned();
        let base = self.ids.as_ptr();
        let mut results: Vec<RadosResult<u64>> = Vec::with_capacity(self.requested);
        for (i, completion) in std::mem::take(&mut self.completions).into_iter().enumerate() {
            // SAFETY: `completion` came from rados_aio_create_completion2 and carries a
            // request; waited for, read and released exactly once, here. Once it completed,
            // librados no longer writes slot `i`, which is in bounds.
            let (ret, id) = unsafe {
                sys::rados_aio_wait_for_complete(completion);
                let ret = sys::rados_aio_get_return_value(completion);
                sys::rados_aio_release(completion);
                (ret, base.add(i).read())
            };
            results.push(check(ret, what).map(|_| id));
        }
        results.resize_with(self.requested, || Err(RadosError::new("rados_aio_create_completion2", libc::ENOMEM)));
        results
    }

    /// The pool the ids belong to.
    pub fn pool_id(&self) -> i64 {
        self.ioctx.pool_id()
    }
}

impl Drop for PendingSnapIds {
    fn drop(&mut self) {
        if !self.completions.is_empty() {
            self.collect();
        }
    }
}

/// One holder of an advisory lock, as `rados_list_lockers` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locker {
    /// Entity, e.g. `client.4123`.
    pub client: String,
    /// The holder's cookie.
    pub cookie: String,
    /// The holder's address, e.g. `127.0.0.1:0/3581212`.
    pub addr: String,
}

/// An advisory lock's holders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockInfo {
    /// Exclusive (`true`) or shared.
    pub exclusive: bool,
    /// The lock's tag (`internal` for RBD's exclusive lock).
    pub tag: String,
    /// Current holders (expired ones are not listed).
    pub lockers: Vec<Locker>,
}

fn split_nul(buf: &[u8], count: usize) -> Vec<String> {
    buf.split(|&b| b == 0).take(count).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

impl IoCtx {
    /// Sends `payload` to every watcher of `oid` and waits up to `timeout_ms` for their acks.
    pub fn notify(&self, oid: &str, payload: &[u8], timeout_ms: u64) -> RadosResult<NotifyOutcome> {
        let what = || format!("rados_notify2({oid})");
        let c_oid = cstring(oid, what)?;
        let len = i32::try_from(payload.len()).map_err(|_| RadosError::new(what(), libc::E2BIG))?;
        let mut reply_ptr: *mut c_char = ptr::null_mut();
        let mut reply_len = 0usize;
        // SAFETY: valid ioctx and oid; `payload` readable for `len` bytes; the reply
        // out-pointers are locals, and the buffer is freed by `RadosBuffer`.
        let ret = unsafe {
            sys::rados_notify2(
                self.raw,
                c_oid.as_ptr(),
                payload.as_ptr().cast::<c_char>(),
                len,
                timeout_ms,
                &mut reply_ptr,
                &mut reply_len,
            )
        };
        let reply = RadosBuffer { ptr: reply_ptr, len: reply_len }.to_vec();
        if ret == -libc::ETIMEDOUT {
            return Ok(NotifyOutcome { reply, timed_out: true });
        }
        check(ret, what)?;
        Ok(NotifyOutcome { reply, timed_out: false })
    }

    /// The holders of lock `name` on `oid` (`ENOENT` if the object does not exist).
    pub fn list_lockers(&self, oid: &str, name: &str) -> RadosResult<LockInfo> {
        let what = || format!("rados_list_lockers({oid}, {name})");
        let c_oid = cstring(oid, what)?;
        let c_name = cstring(name, what)?;
        let mut sizes = [256usize; 4];
        for _ in 0..8 {
            let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();
            let mut lens = sizes;
            let mut exclusive = 0;
            let [tag, clients, cookies, addrs] = &mut bufs[..] else { unreachable!("four buffers") };
            let [tag_len, clients_len, cookies_len, addrs_len] = &mut lens;
            // SAFETY: valid ioctx, NUL-terminated names; every buffer is writable for the
            // length passed next to it, and librados writes at most that much (it returns
            // -ERANGE with the needed sizes otherwise).
            let ret = unsafe {
                sys::rados_list_lockers(
                    self.raw,
                    c_oid.as_ptr(),
                    c_name.as_ptr(),
                    &mut exclusive,
                    tag.as_mut_ptr().cast::<c_char>(),
                    tag_len,
                    clients.as_mut_ptr().cast::<c_char>(),
                    clients_len,
                    cookies.as_mut_ptr().cast::<c_char>(),
                    cookies_len,
                    addrs.as_mut_ptr().cast::<c_char>(),
                    addrs_len,
                )
            };
            if ret == -(libc::ERANGE as isize) {
                sizes = lens.map(|n| n.max(256) * 2);
                continue;
            }
            let count = usize::try_from(check(ret as i32, what)?).unwrap_or(0);
            let clients = split_nul(&clients[..*clients_len], count);
            let cookies = split_nul(&cookies[..*cookies_len], count);
            let addrs = split_nul(&addrs[..*addrs_len], count);
            let lockers = clients
                .into_iter()
                .zip(cookies)
                .zip(addrs)
                .map(|((client, cookie), addr)| Locker { client, cookie, addr })
                .collect();
            let tag = split_nul(&tag[..*tag_len], 1).pop().unwrap_or_default();
            return Ok(LockInfo { exclusive: exclusive != 0, tag, lockers });
        }
        Err(RadosError::new(what(), libc::ERANGE))
    }

    /// Releases this client's hold (`cookie`) on lock `name` of `oid` (`ENOENT` if not held).
    pub fn unlock(&self, oid: &str, name: &str, cookie: &str) -> RadosResult<()> {
        let what = || format!("rados_unlock({oid}, {name})");
        let (c_oid, c_name, c_cookie) = (cstring(oid, what)?, cstring(name, what)?, cstring(cookie, what)?);
        // SAFETY: valid ioctx; all strings NUL-terminated and alive for the call.
        let ret = unsafe { sys::rados_unlock(self.raw, c_oid.as_ptr(), c_name.as_ptr(), c_cookie.as_ptr()) };
        check(ret, what).map(drop)
    }

    /// Removes `client`'s hold (`cookie`) on lock `name` of `oid`.
    pub fn break_lock(&self, oid: &str, name: &str, client: &str, cookie: &str) -> RadosResult<()> {
        let what = || format!("rados_break_lock({oid}, {name}, {client})");
        let (c_oid, c_name) = (cstring(oid, what)?, cstring(name, what)?);
        let (c_client, c_cookie) = (cstring(client, what)?, cstring(cookie, what)?);
        // SAFETY: valid ioctx; all strings NUL-terminated and alive for the call.
        let ret = unsafe {
            sys::rados_break_lock(self.raw, c_oid.as_ptr(), c_name.as_ptr(), c_client.as_ptr(), c_cookie.as_ptr())
        };
        check(ret, what).map(drop)
    }

    /// Allocates a self-managed snapshot id in this pool (a monitor round trip).
    pub fn selfmanaged_snap_create(&self) -> RadosResult<u64> {
        let mut id = 0u64;
        // SAFETY: valid ioctx; `id` is a valid out-pointer.
        let ret = unsafe { sys::rados_ioctx_selfmanaged_snap_create(self.raw, &mut id) };
        check(ret, || "rados_ioctx_selfmanaged_snap_create".into())?;
        Ok(id)
    }

    /// Allocates `count` self-managed snapshot ids at once: every request is in flight
    /// together (asynchronous librados calls), so the monitor commits them in one or a few
    /// rounds instead of one round per worker thread's turn. One result per id.
    pub fn selfmanaged_snap_create_many(&self, count: usize) -> Vec<RadosResult<u64>> {
        match self.start_selfmanaged_snap_create(count) {
            Ok(pending) => pending.wait(),
            Err(e) => vec![Err(e); count],
        }
    }

    /// Starts allocating `count` self-managed snapshot ids; [`PendingSnapIds`] collects
    /// them. No thread of ours waits meanwhile: librados completes the requests.
    pub fn start_selfmanaged_snap_create(&self, count: usize) -> RadosResult<PendingSnapIds> {
        // An I/O context of the requests' own, kept open until they completed.
        let ioctx = crate::Cluster { inner: std::sync::Arc::clone(&self.cluster) }.ioctx_by_id(self.pool_id())?;
        // Fixed slots in a heap allocation that never moves while librados may write them
        // (the Box moves into the returned value; its buffer does not), reached only
        // through raw pointers while requests are in flight.
        let mut ids: Box<[u64]> = vec![0u64; count].into_boxed_slice();
        let base = ids.as_mut_ptr();
        let mut completions: Vec<sys::rados_completion_t> = Vec::with_capacity(count);
        for i in 0..count {
            let mut completion: sys::rados_completion_t = ptr::null_mut();
            // SAFETY: no callback and no argument; `completion` is a valid out-pointer.
            let ret = unsafe { sys::rados_aio_create_completion2(ptr::null_mut(), None, &mut completion) };
            if ret < 0 || completion.is_null() {
                break;
            }
            // SAFETY: valid ioctx (kept alive by the returned value until every request
            // completed); `base.add(i)` is in bounds of `ids`, whose buffer outlives every
            // request (PendingSnapIds waits for all of them before freeing it).
            unsafe { sys::rados_aio_ioctx_selfmanaged_snap_create(ioctx.raw, base.add(i), completion) };
            completions.push(completion);
        }
        Ok(PendingSnapIds { ioctx, ids, completions, requested: count })
    }

    /// Releases a self-managed snapshot id that no snapshot uses.
    pub fn selfmanaged_snap_remove(&self, id: u64) -> RadosResult<()> {
        // SAFETY: valid ioctx; plain integer argument.
        let ret = unsafe { sys::rados_ioctx_selfmanaged_snap_remove(self.raw, id) };
        check(ret, || format!("rados_ioctx_selfmanaged_snap_remove({id})")).map(drop)
    }
}

impl crate::Cluster {
    /// This connection's instance id (the `<gid>` of `client.<gid>`).
    pub fn instance_id(&self) -> u64 {
        // SAFETY: connected handle.
        unsafe { sys::rados_get_instance_id(self.inner.raw) }
    }

    /// Blocklists `addr` for `expire_secs` (0: the cluster default).
    pub fn blocklist_add(&self, addr: &str, expire_secs: u32) -> RadosResult<()> {
        let what = || format!("rados_blocklist_add({addr})");
        let c_addr = cstring(addr, what)?;
        // SAFETY: connected handle; librados only reads the (non-const in the prototype)
        // NUL-terminated string during the call.
        let ret = unsafe { sys::rados_blocklist_add(self.inner.raw, c_addr.as_ptr().cast_mut(), expire_secs) };
        check(ret, what).map(drop)
    }
}
