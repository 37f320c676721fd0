//! `rbd-cg`: consistency groups for RBD, with the grammar of `rbd group` minus the word
//! `group`, meant as a drop-in for it: the commands `rbd group` has behave as stock's do
//! (`rm` removes the snapshots and members first, adding a member twice or removing a
//! non-member is fine, listing a missing group prints nothing), print what stock prints
//! (the same tables, JSON keys and XML elements, ours after them: `output`), and fail as
//! `rbd` fails: `rbd-cg: <what failed>: (<errno>) <strerror>` on stderr and the errno as
//! exit status.

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
mod mirror;
mod output;

use output::{obj, Align, Node, Table};

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
    /// Pretty-print JSON and XML output.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Plain,
    Json,
    Xml,
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
        /// New name, or [POOL[/NAMESPACE]/]GROUP in the same pool and namespace.
        new_name: String,
    },
    /// Remove a group, with its snapshots (member snapshots included) and its members
    /// (they leave the group; the images stay), as `rbd group rm` does.
    #[command(alias = "remove")]
    Rm {
        /// [POOL[/NAMESPACE]/]GROUP
        group_spec: String,
        /// Refuse (EBUSY) while the group has members or snapshots: the behaviour of
        /// release 0.1.0.
        #[arg(long, conflicts_with = "force")]
        only_if_empty: bool,
        /// Accepted for scripts written for 0.1.0; removing everything is the default now.
        #[arg(long, hide = true)]
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
    /// Mirror the group to a second cluster (enable, disable, status, promote, demote,
    /// resync, daemon).
    Mirror {
        #[command(subcommand)]
        action: mirror::MirrorCommand,
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

/// Prints `value` in the chosen `--format` (JSON or XML; plain callers print their own).
pub(crate) fn print_json(global: &Global, value: &serde_json::Value) -> Result<()> {
    emit(global, "result", &Node::from(value))
}

/// Prints `node` as JSON or XML (root element `root`), as `rbd --format` does.
fn emit(global: &Global, root: &str, node: &Node) -> Result<()> {
    let text = output::render(global.format, global.pretty_format, root, node);
    std::io::stdout().write_all(text.as_bytes()).map_err(|e| Error::new(format!("writing: {e}"), libc::EIO))
}

fn info_node(info: &GroupInfo) -> Node {
    let mut fields = vec![
        ("name", Node::str(&info.name)),
        ("id", Node::str(&info.id)),
        ("pool", Node::str(&info.pool)),
        ("namespace", Node::str(&info.namespace)),
        ("state", Node::str(info.state.as_str())),
        ("created_ms", Node::int(info.created_ms)),
        ("image_count", Node::int(info.member_count)),
        ("snapshot_count", Node::int(info.snapshot_count)),
    ];
    match &info.state {
        GroupState::RenamingTo(to) => fields.push(("renaming_to", Node::str(to))),
        GroupState::RenamingFrom(from) => fields.push(("renaming_from", Node::str(from))),
        _ => {}
    }
    obj(fields)
}

/// Stock `rbd group image ls|snap ls` of a group that does not exist print nothing and
/// succeed (librbd's lookup error goes to stderr): so do we, with a line on stderr.
fn missing_group_is_empty<T: Default>(groups: &Groups, spec: &GroupSpec, result: Result<T>) -> Result<T> {
    match result {
        Err(e) if e.is_not_found() && groups.info(&spec.name).is_err_and(|e| e.is_not_found()) => {
            eprintln!("rbd-cg: group {spec} does not exist");
            Ok(T::default())
        }
        other => other,
    }
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
                Format::Json | Format::Xml => emit(global, "group", &info_node(&info))?,
                Format::Plain => {
                    println!("group name: {}", info.name);
                    println!("\tid: {}", info.id);
                    println!("\tpool: {}", info.pool);
                    println!("\tnamespace: {}", info.namespace);
                    println!("\tstate: {}", info.state);
                    println!("\tcreate_timestamp: {}", output::rbd_time(info.created_ms));
                    println!("\timages: {}", info.member_count);
                    println!("\tsnapshots: {}", info.snapshot_count);
                }
            }
        }
        Command::Ls { pool_spec } => {
            let location = PoolSpec::parse(pool_spec.as_deref().unwrap_or(""))?;
            let groups = open(&connect(global)?, &location)?;
            match global.format {
                Format::Json | Format::Xml => {
                    let names = groups.list()?.into_iter().map(Node::Str).collect();
                    emit(global, "groups", &Node::Array { item: "name", items: names })?
                }
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
            // As `rbd group rename`, the new name may be a spec; it must stay in the pool.
            let new_name = match new_name.contains('/') {
                false => new_name.clone(),
                true => {
                    let target = GroupSpec::parse(new_name)?;
                    if target.location != spec.location {
                        return Err(Error::new(
                            format!(
                                "group rename across pools not supported: {} to {}",
                                spec.location, target.location
                            ),
                            libc::EINVAL,
                        ));
                    }
                    target.name
                }
            };
            open(&connect(global)?, &spec.location)?.rename(&spec.name, &new_name)?;
        }
        Command::Rm { group_spec, only_if_empty, force: _, no_progress } => {
            let spec = GroupSpec::parse(group_spec)?;
            let mut groups = open(&connect(global)?, &spec.location)?;
            let removed = with_progress(&mut groups, !no_progress, |g| g.remove_with(&spec.name, !only_if_empty));
            // Stock `rbd group rm` of a group that does not exist succeeds.
            missing_group_is_empty(&groups, &spec, removed)?;
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
                Format::Json | Format::Xml => {
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
        Command::Mirror { action } => mirror::run_mirror(global, action)?,
        Command::Snap { action } => run_snap(global, action)?,
        Command::Repair { group_spec, check } => {
            let spec = GroupSpec::parse(group_spec)?;
            let report = open(&connect(global)?, &spec.location)?.repair(&spec.name, *check)?;
            match global.format {
                Format::Json | Format::Xml => print_json(global, &json!(report))?,
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
            let groups = open(&connect(global)?, &spec.location)?;
            match groups.add_image(&spec.name, &image, *max_members) {
                // As `rbd group image add`: adding a member again is fine.
                Err(e) if e.errno() == libc::EEXIST && member_state(&groups, &spec, &image)? == Some("attached") => {}
                other => other?,
            }
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
            match groups.remove_image(&spec.name, &image) {
                // As `rbd group image rm`: removing an image that is not a member is fine.
                Err(e) if e.is_not_found() && groups.info(&spec.name).is_ok() => {
                    let members = groups.list_images(&spec.name)?;
                    if members.iter().any(|m| m.image == image) {
                        return Err(e);
                    }
                }
                other => other?,
            }
        }
        ImageCommand::Ls { group_spec } => {
            let spec = GroupSpec::parse(group_spec)?;
            let groups = open(&connect(global)?, &spec.location)?;
            let members = missing_group_is_empty(&groups, &spec, groups.list_images(&spec.name))?;
            match global.format {
                Format::Json | Format::Xml => {
                    // Stock's keys (its `state`: 0 attached, 1 incomplete), then ours.
                    let items = members
                        .iter()
                        .map(|m| {
                            obj(vec![
                                ("image", Node::opt_str(m.name.clone())),
                                ("pool", Node::str(&m.pool)),
                                ("namespace", Node::str(&m.image.namespace)),
                                ("state", Node::int(i64::from(m.state != "attached"))),
                                ("id", Node::str(&m.image.image_id)),
                                ("pool_id", Node::int(m.image.pool_id)),
                                ("status", Node::str(m.state)),
                            ])
                        })
                        .collect();
                    emit(global, "images", &Node::Array { item: "image", items })?;
                }
                Format::Plain => {
                    // As stock: `pool/[namespace/]image <state>`, the state empty when attached.
                    for m in &members {
                        let location = match m.image.namespace.as_str() {
                            "" => m.pool.clone(),
                            ns => format!("{}/{ns}", m.pool),
                        };
                        let name = m.name.clone().unwrap_or_else(|| format!("<id:{}>", m.image.image_id));
                        let state = if m.state == "attached" { "" } else { m.state };
                        println!("{location}/{name} {state}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Stock's name for a snapshot state: `ok` or `incomplete`; `damaged` is ours.
fn stock_snap_state(state: &str) -> &'static str {
    match state {
        "complete" => "ok",
        "damaged" => "damaged",
        _ => "incomplete",
    }
}

/// The state of image `image` in group `spec`, if it is a member.
fn member_state(groups: &Groups, spec: &GroupSpec, image: &ImageSpec) -> Result<Option<&'static str>> {
    let image = groups.resolve_image(image)?;
    Ok(groups.list_images(&spec.name)?.into_iter().find(|m| m.image == image).map(|m| m.state))
}

/// A group snapshot as `rbd group snap ls` prints it (`snapshot`, `state`), then ours
/// (`journal_position` only for a snapshot of a journaled group).
fn snapshot_node(snapshot: &SnapshotInfo, with_images: bool) -> Node {
    let mut fields = vec![
        ("snapshot", Node::str(&snapshot.name)),
        ("state", Node::str(stock_snap_state(snapshot.state))),
        ("name", Node::str(&snapshot.name)),
        ("id", Node::str(&snapshot.id)),
        ("seq", Node::int(snapshot.seq)),
        ("status", Node::str(snapshot.state)),
        ("created_ms", Node::int(snapshot.created_ms)),
        ("image_count", Node::int(snapshot.images.len())),
    ];
    if let Some(position) = snapshot.journal_position {
        fields.push(("journal_position", Node::int(position)));
    }
    if with_images {
        let images = snapshot
            .images
            .iter()
            .map(|i| {
                obj(vec![
                    ("pool", Node::str(&i.pool)),
                    ("pool_id", Node::int(i.image.pool_id)),
                    ("namespace", Node::str(&i.image.namespace)),
                    ("image", Node::opt_str(i.image_name.clone())),
                    ("image_id", Node::str(&i.image.image_id)),
                    ("snap_id", Node::opt_int(i.snap_id)),
                    ("snap_name", Node::str(&i.snap_name)),
                    ("present", Node::Bool(i.present)),
                ])
            })
            .collect();
        fields.push(("images", Node::Array { item: "image", items: images }));
    }
    obj(fields)
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
            let groups = open(&connect(global)?, &spec.location)?;
            let snapshots = missing_group_is_empty(&groups, &spec, groups.snap_list(&spec.name))?;
            match global.format {
                Format::Json | Format::Xml => {
                    let items = snapshots.iter().map(|s| snapshot_node(s, false)).collect();
                    emit(global, "group_snaps", &Node::Array { item: "group_snap", items })?
                }
                Format::Plain => {
                    // Stock's columns (NAME, STATUS), then ours.
                    let mut table = Table::new(&[
                        ("NAME", Align::Left),
                        ("STATUS", Align::Right),
                        ("ID", Align::Left),
                        ("IMAGES", Align::Right),
                        ("TIMESTAMP", Align::Left),
                    ]);
                    for s in &snapshots {
                        table.row(vec![
                            s.name.clone(),
                            stock_snap_state(s.state).to_owned(),
                            s.id.clone(),
                            s.images.len().to_string(),
                            output::rbd_time(s.created_ms),
                        ]);
                    }
                    print!("{}", table.render());
                }
            }
        }
        SnapCommand::Info { snap_spec } => {
            let spec = GroupSnapSpec::parse(snap_spec)?;
            let snapshot = open(&connect(global)?, &spec.group.location)?.snap_info(&spec.group.name, &spec.snap)?;
            match global.format {
                Format::Json | Format::Xml => emit(global, "group_snap", &snapshot_node(&snapshot, true))?,
                Format::Plain => {
                    println!("group snapshot: {}", snapshot.name);
                    println!("\tid: {}", snapshot.id);
                    println!("\tstate: {}", snapshot.state);
                    println!("\ttimestamp: {}", output::rbd_time(snapshot.created_ms));
                    if let Some(position) = snapshot.journal_position {
                        println!("\tjournal position: {position}");
                    }
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
            .default_filter_or("warn,rbd_cg_client=info,rbd_cg_journal=info,rbd_cg_datapath=info,rbd_cg_mirror=info"),
    )
    .format(|buf, record| writeln!(buf, "rbd-cg: {}", record.args()))
    .init();
    let status = match run(Cli::parse()) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("rbd-cg: {e}");
            // As `rbd`: the errno is the exit status.
            e.errno().clamp(1, 255)
        }
    };
    // Every value of `run` is dropped by now: connections are shut down and no thread of
    // ours is left, so the process ends with the usual teardown.
    std::process::exit(status)
}
