//! The group mirror daemon (`rbd-cg mirror daemon`): keeps the groups of a primary cluster
//! that have mirroring enabled copied to this (secondary) cluster, each one a crash-consistent
//! copy of the whole group at every instant (`docs/MIRRORING.md`).
//!
//! Like `rbd-mirror` it runs at the secondary site and pulls: it connects to the local
//! cluster and to the peer (`--peer-conf`), looks every few seconds for groups with a mirror
//! record in the peer's pools, and mirrors each one to the same pool, namespace and group
//! name here ([`group`]). Per group, one daemon is active ([`leader`]); the others stand by.
//! Journal replay follows the entries' dependencies ([`waves`]) so that the copy is a state the primary's
//! applications could have seen after a crash, whenever anyone looks and whatever dies.
//! Members are copied by [`copy`]; [`metrics`] serves the Prometheus text format.
//!
//! Layering: this crate sits on the control-plane client (`rbd_cg_client`), the journal
//! (`rbd_cg_journal`) and `rbd_cg_rados`; the CLI only parses arguments and calls [`run`].

#![forbid(unsafe_code)]

pub mod copy;
pub mod group;
pub mod leader;
pub mod metrics;
pub mod snapshot;
pub mod waves;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rbd_cg_client::groups::Groups;
use rbd_cg_client::spec::PoolSpec;
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::mirror::ReplayPhase;
use rbd_cg_rados::{Cluster, ConnectOptions};

use crate::group::{location_ioctx, mirror_group, Context, Outcome};
use crate::leader::Leadership;
use crate::metrics::{GroupLabel, Metrics};

