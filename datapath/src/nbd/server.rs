//! Listeners, connection limits, shutdown.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error, info, warn};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::backend::ExportSet;
use super::handshake::{self, HandshakeEnd, HandshakeLimits};
use super::transmission::{self, TransmissionLimits};

/// Server limits. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; further ones are closed right after `accept` (default 128).
    pub max_connections: usize,
    /// Largest READ/WRITE/CACHE length, advertised as the maximum block size (default
    /// 32 MiB, the size the protocol says clients may always use). A larger WRITE closes
    /// the connection; a larger READ gets `EINVAL`. Clamped to 4 KiB ..= 1 GiB.
    pub max_request_bytes: u32,
    /// Requests read but not yet answered, per connection (default 128). When reached, the
    /// connection stops reading its socket until a reply has been written.
    pub max_in_flight: u32,
    /// READ/WRITE payload bytes held per connection for requests not yet answered (default
    /// 64 MiB; raised to `max_request_bytes` if smaller).
    pub max_in_flight_bytes: u32,
    /// Time a client has from `accept` to the end of option haggling (default 10 s).
    pub handshake_timeout: Duration,
    /// On shutdown, how long a connection keeps trying to write replies to a client that
    /// does not read them before dropping them (default 30 s). The requests still
    /// complete in the backend either way.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 128,
            max_request_bytes: 32 << 20,
            max_in_flight: 128,
            max_in_flight_bytes: 64 << 20,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    fn normalized(mut self) -> Self {
        self.max_connections = self.max_connections.max(1);
        self.max_request_bytes = self.max_request_bytes.clamp(4096, 1 << 30);
        self.max_in_flight = self.max_in_flight.clamp(1, 1 << 16);
        self.max_in_flight_bytes = self.max_in_flight_bytes.max(self.max_request_bytes);
        self
    }
}

/// Asks a server to shut down gracefully. Cheap to clone; any clone may trigger it.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        ShutdownHandle { tx: Arc::new(watch::Sender::new(false)) }
    }
}

impl ShutdownHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: listeners stop accepting, connections stop reading requests,
    /// finish what they read, and close. Idempotent.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_shutdown(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub async fn wait(&self) {
        self.signal().wait().await
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal { rx: self.tx.subscribe() }
    }
}

/// A connection's view of the shutdown request.
pub(crate) struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Resolves once shutdown has been requested (at once if it already was). Cancel-safe.
    pub async fn wait(&mut self) {
        // The sender lives as long as the server; if it is gone, so is the reason to serve.
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// Spawns a task that triggers `handle` on the first SIGTERM or SIGINT. Must be called
/// inside a Tokio runtime.
pub fn shutdown_on_signals(handle: ShutdownHandle) -> io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!("nbd: {which}: shutting down");
        handle.shutdown();
    }))
}

/// A byte stream the server can serve, and split into independently owned halves.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type ReadHalf: AsyncRead + Unpin + Send + 'static;
    type WriteHalf: AsyncWrite + Unpin + Send + 'static;
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf);
}

impl Transport for TcpStream {
    type ReadHalf = tokio::net::tcp::OwnedReadHalf;
    type WriteHalf = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        self.into_split()
    }
}

impl Transport for UnixStream {
    type ReadHalf = tokio::net::unix::OwnedReadHalf;
    type WriteHalf = tokio::net::unix::OwnedWriteHalf;
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        self.into_split()
    }
}

impl Transport for DuplexStream {
    type ReadHalf = tokio::io::ReadHalf<DuplexStream>;
    type WriteHalf = tokio::io::WriteHalf<DuplexStream>;
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        tokio::io::split(self)
    }
}

/// Something that accepts connections (a private seam over TCP and Unix listeners).
trait Accept: Send {
    type Stream: Transport;
    fn accept_one(&self) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    async fn accept_one(&self) -> io::Result<(TcpStream, String)> {
        let (s, peer) = self.accept().await?;
        if let Err(e) = s.set_nodelay(true) {
            warn!("nbd: {peer}: cannot set TCP_NODELAY: {e}");
        }
        Ok((s, peer.to_string()))
    }
}

struct UnixAccept {
    listener: UnixListener,
    label: String,
    next: AtomicU64,
}

impl Accept for UnixAccept {
    type Stream = UnixStream;
    async fn accept_one(&self) -> io::Result<(UnixStream, String)> {
        let (s, _) = self.listener.accept().await?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok((s, format!("{}#{n}", self.label)))
    }
}

