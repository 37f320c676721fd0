//! OSDs that die in the middle of operations (issue #14), on a cluster of three OSDs with
//! pools of size 3 and min_size 2 (`scripts/cluster.sh start DIR --osds 3`; `scripts/test.sh`
//! runs this binary on one).
//!
//! Each multi-step operation runs in a loop — image add/rm; fenced snap create with a
//! dependent writer doing I/O on the members, together with snap rm; rollback; clone together
//! with snap create on the clone and rm --force — while an OSD is killed with SIGKILL (first
//! the primary of the group's header, the OSD that runs its class calls; in further rounds
//! another, then two at once) and later started again under load. Every run must succeed or fail cleanly
//! (`tests/common/faults.rs`); a failed one is finished by a rerun or `repair`. Afterwards
//! every acknowledged record must be there — members, snapshots (each still crash-consistent),
//! rollbacks, clones removed — the writer must have seen no I/O error and every write it
//! had acknowledged must read back, and the invariants of the crash tests must hold (`repair
//! --check` finds nothing, directory and objects agree, no orphan member snapshot, no stray
//! back-reference). Last, a deep scrub compares the three replicas of every object: the OSDs
//! restarted under load lost no record.
//!
//! `RBD_CG_FAULT_ROUNDS` (default 1) sets the kill/start rounds per operation (1: the header's
//! primary; 2: and another OSD; 3: and both at once, below `min_size`); the numbers of a run
//! are printed at the end (`docs/PRODUCTION.md` quotes them).
//!
//! One test runs the scenarios one after another: they kill OSDs of the one cluster, so they
//! must not overlap, and the replica check comes after all of them.

mod common;

use common::faults::*;
use common::server::{helper, NbdServer};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn rounds() -> u64 {
    std::env::var("RBD_CG_FAULT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// The numbers of one scenario.
#[derive(Debug, Default)]
struct Tally {
    name: &'static str,
    operations: u64,
    kills: u64,
    failed_cleanly: u64,
    finished_by_rerun: u64,
    finished_by_repair: u64,
    records_checked: u64,
    elapsed: Duration,
}

impl Tally {
    fn new(name: &'static str) -> Tally {
        Tally { name, ..Tally::default() }
    }

    /// Runs `args`; on a clean failure finishes it (rerun, else repair of `group`) and
    /// counts. Returns whether the operation was acknowledged (by the run or the rerun).
    fn run(&mut self, args: &[&str], group: &str) -> bool {
        self.operations += 1;
        match run_cli(args) {
            Ran::Ok(_) => true,
            Ran::Failed(_, line) => {
                eprintln!("  failed cleanly: {line}");
                self.failed_cleanly += 1;
                let finished = finish(args, group);
                self.finished_by_rerun += u64::from(finished.by_rerun);
                self.finished_by_repair += u64::from(finished.by_repair);
                finished.by_rerun
            }
        }
    }
}

/// A namespace of its own with `images` (8 MiB, the cluster's default features: layering,
/// exclusive-lock, object-map, fast-diff, deep-flatten) and, with `group`, group `g` holding
/// them. Returns (namespace, group spec, group id).
fn setup(test: &str, images: &[&str], members: bool) -> (String, String, String) {
    let ns = namespace(test);
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    for image in images {
        let spec = format!("rbd/{ns}/{image}");
        ceph_tool_ok("rbd", &["create", "--size", "8M", &spec]);
        if members {
            rbd_cg_ok(&["image", "add", &group, &spec]);
        }
    }
    let id = cli_json(&["info", &group])["id"].as_str().expect("group id").to_owned();
    (ns, group, id)
}

/// The fault schedule, around the group's header (`tests/common/faults.rs`, [`victims`]).
fn around_header<'a>(osds: &'a Osds, ns: &'a str, header: &'a str) -> impl FnMut(u64) -> Vec<u32> + 'a {
    victims(osds, "rbd", ns, header)
}

