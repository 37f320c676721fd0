//! `rbd-cg mirror enable|disable|status|promote|demote|resync|daemon`: group mirroring to a
//! second cluster (`docs/MIRRORING.md`). The daemon is its own crate (`rbd_cg_mirror`); this
//! only parses its arguments and starts it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use rbd_cg_client::mirror::MirrorStatus;
use rbd_cg_client::spec::{GroupSpec, PoolSpec};
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::mirror::MirrorMode;
use rbd_cg_rados::ConnectOptions;
use serde_json::json;

use crate::output::rbd_time;
use crate::{connect, open, print_json, Format, Global};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Replay the group journal in order (the group must be journaled).
    Journal,
    /// Ship crash-consistent group snapshots on an interval.
    Snapshot,
}

#[derive(Subcommand)]
pub(crate) enum MirrorCommand {
    /// Mirror the group (run on the primary): a daemon at the secondary site copies it.
    Enable {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// How: `journal` (needs `rbd-cg journal enable`) or `snapshot`.
        #[arg(long, value_enum)]
        mode: ModeArg,
        /// Snapshot mode: time between group snapshots (e.g. 30s, 5m, 1h).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Stop mirroring the group (on either side; a secondary's copy stays read-only until
    /// disabled there too).
    Disable {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Show the group's mirroring state (either side).
    Status {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Make this side the primary. Without --force the old primary must be demoted and
    /// everything it wrote applied here.
    Promote {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// Promote although the primary is not demoted (it is lost): the copy is at a
        /// crash-consistent state of it.
        #[arg(long)]
        force: bool,
    },
    /// Make this primary read-only, so that the other side can be promoted.
    Demote {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Copy the whole group again from the primary (on a secondary, or a demoted primary).
    Resync {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Run the mirror daemon at the secondary site (foreground; SIGTERM/SIGINT stops it).
    Daemon {
        /// Ceph config file of the primary cluster.
        #[arg(long)]
        peer_conf: PathBuf,
        /// User to connect to the primary as, without "client." (default: admin).
        #[arg(long)]
        peer_id: Option<String>,
        /// Keyring of that user.
        #[arg(long)]
        peer_keyring: Option<PathBuf>,
        /// Pool (or POOL/NAMESPACE) whose groups are mirrored; repeatable (default: rbd).
        #[arg(long = "pool")]
        pools: Vec<String>,
        /// Serve Prometheus metrics on HOST:PORT.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Write the bound metrics address to this file (with port 0).
        #[arg(long, hide = true)]
        metrics_addr_file: Option<PathBuf>,
        /// Limit each member's bootstrap copy to this many bytes per second (K/M/G suffixes).
        #[arg(long, value_parser = parse_bytes)]
        sync_bandwidth: Option<u64>,
    },
}

/// `30`, `30s`, `5m`, `1h`, `1d`.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration (like 30s, 5m, 1h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// `1048576`, `512K`, `32M`, `1G`.
fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (number, shift) = match text.chars().last() {
        Some('K' | 'k') => (&text[..text.len() - 1], 10),
        Some('M' | 'm') => (&text[..text.len() - 1], 20),
        Some('G' | 'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a size (like 64M)"))?;
    n.checked_shl(shift).filter(|v| v >> shift == n).ok_or_else(|| format!("{text:?} is too large"))
}

pub(crate) fn run_mirror(global: &Global, action: &MirrorCommand) -> Result<()> {
    match action {
        MirrorCommand::Enable { group_spec, mode, interval } => {
            let spec = GroupSpec::parse(group_spec)?;
            let mode = match mode {
                ModeArg::Journal => MirrorMode::Journal,
                ModeArg::Snapshot => MirrorMode::Snapshot,
            };
            open(&connect(global)?, &spec.location)?.mirror_enable(&spec.name, mode, interval.as_secs())?;
        }
        MirrorCommand::Disable { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.mirror_disable(&spec.name)?;
        }
        MirrorCommand::Status { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let status = open(&connect(global)?, &spec.location)?.mirror_status(&spec.name)?;
            match global.format {
                Format::Json | Format::Xml => print_json(global, &json!(status))?,
                Format::Plain => print_status(&spec.name, &status),
            }
        }
        MirrorCommand::Promote { group_spec, force } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.mirror_promote(&spec.name, *force)?;
        }
        MirrorCommand::Demote { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.mirror_demote(&spec.name)?;
        }
        MirrorCommand::Resync { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.mirror_resync(&spec.name)?;
        }
        MirrorCommand::Daemon {
            peer_conf,
            peer_id,
            peer_keyring,
            pools,
            metrics,
            metrics_addr_file,
            sync_bandwidth,
        } => {
            let pools = pools.iter().map(|p| PoolSpec::parse(p)).collect::<Result<Vec<_>>>()?;
            let config = rbd_cg_mirror::DaemonConfig {
                local: ConnectOptions {
                    conf_path: global.conf.clone(),
                    cluster_name: global.cluster.clone(),
                    id: global.id.clone(),
                    keyring: global.keyring.clone(),
                    extra: Vec::new(),
                },
                peer: ConnectOptions {
                    conf_path: Some(peer_conf.clone()),
                    cluster_name: None,
                    id: peer_id.clone(),
                    keyring: peer_keyring.clone(),
                    extra: Vec::new(),
                },
                pools,
                metrics: *metrics,
                metrics_addr_file: metrics_addr_file.clone(),
                sync_bandwidth: *sync_bandwidth,
                ..rbd_cg_mirror::DaemonConfig::default()
            };
            if !peer_conf.exists() {
                return Err(Error::new(format!("--peer-conf {}", peer_conf.display()), libc::ENOENT));
            }
            rbd_cg_mirror::run(config)?;
        }
    }
    Ok(())
}

/// Plain `mirror status`, shaped like `rbd mirror image status`.
fn print_status(name: &str, s: &MirrorStatus) {
    println!("{name}:");
    if !s.enabled {
        println!("  state:       disabled");
        return;
    }
    println!("  mode:             {}", s.mode);
    println!("  role:             {}", s.role);
    println!("  state:            {}", s.state);
    println!("  description:      {}", s.description);
    println!("  primary_position: {}", s.primary_position);
    println!("  mirror_position:  {}", s.mirror_position);
    println!("  entries_behind:   {}", s.entries_behind);
    println!("  seconds_behind:   {:.1}", s.seconds_behind);
    if let (Some(snap), Some(ms)) = (&s.last_snapshot, s.last_snapshot_ms) {
        println!("  last_snapshot:    {snap} ({})", rbd_time(ms));
    }
    if let Some(at) = s.demoted_at {
        println!("  demoted_at:       {at}");
    }
    if s.resync_requested {
        println!("  resync:           requested");
    }
    if !s.daemon.is_empty() {
        println!("  daemon:           {}", s.daemon);
        println!("  last_update:      {}", rbd_time(s.updated_ms));
    }
    if !s.members.is_empty() {
        println!("  members:");
        for m in &s.members {
            println!("    {}: {} ({:.0}%)", m.image, m.state, m.progress);
        }
    }
    if !s.peers.is_empty() {
        println!("  peers:");
        for p in &s.peers {
            println!("    {}: {}, position {}, {} behind", p.consumer, p.state, p.position, p.entries_behind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