/// How `rbd-cg mirror daemon` was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The local (secondary) cluster.
    pub local: ConnectOptions,
    /// The peer (primary) cluster: its config file, user and keyring.
    pub peer: ConnectOptions,
    /// Pools (and namespaces) whose groups are mirrored; the same names exist on both sides.
    pub pools: Vec<PoolSpec>,
    /// Where to serve metrics.
    pub metrics: Option<SocketAddr>,
    /// How often to look for groups to mirror.
    pub scan_interval: Duration,
    /// How long replay sleeps when it has caught up.
    pub idle_poll: Duration,
    /// Where to write the metrics address once bound (tests ask for port 0).
    pub metrics_addr_file: Option<PathBuf>,
    /// Bytes per second each member's copy may take (`--sync-bandwidth`).
    pub sync_bandwidth: Option<u64>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            local: ConnectOptions::default(),
            peer: ConnectOptions::default(),
            pools: Vec::new(),
            metrics: None,
            scan_interval: Duration::from_secs(2),
            idle_poll: Duration::from_millis(20),
            metrics_addr_file: None,
            sync_bandwidth: None,
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT: every group's entries in flight are applied and its
/// state recorded, the leases released; then it returns.
pub fn run(config: DaemonConfig) -> Result<()> {
    let mut peer_options = config.peer.clone();
    // A primary that is gone must not hang the daemon: calls to it fail after a while and the
    // group is retried; promotion never waits for the peer.
    for (key, value) in [("rados_osd_op_timeout", "15"), ("rados_mon_op_timeout", "15")] {
        if !peer_options.extra.iter().any(|(k, _)| k == key) {
            peer_options.extra.push((key.into(), value.into()));
        }
    }
    let local =
        Cluster::connect(&config.local).map_err(|e| Error::from(e).context("connecting to the local cluster"))?;
    let peer = Cluster::connect(&peer_options).map_err(|e| Error::from(e).context("connecting to the peer cluster"))?;
    let local_fsid = local.fsid()?;
    let peer_fsid = peer.fsid()?;
    if local_fsid == peer_fsid {
        return Err(Error::new("the peer is this cluster", libc::EINVAL)
            .with_hint("--peer-conf must name the primary cluster's configuration."));
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let description =
        format!("rbd-cg mirror daemon on {host}, pid {}, client.{}", std::process::id(), local.instance_id());
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let signals = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("starting a runtime: {e}"), libc::EIO))?;
    {
        let stop = Arc::clone(&stop);
        signals.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                log::error!("cannot listen for SIGTERM/SIGINT");
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            log::info!("stopping: applying what is in flight");
            stop.store(true, Ordering::SeqCst);
        });
    }
    if let Some(addr) = config.metrics {
        let listener = signals
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| Error::new(format!("binding the metrics address {addr}: {e}"), libc::EADDRINUSE))?;
        let bound = listener.local_addr().map_err(|e| Error::new(e.to_string(), libc::EIO))?;
        if let Some(path) = &config.metrics_addr_file {
            std::fs::write(path, bound.to_string()).map_err(|e| Error::new(e.to_string(), libc::EIO))?;
        }
        drop(listener);
        let metrics = Arc::clone(&metrics);
        signals.spawn(async move {
            if let Err(e) = metrics::serve(bound, metrics).await {
                log::error!("metrics server: {e}");
            }
        });
    }
    let ctx = Arc::new(Context {
        local,
        peer,
        local_fsid,
        peer_fsid,
        description,
        metrics,
        stop: Arc::clone(&stop),
        idle_poll: config.idle_poll,
        sync_bandwidth: config.sync_bandwidth,
    });
    log::info!("{}: mirroring from cluster {} into cluster {}", ctx.description, ctx.peer_fsid, ctx.local_fsid);
    let pools = if config.pools.is_empty() { vec![PoolSpec::parse("rbd")?] } else { config.pools.clone() };
    let mut workers: HashMap<(String, String, String), JoinHandle<()>> = HashMap::new();
    let mut last_scan: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        if last_scan.is_none_or(|t| t.elapsed() >= config.scan_interval) {
            last_scan = Some(Instant::now());
            for location in &pools {
                match mirrored_groups(&ctx.peer, location) {
                    Ok(names) => {
                        for name in names {
                            let key = (location.pool.clone(), location.namespace.clone(), name.clone());
                            if workers.get(&key).is_some_and(|h| !h.is_finished()) {
                                continue;
                            }
                            let (ctx, location) = (Arc::clone(&ctx), location.clone());
                            let spawned = std::thread::Builder::new()
                                .name(format!("mirror {name}"))
                                .spawn(move || group_worker(&ctx, &location, &name));
                            match spawned {
                                Ok(handle) => {
                                    workers.insert(key, handle);
                                }
                                Err(e) => log::error!("starting a worker: {e}"),
                            }
                        }
                    }
                    Err(e) => log::warn!("listing mirrored groups in {location} of the peer: {e}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, handle) in workers {
        let _ = handle.join();
    }
    log::info!("stopped");
    Ok(())
}

/// The groups in `location` of `cluster` that have a mirror record.
fn mirrored_groups(cluster: &Cluster, location: &PoolSpec) -> Result<Vec<String>> {
    let groups = Groups::open(cluster, location)?;
    let mut names = Vec::new();
    for name in groups.list()? {
        let Ok(id) = groups.group_id(&name) else { continue };
        if groups.mirror_record(&id)?.is_some() {
            names.push(name);
        }
    }
    Ok(names)
}

/// One group: take its lease (or stand by), mirror it, repeat until the daemon stops.
fn group_worker(ctx: &Context, location: &PoolSpec, name: &str) {
    let group = format!("{location}/{name}");
    let gl = GroupLabel { group: group.clone() };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("group {group}: starting a runtime: {e}");
            return;
        }
    };
    let cookie = format!("mirror {}", ctx.local.instance_id());
    let mut backoff = Duration::from_secs(1);
    let mut standby_logged = false;
    while !ctx.stop.load(Ordering::SeqCst) {
        let lease = location_ioctx(&ctx.local, location).and_then(|io| {
            let renew_io = location_ioctx(&ctx.local, location)?;
            Leadership::try_take(io, renew_io, name, &ctx.description, &cookie).map_err(Error::from)
        });
        let pause = match lease {
            Ok(Some(lease)) => {
                standby_logged = false;
                ctx.metrics.leader.get_or_create(&gl).set(1);
                let lost = lease.lost();
                // A bug must cost this group a retry, never the daemon (or a thread that
                // silently stops mirroring it).
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    mirror_group(ctx, &runtime, location, name, &lost)
                }))
                .unwrap_or_else(|_| Err(Error::new("mirroring panicked (a bug; see the log)", libc::EIO)));
                drop(lease);
                ctx.metrics.leader.get_or_create(&gl).set(0);
                match outcome {
                    Ok(Outcome::Again) => Duration::ZERO,
                    Ok(Outcome::Promoted) => {
                        log::info!("group {group}: promoted here; replay stopped");
                        ctx.metrics.set_state(&group, "primary");
                        Duration::from_secs(2)
                    }
                    Ok(Outcome::Idle | Outcome::Stopped) => Duration::from_secs(2),
                    Err(e) => {
                        log::error!("group {group}: {e}");
                        ctx.metrics.set_state(&group, "error");
                        record_error(ctx, location, name, &e);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        backoff
                    }
                }
            }
            Ok(None) => {
                if !standby_logged {
                    log::info!("group {group}: another daemon is active; standing by");
                    standby_logged = true;
                }
                ctx.metrics.set_state(&group, "standby");
                Duration::from_secs(2)
            }
            Err(e) => {
                log::warn!("group {group}: {e}");
                Duration::from_secs(5)
            }
        };
        if !matches!(pause, d if d < Duration::from_secs(2)) {
            backoff = backoff.min(pause.max(Duration::from_secs(1)));
        }
        let until = Instant::now() + pause;
        while Instant::now() < until && !ctx.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Best effort: the error goes to the secondary's record, for `mirror status`.
fn record_error(ctx: &Context, location: &PoolSpec, name: &str, error: &Error) {
    let Ok(local) = Groups::open(&ctx.local, location) else { return };
    let Ok(Some(id)) = local.dir_entry_id(name) else { return };
    let Ok(Some(record)) = local.mirror_record(&id) else { return };
    let mut replay = record.replay;
    if replay.phase == ReplayPhase::Disconnected {
        return;
    }
    replay.phase = ReplayPhase::Error;
    replay.description = error.to_string().chars().take(1000).collect();
    replay.daemon = ctx.description.clone();
    let _ = local.mirror_set_replay(&id, &replay, false);
}