/// What every scenario ends with: nothing to repair, directory and objects agree, members
/// attached with their back-references and no other back-reference to the group, no
/// orphan member snapshot, every snapshot complete.
fn assert_whole(ns: &str, group: &str, group_id: &str, images: &[&str]) {
    let check = rbd_cg(&["repair", "--check", group]);
    assert_eq!(check.status.code(), Some(0), "repair --check {group}: {}", String::from_utf8_lossy(&check.stdout));
    let cluster = cluster();
    assert_consistent(&cluster, "rbd", ns);
    let members: Vec<Value> = cli_json(&["image", "ls", group]).as_array().cloned().unwrap_or_default();
    let member_names: BTreeSet<String> =
        members.iter().map(|m| m["image"].as_str().unwrap_or_default().to_owned()).collect();
    for m in &members {
        assert_eq!(m["status"], "attached", "{m}");
    }
    for image in images {
        let linked = back_references("rbd", ns, image).iter().any(|k| k.contains(group_id));
        assert_eq!(linked, member_names.contains(*image), "back-reference of {image} to {group}");
    }
    for s in cli_json(&["snap", "ls", group]).as_array().into_iter().flatten() {
        assert_eq!(s["status"], "complete", "{s}");
    }
    let orphans = orphan_member_snapshots("rbd", ns, images, &["g"]);
    assert!(orphans.is_empty(), "member snapshots no group snapshot records: {orphans:?}");
    let header_keys = omap_keys("rbd", ns, &format!("cg_header.{group_id}"));
    assert!(!header_keys.iter().any(|k| k == "snapshot_in_progress"), "{header_keys:?}");
}

/// image add / image rm of four images, toggling each in turn.
fn membership(osds: &Osds) -> Tally {
    let mut tally = Tally::new("image add/rm");
    let images = ["i0", "i1", "i2", "i3"];
    let (ns, group, id) = setup("faults-members", &images, false);
    let header = format!("cg_header.{id}");
    let mut members = BTreeSet::new();
    let report = with_osd_faults(osds, rounds(), 4, 3, around_header(osds, &ns, &header), |i| {
        let image = images[(i % images.len() as u64) as usize];
        let spec = format!("rbd/{ns}/{image}");
        let adding = !members.contains(image);
        let args: [&str; 4] = if adding { ["image", "add", &group, &spec] } else { ["image", "rm", &group, &spec] };
        if tally.run(&args, &group) {
            if adding {
                members.insert(image);
            } else {
                members.remove(image);
            }
        } else {
            // Finished by repair: whichever way it went, it is what the group says now.
            let now: BTreeSet<String> = cli_json(&["image", "ls", &group])
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["image"].as_str().map(str::to_owned))
                .collect();
            if now.contains(image) {
                members.insert(image);
            } else {
                members.remove(image);
            }
        }
        true
    });
    tally.kills = report.kills;
    let listed: BTreeSet<String> = cli_json(&["image", "ls", &group])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["image"].as_str().map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = members.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(listed, expected, "the acknowledged membership");
    tally.records_checked += images.len() as u64 + 1;
    assert_whole(&ns, &group, &id, &images);
    tally
}

/// A >= B >= C >= A - 1: what a crash-consistent snapshot of the dependent writer holds.
fn crash_consistent(values: &[u64]) -> bool {
    values.windows(2).all(|w| w[0] >= w[1]) && values.last().copied().unwrap_or(0) + 1 >= values[0]
}

