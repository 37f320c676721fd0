//! Asynchronous librados and librbd calls, as futures.
//!
//! The data path keeps many operations in flight (group commit appends, writes to member
//! images, reads), so it cannot spend a thread per operation. librados and librbd complete
//! asynchronous operations on their own threads through a C callback; here each callback
//! stores the return value and wakes the future, which any executor can poll (no runtime
//! dependency).
//!
//! Ownership, the delicate part: librados writes into some buffers (read data, the return
//! values of class calls in a compound op) when the operation completes, and librbd reads
//! the data of a write until then. Everything an operation uses lives in its `Shared`,
//! reference-counted: one reference is the future's, one is handed to the callback as its
//! `void *` argument and taken back there. So dropping a future before its operation
//! completes frees nothing librados still uses; the last owner, whoever it is, releases the
//! buffers after completion. The callback never unwinds into C (it catches panics).

use std::any::Any;
use std::ffi::{c_char, c_int, c_void};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::cls::{ReadCall, WriteBatch, WriteCall};
use crate::error::{RadosError, RadosResult};
use crate::ioctx::IoCtx;
use crate::op::{BuiltWriteOp, ReadOp};
use crate::sys;

/// What a finished operation turns into the future's output: its return value and the
/// buffers it kept alive.
type Finish<T> = Box<dyn FnOnce(i64, &mut Box<dyn Any + Send>) -> RadosResult<T> + Send>;

/// State shared between a future and the completion callback of its operation.
struct Shared {
    state: Mutex<State>,
}

struct State {
    /// The operation's return value, once complete.
    ret: Option<i64>,
    /// Who to wake on completion.
    waker: Option<Waker>,
    /// Everything the operation reads or writes until it completes.
    keep: Box<dyn Any + Send>,
}

impl Shared {
    fn new(keep: Box<dyn Any + Send>) -> Arc<Shared> {
        Arc::new(Shared { state: Mutex::new(State { ret: None, waker: None, keep }) })
    }

    fn complete(&self, ret: i64) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.ret = Some(ret);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// An asynchronous librados or librbd operation; resolves to its outcome.
#[must_use = "an operation's outcome must be awaited"]
pub struct AioFuture<T> {
    shared: Arc<Shared>,
    finish: Option<Finish<T>>,
}

impl<T> Future for AioFuture<T> {
    type Output = RadosResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RadosResult<T>> {
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ret) = state.ret else {
            if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        let mut keep: Box<dyn Any + Send> = std::mem::replace(&mut state.keep, Box::new(()));
        drop(state);
        match self.finish.take() {
            Some(finish) => Poll::Ready(finish(ret, &mut keep)),
            None => Poll::Ready(Err(RadosError::new("asynchronous operation polled after completion", libc::EIO))),
        }
    }
}

impl<T> AioFuture<T> {
    /// A future that is already resolved (an operation that could not even start).
    fn failed(error: RadosError) -> AioFuture<T> {
        let shared = Shared::new(Box::new(()));
        shared.complete(0);
        AioFuture { shared, finish: Some(Box::new(move |_, _| Err(error))) }
    }
}

impl<T: Send + 'static> AioFuture<T> {
    /// A future resolved with `outcome` (an operation that needs no I/O, or could not be
    /// built), to sit among real ones.
    pub fn ready(outcome: RadosResult<T>) -> AioFuture<T> {
        let shared = Shared::new(Box::new(()));
        shared.complete(0);
        AioFuture { shared, finish: Some(Box::new(move |_, _| outcome)) }
    }
}

/// The librados completion callback: `arg` is a reference to the operation's [`Shared`]
/// handed over at submission (`Arc::into_raw`), taken back here.
///
/// # Safety
/// Called by librados only, once per completion, with the `arg` given to
/// `rados_aio_create_completion2`.
unsafe extern "C" fn rados_completed(completion: sys::rados_completion_t, arg: *mut c_void) {
    // SAFETY: `arg` came from `Arc::into_raw` in `submit_rados` and is reclaimed exactly once,
    // here (librados calls this once per completion).
    let shared = unsafe { Arc::from_raw(arg.cast_const().cast::<Shared>()) };
    // SAFETY: the completion is live (librados holds a reference while calling us); its
    // return value is set; releasing our reference here is allowed, as librados keeps its
    // own until the callback returns.
    let ret = unsafe {
        let ret = sys::rados_aio_get_return_value(completion);
        sys::rados_aio_release(completion);
        ret
    };
    // Nothing may unwind into librados.
    let _ = catch_unwind(AssertUnwindSafe(|| shared.complete(i64::from(ret))));
}

