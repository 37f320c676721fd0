//! The transmission phase of one connection: a reader that parses, checks and submits
//! requests in wire order, and a writer that sends each reply as soon as its request
//! completes.
//!
//! ```text
//!  socket ─► reader ──submit_*()──► backend ──future──► (ready now? reply : spawn await)
//!                                                             │
//!  socket ◄─ writer (BufWriter, flush when queue drains) ◄─────┘ unbounded queue
//! ```
//!
//! Per request the hot path allocates the payload buffer, the backend's boxed future, and,
//! only when that future is not ready at once, one spawned task.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use log::{debug, warn};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backend::{BackendError, ExportInfo, ExportSet, IoFuture, NbdErrno};
use super::proto::{self, RequestHeader};
use super::server::ShutdownSignal;

const READ_BUF: usize = 64 * 1024;
const WRITE_BUF: usize = 64 * 1024;
/// How long a closing connection keeps draining what the client still sends (see `run`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Per-connection limits, from the server config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransmissionLimits {
    pub max_request: u32,
    pub max_in_flight: u32,
    pub max_in_flight_bytes: u32,
    pub shutdown_grace: std::time::Duration,
}

/// Why a connection's transmission phase ended.
#[derive(Debug)]
pub(crate) enum End {
    /// `NBD_CMD_DISC`.
    Disconnect,
    /// The client closed the socket.
    Eof,
    /// The server is shutting down.
    Shutdown,
    /// Reading failed.
    Io(io::Error),
    /// A request header with the wrong magic: the stream cannot be resynchronised.
    BadMagic,
    /// A write larger than the maximum request size: its payload cannot be trusted.
    OversizeWrite(u32),
    /// Writing replies failed (the client is gone).
    WriterFailed,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Disconnect => write!(f, "client disconnected"),
            End::Eof => write!(f, "client closed the connection"),
            End::Shutdown => write!(f, "server shutdown"),
            End::Io(e) => write!(f, "read error: {e}"),
            End::BadMagic => write!(f, "bad request magic (protocol violation)"),
            End::OversizeWrite(n) => write!(f, "write of {n} bytes exceeds the maximum request size"),
            End::WriterFailed => write!(f, "reply write failed"),
        }
    }
}

impl End {
    fn from_read(e: io::Error) -> End {
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => End::Eof,
            _ => End::Io(e),
        }
    }
}

/// What the transmission phase reports back for the close log line.
pub(crate) struct Summary {
    pub end: End,
    pub requests: u64,
}

/// One reply, queued for the writer. Dropping it releases the request's in-flight permits.
struct Reply {
    handle: u64,
    error: u32,
    data: Option<Vec<u8>>,
    _permit: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Everything a completion needs to build its reply.
struct Pending {
    handle: u64,
    permit: OwnedSemaphorePermit,
    bytes: Option<OwnedSemaphorePermit>,
}

impl Pending {
    fn reply(self, error: u32, data: Option<Vec<u8>>) -> Reply {
        Reply { handle: self.handle, error, data, _permit: self.permit, _bytes: self.bytes }
    }
}

/// Polls a future once with a no-op waker: backends that complete at submission (an
/// in-memory image, a cache hit) are answered without spawning a task. A future that is
/// not ready is polled again later with a real waker, which the `Future` contract allows.
fn poll_now<T>(fut: &mut IoFuture<T>) -> Option<Result<T, BackendError>> {
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// The request's error, if it fails the checks that need no backend. Logged as protocol
/// violations where the client broke a MUST.
fn check(h: &RequestHeader, info: &ExportInfo, max_request: u32, peer: &str) -> Result<(), NbdErrno> {
    let allowed = match h.command {
        proto::CMD_WRITE_ZEROES => proto::CMD_FLAG_FUA | proto::CMD_FLAG_NO_HOLE,
        _ => proto::CMD_FLAG_FUA,
    };
    if h.flags & !allowed != 0 {
        warn!("nbd: {peer}: command {} with unsupported flags {:#x}", h.command, h.flags);
        return Err(NbdErrno::Inval);
    }
    let beyond = h.offset.checked_add(u64::from(h.len)).is_none_or(|end| end > info.size);
    let (limited, writes, beyond_err) = match h.command {
        proto::CMD_READ | proto::CMD_CACHE => (true, false, NbdErrno::Inval),
        proto::CMD_WRITE | proto::CMD_WRITE_ZEROES => (false, true, NbdErrno::NoSpc),
        proto::CMD_TRIM => (false, true, NbdErrno::Inval),
        proto::CMD_FLUSH => return Ok(()),
        other => {
            warn!("nbd: {peer}: unsupported command {other}");
            return Err(NbdErrno::Inval);
        }
    };
    if limited && h.len > max_request {
        warn!("nbd: {peer}: command {} of {} bytes exceeds the maximum block size", h.command, h.len);
        return Err(NbdErrno::Inval);
    }
    if writes && info.read_only {
        debug!("nbd: {peer}: command {} on read-only export", h.command);
        return Err(NbdErrno::Perm);
    }
    if beyond {
        warn!("nbd: {peer}: command {} at {}+{} beyond the export's {} bytes", h.command, h.offset, h.len, info.size);
        return Err(beyond_err);
    }
    Ok(())
}

/// Reads exactly `len` bytes into a new buffer of that capacity (no zero-fill, no growth).
async fn read_payload<R: AsyncRead + Unpin>(r: &mut R, len: u32) -> io::Result<Vec<u8>> {
    let len = len as usize;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let want = (len - buf.len()) as u64;
        if (&mut *r).take(want).read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}

/// Serves one connection's transmission phase until it ends, then waits until every
/// request it read has completed and (unless the client stopped reading) been answered.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<B, R, W>(
    backend: &B,
    export: &B::Export,
    info: &ExportInfo,
    reader: R,
    writer: W,
    limits: TransmissionLimits,
    mut shutdown: ShutdownSignal,
    peer: Arc<str>,
) -> Summary
where
    B: ExportSet,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<Reply>();
    let mut writer_task = tokio::spawn(write_replies(rx, writer));
    let count = Arc::new(Semaphore::new(limits.max_in_flight as usize));
    let bytes = Arc::new(Semaphore::new(limits.max_in_flight_bytes as usize));
    let mut reader = BufReader::with_capacity(READ_BUF, reader);
    let mut requests = 0u64;

