//! OSD faults under load, for the tests that run on the multi-OSD cluster (issue #14):
//! `multi_osd_faults.rs` and `multi_osd_upgrade.rs`, and the journal's and the mirror's
//! fault tests to come, which plug into the same loop.
//!
//! The shape of every fault test: a *workload* (a closure) runs an operation again and
//! again on a thread of its own, and after each run it reports what happened; meanwhile
//! [`with_osd_faults`] kills an OSD with SIGKILL (as a crash or a power loss would: no
//! goodbye to the monitor), lets the workload go on against the two survivors, starts the
//! OSD again — under load, so it recovers while operations run — and stops the workload a
//! few operations later. The workload decides what "acknowledged" means for its operation
//! and records it; after the loop the test checks that every acknowledged record is there
//! (nothing lost) and that the invariants of the crash tests hold.
//!
//! Rules the helpers enforce, because they are what an operator relies on:
//!
//! - an `rbd-cg` run either succeeds or fails cleanly: exit status 1 and one
//!   `rbd-cg: <what>: (<errno>) <strerror>` line. A signal, a panic (101), a fault-injection
//!   exit (86) or a hang (no answer in [`HANG_LIMIT`]) fails the test at once;
//! - a failed operation is finished by a rerun of the same command, or else by
//!   `rbd-cg repair` ([`finish`]), as `docs/OPERATIONS.md` promises.
//!
//! Adding a fault test for another operation (e.g. journaled writes through
//! `rbd-cg nbd serve`): write its workload as `FnMut(u64) -> bool` (one operation per call,
//! `false` once it has nothing more to do), call [`with_osd_faults`] with the OSD to kill,
//! and check what it acknowledged afterwards. [`Osds::primary_of`] names the OSD that
//! serves an object, the most telling one to kill; [`victims`] is the schedule the
//! existing fault tests use.

use super::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one `rbd-cg` run may take before the test calls it hung. Generous: with an OSD
/// down, an operation waits for the monitor to mark it down (seconds) and for peering; a
/// fence waits up to its own timeout. A run that takes this long is stuck, not slow.
pub const HANG_LIMIT: Duration = Duration::from_secs(180);

/// How long two OSDs of three stay down in a double-fault round (their PGs serve nothing
/// meanwhile; operations wait).
pub const OUTAGE: Duration = Duration::from_secs(8);

/// The OSDs of the multi-OSD test cluster (`RBD_CG_TEST_CLUSTER_DIR`), driven through
/// `scripts/cluster.sh`.
pub struct Osds {
    dir: PathBuf,
    /// OSD kills so far (for the report).
    pub kills: AtomicU64,
}

fn cluster_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

impl Osds {
    /// The cluster of `RBD_CG_TEST_CLUSTER_DIR`, which must have at least three OSDs (the
    /// test fails loudly otherwise: `scripts/test.sh` starts one with `--osds 3`).
    pub fn from_env() -> Osds {
        required_env("CEPH_CONF");
        let osds = Osds { dir: PathBuf::from(required_env("RBD_CG_TEST_CLUSTER_DIR")), kills: AtomicU64::new(0) };
        let ids = osds.ids();
        assert!(
            ids.len() >= 3,
            "the OSD fault and rolling-upgrade tests need a cluster of 3 OSDs (scripts/cluster.sh start DIR --osds 3); \
             {} has {}",
            osds.dir.display(),
            ids.len()
        );
        osds
    }