/// The librbd completion callback; see [`rados_completed`].
///
/// # Safety
/// Called by librbd only, once per completion, with the `arg` given to
/// `rbd_aio_create_completion`.
unsafe extern "C" fn rbd_completed(completion: sys::rbd_completion_t, arg: *mut c_void) {
    // SAFETY: as in `rados_completed`: `arg` is the reference handed over at submission.
    let shared = unsafe { Arc::from_raw(arg.cast_const().cast::<Shared>()) };
    // SAFETY: the completion is live while librbd calls us; releasing our reference here
    // is what librbd's own C++ wrappers do in their callbacks.
    let ret = unsafe {
        let ret = sys::rbd_aio_get_return_value(completion);
        sys::rbd_aio_release(completion);
        ret
    };
    let _ = catch_unwind(AssertUnwindSafe(|| shared.complete(ret as i64)));
}

/// Creates a librados completion for `shared` and runs `start` with it; `start` submits the
/// operation (returns its submission status). On a failed submission the callback never
/// runs, so its reference is reclaimed here.
fn submit_rados<T>(
    keep: Box<dyn Any + Send>,
    what: impl FnOnce() -> String,
    finish: Finish<T>,
    start: impl FnOnce(&mut Box<dyn Any + Send>, sys::rados_completion_t) -> c_int,
) -> AioFuture<T> {
    let shared = Shared::new(keep);
    let arg = Arc::into_raw(Arc::clone(&shared)).cast_mut().cast::<c_void>();
    let mut completion: sys::rados_completion_t = std::ptr::null_mut();
    // SAFETY: `arg` is a live reference for the callback; `rados_completed` has the
    // callback signature; `completion` is a valid out-pointer.
    let ret = unsafe { sys::rados_aio_create_completion2(arg, Some(rados_completed), &mut completion) };
    if ret < 0 || completion.is_null() {
        // SAFETY: the callback will never run: take its reference back.
        drop(unsafe { Arc::from_raw(arg.cast_const().cast::<Shared>()) });
        return AioFuture::failed(RadosError::new(format!("{}: rados_aio_create_completion2", what()), ret.min(-1)));
    }
    let started = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        start(&mut state.keep, completion)
    };
    if started < 0 {
        // SAFETY: submission failed, so librados will not call back: release the
        // completion and reclaim the callback's reference.
        unsafe { sys::rados_aio_release(completion) };
        drop(unsafe { Arc::from_raw(arg.cast_const().cast::<Shared>()) });
        return AioFuture::failed(RadosError::new(what(), started));
    }
    AioFuture { shared, finish: Some(finish) }
}

/// As [`submit_rados`], for librbd.
fn submit_rbd<T>(
    keep: Box<dyn Any + Send>,
    what: impl FnOnce() -> String,
    finish: Finish<T>,
    start: impl FnOnce(&mut Box<dyn Any + Send>, sys::rbd_completion_t) -> c_int,
) -> AioFuture<T> {
    let shared = Shared::new(keep);
    let arg = Arc::into_raw(Arc::clone(&shared)).cast_mut().cast::<c_void>();
    let mut completion: sys::rbd_completion_t = std::ptr::null_mut();
    // SAFETY: as in `submit_rados`.
    let ret = unsafe { sys::rbd_aio_create_completion(arg, Some(rbd_completed), &mut completion) };
    if ret < 0 || completion.is_null() {
        // SAFETY: the callback will never run: take its reference back.
        drop(unsafe { Arc::from_raw(arg.cast_const().cast::<Shared>()) });
        return AioFuture::failed(RadosError::new(format!("{}: rbd_aio_create_completion", what()), ret.min(-1)));
    }
    let started = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        start(&mut state.keep, completion)
    };
    if started < 0 {
        // SAFETY: submission failed, so librbd will not call back.
        unsafe { sys::rbd_aio_release(completion) };
        drop(unsafe { Arc::from_raw(arg.cast_const().cast::<Shared>()) });
        return AioFuture::failed(RadosError::new(what(), started));
    }
    AioFuture { shared, finish: Some(finish) }
}

