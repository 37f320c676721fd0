//! `rbd-cg nbd serve`: one NBD server for a group, one export per member.
//!
//! A journaled group is served through its journal writer (which takes the writer lease: a
//! second server is refused by name, a dead one replaced, its late appends refused; and which
//! replays whatever a previous writer left unapplied before the first request is served). A
//! group without journaling is served through librbd directly. On SIGTERM or SIGINT the
//! server stops taking requests, finishes the ones it read, and — journaled — appends,
//! applies and records everything before releasing the lease; then it returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rbd_cg_contract::methods::{Empty, GROUP_GET};
use rbd_cg_contract::names::header_object;
use rbd_cg_contract::records::{DirState, GroupHeader, MemberState};
use rbd_cg_journal::members::label;
use rbd_cg_journal::writer::{JournalWriter, WriterConfig};
use rbd_cg_rados::aio::AioImage;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::rbd_cg::{dir_entry, member_records};
use rbd_cg_rados::{Cluster, IoCtx, RadosError, RadosResult};

use crate::exports::{JournaledExports, MemberExport, PlainExports};
use crate::nbd::{shutdown_on_signals, ExportSet, Server, ServerConfig, ShutdownHandle};

/// Where to listen, and how.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// A TCP address.
    pub bind: Option<SocketAddr>,
    /// A Unix socket path (removed first if it exists).
    pub socket: Option<PathBuf>,
    /// NBD limits.
    pub nbd: ServerConfig,
    /// What this server is, for the journal lease (`rbd-cg nbd serve on HOST, pid N`).
    pub description: String,
    /// How often the journal writer records the position applied to the members.
    pub position_interval: std::time::Duration,
    /// Journal appends in flight at once (0: the writer's default).
    pub appends_in_flight: usize,
    /// Stop on SIGTERM/SIGINT (the CLI); tests use [`serve_group_until`] instead.
    pub signals: bool,
}

/// Serves group `name` (in `ioctx`'s pool and namespace) until SIGTERM/SIGINT.
pub async fn serve_group(cluster: &Cluster, ioctx: IoCtx, name: &str, options: ServeOptions) -> RadosResult<()> {
    let stop = ShutdownHandle::new();
    serve_group_until(cluster, ioctx, name, options, stop).await
}

/// Serves group `name` until `stop` is triggered (or SIGTERM/SIGINT with `signals`).
pub async fn serve_group_until(
    cluster: &Cluster,
    ioctx: IoCtx,
    name: &str,
    options: ServeOptions,
    stop: ShutdownHandle,
) -> RadosResult<()> {
    let group_id = ready_group(&ioctx, name)?;
    let header: GroupHeader = ioctx.call(&header_object(&group_id), &GROUP_GET, &Empty {})?;
    if header.features & GroupHeader::FEATURE_JOURNALING != 0 {
        let mut config = WriterConfig { description: options.description.clone(), ..WriterConfig::default() };
        if !options.position_interval.is_zero() {
            config.position_interval = options.position_interval;
        }
        if options.appends_in_flight > 0 {
            config.max_appends_in_flight = options.appends_in_flight;
        }
        let writer = Arc::new(JournalWriter::open(cluster, ioctx, &group_id, config).await?);
        let exports = JournaledExports::new(Arc::clone(&writer));
        log_exports(name, exports.exports(), true);
        // A writer that fails (its lease lost to another server, an append refused) fails
        // every later request: stop serving, and say why.
        let failure = writer.failure();
        let watcher = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let e = failure.await;
                log::error!("the journal writer failed: {e}; stopping the server");
                stop.shutdown();
                e
            })
        };
        let served = run(Arc::new(exports), &options, stop).await;
        let failed = if watcher.is_finished() {
            watcher.await.ok()
        } else {
            watcher.abort();
            None
        };
        // The server has answered everything it read: the writer can finish.
        let writer = Arc::try_unwrap(writer)
            .map_err(|_| RadosError::new("the journal writer is still in use after the server stopped", libc::EBUSY))?;
        let finished = writer.shutdown().await;
        if let Some(e) = failed {
            return Err(e);
        }
        served?;
        finished
    } else {
        let mut images = Vec::new();
        for member in member_records(&ioctx, &group_id)? {
            if member.state != MemberState::Attached {
                return Err(RadosError::new(
                    format!("member {} of group {name} is {:?}", member.image.image_id, member.state),
                    libc::EBUSY,
                )
                .with_hint("An image add or rm was interrupted: rerun it, or run `rbd-cg repair`."));
            }
            let (label, _) = label(cluster, &member.image);
            let member_io = cluster.ioctx_in(member.image.pool_id, &member.image.namespace)?;
            let image = Image::open_by_id(&member_io, &member.image.image_id)
                .map_err(|e| e.context(format!("opening {label}")))?;
            images.push((label, AioImage::new(image)));
        }
        let exports = PlainExports::new(images)?;
        log_exports(name, &exports.exports(), false);
        run(Arc::new(exports), &options, stop).await
    }
}

fn ready_group(ioctx: &IoCtx, name: &str) -> RadosResult<String> {
    match dir_entry(ioctx, name)? {
        Some(entry) if entry.state == DirState::Ready => Ok(entry.id),
        Some(entry) => Err(RadosError::new(format!("group {name} is {:?}", entry.state), libc::EBUSY)
            .with_hint("An earlier operation on it was interrupted: rerun it, or run `rbd-cg repair`.")),
        None => Err(RadosError::new(format!("group {name}"), libc::ENOENT)),
    }
}

fn log_exports(group: &str, exports: &[MemberExport], journaled: bool) {
    let names: Vec<String> = exports.iter().map(|e| format!("{} ({} bytes)", e.name, e.size)).collect();
    log::info!("serving group {group}{}: {}", if journaled { " through its journal" } else { "" }, names.join(", "));
}

/// Listens where `options` say and serves `exports` until `stop`.
async fn run<B: ExportSet>(exports: Arc<B>, options: &ServeOptions, stop: ShutdownHandle) -> RadosResult<()> {
    let io = |what: String| {
        move |e: std::io::Error| RadosError::new(format!("{what}: {e}"), e.raw_os_error().unwrap_or(libc::EIO))
    };
    let server = Server::new(exports, options.nbd.clone());
    // The caller's stop (and the signals) trigger the server's own shutdown.
    let handle = server.shutdown_handle();
    let relay_stop = stop.clone();
    let relay = tokio::spawn(async move {
        relay_stop.wait().await;
        handle.shutdown();
    });
    let signals =
        if options.signals { Some(shutdown_on_signals(stop.clone()).map_err(io("signals".into()))?) } else { None };
    let mut serving = Vec::new();
    if let Some(addr) = options.bind {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(io(format!("listening on {addr}")))?;
        log::info!("NBD on {}", listener.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string()));
        let server = server.clone();
        serving.push(tokio::spawn(async move { server.serve_tcp(listener).await }));
    }
    if let Some(path) = &options.socket {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).map_err(io(format!("listening on {}", path.display())))?;
        log::info!("NBD on unix:{}", path.display());
        let server = server.clone();
        serving.push(tokio::spawn(async move { server.serve_unix(listener).await }));
    }
    if serving.is_empty() {
        return Err(RadosError::new("nothing to listen on: give --bind or --socket", libc::EINVAL));
    }
    for task in serving {
        let _ = task.await;
    }
    relay.abort();
    if let Some(signals) = signals {
        signals.abort();
    }
    if let Some(path) = &options.socket {
        let _ = std::fs::remove_file(path);
    }
    log::info!("NBD server stopped");
    Ok(())
}
