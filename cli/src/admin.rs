//! What `rbd-cg` tells an operator about itself and the cluster, rather than about groups:
//! `--version` (client, protocol and stored-record versions), `versions` (which class
//! version each OSD runs, to watch a rolling upgrade), and the shell completions and man
//! pages generated from the very clap definition the tool parses with (`completions`,
//! `man`; `scripts/install.sh` installs them), so they can never describe another CLI.

use rbd_cg_client::class_versions::{class_versions, ClassAnswer, OsdClass};
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::journal::{ConsumerRecord, JournalRecord, SegmentRecord, SnapJournalPosition};
use rbd_cg_contract::records::{
    ClonePlan, DirEntry, DirIdEntry, GroupHeader, GroupIdRecord, GroupRef, MemberRecord, SnapIdReserve, SnapInProgress,
    SnapNameEntry, SnapSeq, SnapshotRecord,
};
use rbd_cg_contract::{Versioned, CLASS_NAME, PROTOCOL_MAX, PROTOCOL_MIN};
use rbd_cg_rados::Cluster;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::LazyLock;

/// The stored records' names and the version this build writes (`docs/FORMAT.md`): what a
/// class or client of another release must be able to read.
fn stored_record_versions() -> Vec<(&'static str, u8)> {
    fn v<T: Versioned>() -> (&'static str, u8) {
        (T::TYPE_NAME, T::STRUCT_V)
    }
    vec![
        v::<GroupIdRecord>(),
        v::<GroupHeader>(),
        v::<DirEntry>(),
        v::<DirIdEntry>(),
        v::<MemberRecord>(),
        v::<GroupRef>(),
        v::<SnapshotRecord>(),
        v::<SnapNameEntry>(),
        v::<SnapSeq>(),
        v::<SnapInProgress>(),
        v::<SnapIdReserve>(),
        v::<ClonePlan>(),
        v::<JournalRecord>(),
        v::<ConsumerRecord>(),
        v::<SegmentRecord>(),
        v::<SnapJournalPosition>(),
    ]
}

/// `rbd-cg --version`: the client, the class protocol it speaks and the record versions it
/// writes (those above 1 by name).
pub static LONG_VERSION: LazyLock<String> = LazyLock::new(|| {
    let newer: Vec<String> =
        stored_record_versions().iter().filter(|(_, v)| *v > 1).map(|(name, v)| format!("{name} v{v}")).collect();
    let records = if newer.is_empty() {
        "every record v1".to_owned()
    } else {
        format!("{}, every other record v1", newer.join(", "))
    };
    format!(
        "{}\nclass protocol: {PROTOCOL_MIN}..={PROTOCOL_MAX} (class {CLASS_NAME}; `rbd-cg versions` shows what each OSD runs)\n\
         stored records: {records} (docs/FORMAT.md, section 6)",
        env!("CARGO_PKG_VERSION")
    )
});

fn describe(osd: &OsdClass) -> String {
    match (&osd.answer, osd.up) {
        (Some((ClassAnswer::Version { class_version, protocol }, probe)), _) => format!(
            "{CLASS_NAME} {class_version}, protocol {}..={} (asked through {}/{}{}, pg {})",
            protocol.0,
            protocol.1,
            probe.pool,
            if probe.namespace.is_empty() { String::new() } else { format!("{}/", probe.namespace) },
            probe.object,
            probe.pg
        ),
        (Some((ClassAnswer::Failed { errno, message }, _)), _) if [libc::EOPNOTSUPP, libc::EPERM].contains(errno) => {
            format!("class missing, not loadable or not permitted: {message}")
        }
        (Some((ClassAnswer::Failed { message, .. }, _)), _) => format!("no answer: {message}"),
        (None, false) => "down".to_owned(),
        (None, true) => "not asked: it leads no placement group that holds an object of these pools".to_owned(),
    }
}

/// `rbd-cg versions [POOL...]`: the client's versions, then each OSD's class version.
pub fn run_versions(cluster: &Cluster, pools: &[String], json_out: bool, pretty: bool) -> Result<()> {
    let osds = class_versions(cluster, pools)?;
    if json_out {
        let list: Vec<serde_json::Value> = osds
            .iter()
            .map(|o| {
                let mut value = json!({"osd": o.osd, "up": o.up});
                match &o.answer {
                    Some((ClassAnswer::Version { class_version, protocol }, probe)) => {
                        value["class_version"] = json!(class_version);
                        value["protocol_min"] = json!(protocol.0);
                        value["protocol_max"] = json!(protocol.1);
                        value["probe"] = json!({"pool": probe.pool, "namespace": probe.namespace,
                                                "object": probe.object, "pg": probe.pg});
                    }
                    Some((ClassAnswer::Failed { errno, message }, probe)) => {
                        value["errno"] = json!(errno);
                        value["error"] = json!(message);
                        value["probe"] = json!({"pool": probe.pool, "namespace": probe.namespace,
                                                "object": probe.object, "pg": probe.pg});
                    }
                    None => {}
                }
                value
            })
            .collect();
        let value = json!({
            "client": {"version": env!("CARGO_PKG_VERSION"), "protocol_min": PROTOCOL_MIN, "protocol_max": PROTOCOL_MAX},
            "osds": list,
        });
        let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
        println!("{}", text.map_err(|e| Error::new(format!("formatting JSON: {e}"), libc::EIO))?);
        return Ok(());
    }
    println!("client: rbd-cg {}, protocol {PROTOCOL_MIN}..={PROTOCOL_MAX}", env!("CARGO_PKG_VERSION"));
    let mut by_version: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for osd in &osds {
        println!("osd.{}: {}", osd.osd, describe(osd));
        if let Some((ClassAnswer::Version { class_version, .. }, _)) = &osd.answer {
            by_version.entry(class_version).or_default().push(format!("osd.{}", osd.osd));
        }
    }
    if by_version.len() > 1 {
        let parts: Vec<String> = by_version.iter().map(|(v, list)| format!("{v} on {}", list.join(", "))).collect();
        println!("mixed class versions: {}", parts.join("; "));
    }
    Ok(())
}

/// `rbd-cg completions SHELL`: the completion script on stdout.
pub fn completions(mut command: clap::Command, shell: clap_complete::Shell) -> Result<()> {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    Ok(())
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::new(format!("{what}: {e}"), e.raw_os_error().unwrap_or(libc::EIO))
}

/// Renders the page of `command` (named `prefix`) and those of its subcommands
/// (`prefix-sub`, like `git-commit(1)`) into `dir`; returns the files written.
fn write_pages(command: &clap::Command, prefix: &str, dir: &Path, written: &mut Vec<String>) -> Result<()> {
    let command = command.clone().name(prefix.to_owned());
    let file = format!("{prefix}.1");
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page).map_err(|e| io_error(&file, e))?;
    std::fs::write(dir.join(&file), page).map_err(|e| io_error(&file, e))?;
    written.push(file);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{prefix}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// `rbd-cg man [--dir DIR]`: the man page on stdout, or every page (one per subcommand) into
/// `DIR`.
pub fn man(command: clap::Command, dir: Option<&Path>) -> Result<()> {
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out).map_err(|e| io_error("writing the man page", e))?;
            out.flush().map_err(|e| io_error("writing the man page", e))
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&dir.display().to_string(), e))?;
            let mut command = command;
            command.build();
            let mut written = Vec::new();
            let name = command.get_name().to_owned();
            write_pages(&command, &name, dir, &mut written)?;
            for file in written {
                println!("{}", dir.join(file).display());
            }
            Ok(())
        }
    }
}
