//! A rolling upgrade of the class under load (issue #14), on a cluster of three OSDs with
//! pools of size 3 (`scripts/cluster.sh start DIR --osds 3`; `scripts/test.sh` runs this
//! binary on one, started with the previous release's class).
//!
//! Every OSD first runs the class of the previous release (`tests/previous-release`, built
//! from git by `scripts/prev-release.sh`), and that release's CLI populates the cluster:
//! groups, members, snapshots, a clone, an untouched group. Then two clients keep working —
//! the previous release's CLI on one group, this build's on another: snapshots created and
//! removed, a member added and removed, and reads of everything — while the OSDs get this
//! build's class one at a time, as an operator upgrades host after host: new library in the
//! OSD's class dir, OSD restarted, wait until every PG is active+clean, next. Each OSD
//! thus serves some groups with the old class while others already run the new one (the
//! mixed period), and `rbd-cg versions` must show exactly that after each step.
//!
//! No client operation may fail: an OSD restart costs a client only librados' own resends.
//! Afterwards every record is readable through both CLIs and unchanged where the clients did
//! not change it, nothing needs repair, and a rollback to a snapshot the old release took
//! restores its data.
//!
//! Compatibility rule this test holds the code to (`docs/PRODUCTION.md`): records of every
//! version are read by both classes; a newer client uses only methods the previous release's
//! class has, unless the operator has turned on a feature (e.g. a group journal) after the
//! upgrade completed.

mod common;

use common::faults::*;
use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What `rbd-cg versions` says each OSD runs: (osd id, class version).
fn class_versions() -> Vec<(u64, String)> {
    cli_json(&["versions", "rbd"])["osds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (o["osd"].as_u64().unwrap_or(u64::MAX), o["class_version"].as_str().unwrap_or("(not asked)").to_owned())
        })
        .collect()
}

/// JSON from `BIN --format json ARGS`, which must succeed.
fn json_with(bin: &str, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    match run_with(bin, &all) {
        Ran::Ok(out) => serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}")),
        Ran::Failed(_, line) => panic!("{bin} {args:?}: {line}"),
    }
}

/// Everything that must read the same before and after the upgrade, through `bin`.
fn stable_view(bin: &str, ns: &str) -> Vec<(String, Value)> {
    let g = |name: &str| format!("rbd/{ns}/{name}");
    let mut view = Vec::new();
    for group in ["db-clone", "quiet"] {
        view.push((format!("info {group}"), json_with(bin, &["info", &g(group)])));
        view.push((format!("image ls {group}"), json_with(bin, &["image", "ls", &g(group)])));
        view.push((format!("snap ls {group}"), json_with(bin, &["snap", "ls", &g(group)])));
    }
    for snap in ["db@s1", "db@s2", "web@w1"] {
        view.push((format!("snap info {snap}"), json_with(bin, &["snap", "info", &g(snap)])));
    }
    view
}

/// One client's loop on `group`: create a snapshot, remove the oldest it made beyond two,
/// add or remove `spare`, read everything. Every run must succeed.
struct Client<'a> {
    bin: &'a str,
    ns: &'a str,
    group: &'a str,
    spare: &'a str,
    tag: &'a str,
}