struct Inner<B> {
    backend: Arc<B>,
    config: ServerConfig,
    shutdown: ShutdownHandle,
    connections: Arc<Semaphore>,
}

/// The NBD server: serves the exports of one [`ExportSet`] on any number of listeners,
/// sharing one connection limit and one shutdown handle. Cheap to clone.
pub struct Server<B> {
    inner: Arc<Inner<B>>,
}

impl<B> std::fmt::Debug for Server<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl<B> Clone for Server<B> {
    fn clone(&self) -> Self {
        Server { inner: Arc::clone(&self.inner) }
    }
}

impl<B: ExportSet> Server<B> {
    pub fn new(backend: Arc<B>, config: ServerConfig) -> Self {
        let config = config.normalized();
        let connections = Arc::new(Semaphore::new(config.max_connections));
        Server { inner: Arc::new(Inner { backend, config, shutdown: ShutdownHandle::new(), connections }) }
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.inner.backend
    }

    /// The effective (normalized) configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.inner.shutdown.clone()
    }

    /// Accepts and serves TCP connections (with `TCP_NODELAY`) until shutdown, then waits
    /// for its connections to finish and returns. The listener is closed on return.
    pub async fn serve_tcp(&self, listener: TcpListener) {
        let label = listener.local_addr().map_or_else(|_| "tcp".to_owned(), |a| a.to_string());
        self.serve(listener, &label).await
    }

    /// Accepts and serves Unix-socket connections until shutdown, like
    /// [`serve_tcp`](Self::serve_tcp). The socket file is left for the caller to remove.
    pub async fn serve_unix(&self, listener: UnixListener) {
        let label = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_else(|| "unix".to_owned());
        let acceptor = UnixAccept { listener, label: label.clone(), next: AtomicU64::new(0) };
        self.serve(acceptor, &label).await
    }

    /// Serves one already-accepted connection to its end (not counted against
    /// `max_connections`).
    pub async fn serve_connection<S: Transport>(&self, stream: S, peer: String) {
        run_connection(Arc::clone(&self.inner), stream, peer).await
    }

    async fn serve<L: Accept>(&self, listener: L, label: &str) {
        let inner = &self.inner;
        let mut shutdown = inner.shutdown.signal();
        let mut conns = JoinSet::new();
        info!("nbd: listening on {label}");
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                Some(r) = conns.join_next(), if !conns.is_empty() => reap(r),
                acc = listener.accept_one() => match acc {
                    Ok((stream, peer)) => match Arc::clone(&inner.connections).try_acquire_owned() {
                        Ok(permit) => {
                            let inner = Arc::clone(inner);
                            conns.spawn(async move {
                                run_connection(inner, stream, peer).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            warn!(
                                "nbd: {peer}: refused: {} connections already open",
                                inner.config.max_connections
                            );
                            drop(stream);
                        }
                    },
                    Err(e) => {
                        // EMFILE and friends: log, back off, keep serving.
                        error!("nbd: accept on {label} failed: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                            _ = shutdown.wait() => break,
                        }
                    }
                },
            }
        }
        drop(listener);
        info!("nbd: {label}: stopped accepting; waiting for {} connections", conns.len());
        while let Some(r) = conns.join_next().await {
            reap(r);
        }
        info!("nbd: {label}: all connections closed");
    }
}

fn reap(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        error!("nbd: connection task failed: {e}");
    }
}