/// A status-only outcome: negative is an error named `what`.
fn status(what: String) -> Finish<()> {
    Box::new(
        move |ret, _| {
            if ret < 0 {
                Err(RadosError::new(what, i32::try_from(ret).unwrap_or(-libc::EIO)))
            } else {
                Ok(())
            }
        },
    )
}

/// Output slots of one exec call in a read op, written by librados at completion.
struct ExecOut {
    buf: *mut c_char,
    len: usize,
    prval: c_int,
}

/// What an asynchronous read op keeps alive.
struct ReadOpKeep {
    _op: ReadOp,
    out: Box<ExecOut>,
}

impl Drop for ReadOpKeep {
    fn drop(&mut self) {
        if !self.out.buf.is_null() {
            // SAFETY: librados allocated the buffer for this completed op; freed once.
            unsafe { sys::rados_buffer_free(self.out.buf) };
        }
    }
}

// SAFETY: the op and the buffer are only touched by librados until completion and by the
// owner after it; neither has thread affinity.
unsafe impl Send for ReadOpKeep {}

/// What an asynchronous plain read keeps alive: the destination buffer.
struct ReadKeep {
    buf: Vec<u8>,
}

impl IoCtx {
    /// Runs every step of `batch` on `oid` in one atomic write op, asynchronously. The
    /// I/O context's snapshot context (if set) applies, as for a synchronous write.
    pub fn aio_write_batch(&self, oid: &str, batch: &WriteBatch) -> AioFuture<()> {
        let what = format!("exec {}", batch.describe(oid));
        let c_oid = match Self::oid(oid, &what) {
            Ok(c_oid) => c_oid,
            Err(e) => return AioFuture::failed(e),
        };
        let built = match BuiltWriteOp::new(batch, oid) {
            Ok(built) => built,
            Err(e) => return AioFuture::failed(e),
        };
        let raw = self.raw;
        let finish: Finish<()> = Box::new(move |ret, keep| {
            let ret = c_int::try_from(ret).unwrap_or(-libc::EIO);
            match (**keep).downcast_ref::<BuiltWriteOp>() {
                Some(built) => built.result(ret),
                None => status(what)(i64::from(ret), keep),
            }
        });
        submit_rados(
            Box::new(built),
            || format!("rados_aio_write_op_operate({oid})"),
            finish,
            move |keep, completion| match (**keep).downcast_ref::<BuiltWriteOp>() {
                // SAFETY: live op (kept until completion), valid ioctx, NUL-terminated oid,
                // NULL mtime ("now"), a fresh completion.
                Some(built) => unsafe {
                    sys::rados_aio_write_op_operate(
                        built.op.0,
                        raw,
                        completion,
                        c_oid.as_ptr(),
                        std::ptr::null_mut(),
                        0,
                    )
                },
                None => -libc::EINVAL,
            },
        )
    }

    /// Runs write method `method` on `oid`, asynchronously.
    pub fn aio_call_write<M: WriteCall>(&self, oid: &str, method: &M, request: &M::Request) -> AioFuture<()> {
        let mut batch = WriteBatch::new();
        match batch.add(method, request) {
            Ok(_) => self.aio_write_batch(oid, &batch),
            Err(e) => AioFuture::failed(e),
        }
    }