/// Fenced snap create under a dependent writer, and snap rm of all but the newest two.
fn snapshots(osds: &Osds) -> Tally {
    let mut tally = Tally::new("snap create (fenced, writer) + snap rm");
    let images = ["a", "b", "c"];
    let (ns, group, id) = setup("faults-snaps", &images, true);
    let header = format!("cg_header.{id}");
    let writer = Writer::start(&ns, &images);
    let mut live: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let snap_names = |group: &str| -> Vec<String> {
        cli_json(&["snap", "ls", group])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    let report = with_osd_faults(osds, rounds(), 3, 3, around_header(osds, &ns, &header), |i| {
        let name = format!("s{i}");
        let spec = format!("{group}@{name}");
        if tally.run(&["snap", "create", "--no-progress", &spec], &group) || snap_names(&group).contains(&name) {
            live.push(name);
        }
        if live.len() > 2 {
            let oldest = live.remove(0);
            let spec = format!("{group}@{oldest}");
            if tally.run(&["snap", "rm", "--no-progress", &spec], &group) || !snap_names(&group).contains(&oldest) {
                removed.push(oldest);
            } else {
                live.insert(0, oldest);
            }
        }
        true
    });
    tally.kills = report.kills;
    let status = writer.stop();
    assert_eq!(status["errors"].as_u64(), Some(0), "the writer saw I/O errors: {status}");
    let rounds_done = status["rounds"].as_u64().expect("rounds");
    assert_eq!(heads(&ns, &images, None), vec![rounds_done; 3], "a write the writer had acknowledged is lost");
    tally.records_checked += 3;
    assert_eq!(snap_names(&group), live, "the acknowledged snapshots, in order");
    for name in &live {
        let info = cli_json(&["snap", "info", &format!("{group}@{name}")]);
        assert_eq!(info["status"], "complete", "{info}");
        let member_snap = info["images"][0]["snap_name"].as_str().expect("member snapshot").to_owned();
        let values = heads(&ns, &images, Some(&member_snap));
        assert!(values[0] > 0 && crash_consistent(&values), "{name} is not crash-consistent: {values:?}");
        tally.records_checked += 1;
    }
    for name in &removed {
        expect_errno(&rbd_cg(&["snap", "info", &format!("{group}@{name}")]), libc::ENOENT);
        tally.records_checked += 1;
    }
    assert_whole(&ns, &group, &id, &images);
    tally
}

/// Rollback to one snapshot, then the other, in turn.
fn rollback(osds: &Osds) -> Tally {
    let mut tally = Tally::new("snap rollback");
    let images = ["a", "b"];
    let (ns, group, id) = setup("faults-rollback", &images, true);
    let header = format!("cg_header.{id}");
    write_heads(&ns, &images, 1);
    rbd_cg_ok(&["snap", "create", &format!("{group}@one")]);
    write_heads(&ns, &images, 2);
    rbd_cg_ok(&["snap", "create", &format!("{group}@two")]);
    let mut expected = 2u64;
    let report = with_osd_faults(osds, rounds(), 3, 3, around_header(osds, &ns, &header), |i| {
        let (target, value) = if i % 2 == 0 { ("one", 1) } else { ("two", 2) };
        if tally.run(&["snap", "rollback", "--no-progress", &format!("{group}@{target}")], &group) {
            expected = value;
        } else {
            // Repair completes a rollback that had begun; one that had not leaves the images.
            let now = heads(&ns, &images, None);
            assert!(now.iter().all(|v| *v == now[0]), "members rolled back to different snapshots: {now:?}");
            expected = now[0];
        }
        true
    });
    tally.kills = report.kills;
    assert_eq!(heads(&ns, &images, None), vec![expected; 2], "the acknowledged rollback");
    tally.records_checked += 2 + 2;
    let names: Vec<String> = cli_json(&["snap", "ls", &group])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_whole(&ns, &group, &id, &images);
    tally
}

/// Clone the group snapshot, snapshot the clone group, remove it with rm --force, and remove
/// the clone images it leaves.
fn clone_and_remove(osds: &Osds) -> Tally {
    let mut tally = Tally::new("clone + snap create + rm --force");
    let images = ["a", "b"];
    let (ns, group, id) = setup("faults-clone", &images, true);
    let header = format!("cg_header.{id}");
    write_heads(&ns, &images, 7);
    rbd_cg_ok(&["snap", "create", &format!("{group}@base")]);
    let mut gone = Vec::new();
    let report = with_osd_faults(osds, rounds(), 2, 2, around_header(osds, &ns, &header), |i| {
        let name = format!("c{i}");
        let new_group = format!("rbd/{ns}/{name}");
        let source = format!("{group}@base");
        let clone_args = ["clone", &source, &new_group];
        tally.operations += 1;
        if let Ran::Failed(_, line) = run_cli(&clone_args) {
            eprintln!("  failed cleanly: {line}");
            tally.failed_cleanly += 1;
            if run_cli(&clone_args).ok() {
                tally.finished_by_rerun += 1;
            } else if cli_json(&["ls", &format!("rbd/{ns}")]).as_array().is_some_and(|l| l.iter().any(|n| n == &name))
                || rbd_cg(&["info", &new_group]).status.success()
            {
                repair_clean(&new_group);
                tally.finished_by_repair += 1;
            } else {
                return true; // nothing was made
            }
        }
        tally.run(&["snap", "create", "--no-progress", &format!("{new_group}@x")], &new_group);
        if tally.run(&["rm", "--force", "--no-progress", &new_group], &new_group)
            || !rbd_cg(&["info", &new_group]).status.success()
        {
            gone.push(name.clone());
        }
        for image in images {
            let clone = format!("rbd/{ns}/{name}-{image}");
            let started = Instant::now();
            while ceph_tool("rbd", &["info", &clone]).status.success() {
                if ceph_tool("rbd", &["rm", "--no-progress", &clone]).status.success() {
                    break;
                }
                assert!(started.elapsed() < HANG_LIMIT, "rbd rm {clone} keeps failing");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        true
    });
    tally.kills = report.kills;
    let listed: Vec<String> = cli_json(&["ls", &format!("rbd/{ns}")])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed, ["g"], "every clone group removed with rm --force is gone");
    tally.records_checked += gone.len() as u64;
    let left: Vec<String> = ceph_tool_ok("rbd", &["ls", &format!("rbd/{ns}")]).lines().map(str::to_owned).collect();
    assert_eq!(left, ["a", "b"], "clone images left behind");
    assert_eq!(heads(&ns, &images, None), vec![7, 7]);
    tally.records_checked += 2;
    assert_whole(&ns, &group, &id, &images);
    tally
}

/// The last record acknowledged per member in the ack log of `nbd_records.py chain` ("k i"
/// per acknowledged write), and how many writes it acknowledged.
fn chain_acknowledged(log: &Path, members: usize) -> (Vec<Option<u64>>, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut last = vec![None; members];
    let mut writes = 0;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some(Ok(k)), Some(Ok(i))) = (parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<usize>))
        {
            last[i] = Some(k);
            writes += 1;
        }
    }
    (last, writes)
}