    let end = loop {
        // Back-pressure: no more than max_in_flight requests read but not yet answered.
        let mut hb = [0u8; proto::REQUEST_HEADER_LEN];
        let next = async {
            let permit = count.clone().acquire_owned().await;
            reader.read_exact(&mut hb).await.map(|_| permit)
        };
        let permit = tokio::select! {
            r = next => match r {
                Ok(Ok(p)) => p,
                Ok(Err(_closed)) => break End::Shutdown, // never closed
                Err(e) => break End::from_read(e),
            },
            _ = shutdown.wait() => break End::Shutdown,
            _ = tx.closed() => break End::WriterFailed,
        };
        let Ok(h) = RequestHeader::parse(&hb) else {
            warn!("nbd: {peer}: bad request magic; disconnecting");
            break End::BadMagic;
        };
        requests += 1;
        let mut pending = Pending { handle: h.handle, permit, bytes: None };

        if h.command == proto::CMD_DISC {
            break End::Disconnect;
        }

        let mut payload = None;
        if h.command == proto::CMD_WRITE {
            if h.len > limits.max_request {
                warn!(
                    "nbd: {peer}: write of {} bytes exceeds the maximum of {}; disconnecting",
                    h.len, limits.max_request
                );
                break End::OversizeWrite(h.len);
            }
            let read = async {
                let b = bytes.clone().acquire_many_owned(h.len).await;
                read_payload(&mut reader, h.len).await.map(|d| (b, d))
            };
            let (b, data) = tokio::select! {
                r = read => match r {
                    Ok((b, data)) => (b.ok(), data),
                    Err(e) => break End::from_read(e),
                },
                _ = shutdown.wait() => break End::Shutdown,
                _ = tx.closed() => break End::WriterFailed,
            };
            pending.bytes = b;
            payload = Some(data);
        }

        if let Err(e) = check(&h, info, limits.max_request, &peer) {
            let _ = tx.send(pending.reply(e.wire(), None));
            continue;
        }
        let fua = h.flags & proto::CMD_FLAG_FUA != 0;
        if h.len == 0 && h.command != proto::CMD_FLUSH {
            // Unspecified by the protocol; answered as a successful no-op, without the
            // backend (a zero-length READ has an empty payload).
            let data = (h.command == proto::CMD_READ).then(Vec::new);
            let _ = tx.send(pending.reply(0, data));
            continue;
        }

        match h.command {
            proto::CMD_READ => {
                // Reserve the reply's memory before submitting; waiting here stops reading.
                let b = tokio::select! {
                    b = bytes.clone().acquire_many_owned(h.len) => b.ok(),
                    _ = shutdown.wait() => break End::Shutdown,
                    _ = tx.closed() => break End::WriterFailed,
                };
                pending.bytes = b;
                let fut = backend.submit_read(export, h.offset, h.len);
                finish(fut, pending, &tx, &peer, h, |r, len| match r {
                    Ok(d) if d.len() == len as usize => Ok(Some(d)),
                    Ok(d) => Err(BackendError::new(
                        NbdErrno::Io,
                        format!("backend returned {} bytes for a read of {len}", d.len()),
                    )),
                    Err(e) => Err(e),
                });
            }
            proto::CMD_WRITE => {
                let data = payload.take().unwrap_or_default();
                let fut = backend.submit_write(export, h.offset, data, fua);
                finish(fut, pending, &tx, &peer, h, |r, _| r.map(|()| None));
            }
            proto::CMD_FLUSH => {
                let fut = backend.submit_flush(export);
                finish(fut, pending, &tx, &peer, h, |r, _| r.map(|()| None));
            }
            proto::CMD_TRIM => {
                let fut = backend.submit_trim(export, h.offset, h.len, fua);
                finish(fut, pending, &tx, &peer, h, |r, _| r.map(|()| None));
            }
            proto::CMD_WRITE_ZEROES => {
                let may_trim = h.flags & proto::CMD_FLAG_NO_HOLE == 0;
                let fut = backend.submit_write_zeroes(export, h.offset, h.len, fua, may_trim);
                finish(fut, pending, &tx, &peer, h, |r, _| r.map(|()| None));
            }
            // CACHE: advertised, checked, and a successful no-op.
            _ => {
                let _ = tx.send(pending.reply(0, None));
            }
        }
    };

