//! `rbd-cg journal enable|disable|status|replay` and `rbd-cg nbd serve`.

use clap::Subcommand;
use rbd_cg_client::journal::{JournalInfo, JournalOptions};
use rbd_cg_client::spec::GroupSpec;
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::journal::{DEFAULT_MAX_BYTES, DEFAULT_SEGMENT_SIZE};
use rbd_cg_datapath::nbd::ServerConfig;
use rbd_cg_datapath::serve::{serve_group, ServeOptions};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{connect, open, print_json, Format, Global};

#[derive(Subcommand)]
pub(crate) enum JournalCommand {
    /// Give the group one journal for all its members: every write through `rbd-cg nbd
    /// serve` goes to it, in one order; stock writers are refused (EROFS) meanwhile.
    Enable {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// Size of each journal segment object (bytes, or with K/M/G).
        #[arg(long, default_value_t = DEFAULT_SEGMENT_SIZE.to_string(), value_parser = parse_size)]
        object_size: String,
        /// Bound of journal space (bytes, or with K/M/G): a consumer further behind is disconnected.
        #[arg(long, default_value_t = DEFAULT_MAX_BYTES.to_string(), value_parser = parse_size)]
        max_size: String,
    },
    /// Apply the journal to the members, drop it, and give the members back to stock writers.
    Disable {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Show the journal: head, applied position, space, writer and consumers.
    Status {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Apply every journal entry not yet applied (what a restarted server does first).
    Replay {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum NbdCommand {
    /// Serve the group's members over NBD, one export per member (`pool[/namespace]/image`).
    /// Runs in the foreground; SIGTERM/SIGINT stops it after finishing what it acknowledged.
    Serve {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// Listen on this TCP address (HOST:PORT).
        #[arg(long, required_unless_present = "socket")]
        bind: Option<SocketAddr>,
        /// Listen on this Unix socket.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Most client connections at once.
        #[arg(long, default_value_t = 128)]
        max_connections: usize,
        /// How often the journal position applied to the members is recorded, in
        /// milliseconds: what a restart after a crash replays is at most what was applied
        /// since (applying an entry twice is harmless).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        position_interval_ms: u64,
        /// Journal appends in flight at once (group commit pipelined on the journal's
        /// segment; acknowledgements stay in journal order). 0: the writer's default (1).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=64))]
        appends_in_flight: u64,
    },
}

/// `1048576`, `16M`, `1G`, `512K` (powers of 1024) → the number, as text for clap.
fn parse_size(text: &str) -> std::result::Result<String, String> {
    size_bytes(text).map(|n| n.to_string())
}

fn size_bytes(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size"))?;
    n.checked_shl(shift).filter(|v| v >> shift == n).ok_or_else(|| format!("{text:?} is too large"))
}

fn status_json(info: &JournalInfo) -> serde_json::Value {
    json!({
        "enabled": info.enabled,
        "state": info.state,
        "head": info.head,
        "applied": info.applied,
        "bytes": info.bytes,
        "max_bytes": info.max_bytes,
        "object_size": info.segment_size,
        "segments": {"first": info.segments.0, "active": info.segments.1},
        "writer": info.writer.as_ref().map(|w| json!({
            "epoch": w.epoch, "client": w.client, "description": w.description, "since_ms": w.since_ms,
        })),
        "consumers": info.consumers.iter().map(|c| json!({
            "name": c.name, "position": c.position, "state": c.state, "updated_ms": c.updated_ms,
        })).collect::<Vec<_>>(),
        "members": info.members.iter().map(|(tag, image, label)| json!({
            "tag": tag, "image": label, "image_id": image.image_id, "pool_id": image.pool_id,
            "namespace": image.namespace,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn run_journal(global: &Global, action: &JournalCommand) -> Result<()> {
    match action {
        JournalCommand::Enable { group_spec, object_size, max_size } => {
            let spec = GroupSpec::parse(group_spec)?;
            let invalid = |e: String| Error::new(e, libc::EINVAL);
            let options = JournalOptions {
                segment_size: size_bytes(object_size).map_err(invalid)?,
                max_bytes: size_bytes(max_size).map_err(invalid)?,
            };
            open(&connect(global)?, &spec.location)?.journal_enable(&spec.name, &options)?;
        }
        JournalCommand::Disable { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.journal_disable(&spec.name)?;
        }
        JournalCommand::Replay { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let applied = open(&connect(global)?, &spec.location)?.journal_replay(&spec.name)?;
            if global.format != Format::Plain {
                print_json(global, &json!({"applied": applied}))?;
            } else {
                println!("applied up to entry {applied}");
            }
        }
        JournalCommand::Status { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let info = open(&connect(global)?, &spec.location)?.journal_status(&spec.name)?;
            match global.format {
                Format::Json | Format::Xml => print_json(global, &status_json(&info))?,
                Format::Plain if !info.enabled => println!("journaling is not enabled on {spec}"),
                Format::Plain => {
                    // Shaped like `rbd journal status`.
                    println!("state: {}", info.state);
                    println!("minimum_set: {}", info.segments.0);
                    println!("active_set: {}", info.segments.1);
                    println!("head: {}", info.head);
                    println!("applied: {}", info.applied);
                    println!("bytes: {} of {}", info.bytes, info.max_bytes);
                    match &info.writer {
                        Some(w) => println!("writer: {} ({}, epoch {})", w.description, w.client, w.epoch),
                        None => println!("writer: none"),
                    }
                    println!("registered clients:");
                    for c in &info.consumers {
                        println!(
                            "\t[id={}, commit_position=[positions=[[entry_tid={}]]], state={}]",
                            c.name, c.position, c.state
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn run_nbd(global: &Global, action: &NbdCommand) -> Result<()> {
    match action {
        NbdCommand::Serve { group_spec, bind, socket, max_connections, position_interval_ms, appends_in_flight } => {
            let spec = GroupSpec::parse(group_spec)?;
            let cluster = connect(global)?;
            // Checks the class, and gives the pool and namespace.
            let groups = open(&cluster, &spec.location)?;
            let ioctx = cluster.ioctx_in(groups.ioctx().pool_id(), &spec.location.namespace)?;
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let options = ServeOptions {
                bind: *bind,
                socket: socket.clone(),
                nbd: ServerConfig { max_connections: *max_connections, ..ServerConfig::default() },
                description: format!("rbd-cg nbd serve on {}, pid {}", host.trim(), std::process::id()),
                position_interval: Duration::from_millis(*position_interval_ms),
                appends_in_flight: usize::try_from(*appends_in_flight).unwrap_or(1),
                signals: true,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::new(format!("starting the async runtime: {e}"), libc::EIO))?;
            runtime.block_on(serve_group(&cluster, ioctx, &spec.name, options)).map_err(Error::from)?;
            drop(groups);
        }
    }
    Ok(())
}
