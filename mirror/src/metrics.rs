//! The daemon's metrics, in the Prometheus text format on `--metrics HOST:PORT` (any path;
//! `/metrics` by convention), the way operators already scrape `rbd-mirror` through the mgr.
//! Names and meanings are in `docs/MIRRORING.md`. Every series is labelled with the group
//! (`pool[/namespace]/name`).
//!
//! The HTTP side is deliberately minimal: a request line and headers of at most 8 KiB read
//! within 5 s, at most 16 connections at once, one response, close. Anything else gets an
//! error status or a closed connection, never a crash.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The states a group can be in, each a series of `rbd_cg_mirror_state`.
pub const STATES: &[&str] = &["syncing", "replaying", "stopped", "disconnected", "error", "standby", "primary"];

/// A group label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// `pool[/namespace]/name`.
    pub group: String,
}

/// A group and one of [`STATES`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `pool[/namespace]/name`.
    pub group: String,
    /// The state.
    pub state: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Journal entries applied.
    pub entries_replayed: Family<GroupLabel, Counter>,
    /// Bytes of entry payload applied.
    pub bytes_replayed: Family<GroupLabel, Counter>,
    /// Bytes copied by bootstraps and snapshot syncs.
    pub bytes_synced: Family<GroupLabel, Counter>,
    /// Entries the primary has that the mirror has not applied.
    pub entries_behind: Family<GroupLabel, Gauge>,
    /// Age of the oldest entry not applied, seconds.
    pub seconds_behind: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// When the mirror last was a complete copy (caught up, or a sync finished), Unix time.
    pub last_sync: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// 1 for the group's current state, 0 for the others.
    pub state: Family<StateLabel, Gauge>,
    /// 1 while this daemon is the active one for the group.
    pub leader: Family<GroupLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rbd_cg_mirror");
        let metrics = Metrics {
            registry: Mutex::new(Registry::default()),
            entries_replayed: Family::default(),
            bytes_replayed: Family::default(),
            bytes_synced: Family::default(),
            entries_behind: Family::default(),
            seconds_behind: Family::default(),
            last_sync: Family::default(),
            state: Family::default(),
            leader: Family::default(),
        };
        registry.register("entries_replayed", "Journal entries applied", metrics.entries_replayed.clone());
        registry.register("bytes_replayed", "Bytes of journal entries applied", metrics.bytes_replayed.clone());
        registry.register(
            "bytes_synced",
            "Bytes copied by bootstraps and snapshot syncs",
            metrics.bytes_synced.clone(),
        );
        registry.register("entries_behind", "Primary journal entries not applied yet", metrics.entries_behind.clone());
        registry.register("seconds_behind", "Age of the oldest entry not applied yet", metrics.seconds_behind.clone());
        registry.register(
            "last_sync_timestamp_seconds",
            "When the copy was last complete (caught up or synced)",
            metrics.last_sync.clone(),
        );
        registry.register("state", "1 for the group's current state", metrics.state.clone());
        registry.register("leader", "1 while this daemon mirrors the group", metrics.leader.clone());
        *metrics.registry.lock().unwrap_or_else(PoisonError::into_inner) = registry;
        metrics
    }

    /// Sets group `group`'s state to `state` (one of [`STATES`]).
    pub fn set_state(&self, group: &str, state: &str) {
        for s in STATES {
            let label = StateLabel { group: group.to_owned(), state: (*s).to_owned() };
            self.state.get_or_create(&label).set(i64::from(*s == state));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    log::info!("metrics on http://{}/metrics", listener.local_addr()?);
    let slots = Arc::new(Semaphore::new(16));
    loop {
        let (mut stream, _) = listener.accept().await?;
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let _permit = permit;
            let mut request = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            let response = match read {
                Ok(true) if request.starts_with(b"GET ") => {
                    let body = metrics.render();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                Ok(true) => "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                _ => "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_names() {
        let metrics = Metrics::new();
        let g = GroupLabel { group: "rbd/db".into() };
        metrics.entries_replayed.get_or_create(&g).inc_by(3);
        metrics.seconds_behind.get_or_create(&g).set(1.5);
        metrics.set_state("rbd/db", "replaying");
        let text = metrics.render();
        assert!(text.contains("rbd_cg_mirror_entries_replayed_total{group=\"rbd/db\"} 3"), "{text}");
        assert!(text.contains("rbd_cg_mirror_seconds_behind{group=\"rbd/db\"} 1.5"), "{text}");
        assert!(text.contains("rbd_cg_mirror_state{group=\"rbd/db\",state=\"replaying\"} 1"), "{text}");
        assert!(text.contains("rbd_cg_mirror_state{group=\"rbd/db\",state=\"error\"} 0"), "{text}");
    }
}
