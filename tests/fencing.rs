//! Crash-consistent group snapshots on the real cluster, proven the way issue 4 asks: a
//! separate plain-librbd writer (`tests/helpers/fencing_writer.py`, python3-rbd) writes
//! round n to A, then B, then C, each after the previous completed, while group snapshots
//! are taken. Every snapshot must read back A >= B >= C >= A - 1, and the writer must see
//! zero I/O errors. The same check run against `--no-fence` must fail, so it is known to
//! bite. Then the ways a fence can end badly: an owner that refuses to release, a crash
//! while fenced, a wedged client whose lock expires, a frozen client that gets blocklisted,
//! members that cannot be fenced, and quiesce hooks.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers").join(name)
}

/// A namespace with images made by the stock CLI (`features` None = the cluster default:
/// layering, exclusive-lock, object-map, fast-diff, deep-flatten) in group `g`.
fn setup(test: &str, images: &[&str], features: Option<&str>) -> (String, String) {
    let ns = namespace(test);
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    for image in images {
        let spec = format!("rbd/{ns}/{image}");
        match features {
            Some(f) => ceph_tool_ok("rbd", &["create", "--size", "8M", "--image-feature", f, &spec]),
            None => ceph_tool_ok("rbd", &["create", "--size", "8M", &spec]),
        };
        rbd_cg_ok(&["image", "add", &group, &spec]);
    }
    (ns, group)
}

/// The dependent writer, as a child process.
struct Writer {
    child: Option<Child>,
    status: PathBuf,
    stop: PathBuf,
}

impl Writer {
    /// Starts writing to `images` of `ns` and waits until it has done 50 rounds.
    fn start(ns: &str, images: &[&str], extra: &[&str]) -> Writer {
        let dir = std::env::temp_dir().join(format!("rbd-cg-writer-{ns}-{}", images.join("")));
        std::fs::create_dir_all(&dir).unwrap();
        let (status, stop) = (dir.join("status.json"), dir.join("stop"));
        let _ = std::fs::remove_file(&status);
        let _ = std::fs::remove_file(&stop);
        let child = Command::new("/usr/bin/python3")
            .arg(helper("fencing_writer.py"))
            .args(["--conf", &required_env("CEPH_CONF"), "--namespace", ns])
            .args(["--status".as_ref(), status.as_os_str(), "--stop".as_ref(), stop.as_os_str()])
            .args(extra)
            .args(images)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the writer (needs /usr/bin/python3 with python3-rbd)");
        let writer = Writer { child: Some(child), status, stop };
        writer.wait_for_rounds(50, Duration::from_secs(60));
        writer
    }

