//! Upgrading a cluster populated by the previous release (`tests/previous-release`):
//! groups, members, snapshots, a clone, a renamed group and interrupted operations are
//! written by the previous release's class and CLI (built from git by
//! `scripts/prev-release.sh`), then the OSD gets this build's class and clients this build's
//! CLI. Every read must show the same as before, every interrupted operation must be
//! finished by this build, and new changes must work — writing records in their current
//! version, which the test checks in the stored bytes.
//!
//! Runs on a throwaway cluster of its own (the class is swapped, which restarts the OSD), so
//! it needs `RBD_CG_PREV_BIN` and `RBD_CG_PREV_CLASS_SO` (from `scripts/prev-release.sh`)
//! besides the variables every cluster test needs; without them it fails loudly.

mod common;

use common::required_env;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A cluster of this test's own under `target/`, destroyed when dropped.
struct UpgradeCluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cluster_sh(args: &[&str]) -> Output {
    Command::new(repo().join("scripts/cluster.sh"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running cluster.sh {args:?}: {e}"))
}

impl UpgradeCluster {
    fn start(class_so: &str) -> UpgradeCluster {
        let dir = repo().join("target").join(format!("upgrade-cluster-{}", std::process::id()));
        let _ = cluster_sh(&["destroy", dir.to_str().unwrap()]);
        let out = cluster_sh(&["start", dir.to_str().unwrap(), "--class", class_so, "--no-mgr"]);
        assert!(out.status.success(), "starting the upgrade cluster: {}", String::from_utf8_lossy(&out.stderr));
        UpgradeCluster { conf: dir.join("ceph.conf"), dir }
    }

    fn install_class(&self, class_so: &str) {
        let out = cluster_sh(&["install-class", self.dir.to_str().unwrap(), class_so]);
        assert!(out.status.success(), "installing {class_so}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn run(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(program);
        command.args(args).env("CEPH_CONF", &self.conf).env_remove("CEPH_ARGS").env_remove("RBD_CG_FAULT");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    }

    fn ok(&self, program: &Path, args: &[&str]) -> String {
        let out = self.run(program, args, &[]);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rbd(&self, args: &[&str]) -> String {
        self.ok(Path::new("rbd"), args)
    }

    fn rados(&self, args: &[&str]) -> Output {
        self.run(Path::new("rados"), args, &[])
    }

    /// `rbd export IMAGE -` as a checksum-able byte vector.
    fn export(&self, image: &str) -> Vec<u8> {
        let out = self.run(Path::new("rbd"), &["export", image, "-"], &[]);
        assert!(out.status.success(), "rbd export {image}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// The envelope version (`struct_v`) of a group's stored header.
    fn header_version(&self, group_id: &str) -> u8 {
        let out = self.rados(&["-p", "rbd", "get", &format!("cg_header.{group_id}"), "-"]);
        assert!(out.status.success(), "reading cg_header.{group_id}");
        out.stdout[0]
    }
}

impl Drop for UpgradeCluster {
    fn drop(&mut self) {
        let _ = cluster_sh(&["destroy", self.dir.to_str().unwrap_or_default()]);
    }
}

/// Everything a user can read about the groups, as JSON from one CLI: what must not change
/// across the upgrade.
fn view(cluster: &UpgradeCluster, cli: &Path, groups: &[&str], snapshots: &[(&str, &str)]) -> Vec<(String, Value)> {
    let json = |args: &[&str]| -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&cluster.ok(cli, &all)).unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}"))
    };
    let mut view = vec![("ls".to_owned(), json(&["ls"]))];
    for group in groups {
        view.push((format!("info {group}"), json(&["info", group])));
        view.push((format!("image ls {group}"), json(&["image", "ls", group])));
        view.push((format!("snap ls {group}"), json(&["snap", "ls", group])));
    }
    for (group, snap) in snapshots {
        view.push((format!("snap info {group}@{snap}"), json(&["snap", "info", &format!("{group}@{snap}")])));
    }
    view
}

/// A view taken with this build's CLI in the previous release's vocabulary: since the
/// drop-in for `rbd group`, `snap ls`/`snap info` and `image ls` carry stock's keys too
/// (`snapshot`, and `state` in stock's values) and ours under `status`. Every value the
/// previous release printed must still be there, under its old key.
fn as_previous_release(view: Vec<(String, Value)>) -> Vec<(String, Value)> {
    fn renamed(mut item: Value) -> Value {
        if let Some(fields) = item.as_object_mut() {
            if let Some(status) = fields.remove("status") {
                fields.remove("snapshot");
                fields.insert("state".into(), status);
            }
        }
        item
    }
    view.into_iter()
        .map(|(what, value)| {
            let value = match value {
                Value::Array(items) if what.starts_with("snap ls") || what.starts_with("image ls") => {
                    Value::Array(items.into_iter().map(renamed).collect())
                }
                item if what.starts_with("snap info") => renamed(item),
                other => other,
            };
            (what, value)
        })
        .collect()
}

/// The namespace (`user`, `group`) of each snapshot of `image`, by name.
fn snapshot_namespaces(cluster: &UpgradeCluster, image: &str) -> Vec<(String, String)> {
    let listed: Value =
        serde_json::from_str(&cluster.rbd(&["snap", "ls", "--all", "--format", "json", image])).unwrap();
    let listed = listed.as_array().cloned().unwrap_or_default();
    listed
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["namespace"]["type"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_cluster_populated_by_the_previous_release_keeps_working_after_the_upgrade() {
    required_env("CEPH_CONF");
    let old_cli = PathBuf::from(required_env("RBD_CG_PREV_BIN"));
    let old_class = required_env("RBD_CG_PREV_CLASS_SO");
    let new_cli = PathBuf::from(required_env("RBD_CG_BIN"));
    let new_class = required_env("RBD_CG_CLASS_SO");
    let cluster = UpgradeCluster::start(&old_class);
    let old = |args: &[&str]| cluster.ok(&old_cli, args);

    // ---- the previous release populates the cluster --------------------------------------
    for image in ["a", "b", "c", "d"] {
        cluster.rbd(&["create", "--size", "16M", image]);
    }
    // 64 KiB of random 4 KiB writes (random data too) into an image.
    let write = |image: &str| {
        cluster.rbd(&[
            "bench",
            "--io-type",
            "write",
            "--io-size",
            "4K",
            "--io-total",
            "64K",
            "--io-pattern",
            "rand",
            image,
        ]);
    };
    old(&["create", "db"]);
    old(&["image", "add", "db", "a"]);
    old(&["image", "add", "db", "b"]);
    write("a");
    old(&["snap", "create", "db@s1"]);
    let a_at_s1 = cluster.export("a");
    write("a");
    old(&["snap", "create", "db@s2"]);
    old(&["rename", "db", "db2"]);
    old(&["create", "web"]);
    old(&["image", "add", "web", "c"]);
    old(&["snap", "create", "web@w1"]);
    old(&["clone", "db2@s1", "db2-clone"]);
    // Interrupted by a crash of the old CLI: a half-added member and a half-made snapshot.
    old(&["create", "quiet"]);
    old(&["create", "half"]);
    let crashed = cluster.run(&old_cli, &["image", "add", "half", "d"], &[("RBD_CG_FAULT", "image-add:1")]);
    assert_eq!(crashed.status.code(), Some(86), "{}", String::from_utf8_lossy(&crashed.stderr));
    let crashed = cluster.run(&old_cli, &["snap", "create", "web@w2"], &[("RBD_CG_FAULT", "snap-create:1")]);
    assert_eq!(crashed.status.code(), Some(86), "{}", String::from_utf8_lossy(&crashed.stderr));

    let groups = ["db2", "web", "db2-clone", "half", "quiet"];
    let snapshots = [("db2", "s1"), ("db2", "s2"), ("web", "w1")];
    let before = view(&cluster, &old_cli, &groups, &snapshots);
    let info = |cli: &Path, group: &str| -> Value {
        serde_json::from_str(&cluster.ok(cli, &["--format", "json", "info", group])).expect("info JSON")
    };
    let db2_id = info(&old_cli, "db2")["id"].as_str().expect("id").to_owned();
    let quiet_id = info(&old_cli, "quiet")["id"].as_str().expect("id").to_owned();
    assert_eq!(cluster.header_version(&db2_id), 1, "the previous release writes version-1 headers");

    // ---- upgrade: the OSD gets this build's class, clients this build's CLI ---------------
    cluster.install_class(&new_class);
    let new = |args: &[&str]| cluster.ok(&new_cli, args);

    // Every read shows the same, through either CLI.
    let after = as_previous_release(view(&cluster, &new_cli, &groups, &snapshots));
    for ((what, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "{what} changed across the upgrade");
    }
    let old_cli_after = view(&cluster, &old_cli, &groups, &snapshots);
    assert_eq!(before, old_cli_after, "the previous CLI reads the same from the new class");
    assert_eq!(cluster.header_version(&db2_id), 1, "reading rewrites nothing");

    // What the previous release left interrupted, this build finishes.
    let repaired = new(&["repair", "half"]);
    assert!(repaired.contains("adding image"), "{repaired}");
    let repaired = new(&["repair", "web"]);
    assert!(repaired.contains("w2"), "{repaired}");
    new(&["repair", "--check", "half"]);
    new(&["repair", "--check", "web"]);
    let web_snaps: Value = serde_json::from_str(&new(&["--format", "json", "snap", "ls", "web"])).expect("JSON");
    assert_eq!(web_snaps.as_array().map(Vec::len), Some(1), "the interrupted snapshot is undone: {web_snaps}");

    // New changes work on old records, and write the current version. The previous
    // release's member snapshots are user snapshots; new ones go into the group namespace.
    new(&["snap", "create", "db2@s3"]);
    let kinds = snapshot_namespaces(&cluster, "a");
    assert_eq!(kinds.iter().filter(|(_, ns)| ns == "user").count(), 2, "s1 and s2 as 0.1.0 made them: {kinds:?}");
    assert_eq!(kinds.iter().filter(|(_, ns)| ns == "group").count(), 1, "s3 hidden: {kinds:?}");
    // A clone of a snapshot the previous release took (its member snapshots in the user
    // namespace), next to the one it made itself.
    new(&["clone", "db2@s1", "db2-clone3"]);
    assert_eq!(cluster.header_version(&db2_id), 2, "a change writes the current header version");
    assert_eq!(cluster.header_version(&quiet_id), 1, "an untouched group keeps its version-1 header");
    new(&["snap", "rollback", "db2@s1"]);
    assert!(cluster.export("a") == a_at_s1, "rollback to a snapshot the previous release took");
    new(&["image", "rm", "db2", "b"]);
    new(&["image", "add", "web", "b"]);
    new(&["snap", "create", "web@w3"]);
    new(&["snap", "rm", "db2@s2"]);
    new(&["rename", "db2", "db"]);
    new(&["clone", "db@s3", "db-clone2"]);
    // Removing a clone group leaves its images (RBD clones of the member snapshots).
    new(&["rm", "--force", "db2-clone"]);
    new(&["rm", "db-clone2"]);
    new(&["rm", "db2-clone3"]);
    let clones = |i: &&str| ["db2-clone-", "db-clone2-", "db2-clone3-"].iter().any(|p| i.starts_with(p));
    for image in cluster.rbd(&["ls"]).lines().filter(clones) {
        cluster.rbd(&["rm", image]);
    }
    new(&["snap", "rm", "web@w1"]);
    for group in ["db", "web", "half"] {
        new(&["repair", "--check", group]);
    }
    // And the previous CLI still reads what this build wrote (headers without features
    // stay readable by version-1 readers).
    let listed: Value = serde_json::from_str(&old(&["--format", "json", "ls"])).expect("JSON");
    assert_eq!(listed, serde_json::json!(["db", "half", "quiet", "web"]));
    old(&["--format", "json", "snap", "ls", "db"]);
    new(&["rm", "--force", "db"]);
    new(&["rm", "--force", "web"]);
    new(&["rm", "--force", "half"]);
    new(&["rm", "quiet"]);
    assert_eq!(new(&["ls"]).trim(), "");
}