    /// Runs read method `method` on `oid`, asynchronously.
    pub fn aio_call<M: ReadCall + Send + Sync + 'static>(
        &self,
        oid: &str,
        method: &'static M,
        request: &M::Request,
    ) -> AioFuture<M::Reply>
    where
        M::Reply: Send + 'static,
    {
        let what = format!("exec {} on {oid}", method.full_name());
        let input = match method.encode_request(request) {
            Ok(input) => input,
            Err(e) => return AioFuture::failed(e),
        };
        let prepared = (|| {
            let c_oid = Self::oid(oid, &what)?;
            let c_class = crate::error::cstring(method.class(), || what.clone())?;
            let c_method = crate::error::cstring(method.method(), || what.clone())?;
            let op = ReadOp::new(&what)?;
            Ok((c_oid, c_class, c_method, op))
        })();
        let (c_oid, c_class, c_method, op) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return AioFuture::failed(e),
        };
        let mut out = Box::new(ExecOut { buf: std::ptr::null_mut(), len: 0, prval: 0 });
        // SAFETY: live read op; class and method NUL-terminated, `input` readable for its
        // length, all copied into the op; the out-pointers point into the boxed `out`, which
        // is kept (with the op) until the operation completed.
        unsafe {
            sys::rados_read_op_exec(
                op.0,
                c_class.as_ptr(),
                c_method.as_ptr(),
                input.as_ptr().cast::<c_char>(),
                input.len(),
                &mut out.buf,
                &mut out.len,
                &mut out.prval,
            );
        }
        let op_raw = op.0;
        let raw = self.raw;
        let finish_what = what.clone();
        let finish: Finish<M::Reply> = Box::new(move |ret, keep| {
            let Some(kept) = (**keep).downcast_ref::<ReadOpKeep>() else {
                return Err(RadosError::new(finish_what, libc::EIO));
            };
            if ret < 0 {
                return Err(RadosError::new(finish_what, i32::try_from(ret).unwrap_or(-libc::EIO)));
            }
            if kept.out.prval < 0 {
                return Err(RadosError::new(finish_what, kept.out.prval));
            }
            let reply = if kept.out.buf.is_null() || kept.out.len == 0 {
                &[][..]
            } else {
                // SAFETY: librados allocated `len` bytes at `buf` for this completed op; they
                // stay valid until `ReadOpKeep` drops.
                unsafe { std::slice::from_raw_parts(kept.out.buf.cast::<u8>(), kept.out.len) }
            };
            method.decode_reply(reply)
        });
        submit_rados(
            Box::new(ReadOpKeep { _op: op, out }),
            || what,
            finish,
            move |_, completion| {
                // SAFETY: live op (kept until completion), valid ioctx, NUL-terminated oid.
                unsafe { sys::rados_aio_read_op_operate(op_raw, raw, completion, c_oid.as_ptr(), 0) }
            },
        )
    }

    /// Reads up to `len` bytes of `oid` at `offset`, asynchronously (fewer at the end of
    /// the object; `ENOENT` when it does not exist).
    pub fn aio_read(&self, oid: &str, offset: u64, len: usize) -> AioFuture<Vec<u8>> {
        let what = format!("rados_aio_read({oid})");
        let c_oid = match Self::oid(oid, &what) {
            Ok(c_oid) => c_oid,
            Err(e) => return AioFuture::failed(e),
        };
        let raw = self.raw;
        let finish_what = what.clone();
        let finish: Finish<Vec<u8>> = Box::new(move |ret, keep| {
            if ret < 0 {
                return Err(RadosError::new(finish_what, i32::try_from(ret).unwrap_or(-libc::EIO)));
            }
            let Some(kept) = (**keep).downcast_mut::<ReadKeep>() else {
                return Err(RadosError::new(finish_what, libc::EIO));
            };
            let mut buf = std::mem::take(&mut kept.buf);
            buf.truncate(usize::try_from(ret).unwrap_or(0).min(buf.len()));
            Ok(buf)
        });
        submit_rados(
            Box::new(ReadKeep { buf: vec![0u8; len] }),
            || what,
            finish,
            move |keep, completion| {
                match (**keep).downcast_mut::<ReadKeep>() {
                    // SAFETY: valid ioctx; NUL-terminated oid; the buffer is writable for its
                    // length and kept (its heap allocation does not move) until completion.
                    Some(kept) => unsafe {
                        sys::rados_aio_read(
                            raw,
                            c_oid.as_ptr(),
                            completion,
                            kept.buf.as_mut_ptr().cast::<c_char>(),
                            kept.buf.len(),
                            offset,
                        )
                    },
                    None => -libc::EINVAL,
                }
            },
        )
    }
}

/// An open RBD image for asynchronous I/O from any thread (librbd's asynchronous calls on one
/// image handle are thread-safe). Closed on drop, after the caller has awaited its I/O.
pub struct AioImage {
    image: crate::image::Image,
}

// SAFETY: only librbd's thread-safe asynchronous calls and `rbd_get_size` are made through a
// shared reference; the handle is closed only on drop, with exclusive access.
unsafe impl Sync for AioImage {}