/// Records 0.. in a row on each export of `server` (`nbd_records.py count`); panics if a
/// valid record follows a gap (the order was broken).
fn chain_records(server: &NbdServer, images: &[&str], ns: &str) -> Vec<u64> {
    let mut args = vec![helper("nbd_records.py").to_str().expect("path").to_owned(), "count".to_owned()];
    args.extend(images.iter().map(|m| server.uri(&format!("rbd/{ns}/{m}"))));
    let out = Command::new("/usr/bin/python3").args(&args).output().expect("nbd_records.py count");
    assert!(out.status.success(), "counting records: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut parts = l.split_whitespace();
            let n = parts.next().and_then(|n| n.parse().ok()).expect("count");
            assert_eq!(parts.next(), Some("0"), "{}: a record after a gap (the order was broken): {l}", images[i]);
            n
        })
        .collect()
}

/// Journaled writes through `rbd-cg nbd serve`: a dependent chain (record k on member 0,
/// once acknowledged on member 1, then on member 2, then k + 1; python3-libnbd, a real NBD
/// client) runs through the server the whole time while OSDs die — first the primary of the
/// journal's active segment (where each acknowledged write was appended), then the header's
/// (the writer's lease: a lock and a watch there) or, if that was the same OSD, another; two
/// rounds at least, `RBD_CG_FAULT_ROUNDS` for more. One operation of the loop is 30 acknowledged writes. The chain must
/// see no error. Afterwards the server is killed with -9, `rbd-cg journal replay` applies
/// what it left, and a new server reads back every acknowledged record, each member a prefix
/// with nothing after a gap, and the members together a prefix of the chain's one order.
fn journaled_writes(osds: &Osds) -> Tally {
    const STEP: u64 = 30;
    let mut tally = Tally::new("journaled writes (nbd serve, chain)");
    let images = ["m0", "m1", "m2"];
    let ns = namespace("faults-journal");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    for image in images {
        // 64 MiB: room for 16,384 records per member, more than a loop writes.
        let spec = format!("rbd/{ns}/{image}");
        ceph_tool_ok("rbd", &["create", "--size", "64M", &spec]);
        rbd_cg_ok(&["image", "add", &group, &spec]);
    }
    let id = cli_json(&["info", &group])["id"].as_str().expect("group id").to_owned();
    rbd_cg_ok(&["journal", "enable", &group]);
    let header = format!("cg_header.{id}");
    let dir = std::env::temp_dir().join(format!("rbd-cg-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join(format!("{ns}-acks"));
    let chain_err = dir.join(format!("{ns}-chain.err"));
    let _ = std::fs::remove_file(&log);
    let server = NbdServer::start(&group, &format!("{ns}-0"));
    let mut chain = Command::new("/usr/bin/python3")
        .arg(helper("nbd_records.py"))
        .arg("chain")
        .arg(&log)
        .args(images.iter().map(|m| server.uri(&format!("rbd/{ns}/{m}"))))
        .stderr(std::fs::File::create(&chain_err).expect("chain log"))
        .spawn()
        .expect("starting nbd_records.py chain (python3-libnbd)");
    let chain_failed = |chain: &mut std::process::Child| -> Option<String> {
        chain.try_wait().ok().flatten().map(|status| {
            format!(
                "the chain stopped ({status}): {}\nserver log:\n{}",
                std::fs::read_to_string(&chain_err).unwrap_or_default(),
                server.log_text()
            )
        })
    };
    let journal_segment = |osds: &Osds| -> u32 {
        let status = cli_json(&["journal", "status", &group]);
        let active = status["segments"]["active"].as_u64().expect("active segment");
        osds.primary_of("rbd", &ns, &rbd_cg_contract::journal::segment_object(&id, active))
    };
    let victims = |round: u64| -> Vec<u32> {
        let segment = journal_segment(osds);
        let header = osds.primary_of("rbd", &ns, &header);
        let other = if header != segment { header } else { osds.other_than(segment, round / 3) };
        match round % 3 {
            0 => vec![segment],
            1 => vec![other],
            _ => vec![segment, other],
        }
    };
    let started = Instant::now();
    // Two rounds at least: the appends' OSD, then the lease's (when it is another one).
    let report = with_osd_faults(osds, rounds().max(2), 3, 3, victims, |i| {
        let target = (i + 1) * STEP;
        let since = Instant::now();
        while chain_acknowledged(&log, images.len()).1 < target {
            if let Some(failure) = chain_failed(&mut chain) {
                panic!("{failure}");
            }
            assert!(since.elapsed() < HANG_LIMIT, "no acknowledged write for {HANG_LIMIT:?}:\n{}", server.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    });
    tally.kills = report.kills;
    if let Some(failure) = chain_failed(&mut chain) {
        panic!("{failure}");
    }
    // Whatever is in flight now is not acknowledged; then nothing is finished cleanly.
    let _ = chain.kill();
    let _ = chain.wait();
    let (acked, writes) = chain_acknowledged(&log, images.len());
    tally.operations = writes;
    eprintln!("  {writes} journaled writes acknowledged in {:?}, last per member {acked:?}", started.elapsed());
    server.kill9();
    // What the killed server had acknowledged is in the journal; replay puts it on the members.
    if let Ran::Failed(_, line) = run_cli(&["journal", "replay", &group]) {
        panic!("journal replay {group}: {line}");
    }
    let status = cli_json(&["journal", "status", &group]);
    assert_eq!(status["head"], status["applied"], "replay applied every durable entry: {status}");
    let server = NbdServer::start(&group, &format!("{ns}-1"));
    let counts = chain_records(&server, &images, &ns);
    for (i, n) in counts.iter().enumerate() {
        if let Some(k) = acked[i] {
            assert!(*n > k, "{}: acknowledged record {k} is lost (records 0..{n} there): {counts:?}", images[i]);
        }
    }
    assert!(crash_consistent(&counts), "the members are not a prefix of the chain's one order: {counts:?}");
    assert!(server.stop().success(), "the server exits 0 on SIGTERM");
    // Disable gives the members back with everything applied (and the journal's objects
    // gone); a plain server (librbd, no journal) reads the same records.
    if let Ran::Failed(_, line) = run_cli(&["journal", "disable", &group]) {
        panic!("journal disable {group}: {line}");
    }
    let server = NbdServer::start(&group, &format!("{ns}-2"));
    assert_eq!(chain_records(&server, &images, &ns), counts, "the records after journal disable");
    assert!(server.stop().success(), "the server exits 0 on SIGTERM");
    tally.records_checked = counts.iter().sum();
    assert_whole(&ns, &group, &id, &images);
    tally
}

/// Deep-scrubs every PG of pool `rbd` and waits for it: the replicas of every object (data
/// and omap) must be identical — an OSD restarted under load lost no record.
fn replicas_agree() {
    // Let every OSD take part in several scrubs at once: 8 PGs on 3 OSDs otherwise scrub one
    // after another (~20 s here).
    ceph_tool_ok("ceph", &["config", "set", "osd", "osd_max_scrubs", "8"]);
    let pgs = || -> Vec<Value> {
        let out = ceph_tool_ok("ceph", &["pg", "ls-by-pool", "rbd", "--format", "json"]);
        let value: Value = serde_json::from_str(&out).expect("pg ls JSON");
        value["pg_stats"].as_array().cloned().or_else(|| value.as_array().cloned()).unwrap_or_default()
    };
    let before: Vec<(String, Value)> = pgs()
        .iter()
        .map(|p| (p["pgid"].as_str().unwrap_or_default().to_owned(), p["last_deep_scrub_stamp"].clone()))
        .collect();
    for (pgid, _) in &before {
        ceph_tool_ok("ceph", &["pg", "deep-scrub", pgid]);
    }
    let started = Instant::now();
    loop {
        let now = pgs();
        let pending: Vec<&str> = before
            .iter()
            .filter(|(pgid, stamp)| {
                now.iter().any(|p| p["pgid"] == pgid.as_str() && p["last_deep_scrub_stamp"] == *stamp)
            })
            .map(|(pgid, _)| pgid.as_str())
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(started.elapsed() < HANG_LIMIT, "deep scrub of {pending:?} did not finish");
        std::thread::sleep(Duration::from_millis(500));
    }
    ceph_tool_ok("ceph", &["config", "rm", "osd", "osd_max_scrubs"]);
    let inconsistent = ceph_tool_ok("rados", &["list-inconsistent-pg", "rbd"]);
    assert_eq!(inconsistent.trim(), "[]", "replicas differ after the faults");
    for p in pgs() {
        let state = p["state"].as_str().unwrap_or_default();
        assert!(!state.contains("inconsistent") && state.contains("active+clean"), "{}: {state}", p["pgid"]);
    }
}

#[test]
fn multi_osd_every_operation_survives_osd_kills() {
    let osds = Osds::from_env();
    // This build's class on every OSD (a no-op after multi_osd_upgrade, which ends so).
    osds.cluster_sh("install-class", &[&required_env("RBD_CG_CLASS_SO")]);
    let started = Instant::now();
    let timed = |scenario: fn(&Osds) -> Tally| {
        let started = Instant::now();
        let mut tally = scenario(&osds);
        tally.elapsed = started.elapsed();
        eprintln!("{}: done in {:.1?}", tally.name, tally.elapsed);
        tally
    };
    let tallies =
        [timed(membership), timed(snapshots), timed(rollback), timed(clone_and_remove), timed(journaled_writes)];
    let scrub = Instant::now();
    replicas_agree();
    eprintln!("deep scrub of every PG: {:.1?}", scrub.elapsed());
    eprintln!(
        "\nOSD faults on {} OSDs ({:?}), {} round(s) per operation:",
        osds.ids().len(),
        started.elapsed(),
        rounds()
    );
    eprintln!(
        "{:<40} {:>5} {:>6} {:>7} {:>6} {:>7} {:>8} {:>5} {:>7}",
        "operation", "runs", "kills", "failed", "rerun", "repair", "records", "lost", "seconds"
    );
    for t in &tallies {
        eprintln!(
            "{:<40} {:>5} {:>6} {:>7} {:>6} {:>7} {:>8} {:>5} {:>7.1}",
            t.name,
            t.operations,
            t.kills,
            t.failed_cleanly,
            t.finished_by_rerun,
            t.finished_by_repair,
            t.records_checked,
            0,
            t.elapsed.as_secs_f64()
        );
    }
    for t in &tallies {
        assert!(t.kills >= 1, "{} ran through no OSD kill", t.name);
    }
    let total_kills: u64 = tallies.iter().map(|t| t.kills).sum();
    assert_eq!(osds.kills.load(std::sync::atomic::Ordering::Relaxed), total_kills);
}