async fn run_connection<B: ExportSet, S: Transport>(inner: Arc<Inner<B>>, mut stream: S, peer: String) {
    let cfg = &inner.config;
    let mut shutdown = inner.shutdown.signal();
    let limits = HandshakeLimits { max_request: cfg.max_request_bytes };
    let hs = tokio::select! {
        r = tokio::time::timeout(cfg.handshake_timeout,
                handshake::negotiate(&mut stream, &*inner.backend, limits, &peer)) => r,
        _ = shutdown.wait() => {
            debug!("nbd: {peer}: closed during handshake by shutdown");
            return;
        }
    };
    let (info, export, flags) = match hs {
        Err(_) => {
            warn!("nbd: {peer}: handshake not finished within {:?}; closing", cfg.handshake_timeout);
            return;
        }
        Ok(Err(e)) if e.is_disconnect() => {
            debug!("nbd: {peer}: client left during handshake: {e}");
            return;
        }
        Ok(Err(e)) => {
            warn!("nbd: {peer}: handshake failed: {e}; closing");
            return;
        }
        Ok(Ok(HandshakeEnd::Aborted)) => {
            debug!("nbd: {peer}: client aborted the handshake");
            return;
        }
        Ok(Ok(HandshakeEnd::Transmission { info, export, flags })) => (info, export, flags),
    };
    info!(
        "nbd: {peer}: opened export {:?} ({} bytes, flags {flags:#x}{})",
        info.name,
        info.size,
        if info.read_only { ", read-only" } else { "" }
    );
    let limits = TransmissionLimits {
        max_request: cfg.max_request_bytes,
        max_in_flight: cfg.max_in_flight,
        max_in_flight_bytes: cfg.max_in_flight_bytes,
        shutdown_grace: cfg.shutdown_grace,
    };
    let (r, w) = stream.into_halves();
    let peer: Arc<str> = peer.into();
    let s = transmission::run(&*inner.backend, &export, &info, r, w, limits, shutdown, Arc::clone(&peer)).await;
    info!("nbd: {peer}: closed export {:?}: {}; {} requests", info.name, s.end, s.requests);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nbd::proto::{self, RequestHeader};
    use crate::nbd::{ExportInfo, MemBackend};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn option(c: &mut DuplexStream, opt: u32, data: &[u8]) {
        let mut b = proto::IHAVEOPT.to_be_bytes().to_vec();
        b.extend_from_slice(&opt.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        c.write_all(&b).await.unwrap();
    }

    async fn reply(c: &mut DuplexStream) -> (u32, u32, Vec<u8>) {
        let mut h = [0u8; 20];
        c.read_exact(&mut h).await.unwrap();
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let mut d = vec![0u8; u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize];
        c.read_exact(&mut d).await.unwrap();
        (u32::from_be_bytes(h[8..12].try_into().unwrap()), kind, d)
    }

    /// A whole session over an in-memory stream through `serve_connection`.
    #[tokio::test]
    async fn session_over_a_duplex_stream() {
        let backend = Arc::new(MemBackend::new(vec![ExportInfo::new("m", 1 << 20)]));
        let server = Server::new(Arc::clone(&backend), ServerConfig::default());
        let (mut c, s) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn({
            let server = server.clone();
            async move { server.serve_connection(s, "duplex".into()).await }
        });
        let mut g = [0u8; proto::GREETING_LEN];
        c.read_exact(&mut g).await.unwrap();
        assert_eq!(g, proto::encode_greeting());
        c.write_all(&3u32.to_be_bytes()).await.unwrap();
        option(&mut c, proto::OPT_STRUCTURED_REPLY, &[]).await;
        assert_eq!(reply(&mut c).await.1, proto::REP_ERR_UNSUP);
        option(&mut c, proto::OPT_GO, &[0, 0, 0, 1, b'm', 0, 0]).await;
        let (opt, kind, d) = reply(&mut c).await;
        assert_eq!((opt, kind, &d[0..2]), (proto::OPT_GO, proto::REP_INFO, &[0u8, 0][..]));
        assert_eq!(u64::from_be_bytes(d[2..10].try_into().unwrap()), 1 << 20);
        assert_eq!(reply(&mut c).await.1, proto::REP_INFO); // block size, sent unasked
        assert_eq!(reply(&mut c).await.1, proto::REP_ACK);

        let mut req =
            RequestHeader { flags: 0, command: proto::CMD_WRITE, handle: 7, offset: 10, len: 3 }.encode().to_vec();
        req.extend_from_slice(b"xyz");
        req.extend_from_slice(
            &RequestHeader { flags: 0, command: proto::CMD_READ, handle: 8, offset: 9, len: 5 }.encode(),
        );
        c.write_all(&req).await.unwrap();
        let mut r = [0u8; 16];
        c.read_exact(&mut r).await.unwrap();
        assert_eq!(r, proto::encode_simple_reply(7, 0));
        let mut r = [0u8; 16 + 5];
        c.read_exact(&mut r).await.unwrap();
        assert_eq!(&r[..16], &proto::encode_simple_reply(8, 0));
        assert_eq!(&r[16..], b"\0xyz\0");
        c.write_all(&RequestHeader { flags: 0, command: proto::CMD_DISC, handle: 9, offset: 0, len: 0 }.encode())
            .await
            .unwrap();
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
        assert_eq!(backend.export("m").unwrap().snapshot(10, 3), b"xyz");
    }
}