    // Drain: no more requests are read. Wait for the writer to answer everything in flight
    // (it ends when every sender, ours and the completions', is gone).
    drop(tx);
    let mut writer_done = false;
    tokio::select! {
        _ = &mut writer_task => writer_done = true,
        _ = async {
            shutdown.wait().await;
            tokio::time::sleep(limits.shutdown_grace).await;
        } => {}
    }
    if writer_done {
        // Lingering close: the writer has sent every reply and a FIN, but requests the
        // reader never read may still sit in the socket. Closing a socket with unread data
        // sends a reset, and a reset makes the client's kernel discard replies it has not
        // yet handed to the client. So read and discard until the client closes (it does
        // on the FIN), for a bounded time.
        if !matches!(end, End::Eof | End::Io(_) | End::WriterFailed) {
            let _ = tokio::time::timeout(LINGER, async {
                let mut sink = [0u8; 16 * 1024];
                while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    } else {
        // Shutting down and the client does not take its replies: stop writing them, but
        // still let every submitted request complete (the permits come back when the
        // completions' replies are dropped).
        warn!("nbd: {peer}: client not reading replies during shutdown; dropping them");
        writer_task.abort();
        let _ = writer_task.await;
    }
    // Every permit back = every request read has completed.
    let _ = count.acquire_many(limits.max_in_flight).await;
    Summary { end, requests }
}

/// Hands a submitted request's completion to the writer: at once if the future is already
/// done, else from a spawned task that awaits it.
fn finish<T, F>(
    mut fut: IoFuture<T>,
    pending: Pending,
    tx: &UnboundedSender<Reply>,
    peer: &Arc<str>,
    h: RequestHeader,
    to_reply: F,
) where
    T: Send + 'static,
    F: FnOnce(Result<T, BackendError>, u32) -> Result<Option<Vec<u8>>, BackendError> + Send + 'static,
{
    let complete = move |r: Result<T, BackendError>, pending: Pending, tx: &UnboundedSender<Reply>, peer: &str| {
        let reply = match to_reply(r, h.len) {
            Ok(data) => pending.reply(0, data),
            Err(e) => {
                warn!("nbd: {peer}: command {} at {}+{} failed: {e}", h.command, h.offset, h.len);
                pending.reply(e.kind.wire(), None)
            }
        };
        let _ = tx.send(reply);
    };
    match poll_now(&mut fut) {
        Some(r) => complete(r, pending, tx, peer),
        None => {
            let tx = tx.clone();
            let peer = Arc::clone(peer);
            tokio::spawn(async move {
                let r = fut.await;
                complete(r, pending, &tx, &peer);
            });
        }
    }
}

/// The connection's only writer: one reply at a time (header, then a read's payload), so
/// replies never interleave; flushes when the queue runs dry, so replies that complete
/// together leave in one batch.
async fn write_replies<W: AsyncWrite + Unpin>(mut rx: UnboundedReceiver<Reply>, w: W) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUF, w);
    let r = async {
        while let Some(first) = rx.recv().await {
            write_one(&mut w, first).await?;
            while let Ok(next) = rx.try_recv() {
                write_one(&mut w, next).await?;
            }
            w.flush().await?;
        }
        w.shutdown().await
    }
    .await;
    // Close the queue before the receiver is dropped so the reader sees `closed()` at once.
    rx.close();
    r
}

async fn write_one<W: AsyncWrite + Unpin>(w: &mut W, r: Reply) -> io::Result<()> {
    w.write_all(&proto::encode_simple_reply(r.handle, r.error)).await?;
    if let Some(d) = &r.data {
        w.write_all(d).await?;
    }
    Ok(())
}