impl AioImage {
    /// Wraps an open image.
    pub fn new(image: crate::image::Image) -> AioImage {
        AioImage { image }
    }

    /// The image size in bytes.
    pub fn size(&self) -> RadosResult<u64> {
        let mut size = 0u64;
        // SAFETY: open image; `size` is a valid out-pointer.
        let ret = unsafe { sys::rbd_get_size(self.image.raw(), &mut size) };
        crate::error::check(ret, || "rbd_get_size".to_owned())?;
        Ok(size)
    }

    /// Writes `data` at `offset`.
    pub fn aio_write(&self, offset: u64, data: Vec<u8>) -> AioFuture<()> {
        let raw = self.image.raw();
        let what = format!("rbd_aio_write({offset}, {})", data.len());
        submit_rbd(
            Box::new(data),
            || what.clone(),
            status(what.clone()),
            move |keep, completion| {
                match (**keep).downcast_ref::<Vec<u8>>() {
                    // SAFETY: open image; the data is readable for its length and kept (its heap
                    // buffer does not move) until librbd completes the write.
                    Some(data) => unsafe {
                        sys::rbd_aio_write(raw, offset, data.len(), data.as_ptr().cast::<c_char>(), completion)
                    },
                    None => -libc::EINVAL,
                }
            },
        )
    }

    /// Reads `len` bytes at `offset` (zeros past what was written).
    pub fn aio_read(&self, offset: u64, len: usize) -> AioFuture<Vec<u8>> {
        let raw = self.image.raw();
        let what = format!("rbd_aio_read({offset}, {len})");
        let finish_what = what.clone();
        let finish: Finish<Vec<u8>> = Box::new(move |ret, keep| {
            if ret < 0 {
                return Err(RadosError::new(finish_what, i32::try_from(ret).unwrap_or(-libc::EIO)));
            }
            match (**keep).downcast_mut::<Vec<u8>>() {
                Some(buf) => Ok(std::mem::take(buf)),
                None => Err(RadosError::new(finish_what, libc::EIO)),
            }
        });
        submit_rbd(
            Box::new(vec![0u8; len]),
            || what,
            finish,
            move |keep, completion| {
                match (**keep).downcast_mut::<Vec<u8>>() {
                    // SAFETY: open image; the buffer is writable for its length and kept until
                    // completion.
                    Some(buf) => unsafe {
                        sys::rbd_aio_read(raw, offset, buf.len(), buf.as_mut_ptr().cast::<c_char>(), completion)
                    },
                    None => -libc::EINVAL,
                }
            },
        )
    }

    /// Discards `len` bytes at `offset`.
    pub fn aio_discard(&self, offset: u64, len: u64) -> AioFuture<()> {
        let raw = self.image.raw();
        let what = format!("rbd_aio_discard({offset}, {len})");
        // SAFETY: open image; integer arguments.
        submit_rbd(
            Box::new(()),
            || what.clone(),
            status(what.clone()),
            move |_, completion| unsafe { sys::rbd_aio_discard(raw, offset, len, completion) },
        )
    }

    /// Writes `len` zero bytes at `offset`.
    pub fn aio_write_zeroes(&self, offset: u64, len: u64) -> AioFuture<()> {
        let raw = self.image.raw();
        let what = format!("rbd_aio_write_zeroes({offset}, {len})");
        let len = match usize::try_from(len) {
            Ok(len) => len,
            Err(_) => return AioFuture::failed(RadosError::new(what, libc::EINVAL)),
        };
        // SAFETY: open image; integer arguments; no flags.
        submit_rbd(
            Box::new(()),
            || what.clone(),
            status(what.clone()),
            move |_, completion| unsafe { sys::rbd_aio_write_zeroes(raw, offset, len, completion, 0, 0) },
        )
    }

    /// Flushes what was written (librbd's cache, if any, to the OSDs).
    pub fn aio_flush(&self) -> AioFuture<()> {
        let raw = self.image.raw();
        // SAFETY: open image.
        submit_rbd(
            Box::new(()),
            || "rbd_aio_flush".to_owned(),
            status("rbd_aio_flush".to_owned()),
            move |_, c| unsafe { sys::rbd_aio_flush(raw, c) },
        )
    }
}
