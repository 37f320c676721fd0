//! `rbd-cg`: consistency groups for RBD, with the grammar of `rbd group` minus the word
//! `group`. Output and errors follow the `rbd` tool: plain or JSON on stdout, errors as
//! `rbd-cg: <what failed>: (<errno>) <strerror>` on stderr with a non-zero exit status.

#![forbid(unsafe_code)]

mod admin;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use rbd_cg_client::clone::{CloneFormat, CloneNaming, CloneOptions};
use rbd_cg_client::faults::FaultPlan;
use rbd_cg_client::groups::{GroupInfo, GroupState, Groups};
use rbd_cg_client::members::image_by_id;
use rbd_cg_client::progress::Progress;
use rbd_cg_client::snapshots::SnapshotInfo;
use rbd_cg_client::snapshots::{FenceMode, SnapCreateOptions};
use rbd_cg_client::spec::{GroupSnapSpec, GroupSpec, ImageSpec, PoolSpec};
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::names::{MAX_GROUP_MEMBERS, MAX_GROUP_SNAPSHOTS};
use rbd_cg_rados::{Cluster, ConnectOptions};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

mod journal;

#[derive(Parser)]
#[command(name = "rbd-cg", version, long_version = admin::LONG_VERSION.as_str())]
#[command(about = "Consistency groups for Ceph RBD (class rbd_cg)")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
pub(crate) struct Global {
    /// Ceph config file (default: $CEPH_CONF, /etc/ceph/$cluster.conf, ...).
    #[arg(short = 'c', long = "conf", global = true)]
    conf: Option<PathBuf>,
    /// Cluster name.
    #[arg(long, global = true)]
    cluster: Option<String>,
    /// Client id, without "client." (default: admin or CEPH_ARGS).
    #[arg(long, global = true)]
    id: Option<String>,
    /// Keyring file.
    #[arg(long, global = true)]
    keyring: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Plain, global = true)]
    pub(crate) format: Format,
    /// Pretty-print JSON output.
    #[arg(long, global = true)]
    pub(crate) pretty_format: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CloneFormatArg {
    Auto,
    #[value(name = "1")]
    V1,
    #[value(name = "2")]
    V2,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Plain,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a group.
    Create {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Show a group.
    Info {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// List the groups of a pool (and namespace).
    #[command(alias = "list")]
    Ls {
        /// [POOL[/NAMESPACE]]
        pool_spec: Option<String>,
    },
    /// Rename a group.
    Rename {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// New name (same pool and namespace).
        new_name: String,
    },
    /// Remove a group.
    #[command(alias = "remove")]
    Rm {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// Also remove the group's snapshots and members first.
        #[arg(long)]
        force: bool,
        /// Do not show a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Create a group whose members are clones of a group snapshot's member snapshots.
    Clone {
        /// [POOL[/NAMESPACE]/]GROUP@SNAP
        snap_spec: String,
        /// [POOL[/NAMESPACE]/]NEW_GROUP (same pool and namespace as the source group).
        new_group_spec: String,
        /// Names of the clones (each made in its source image's pool and namespace):
        /// `{image}` source image, `{group}` new group, `{snap}` snapshot, `{source_group}`.
        #[arg(long, default_value = rbd_cg_client::clone::DEFAULT_IMAGE_NAME_FORMAT)]
        image_name_format: String,
        /// RBD clone format: `auto` (2 when the cluster requires Mimic+ clients, else 1),
        /// `1` (protects the member snapshots) or `2`.
        #[arg(long, value_enum, default_value_t = CloneFormatArg::Auto)]
        clone_format: CloneFormatArg,
    },
    /// Manage the images of a group.
    Image {
        #[command(subcommand)]
        action: ImageCommand,
    },
    /// Manage the snapshots of a group.
    Snap {
        #[command(subcommand)]
        action: SnapCommand,
    },
    /// One journal for the whole group (enable, disable, status, replay).
    Journal {
        #[command(subcommand)]
        action: journal::JournalCommand,
    },
    /// Serve the group's members over NBD.
    Nbd {
        #[command(subcommand)]
        action: journal::NbdCommand,
    },
    /// Finish or undo whatever an interrupted command left behind.
    Repair {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// Only report; change nothing (exit status 1 when something needs repair).
        #[arg(long)]
        check: bool,
    },
    /// Show the client's versions and which rbd_cg class version each OSD runs.
    ///
    /// Each OSD is asked through an object of a placement group it leads (of POOLs, default
    /// every pool): watch a rolling upgrade of the class with it.
    Versions {
        /// Pools whose objects to ask through (default: every pool).
        pools: Vec<String>,
    },
    /// Print a shell completion script (e.g. `rbd-cg completions bash > /etc/bash_completion.d/rbd-cg`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per command into DIR.
    Man {
        /// Write rbd-cg.1, rbd-cg-snap-create.1, ... into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Add an image (format 2) to a group.
    Add {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// [POOL[/NAMESPACE]/]IMAGE
        image_spec: String,
        /// Refuse the add when the group already has this many members.
        #[arg(long, default_value_t = MAX_GROUP_MEMBERS)]
        max_members: u32,
    },
    /// Remove an image from a group (by spec, or by id if it was deleted behind our back).
    #[command(alias = "remove")]
    Rm {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// [POOL[/NAMESPACE]/]IMAGE
        #[arg(required_unless_present = "image_id", conflicts_with = "image_id")]
        image_spec: Option<String>,
        /// Image id (see `image ls`), for images that no longer exist.
        #[arg(long)]
        image_id: Option<String>,
        /// [POOL[/NAMESPACE]] of --image-id (default: the group's).
        #[arg(long, requires = "image_id")]
        image_pool: Option<String>,
    },
    /// List the images of a group.
    #[command(alias = "list")]
    Ls {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
}

#[derive(Subcommand)]
enum SnapCommand {
    /// Snapshot every member of a group at one point in time (crash-consistent).
    ///
    /// Writers on other clients are fenced through the exclusive-lock protocol: their I/O
    /// pauses (never fails) from the first member's fence until the last member is cut.
    Create {
        /// [POOL[/NAMESPACE]/]GROUP@SNAP
        snap_spec: String,
        /// Refuse when the group already has this many snapshots.
        #[arg(long, default_value_t = MAX_GROUP_SNAPSHOTS)]
        max_snapshots: u32,
        /// Do not notify quiesce hooks (e.g. rbd-nbd's) before fencing.
        #[arg(long)]
        skip_quiesce: bool,
        /// Go on when a quiesce hook fails.
        #[arg(long)]
        ignore_quiesce_error: bool,
        /// Snapshot members without the exclusive-lock feature unfenced (NOT crash-consistent
        /// for them); without it such members are refused.
        #[arg(long, conflicts_with = "no_fence")]
        allow_unfenced: bool,
        /// Do not fence at all: one member after another (NOT crash-consistent).
        #[arg(long)]
        no_fence: bool,
        /// Seconds fencing all members may take.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        fence_timeout: u64,
        /// Seconds after which the OSD drops the watches of a crashed rbd-cg, freeing writers.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(6..=3600))]
        watch_timeout: u32,
        /// Do not show a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// List a group's snapshots in creation order.
    #[command(alias = "list")]
    Ls {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
    },
    /// Show a group snapshot and its member image snapshots.
    Info {
        /// [POOL[/NAMESPACE]/]GROUP@SNAP
        snap_spec: String,
    },
    /// Rename a group snapshot.
    Rename {
        /// [POOL[/NAMESPACE]/]GROUP@SNAP
        snap_spec: String,
        /// New snapshot name.
        new_name: String,
    },
    /// Remove a group snapshot and its member image snapshots.
    #[command(alias = "remove")]
    Rm {
        /// [POOL[/NAMESPACE]/]GROUP@SNAP
        snap_spec: String,
        /// Do not show a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Roll every member back to a group snapshot.
    Rollback {
        /// [POOL[/NAMESPACE]/]GROUP@SNAP
        snap_spec: String,
        /// Do not show a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
}

pub(crate) fn connect(global: &Global) -> Result<Cluster> {
    let options = ConnectOptions {
        conf_path: global.conf.clone(),
        cluster_name: global.cluster.clone(),
        id: global.id.clone(),
        keyring: global.keyring.clone(),
        extra: Vec::new(),
    };
    Cluster::connect(&options).map_err(|e| Error::from(e).context("connecting to the cluster"))
}

pub(crate) fn open(cluster: &Cluster, location: &PoolSpec) -> Result<Groups> {
    let mut groups = Groups::open(cluster, location)?;
    groups.set_fault_plan(FaultPlan::from_env()?);
    Ok(groups)
}

pub(crate) fn print_json(global: &Global, value: &serde_json::Value) -> Result<()> {
    let text = if global.pretty_format { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) };
    let text = text.map_err(|e| Error::new(format!("formatting JSON: {e}"), libc::EIO))?;
    println!("{text}");
    Ok(())
}

/// `created_ms` as `rbd` prints a timestamp (ctime's layout, `Mon Dec  7 17:58:07 2026`), in UTC
/// (the plain output only; JSON keeps the milliseconds).
fn human_time(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, days >= 0).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{} {} {day:>2} {hour:02}:{minute:02}:{second:02} {year} UTC",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

fn info_json(info: &GroupInfo) -> serde_json::Value {
    let mut value = json!({
        "name": info.name,
        "id": info.id,
        "pool": info.pool,
        "namespace": info.namespace,
        "state": info.state.as_str(),
        "created_ms": info.created_ms,
        "image_count": info.member_count,
        "snapshot_count": info.snapshot_count,
    });
    match &info.state {
        GroupState::RenamingTo(to) => value["renaming_to"] = json!(to),
        GroupState::RenamingFrom(from) => value["renaming_from"] = json!(from),
        _ => {}
    }
    value
}

/// Runs the command; `Ok` carries the exit status (0, or 1 for `repair --check` findings).
fn run(cli: Cli) -> Result<i32> {
    let global = &cli.global;
    match &cli.command {
        Command::Create { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.create(&spec.name)?;
        }
        Command::Info { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let info = open(&connect(global)?, &spec.location)?.info(&spec.name)?;
            match global.format {
                Format::Json => print_json(global, &info_json(&info))?,
                Format::Plain => {
                    println!("group name: {}", info.name);
                    println!("\tid: {}", info.id);
                    println!("\tpool: {}", info.pool);
                    println!("\tnamespace: {}", info.namespace);
                    println!("\tstate: {}", info.state);
                    println!("\tcreate_timestamp: {}", human_time(info.created_ms));
                    println!("\timages: {}", info.member_count);
                    println!("\tsnapshots: {}", info.snapshot_count);
                }
            }
        }
        Command::Ls { pool_spec } => {
            let location = PoolSpec::parse(pool_spec.as_deref().unwrap_or(""))?;
            let groups = open(&connect(global)?, &location)?;
            match global.format {
                Format::Json => print_json(global, &json!(groups.list()?))?,
                Format::Plain => {
                    let mut out = std::io::stdout().lock();
                    groups.for_each(|g| {
                        writeln!(out, "{}", g.name).map_err(|e| Error::new(format!("writing: {e}"), libc::EIO))
                    })?;
                }
            }
        }
        Command::Rename { group_spec, new_name } => {
            let spec = GroupSpec::parse(group_spec)?;
            open(&connect(global)?, &spec.location)?.rename(&spec.name, new_name)?;
        }
        Command::Rm { group_spec, force, no_progress } => {
            let spec = GroupSpec::parse(group_spec)?;
            let mut groups = open(&connect(global)?, &spec.location)?;
            with_progress(&mut groups, !no_progress, |g| g.remove_with(&spec.name, *force))?;
        }
        Command::Clone { snap_spec, new_group_spec, image_name_format, clone_format } => {
            let source = GroupSnapSpec::parse(snap_spec)?;
            let target = GroupSpec::parse(new_group_spec)?;
            if target.location != source.group.location {
                return Err(Error::new(
                    format!(
                        "clone {snap_spec} as {new_group_spec}: the new group must be in {}",
                        source.group.location
                    ),
                    libc::EINVAL,
                ));
            }
            let options = CloneOptions {
                naming: CloneNaming::Format(image_name_format.clone()),
                format: match clone_format {
                    CloneFormatArg::Auto => CloneFormat::Auto,
                    CloneFormatArg::V1 => CloneFormat::V1,
                    CloneFormatArg::V2 => CloneFormat::V2,
                },
            };
            let groups = open(&connect(global)?, &source.group.location)?;
            let made = groups.clone_group(&source.group.name, &source.snap, &target.name, &options)?;
            match global.format {
                Format::Json => {
                    let images: Vec<serde_json::Value> = made
                        .iter()
                        .map(|c| {
                            json!({
                                "pool": c.pool, "namespace": c.image.namespace, "name": c.name, "id": c.image.image_id,
                                "parent": {"image": c.source_name, "image_id": c.source.image_id, "snap": c.source_snap},
                            })
                        })
                        .collect();
                    print_json(global, &json!({"group": target.name, "images": images}))?
                }
                Format::Plain => {
                    for c in &made {
                        println!("{}/{} <- {}@{}", c.pool, c.name, c.source_name, c.source_snap);
                    }
                }
            }
        }
        Command::Versions { pools } => {
            admin::run_versions(&connect(global)?, pools, global.format == Format::Json, global.pretty_format)?
        }
        Command::Completions { shell } => admin::completions(Cli::command(), *shell)?,
        Command::Man { dir } => admin::man(Cli::command(), dir.as_deref())?,
        Command::Image { action } => run_image(global, action)?,
        Command::Journal { action } => journal::run_journal(global, action)?,
        Command::Nbd { action } => journal::run_nbd(global, action)?,
        Command::Snap { action } => run_snap(global, action)?,
        Command::Repair { group_spec, check } => {
            let spec = GroupSpec::parse(group_spec)?;
            let report = open(&connect(global)?, &spec.location)?.repair(&spec.name, *check)?;
            match global.format {
                Format::Json => print_json(global, &json!(report))?,
                Format::Plain if report.findings.is_empty() => println!("group {spec}: consistent"),
                Format::Plain => report.findings.iter().for_each(|f| println!("{f}")),
            }
            if *check && !report.findings.is_empty() {
                return Ok(1);
            }
        }
    }
    Ok(0)
}

fn run_image(global: &Global, action: &ImageCommand) -> Result<()> {
    match action {
        ImageCommand::Add { group_spec, image_spec, max_members } => {
            let spec = GroupSpec::parse(group_spec)?;
            let image = ImageSpec::parse(image_spec)?;
            open(&connect(global)?, &spec.location)?.add_image(&spec.name, &image, *max_members)?;
        }
        ImageCommand::Rm { group_spec, image_spec, image_id, image_pool } => {
            let spec = GroupSpec::parse(group_spec)?;
            let groups = open(&connect(global)?, &spec.location)?;
            let image = match (image_spec, image_id) {
                (Some(image_spec), _) => groups.resolve_image(&ImageSpec::parse(image_spec)?)?,
                (None, Some(id)) => {
                    let location = match image_pool {
                        Some(pool) => PoolSpec::parse(pool)?,
                        None => spec.location.clone(),
                    };
                    image_by_id(&groups, &location, id)?
                }
                (None, None) => return Err(Error::new("image rm needs IMAGE_SPEC or --image-id", libc::EINVAL)),
            };
            groups.remove_image(&spec.name, &image)?;
        }
        ImageCommand::Ls { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let members = open(&connect(global)?, &spec.location)?.list_images(&spec.name)?;
            match global.format {
                Format::Json => {
                    let list: Vec<_> = members
                        .iter()
                        .map(|m| {
                            json!({
                                "image": m.name,
                                "id": m.image.image_id,
                                "pool": m.pool,
                                "pool_id": m.image.pool_id,
                                "namespace": m.image.namespace,
                                "state": m.state,
                            })
                        })
                        .collect();
                    print_json(global, &json!(list))?;
                }
                Format::Plain => {
                    for m in &members {
                        let location = match m.image.namespace.as_str() {
                            "" => m.pool.clone(),
                            ns => format!("{}/{ns}", m.pool),
                        };
                        match (&m.name, m.state) {
                            (Some(name), "attached") => println!("{location}/{name}"),
                            (Some(name), state) => println!("{location}/{name} ({state})"),
                            (None, state) => println!("{location}/<id {}> ({state})", m.image.image_id),
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn snapshot_json(snapshot: &SnapshotInfo, with_images: bool) -> serde_json::Value {
    let mut value = json!({
        "id": snapshot.id,
        "name": snapshot.name,
        "seq": snapshot.seq,
        "state": snapshot.state,
        "created_ms": snapshot.created_ms,
        "image_count": snapshot.images.len(),
    });
    if let Some(position) = snapshot.journal_position {
        value["journal_position"] = json!(position);
    }
    if with_images {
        value["images"] = snapshot
            .images
            .iter()
            .map(|i| {
                json!({
                    "pool": i.pool,
                    "pool_id": i.image.pool_id,
                    "namespace": i.image.namespace,
                    "image": i.image_name,
                    "image_id": i.image.image_id,
                    "snap_id": i.snap_id,
                    "snap_name": i.snap_name,
                    "present": i.present,
                })
            })
            .collect();
    }
    value
}

/// A progress bar on stderr ("Creating group snapshot: 42% complete", like `rbd`), fed by
/// the library's progress reports; hidden with `--no-progress` or when stderr is not a
/// terminal.
fn progress_bar(enabled: bool) -> (Progress, indicatif::ProgressBar) {
    if !enabled || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return (Progress::none(), indicatif::ProgressBar::hidden());
    }
    let bar = indicatif::ProgressBar::new(100);
    let style = indicatif::ProgressStyle::with_template("{msg}: {percent:>3}% complete")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    let shown = bar.clone();
    let progress = Progress::new(move |what, done, total| {
        shown.set_message(what.to_owned());
        shown.set_length(total.max(1));
        shown.set_position(done);
    });
    (progress, bar)
}

/// Runs `op` with a progress bar (see [`progress_bar`]) on `groups`.
fn with_progress<T>(groups: &mut Groups, enabled: bool, op: impl FnOnce(&Groups) -> Result<T>) -> Result<T> {
    let (progress, bar) = progress_bar(enabled);
    groups.set_progress(progress);
    let result = op(groups);
    match &result {
        Ok(_) => bar.finish_and_clear(),
        Err(_) => bar.abandon(),
    }
    result
}

/// A progress bar on stderr for rollbacks, hidden when stderr is not a terminal.
fn rollback_bar(enabled: bool) -> indicatif::ProgressBar {
    if !enabled || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(100);
    let style = indicatif::ProgressStyle::with_template("Rolling back to group snapshot: {percent:>3}% complete {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn run_snap(global: &Global, action: &SnapCommand) -> Result<()> {
    match action {
        SnapCommand::Create {
            snap_spec,
            max_snapshots,
            skip_quiesce,
            ignore_quiesce_error,
            allow_unfenced,
            no_fence,
            fence_timeout,
            watch_timeout,
            no_progress,
        } => {
            let spec = GroupSnapSpec::parse(snap_spec)?;
            let fence = match (allow_unfenced, no_fence) {
                (_, true) => {
                    eprintln!("WARNING: --no-fence: this group snapshot is NOT crash-consistent");
                    FenceMode::NoFence
                }
                (true, false) => FenceMode::AllowUnfenced,
                (false, false) => FenceMode::Fenced,
            };
            let options = SnapCreateOptions {
                max_snapshots: *max_snapshots,
                fence,
                skip_quiesce: *skip_quiesce,
                ignore_quiesce_error: *ignore_quiesce_error,
                fence_timeout: Duration::from_secs(*fence_timeout),
                watch_timeout_secs: *watch_timeout,
                ..SnapCreateOptions::default()
            };
            let mut groups = open(&connect(global)?, &spec.group.location)?;
            with_progress(&mut groups, !no_progress, |g| g.snap_create(&spec.group.name, &spec.snap, &options))?;
        }
        SnapCommand::Ls { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let snapshots = open(&connect(global)?, &spec.location)?.snap_list(&spec.name)?;
            match global.format {
                Format::Json => {
                    print_json(global, &json!(snapshots.iter().map(|s| snapshot_json(s, false)).collect::<Vec<_>>()))?
                }
                Format::Plain => {
                    for s in &snapshots {
                        println!(
                            "{}\t{}\t{}\t{} images\t{}",
                            s.id,
                            s.name,
                            s.state,
                            s.images.len(),
                            human_time(s.created_ms)
                        );
                    }
                }
            }
        }
        SnapCommand::Info { snap_spec } => {
            let spec = GroupSnapSpec::parse(snap_spec)?;
            let snapshot = open(&connect(global)?, &spec.group.location)?.snap_info(&spec.group.name, &spec.snap)?;
            match global.format {
                Format::Json => print_json(global, &snapshot_json(&snapshot, true))?,
                Format::Plain => {
                    println!("group snapshot: {}", snapshot.name);
                    println!("\tid: {}", snapshot.id);
                    println!("\tstate: {}", snapshot.state);
                    println!("\tcreate_timestamp: {}", human_time(snapshot.created_ms));
                    println!("\timages:");
                    for i in &snapshot.images {
                        let name = i.image_name.clone().unwrap_or_else(|| format!("<id {}>", i.image.image_id));
                        let snap_id = i.snap_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
                        let missing = if i.present { "" } else { " (missing)" };
                        println!("\t\t{}/{name}@{} (snap id {snap_id}){missing}", i.pool, i.snap_name);
                    }
                }
            }
        }
        SnapCommand::Rename { snap_spec, new_name } => {
            let spec = GroupSnapSpec::parse(snap_spec)?;
            open(&connect(global)?, &spec.group.location)?.snap_rename(&spec.group.name, &spec.snap, new_name)?;
        }
        SnapCommand::Rm { snap_spec, no_progress } => {
            let spec = GroupSnapSpec::parse(snap_spec)?;
            let mut groups = open(&connect(global)?, &spec.group.location)?;
            with_progress(&mut groups, !no_progress, |g| g.snap_remove(&spec.group.name, &spec.snap))?;
        }
        SnapCommand::Rollback { snap_spec, no_progress } => {
            let spec = GroupSnapSpec::parse(snap_spec)?;
            let groups = open(&connect(global)?, &spec.group.location)?;
            let bar = rollback_bar(!no_progress);
            let shown = bar.clone();
            let mut report = move |index: usize, count: usize, image: &str, done: u64, total: u64| {
                let fraction = if total == 0 { 1.0 } else { done as f64 / total as f64 };
                shown.set_position((((index as f64 + fraction) / count.max(1) as f64) * 100.0) as u64);
                shown.set_message(format!("(image {} of {count}: {image})", index + 1));
            };
            let result = groups.snap_rollback(&spec.group.name, &spec.snap, &mut report);
            match &result {
                Ok(()) => bar.finish_with_message("done"),
                Err(_) => bar.abandon(),
            }
            result?;
        }
    }
    Ok(())
}

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("warn,rbd_cg_client=info,rbd_cg_journal=info,rbd_cg_datapath=info"),
    )
    .format(|buf, record| writeln!(buf, "rbd-cg: {}", record.args()))
    .init();
    let status = match run(Cli::parse()) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("rbd-cg: {e}");
            1
        }
    };
    // Every value of `run` is dropped by now: connections are shut down and no thread of
    // ours is left, so the process ends with the usual teardown.
    std::process::exit(status)
}

#[cfg(test)]
mod tests {
    use super::human_time;

    #[test]
    fn human_time_reads_like_rbds_timestamps() {
        assert_eq!(human_time(0), "Thu Jan  1 00:00:00 1970 UTC");
        assert_eq!(human_time(951_782_400_000), "Tue Feb 29 00:00:00 2000 UTC");
        assert_eq!(human_time(1_765_130_287_999), "Sun Dec  7 17:58:07 2025 UTC");
        assert_eq!(human_time(4_102_444_799_000), "Thu Dec 31 23:59:59 2099 UTC");
    }
}