impl Client<'_> {
    fn must(&self, args: &[&str], done: &AtomicU64) -> String {
        done.fetch_add(1, Ordering::Relaxed);
        match run_with(self.bin, args) {
            Ran::Ok(out) => out,
            Ran::Failed(_, line) => panic!("{} client: {args:?} failed during the upgrade: {line}", self.tag),
        }
    }

    fn run(&self, stop: &AtomicBool, done: &AtomicU64) -> Vec<String> {
        let spec = format!("rbd/{}/{}", self.ns, self.group);
        let spare = format!("rbd/{}/{}", self.ns, self.spare);
        let mut made: Vec<String> = Vec::new();
        let mut member = false;
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let name = format!("{}{i}", self.tag);
            self.must(&["snap", "create", "--no-progress", &format!("{spec}@{name}")], done);
            made.push(name);
            if made.len() > 2 {
                let oldest = made.remove(0);
                self.must(&["snap", "rm", "--no-progress", &format!("{spec}@{oldest}")], done);
            }
            let verb = if member { "rm" } else { "add" };
            self.must(&["image", verb, &spec, &spare], done);
            member = !member;
            for read in [
                vec!["info", spec.as_str()],
                vec!["image", "ls", spec.as_str()],
                vec!["snap", "ls", spec.as_str()],
                vec!["ls", &format!("rbd/{}", self.ns)],
            ] {
                let mut args = vec!["--format", "json"];
                args.extend(read.iter().map(|s| &**s));
                self.must(&args, done);
            }
            i += 1;
        }
        if member {
            self.must(&["image", "rm", &spec, &spare], done);
        }
        made
    }
}