    /// Runs `cluster.sh ARGS DIR ...` and expects success.
    pub fn cluster_sh(&self, command: &str, args: &[&str]) -> String {
        let out = Command::new(cluster_sh())
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running cluster.sh {command}: {e}"));
        assert!(out.status.success(), "cluster.sh {command} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The OSD ids.
    pub fn ids(&self) -> Vec<u32> {
        self.cluster_sh("osds", &[]).lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// SIGKILL to `osd.ID`; returns once the process is gone.
    pub fn kill(&self, id: u32) {
        self.cluster_sh("kill-osd", &[&id.to_string()]);
        self.kills.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts the OSDs `ids` again and waits until every PG is active+clean.
    pub fn start(&self, ids: &[u32]) {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.cluster_sh("start-osd", &ids);
    }

    /// SIGTERM to `osd.ID` (it tells the monitor it goes down).
    pub fn stop(&self, id: u32) {
        self.cluster_sh("stop-osd", &[&id.to_string()]);
    }

    /// Restarts `osd.ID` and waits until every PG is active+clean.
    pub fn restart(&self, id: u32) {
        self.cluster_sh("restart-osd", &[&id.to_string()]);
    }

    /// The acting primary of object `oid` in `pool`/`ns`: the OSD that runs its class calls.
    pub fn primary_of(&self, pool: &str, ns: &str, oid: &str) -> u32 {
        let out = ceph_tool_ok("ceph", &["osd", "map", pool, oid, ns, "--format", "json"]);
        let map: Value = serde_json::from_str(&out).expect("osd map JSON");
        map["acting_primary"].as_u64().and_then(|p| u32::try_from(p).ok()).expect("acting_primary")
    }

    /// An OSD other than `id`.
    pub fn other_than(&self, id: u32, pick: u64) -> u32 {
        let others: Vec<u32> = self.ids().into_iter().filter(|o| *o != id).collect();
        others[(pick as usize) % others.len()]
    }
}

/// How an `rbd-cg` run ended.
#[derive(Debug)]
pub enum Ran {
    /// Exit status 0; stdout.
    Ok(String),
    /// A clean failure: its errno and its error line.
    Failed(i32, String),
}

impl Ran {
    pub fn ok(&self) -> bool {
        matches!(self, Ran::Ok(_))
    }
}

/// Runs `rbd-cg ARGS` under the hang detector; a run that does not end cleanly (success,
/// or exit status 1 with an `rbd-cg: …: (<errno>) …` line) fails the test.
pub fn run_cli(args: &[&str]) -> Ran {
    run_with(&required_env("RBD_CG_BIN"), args)
}

/// [`run_cli`] with another `rbd-cg` binary (the previous release's, in the upgrade test).
pub fn run_with(bin: &str, args: &[&str]) -> Ran {
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("RBD_CG_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > HANG_LIMIT => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collecting a hung rbd-cg");
                panic!("rbd-cg {args:?} hung for {HANG_LIMIT:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for rbd-cg {args:?}: {e}"),
        }
    }
    let out = child.wait_with_output().expect("rbd-cg output");
    classify(args, &out)
}

/// Success, or a clean failure; anything else fails the test.
pub fn classify(args: &[&str], out: &Output) -> Ran {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ran::Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        // As `rbd`'s: the exit status is the errno.
        Some(code @ 1..=255) => {
            let line = stderr
                .lines()
                .find(|l| l.starts_with("rbd-cg: ") && l.contains(": ("))
                .unwrap_or_else(|| panic!("rbd-cg {args:?} failed without an error line: {stderr}"));
            let errno: i32 = line
                .rsplit_once(": (")
                .and_then(|(_, rest)| rest.split_once(')'))
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or_else(|| panic!("no errno in {line:?}"));
            assert_eq!(code, errno.clamp(1, 255), "rbd-cg {args:?}: the exit status is the errno: {line}");
            Ran::Failed(errno, line.to_owned())
        }
        other => panic!("rbd-cg {args:?} did not end cleanly (exit {other:?}, a signal if None): {stderr}"),
    }
}

/// JSON of `rbd-cg --format json ARGS`, which must succeed.
pub fn cli_json(args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    match run_cli(&all) {
        Ran::Ok(out) => serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}: {out}")),
        Ran::Failed(_, line) => panic!("{args:?}: {line}"),
    }
}

/// What finishing a failed operation took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Finish {
    /// The rerun succeeded.
    pub by_rerun: bool,
    /// `repair` ran (the rerun failed too).
    pub by_repair: bool,
}

/// Finishes a failed `rbd-cg ARGS` on `group`: a rerun of the same command, and when that
/// fails too, `repair GROUP`, which must succeed and leave `repair --check` clean. Returns
/// whether the rerun acknowledged the operation.
pub fn finish(args: &[&str], group: &str) -> Finish {
    if run_cli(args).ok() {
        return Finish { by_rerun: true, by_repair: false };
    }
    repair_clean(group);
    Finish { by_rerun: false, by_repair: true }
}

/// `repair GROUP` succeeds and `repair --check GROUP` finds nothing.
pub fn repair_clean(group: &str) {
    if let Ran::Failed(_, line) = run_cli(&["repair", group]) {
        panic!("repair {group}: {line}");
    }
    let check = rbd_cg(&["repair", "--check", group]);
    assert_eq!(check.status.code(), Some(0), "repair --check {group}: {}", String::from_utf8_lossy(&check.stdout));
}

/// What a fault loop did.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopReport {
    /// Workload calls.
    pub operations: u64,
    /// OSD kills (each followed by a start under load).
    pub kills: u64,
}