    fn status(&self) -> serde_json::Value {
        std::fs::read_to_string(&self.status)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::json!({"rounds": 0, "errors": 0}))
    }

    fn rounds(&self) -> u64 {
        self.status()["rounds"].as_u64().unwrap_or(0)
    }

    /// Waits until the writer has done `rounds` rounds; returns how long that took.
    fn wait_for_rounds(&self, rounds: u64, timeout: Duration) -> Duration {
        let start = Instant::now();
        while self.rounds() < rounds {
            assert!(start.elapsed() < timeout, "the writer did not reach round {rounds} in {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// Stops the writer; returns its final status.
    fn stop(mut self) -> serde_json::Value {
        std::fs::write(&self.stop, b"").unwrap();
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        assert!(out.status.success(), "writer: {}", String::from_utf8_lossy(&out.stderr));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("writer status");
        assert_eq!(status["errors"], 0, "the writer saw I/O errors: {status}");
        status
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

/// The u64 at offset 0 of `image@snap` (an image snapshot name), read through librbd: a
/// member snapshot is in the group namespace, so it is found in `list_snaps()` (every
/// namespace) and read by id (`set_snap_by_id`), as stock tools can.
fn heads(ns: &str, images: &[&str], snap: &str) -> Vec<u64> {
    let script = format!(
        "import rados, rbd, struct, sys\n\
         c = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\nio.set_namespace('{ns}')\n\
         for name in sys.argv[1:]:\n\
         \x20   with rbd.Image(io, name, read_only=True) as im:\n\
         \x20       im.set_snap_by_id([s['id'] for s in im.list_snaps() if s['name'] == '{snap}'][0])\n\
         \x20       print(struct.unpack('<Q', im.read(0, 8))[0])\n\
         io.close()\nc.shutdown()\n"
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).args(images).output().expect("python3");
    assert!(out.status.success(), "reading {snap}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Starts `rbd-cg args` with `RBD_CG_FAULT=fault` (a `sleep=` action) and returns once it
/// reports that it sleeps, with the lines of stderr still to come.
fn spawn_until_asleep(
    args: &[&str],
    fault: &str,
) -> (Child, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>) {
    use std::io::BufRead;
    let mut child = Command::new(required_env("RBD_CG_BIN"))
        .args(args)
        .env("RBD_CG_FAULT", fault)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("fault injection: sleeping") {
            return (child, lines);
        }
        eprintln!("rbd-cg: {line}");
    }
    panic!("rbd-cg {args:?} ended before it reached {fault}: {:?}", child.wait());
}

/// A >= B >= C >= A - 1.
fn consistent(values: &[u64]) -> bool {
    values.windows(2).all(|w| w[0] >= w[1]) && values.last().unwrap() + 1 >= values[0]
}

/// The member snapshot name of every group snapshot, in creation order.
fn member_snap_names(group: &str) -> Vec<String> {
    let snaps: Vec<serde_json::Value> =
        serde_json::from_str(&rbd_cg_ok(&["snap", "ls", group, "--format", "json"])).unwrap();
    snaps
        .iter()
        .map(|s| {
            let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&[
                "snap",
                "info",
                &format!("{group}@{}", s["name"].as_str().unwrap()),
                "--format",
                "json",
            ]))
            .unwrap();
            assert_eq!(info["status"], "complete", "{info}");
            info["images"][0]["snap_name"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Takes `count` group snapshots under a running writer; returns (consistent, total).
fn snapshots_under_writer(ns: &str, group: &str, images: &[&str], create_args: &[&str], count: usize) -> usize {
    for i in 0..count {
        let mut args = vec!["snap", "create"];
        args.extend_from_slice(create_args);
        let spec = format!("{group}@s{i}");
        args.push(&spec);
        rbd_cg_ok(&args);
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut inconsistent = 0;
    for snap in member_snap_names(group) {
        let values = heads(ns, images, &snap);
        eprintln!("{snap}: {values:?}");
        assert!(values[0] > 0, "the writer had written before every snapshot");
        inconsistent += usize::from(!consistent(&values));
    }
    inconsistent
}

fn assert_no_locks(ns: &str, images: &[&str]) {
    for image in images {
        let locks = ceph_tool_ok("rbd", &["lock", "ls", "--format", "json", &format!("rbd/{ns}/{image}")]);
        assert!(matches!(locks.trim(), "[]" | "{}" | ""), "a lock is left on {image}: {locks}");
    }
}

fn fenced_snapshots_are_consistent(test: &str, features: Option<&str>, writer_args: &[&str]) {
    let images = ["a", "b", "c"];
    let (ns, group) = setup(test, &images, features);
    let writer = Writer::start(&ns, &images, writer_args);
    let before = writer.rounds();
    let inconsistent = snapshots_under_writer(&ns, &group, &images, &[], 8);
    let after = writer.rounds();
    let status = writer.stop();
    eprintln!("{test}: writer {status}");
    assert_eq!(inconsistent, 0, "every fenced snapshot is crash-consistent");
    assert!(after > before + 8, "the writer kept going during the snapshots ({before} -> {after})");
    assert_no_locks(&ns, &images);
    if features.is_none() {
        // Object map and fast-diff of the member snapshots are what librbd would have made
        // (checked by stock commands that name snapshots, so in the user namespace).
        let mut exposed = Vec::new();
        for snap in member_snap_names(&group) {
            for image in images {
                exposed.push(expose_for_stock(&format!("rbd/{ns}/{image}"), &snap));
                ceph_tool_ok("rbd", &["object-map", "check", "--no-progress", &format!("rbd/{ns}/{image}@{snap}")]);
            }
        }
        let snaps = member_snap_names(&group);
        let diff = ceph_tool_ok(
            "rbd",
            &["diff", "--format", "json", "--from-snap", &snaps[0], &format!("rbd/{ns}/a@{}", snaps[1])],
        );
        assert!(diff.contains("\"offset\":0"), "the first object changed between two snapshots: {diff}");
        drop(exposed);
        assert!(image_snapshots(&format!("rbd/{ns}/a")).iter().all(|s| s.namespace == "group"), "hidden again");
    }
}

#[test]
fn fenced_snapshots_are_crash_consistent_with_default_features() {
    fenced_snapshots_are_consistent("fence-default", None, &[]);
}

#[test]
fn fenced_snapshots_are_crash_consistent_without_object_map_or_cache() {
    fenced_snapshots_are_consistent("fence-plain", Some("layering,exclusive-lock"), &["--conf-set", "rbd_cache=false"]);
}

#[test]
fn the_check_bites_unfenced_snapshots_are_inconsistent() {
    let images = ["a", "b", "c"];
    let (ns, group) = setup("fence-naive", &images, None);
    let writer = Writer::start(&ns, &images, &[]);
    let inconsistent = snapshots_under_writer(&ns, &group, &images, &["--no-fence"], 6);
    writer.stop();
    assert!(inconsistent > 0, "one member after another must show the writer's progress between cuts");
}

#[test]
fn two_writers_on_one_member_still_get_a_consistent_snapshot() {
    // A second writer on b makes the two owners hand b's lock back and forth while we
    // fence. b then holds the second writer's numbers, so the check uses a and c (the
    // chain a -> b -> c still orders them).
    let images = ["a", "b", "c"];
    let (ns, group) = setup("fence-pingpong", &images, None);
    let writer = Writer::start(&ns, &images, &[]);
    let second = Writer::start(&ns, &["b"], &[]);
    for i in 0..4 {
        rbd_cg_ok(&["snap", "create", &format!("{group}@s{i}")]);
    }
    second.stop();
    writer.stop();
    for snap in member_snap_names(&group) {
        let values = heads(&ns, &["a", "c"], &snap);
        assert!(consistent(&values), "{snap}: {values:?}");
    }
    assert_no_locks(&ns, &images);
}

#[test]
fn an_owner_that_refuses_to_release_fails_the_snapshot_not_its_io() {
    let images = ["a", "b", "c"];
    let (ns, group) = setup("fence-erofs", &images, None);
    let writer = Writer::start(&ns, &["a", "c"], &[]);
    let holder = Writer::start(&ns, &["b"], &["--lock-exclusive"]);
    let err = expect_errno(&rbd_cg(&["snap", "create", &format!("{group}@s")]), libc::EROFS);
    assert!(err.contains("refuses to give up the lock") && err.contains("/b"), "{err}");
    assert!(rbd_cg_ok(&["snap", "ls", &group]).trim().is_empty(), "the failed snapshot was undone");
    holder.stop();
    writer.stop();
    assert_no_locks(&ns, &images);
}

/// After a crash (exit) in `step` of a fenced snapshot of three members, writers resume
/// within the watch timeout without an error, and `repair` removes the remains.
fn crash_while_fenced(step: u32) {
    let images = ["a", "b", "c"];
    let (ns, group) = setup(&format!("fence-crash-{step}"), &images, None);
    let writer = Writer::start(&ns, &images, &[]);
    crash_at("snap-create", step, &["snap", "create", "--watch-timeout", "6", &format!("{group}@s")]);
    let stalled = writer.wait_for_rounds(writer.rounds() + 20, Duration::from_secs(30));
    eprintln!("step {step}: the writer went on {stalled:?} after the crash");
    rbd_cg_ok(&["repair", &group]);
    assert!(rbd_cg_ok(&["snap", "ls", &group]).trim().is_empty(), "repair undid the snapshot");
    rbd_cg_ok(&["snap", "create", "--fence-timeout", "30", &format!("{group}@t")]);
    let status = writer.stop();
    eprintln!("step {step}: writer {status}");
    for snap in member_snap_names(&group) {
        assert!(consistent(&heads(&ns, &images, &snap)));
    }
    for image in images {
        let snaps = ceph_tool_ok("rbd", &["snap", "ls", "--all", &format!("rbd/{ns}/{image}")]);
        assert_eq!(snaps.matches(".rbd_cg.").count(), 1, "only the new snapshot is left on {image}: {snaps}");
    }
    assert_no_locks(&ns, &images);
}

#[test]
fn a_crash_while_fenced_never_fails_writer_io_and_repair_cleans_up() {
    // 1 record, 2 watch + quiesce, 3 fence all, 4 cut all, 5 release, 6 complete.
    // A crash with every fence held, after the cuts, and after the release.
    std::thread::scope(|scope| {
        for step in [3, 4, 5] {
            scope.spawn(move || crash_while_fenced(step));
        }
    });
}

#[test]
fn a_wedged_client_loses_its_fence_when_the_lock_expires() {
    // The main thread sleeps after fencing everything; librados keeps the watches alive,
    // so only the lock's expiry (2 x 1 s + 10 s) frees the writer. The late cut then fails
    // `assert_locked` and the snapshot is undone: never an inconsistent snapshot.
    let images = ["a", "b", "c"];
    let (ns, group) = setup("fence-wedged", &images, None);
    let writer = Writer::start(&ns, &images, &[]);
    let create = ["snap", "create", "--fence-timeout", "1", &format!("{group}@s")];
    let (mut command, stderr) = spawn_until_asleep(&create, "snap-create:3:sleep=25");
    let asleep = Instant::now();
    writer.wait_for_rounds(writer.rounds() + 20, Duration::from_secs(30));
    eprintln!("the writer resumed {:?} after the client fell asleep", asleep.elapsed());
    assert!(command.try_wait().unwrap().is_none(), "the writer resumed while the wedged client still slept");
    let status = command.wait().unwrap();
    let stderr: Vec<String> = stderr.map(Result::unwrap).collect();
    let stderr = stderr.join("\n");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("expired"), "{stderr}");
    writer.stop();
    assert!(rbd_cg_ok(&["snap", "ls", &group]).trim().is_empty(), "the snapshot was undone");
    for image in images {
        let snaps = ceph_tool_ok("rbd", &["snap", "ls", "--all", &format!("rbd/{ns}/{image}")]);
        assert!(!snaps.contains(".rbd_cg."), "no member snapshot left on {image}: {snaps}");
    }
}

#[test]
fn a_frozen_client_is_blocklisted_and_its_late_cut_cannot_land() {
    // SIGSTOP while fenced: the watches time out, the writer blocklists the frozen client
    // and breaks its locks (librbd's own rule). Resumed, the client fails and repair cleans up.
    let images = ["a", "b", "c"];
    let (ns, group) = setup("fence-frozen", &images, None);
    let writer = Writer::start(&ns, &images, &[]);
    let create = ["snap", "create", "--watch-timeout", "6", &format!("{group}@s")];
    let (mut command, stderr) = spawn_until_asleep(&create, "snap-create:3:sleep=2");
    // Freeze it while it sleeps with every fence held.
    let pid = command.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let stalled = writer.wait_for_rounds(writer.rounds() + 20, Duration::from_secs(40));
    eprintln!("the writer went on {stalled:?} after the client froze");
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let status = command.wait().unwrap();
    let stderr: Vec<String> = stderr.map(Result::unwrap).collect();
    assert!(!status.success(), "a blocklisted client cannot complete the snapshot: {}", stderr.join("\n"));
    rbd_cg_ok(&["repair", &group]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@t")]);
    writer.stop();
    assert_eq!(rbd_cg_ok(&["snap", "ls", &group]).lines().skip(1).count(), 1, "one row under the header");
    for snap in member_snap_names(&group) {
        assert!(consistent(&heads(&ns, &images, &snap)));
    }
}

#[test]
fn members_without_exclusive_lock_are_refused_unless_allowed() {
    let (ns, group) = setup("fence-nolock", &["a"], None);
    ceph_tool_ok("rbd", &["create", "--size", "8M", "--image-feature", "layering", &format!("rbd/{ns}/plain")]);
    rbd_cg_ok(&["image", "add", &group, &format!("rbd/{ns}/plain")]);
    let err = expect_errno(&rbd_cg(&["snap", "create", &format!("{group}@s")]), libc::EINVAL);
    assert!(err.contains("no exclusive-lock feature") && err.contains("--allow-unfenced"), "{err}");
    assert!(rbd_cg_ok(&["snap", "ls", &group]).trim().is_empty(), "nothing is left of the refused snapshot");
    let out = rbd_cg(&["snap", "create", "--allow-unfenced", &format!("{group}@s")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOT crash-consistent") && stderr.contains("plain"), "{stderr}");
    assert_eq!(member_snap_names(&group).len(), 1);
    let out = rbd_cg(&["snap", "create", "--no-fence", &format!("{group}@t")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT crash-consistent"));
}

/// A quiesce hook (`tests/helpers/quiesce_hook.py`: `rbd_quiesce_watch` through librbd, as
/// rbd-nbd registers one) on `rbd/ns/image`; its events file lists `ready`, `quiesce`,
/// `unquiesce` lines.
struct QuiesceHook {
    child: Child,
    events: PathBuf,
}

impl QuiesceHook {
    fn start(ns: &str, image: &str, fail_with: i32) -> QuiesceHook {
        let events = std::env::temp_dir().join(format!("rbd-cg-quiesce-{ns}-{image}-{fail_with}"));
        let _ = std::fs::remove_file(&events);
        let child = Command::new("/usr/bin/python3")
            .arg(helper("quiesce_hook.py"))
            .args(["--conf", &required_env("CEPH_CONF"), "--namespace", ns, "--fail-with", &fail_with.to_string()])
            .args(["--events".as_ref(), events.as_os_str()])
            .arg(image)
            .spawn()
            .expect("starting the quiesce hook");
        let hook = QuiesceHook { child, events };
        let start = Instant::now();
        while !hook.events().contains(&"ready".to_owned()) {
            assert!(start.elapsed() < Duration::from_secs(30), "the quiesce hook did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        hook
    }

    /// Event names so far, `ready` first.
    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    /// Waits (up to 12 s: librbd also unquiesces by itself after 10 s) for `count` events.
    fn wait_for_events(&self, count: usize) -> Vec<String> {
        let start = Instant::now();
        while self.events().len() < count && start.elapsed() < Duration::from_secs(12) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.events()
    }
}

impl Drop for QuiesceHook {
    fn drop(&mut self) {
        // SIGTERM, so it unwatches: a killed hook's watch lingers for the OSD's watch
        // timeout, and a quiesce notify then times out on it (as stock's would).
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

#[test]
fn quiesce_hooks_run_around_the_fence_and_their_failure_stops_the_snapshot() {
    let images = ["a", "b"];
    let (ns, group) = setup("fence-quiesce", &images, None);
    let hook = QuiesceHook::start(&ns, "a", 0);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s1")]);
    assert_eq!(hook.wait_for_events(3), ["ready", "quiesce", "unquiesce"]);
    rbd_cg_ok(&["snap", "create", "--skip-quiesce", &format!("{group}@s2")]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.events().len(), 3, "--skip-quiesce notifies nobody");
    // Quiesce comes before any fence: stopped dead right after it, the hook is quiesced
    // and no member is locked yet.
    crash_at("snap-create", 2, &["snap", "create", &format!("{group}@s3")]);
    assert_eq!(hook.events().last().map(String::as_str), Some("quiesce"));
    assert_no_locks(&ns, &images);
    assert_eq!(hook.wait_for_events(5).last().map(String::as_str), Some("unquiesce"), "librbd resumes by itself");
    rbd_cg_ok(&["repair", &group]);
    drop(hook);

    let failing = QuiesceHook::start(&ns, "b", libc::EINVAL);
    let err = expect_errno(&rbd_cg(&["snap", "create", &format!("{group}@s4")]), libc::EINVAL);
    assert!(err.contains("quiesce") && err.contains("--ignore-quiesce-error"), "{err}");
    assert_eq!(rbd_cg_ok(&["snap", "ls", &group]).lines().skip(1).count(), 2, "the failed snapshot was undone");
    assert_eq!(failing.wait_for_events(3), ["ready", "quiesce", "unquiesce"], "unquiesce follows a failed quiesce");
    let out = rbd_cg(&["snap", "create", "--ignore-quiesce-error", &format!("{group}@s4")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    assert_no_locks(&ns, &images);
}

#[test]
fn two_groups_sharing_members_snapshot_at_the_same_time() {
    // Both fence the same three images in parallel; whoever meets the other's fence lets go
    // and retries, so both complete, every snapshot consistent, no writer error.
    let images = ["a", "b", "c"];
    let (ns, group) = setup("fence-contend", &images, None);
    let other = format!("rbd/{ns}/h");
    rbd_cg_ok(&["create", &other]);
    for image in images {
        rbd_cg_ok(&["image", "add", &other, &format!("rbd/{ns}/{image}")]);
    }
    let writer = Writer::start(&ns, &images, &[]);
    for round in 0..4 {
        std::thread::scope(|scope| {
            for g in [&group, &other] {
                scope.spawn(move || rbd_cg_ok(&["snap", "create", &format!("{g}@r{round}")]));
            }
        });
    }
    writer.stop();
    for g in [&group, &other] {
        let snaps = member_snap_names(g);
        assert_eq!(snaps.len(), 4);
        for snap in snaps {
            let values = heads(&ns, &images, &snap);
            assert!(consistent(&values), "{g} {snap}: {values:?}");
        }
    }
    assert_no_locks(&ns, &images);
}

#[test]
fn snapshot_ids_come_from_the_reserve_and_survive_a_newer_image_snapshot() {
    let images = ["a", "b"];
    let (ns, group) = setup("fence-reserve", &images, None);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s1")]);
    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", &group, "--format", "json"])).unwrap();
    let header = format!("cg_header.{}", info["id"].as_str().unwrap());
    assert!(omap_keys("rbd", &ns, &header).contains(&"reserved_snap_ids".to_owned()), "ids are allocated ahead");
    // A user snapshot of `a` now has a newer id than `a`'s reserved one: the cut meets
    // ESTALE and allocates again inside the fence.
    ceph_tool_ok("rbd", &["snap", "create", &format!("rbd/{ns}/a@mine")]);
    let writer = Writer::start(&ns, &images, &[]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s2")]);
    writer.stop();
    let snaps: Vec<serde_json::Value> = serde_json::from_str(&ceph_tool_ok(
        "rbd",
        &["snap", "ls", "--all", "--format", "json", &format!("rbd/{ns}/a")],
    ))
    .unwrap();
    let id_of =
        |name: &str| snaps.iter().find(|s| s["name"].as_str().unwrap().ends_with(name)).map(|s| s["id"].as_u64());
    let s2 = member_snap_names(&group).pop().unwrap();
    assert!(id_of(&s2) > id_of("mine"), "{snaps:?}");
    let values = heads(&ns, &images, &s2);
    assert!(values[0] > 0 && values[0] == values[1] || values[0] == values[1] + 1, "{values:?}");
}

#[test]
fn the_reserve_holds_ids_of_the_members_data_pools() {
    // Images with a separate data pool take their snapshot ids from it; the reserve must be
    // kept (and judged) per data pool, or every snapshot would wait for the monitor.
    ensure_pool("rbd-cg-data");
    let ns = namespace("fence-datapool");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    for image in ["a", "b"] {
        let spec = format!("rbd/{ns}/{image}");
        ceph_tool_ok("rbd", &["create", "--size", "8M", "--data-pool", "rbd-cg-data", &spec]);
        rbd_cg_ok(&["image", "add", &group, &spec]);
    }
    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", &group, "--format", "json"])).unwrap();
    let header = format!("cg_header.{}", info["id"].as_str().unwrap());
    let data_pool = ceph_tool_ok("ceph", &["osd", "pool", "ls", "detail", "--format", "json"]);
    let pools: Vec<serde_json::Value> = serde_json::from_str(&data_pool).unwrap();
    let data_pool_id = pools.iter().find(|p| p["pool_name"] == "rbd-cg-data").unwrap()["pool_id"].as_i64().unwrap();
    for snap in ["s1", "s2", "s3"] {
        rbd_cg_ok(&["snap", "create", &format!("{group}@{snap}")]);
        let value = rados_omap_value("rbd", &ns, &header, "reserved_snap_ids").expect("a reserve");
        let reserve: rbd_cg_contract::records::SnapIdReserve = rbd_cg_contract::decode(&value).unwrap();
        assert!(reserve.ids.len() >= 2, "at least the next snapshot's worth after {snap}: {reserve:?}");
        // Four snapshots' worth at most: what a snapshot did not take is not piled up.
        assert!(reserve.ids.len() <= 4 * 2, "{reserve:?}");
        assert!(reserve.ids.iter().all(|id| id.pool_id == data_pool_id), "only data-pool ids: {reserve:?}");
    }
    for snap in member_snap_names(&group) {
        let values = heads(&ns, &["a", "b"], &snap);
        assert_eq!(values.len(), 2);
    }
}