#[test]
fn multi_osd_rolling_upgrade_under_load_keeps_every_client_working() {
    let osds = Osds::from_env();
    let old_cli = required_env("RBD_CG_PREV_BIN");
    let old_class = required_env("RBD_CG_PREV_CLASS_SO");
    let old_version = required_env("RBD_CG_PREV_VERSION");
    let new_cli = required_env("RBD_CG_BIN");
    let new_class = required_env("RBD_CG_CLASS_SO");
    let new_version = rbd_cg_contract::CLASS_VERSION;
    assert_ne!(
        old_version, new_version,
        "this build claims the previous release's version: an operator could not tell the classes apart"
    );

    // ---- every OSD on the previous release (no-op if the cluster was started with it) ----
    osds.cluster_sh("install-class", &[&old_class]);
    let ids = osds.ids();

    // ---- the previous release populates the cluster ---------------------------------------
    let ns = namespace("rolling");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let g = |name: &str| format!("rbd/{ns}/{name}");
    for image in ["a", "b", "c", "d", "e"] {
        ceph_tool_ok("rbd", &["create", "--size", "8M", &g(image)]);
    }
    let old = |args: &[&str]| match run_with(&old_cli, args) {
        Ran::Ok(out) => out,
        Ran::Failed(_, line) => panic!("previous release: {args:?}: {line}"),
    };
    old(&["create", &g("db")]);
    old(&["image", "add", &g("db"), &g("a")]);
    old(&["image", "add", &g("db"), &g("b")]);
    write_heads(&ns, &["a", "b"], 1);
    old(&["snap", "create", &g("db@s1")]);
    write_heads(&ns, &["a", "b"], 2);
    old(&["snap", "create", &g("db@s2")]);
    old(&["create", &g("web")]);
    old(&["image", "add", &g("web"), &g("c")]);
    old(&["snap", "create", &g("web@w1")]);
    old(&["clone", &g("db@s1"), &g("db-clone")]);
    old(&["create", &g("quiet")]);
    // Every OSD runs the previous release, and answers so (the pool holds objects on every
    // PG by now).
    let versions = class_versions();
    assert_eq!(versions.len(), ids.len(), "{versions:?}");
    assert!(versions.iter().all(|(_, v)| *v == old_version), "before the upgrade: {versions:?}");
    // Each CLI's own view (since the drop-in they print different JSON for the same records).
    let before = stable_view(&old_cli, &ns);
    let before_new = stable_view(&new_cli, &ns);

    // ---- two clients at work while the OSDs are upgraded one at a time --------------------
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let (new_made, old_made) = std::thread::scope(|scope| {
        let new_client = Client { bin: &new_cli, ns: &ns, group: "db", spare: "e", tag: "n" };
        let old_client = Client { bin: &old_cli, ns: &ns, group: "web", spare: "d", tag: "o" };
        let (stop, done) = (&stop, &done);
        let new_loop = scope.spawn(move || new_client.run(stop, done));
        let old_loop = scope.spawn(move || old_client.run(stop, done));
        // Stops the clients even when an assertion below fails.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let stopper = Stop(stop);
        let wait_ops = |more: u64| {
            let target = done.load(Ordering::Relaxed) + more;
            let since = Instant::now();
            while done.load(Ordering::Relaxed) < target && !new_loop.is_finished() && !old_loop.is_finished() {
                assert!(since.elapsed() < HANG_LIMIT, "the clients stopped making progress");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_ops(10);
        for (k, id) in ids.iter().enumerate() {
            eprintln!("upgrading osd.{id} at client operation {}", done.load(Ordering::Relaxed));
            // New library into this OSD's class dir, the OSD restarted, wait for clean PGs.
            osds.cluster_sh("install-class", &[&new_class, "--osd", &id.to_string()]);
            let versions = class_versions();
            eprintln!("  rbd-cg versions: {versions:?}");
            for (osd, version) in &versions {
                let upgraded = ids[..=k].iter().any(|u| u64::from(*u) == *osd);
                let want = if upgraded { new_version } else { old_version.as_str() };
                assert_eq!(version, want, "osd.{osd} after upgrading {:?}: {versions:?}", &ids[..=k]);
            }
            wait_ops(10);
        }
        drop(stopper);
        let new_made = new_loop.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let old_made = old_loop.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (new_made, old_made)
    });
    let operations = done.load(Ordering::Relaxed);
    eprintln!(
        "rolling upgrade of {} OSDs under load: {operations} client operations in {:?}, none failed",
        ids.len(),
        started.elapsed()
    );

    // ---- every record readable, unchanged where nobody changed it --------------------------
    assert_eq!(stable_view(&new_cli, &ns), before_new, "records changed across the upgrade (this build's CLI)");
    assert_eq!(stable_view(&old_cli, &ns), before, "records changed across the upgrade (previous CLI)");
    let names = |bin: &str, group: &str| -> Vec<String> {
        json_with(bin, &["snap", "ls", &g(group)])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    let mut want_db = vec!["s1".to_owned(), "s2".to_owned()];
    want_db.extend(new_made);
    let mut want_web = vec!["w1".to_owned()];
    want_web.extend(old_made);
    for bin in [new_cli.as_str(), old_cli.as_str()] {
        assert_eq!(names(bin, "db"), want_db, "{bin}");
        assert_eq!(names(bin, "web"), want_web, "{bin}");
    }
    let listed = json_with(&new_cli, &["ls", &format!("rbd/{ns}")]);
    assert_eq!(listed, serde_json::json!(["db", "db-clone", "quiet", "web"]));
    for group in ["db", "web", "db-clone", "quiet"] {
        let check = rbd_cg(&["repair", "--check", &g(group)]);
        assert_eq!(check.status.code(), Some(0), "{group}: {}", String::from_utf8_lossy(&check.stdout));
    }
    assert_consistent(&cluster(), "rbd", &ns);
    let orphans = orphan_member_snapshots("rbd", &ns, &["a", "b", "c", "d", "e"], &["db", "web"]);
    assert!(orphans.is_empty(), "{orphans:?}");
    // And the upgraded class works on what the old one wrote.
    rbd_cg_ok(&["snap", "rollback", "--no-progress", &g("db@s1")]);
    assert_eq!(heads(&ns, &["a", "b"], None), vec![1, 1], "rollback to a snapshot the previous release took");
    // Clean up for the tests that follow on this cluster: the clones first (their parents
    // are db's member snapshots, protected for clone v1).
    rbd_cg_ok(&["rm", "--force", "--no-progress", &g("db-clone")]);
    for image in ["db-clone-a", "db-clone-b"] {
        ceph_tool_ok("rbd", &["rm", "--no-progress", &g(image)]);
    }
    for group in ["db", "web", "quiet"] {
        rbd_cg_ok(&["rm", "--force", "--no-progress", &g(group)]);
    }
    assert_eq!(json_with(&new_cli, &["ls", &format!("rbd/{ns}")]), serde_json::json!([]));
}