/// Runs `workload` (one operation per call, with its iteration number; `false` ends the
/// loop early) on a thread of its own while OSDs die: per round, after a random short
/// delay the OSDs `victims(round)` are killed with SIGKILL, the workload runs `during` more
/// operations against the survivors, the OSDs are started again (under load: they recover
/// while the workload runs), and the workload runs `after` more operations. `rounds`
/// rounds, then the loop stops at an operation boundary.
///
/// With two OSDs of three down, PGs fall below `min_size` and every operation waits: the
/// outage then lasts [`OUTAGE`] (or `during` operations, should any complete).
pub fn with_osd_faults<W>(
    osds: &Osds,
    rounds: u64,
    during: u64,
    after: u64,
    mut victims: impl FnMut(u64) -> Vec<u32>,
    workload: W,
) -> LoopReport
where
    W: FnMut(u64) -> bool + Send,
{
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let ended = AtomicBool::new(false);
    let wait_for = |target: u64, limit: Option<Duration>| {
        let since = Instant::now();
        while done.load(Ordering::SeqCst) < target && !ended.load(Ordering::SeqCst) {
            if limit.is_some_and(|l| since.elapsed() >= l) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut kills = 0;
    /// Sets its flag when dropped: the worker stops even when the fault schedule panics
    /// (the scope joins the worker before the panic goes on).
    struct SetOnDrop<'a>(&'a AtomicBool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|scope| {
        let _stop_worker = SetOnDrop(&stop);
        let (done, stop, ended) = (&done, &stop, &ended);
        let mut workload = workload;
        let worker = scope.spawn(move || {
            // Set even when the workload panics, so that the fault schedule stops waiting.
            let _ended = SetOnDrop(ended);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let more = workload(i);
                i += 1;
                done.fetch_add(1, Ordering::SeqCst);
                if !more {
                    break;
                }
            }
        });
        let mut jitter = 0x9e37_79b9_u64;
        for round in 0..rounds {
            // Into the middle of an operation: the workload runs back to back.
            wait_for(done.load(Ordering::SeqCst) + 1, None);
            jitter = jitter.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            std::thread::sleep(Duration::from_millis((jitter >> 33) % 400));
            let ids = victims(round);
            let names: Vec<String> = ids.iter().map(|id| format!("osd.{id}")).collect();
            eprintln!("fault round {round}: kill -9 {} at operation {}", names.join(" "), done.load(Ordering::SeqCst));
            for id in &ids {
                osds.kill(*id);
                kills += 1;
            }
            let outage = (ids.len() > 1).then_some(OUTAGE);
            wait_for(done.load(Ordering::SeqCst) + during, outage);
            eprintln!(
                "fault round {round}: starting {} under load at operation {}",
                names.join(" "),
                done.load(Ordering::SeqCst)
            );
            osds.start(&ids);
            wait_for(done.load(Ordering::SeqCst) + after, None);
            if ended.load(Ordering::SeqCst) {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    });
    LoopReport { operations: done.load(Ordering::SeqCst), kills }
}

/// Member snapshots (`.rbd_cg.<pool>_<group>_<snap>`) on the images that no group snapshot
/// of an existing group records: what a lost or half-done snapshot operation leaves.
pub fn orphan_member_snapshots(pool: &str, ns: &str, images: &[&str], groups: &[&str]) -> Vec<String> {
    let mut recorded = std::collections::BTreeSet::new();
    for group in groups {
        let spec = format!("{pool}/{ns}/{group}");
        let id = cli_json(&["info", &spec])["id"].as_str().unwrap_or_default().to_owned();
        for s in cli_json(&["snap", "ls", &spec]).as_array().into_iter().flatten() {
            recorded.insert(format!("{id}_{}", s["id"].as_str().unwrap_or_default()));
        }
    }
    let mut orphans = Vec::new();
    for image in images {
        let listed = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", &format!("{pool}/{ns}/{image}")]);
        for snap in serde_json::from_str::<Vec<Value>>(&listed).unwrap_or_default() {
            let Some(name) = snap["name"].as_str() else { continue };
            // Hidden, exposed, or 0.1.0-style: every form of a member snapshot's name.
            let Some(parts) = rbd_cg_contract::names::parse_image_snap_name(name) else { continue };
            if !recorded.contains(&format!("{}_{}", parts.group_id, parts.snap_id)) {
                orphans.push(format!("{image}@{name}"));
            }
        }
    }
    orphans
}

/// The image ids of `names` in `pool`/`ns`.
pub fn image_id(pool: &str, ns: &str, image: &str) -> String {
    let info: Value =
        serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", &format!("{pool}/{ns}/{image}")]))
            .expect("rbd info JSON");
    info["id"].as_str().expect("image id").to_owned()
}

/// Back-reference keys (`rbd_cg.group.…`) on an image's header.
pub fn back_references(pool: &str, ns: &str, image: &str) -> Vec<String> {
    omap_keys(pool, ns, &format!("rbd_header.{}", image_id(pool, ns, image)))
        .into_iter()
        .filter(|k| k.starts_with("rbd_cg.group."))
        .collect()
}

/// A dependent writer (`tests/helpers/fencing_writer.py`, plain librbd through python3-rbd):
/// round n writes n to offset 0 of each image in order, each after the previous completed.
pub struct Writer {
    child: Option<std::process::Child>,
    status: PathBuf,
    stop: PathBuf,
}

impl Writer {
    /// Starts it on `images` of `rbd/ns` and waits for its first rounds.
    pub fn start(ns: &str, images: &[&str]) -> Writer {
        let tag = format!("{ns}-{}", images.join("-"));
        let status = std::env::temp_dir().join(format!("rbd-cg-writer-{tag}.json"));
        let stop = std::env::temp_dir().join(format!("rbd-cg-writer-{tag}.stop"));
        let _ = std::fs::remove_file(&status);
        let _ = std::fs::remove_file(&stop);
        let child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/fencing_writer.py"))
            .args(["--conf", &required_env("CEPH_CONF"), "--namespace", ns])
            .args(["--status".as_ref(), status.as_os_str(), "--stop".as_ref(), stop.as_os_str()])
            .args(images)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the writer (needs /usr/bin/python3 with python3-rbd)");
        let writer = Writer { child: Some(child), status, stop };
        let started = Instant::now();
        while writer.status()["rounds"].as_u64().unwrap_or(0) < 20 {
            assert!(started.elapsed() < HANG_LIMIT, "the writer did not start writing");
            std::thread::sleep(Duration::from_millis(50));
        }
        writer
    }

    pub fn status(&self) -> Value {
        std::fs::read_to_string(&self.status)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::json!({"rounds": 0, "errors": 0}))
    }

    /// Stops it and returns its final status (`rounds`: every write of rounds 1..=rounds
    /// was acknowledged; `errors`).
    pub fn stop(mut self) -> Value {
        std::fs::write(&self.stop, b"").expect("stop file");
        let child = self.child.take().expect("running");
        let out = child.wait_with_output().expect("writer exit");
        assert!(out.status.success(), "writer: {}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_file(&self.stop);
        self.status()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The u64 at offset 0 of each image, at image snapshot `snap` (`None`: the head).
pub fn heads(ns: &str, images: &[&str], snap: Option<&str>) -> Vec<u64> {
    // A member snapshot is in the group namespace: found in `list_snaps()` (every namespace)
    // and read by id (`set_snap_by_id`), as stock tools can.
    let set_snap = snap.map_or_else(String::new, |s| {
        format!("\x20       im.set_snap_by_id([s['id'] for s in im.list_snaps() if s['name'] == '{s}'][0])\n")
    });
    let script = format!(
        "import rados, rbd, struct, sys\n\
         c = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\nio.set_namespace('{ns}')\n\
         for name in sys.argv[1:]:\n\
         \x20   with rbd.Image(io, name, read_only=True) as im:\n{set_snap}\
         \x20       print(struct.unpack('<Q', im.read(0, 8))[0])\n\
         io.close()\nc.shutdown()\n"
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).args(images).output().expect("python3");
    assert!(out.status.success(), "reading {snap:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().expect("u64")).collect()
}

/// Writes the u64 `value` at offset 0 of each image (plain librbd).
pub fn write_heads(ns: &str, images: &[&str], value: u64) {
    let script = format!(
        "import rados, rbd, struct, sys\n\
         c = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\nio.set_namespace('{ns}')\n\
         for name in sys.argv[1:]:\n\
         \x20   with rbd.Image(io, name) as im:\n\
         \x20       im.write(struct.pack('<Q', {value}).ljust(4096, b'\\0'), 0)\n\
         io.close()\nc.shutdown()\n"
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).args(images).output().expect("python3");
    assert!(out.status.success(), "writing {images:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The fault schedule of the OSD fault tests: round 0 kills the primary of `oid` (the OSD
/// that runs its class calls), round 1 another OSD, round 2 both at once (two of three down:
/// the PGs stop until they are back), and so on in turn.
pub fn victims<'a>(osds: &'a Osds, pool: &'a str, ns: &'a str, oid: &'a str) -> impl FnMut(u64) -> Vec<u32> + 'a {
    move |round| {
        let primary = osds.primary_of(pool, ns, oid);
        let other = osds.other_than(primary, round / 3);
        match round % 3 {
            0 => vec![primary],
            1 => vec![other],
            _ => vec![primary, other],
        }
    }
}
