//! Shared harness of the integration tests: they run against the real throwaway cluster
//! that `scripts/test.sh` starts, never against a mock.
//!
//! Without `CEPH_CONF` (and the other variables the script exports) every test fails
//! loudly: a cluster test must never pass by skipping. Each test works in its own RADOS
//! namespace, so tests can run in parallel on one cluster.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod faults;
pub mod server;

use rbd_cg_client::groups::Groups;
use rbd_cg_client::spec::PoolSpec;
use rbd_cg_rados::{Cluster, ConnectOptions, IoCtx};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The environment variable, or a panic that says how to get a cluster.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: integration tests need the throwaway cluster. \
             Run them through scripts/test.sh (it starts one and sets {name})."
        )
    })
}

pub fn cluster() -> Cluster {
    required_env("CEPH_CONF");
    Cluster::connect(&ConnectOptions::default()).expect("connecting to the test cluster")
}

/// A namespace unique to this test (and this run).
pub fn namespace(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

pub fn pool_spec(pool: &str, namespace: &str) -> PoolSpec {
    PoolSpec { pool: pool.into(), namespace: namespace.into() }
}

pub fn groups(cluster: &Cluster, pool: &str, namespace: &str) -> Groups {
    Groups::open(cluster, &pool_spec(pool, namespace)).expect("opening groups")
}

pub fn ioctx(cluster: &Cluster, pool: &str, namespace: &str) -> IoCtx {
    let mut ioctx = cluster.ioctx(pool).expect("pool");
    ioctx.set_namespace(namespace).expect("namespace");
    ioctx
}

/// Runs the `rbd-cg` binary.
pub fn rbd_cg(args: &[&str]) -> Output {
    rbd_cg_with_env(args, &[])
}

pub fn rbd_cg_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = PathBuf::from(required_env("RBD_CG_BIN"));
    let mut command = Command::new(&bin);
    command.args(args).env_remove("RBD_CG_FAULT");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// Runs `rbd-cg` and expects success; returns stdout.
pub fn rbd_cg_ok(args: &[&str]) -> String {
    let out = rbd_cg(args);
    assert!(out.status.success(), "rbd-cg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a stock Ceph CLI (`rados`, `rbd`, `ceph`) against the test cluster.
pub fn ceph_tool(tool: &str, args: &[&str]) -> Output {
    required_env("CEPH_CONF");
    Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("running {tool}: {e}"))
}

pub fn ceph_tool_ok(tool: &str, args: &[&str]) -> String {
    let out = ceph_tool(tool, args);
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rados -p POOL -N NS ls`, sorted.
pub fn rados_objects(pool: &str, ns: &str) -> Vec<String> {
    let mut objects: Vec<String> =
        ceph_tool_ok("rados", &["-p", pool, "-N", ns, "ls"]).lines().map(str::to_owned).collect();
    objects.sort();
    objects
}

/// `rados listomapkeys`, sorted.
pub fn omap_keys(pool: &str, ns: &str, oid: &str) -> Vec<String> {
    let out = ceph_tool("rados", &["-p", pool, "-N", ns, "listomapkeys", oid]);
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    keys.sort();
    keys
}

/// One omap value through `rados getomapval` (None when the object or key does not exist).
pub fn rados_omap_value(pool: &str, ns: &str, oid: &str, key: &str) -> Option<Vec<u8>> {
    let file = std::env::temp_dir().join(format!("rbd-cg-omapval-{}-{oid}-{key}", std::process::id()));
    let out = ceph_tool("rados", &["-p", pool, "-N", ns, "getomapval", oid, key, file.to_str()?]);
    let value = if out.status.success() { std::fs::read(&file).ok() } else { None };
    let _ = std::fs::remove_file(&file);
    value
}

/// Object data through `rados get` (None when the object does not exist).
pub fn rados_get(pool: &str, ns: &str, oid: &str) -> Option<Vec<u8>> {
    let out = ceph_tool("rados", &["-p", pool, "-N", ns, "get", oid, "-"]);
    out.status.success().then_some(out.stdout)
}

/// Creates a pool once per run (idempotent) and enables rbd on it.
pub fn ensure_pool(pool: &str) {
    if ceph_tool("ceph", &["osd", "pool", "ls"]).stdout.split(|b| *b == b'\n').any(|l| l == pool.as_bytes()) {
        return;
    }
    let created = ceph_tool("ceph", &["osd", "pool", "create", pool, "8"]);
    assert!(created.status.success() || String::from_utf8_lossy(&created.stderr).contains("already exists"));
    ceph_tool("ceph", &["osd", "pool", "set", pool, "size", "1", "--yes-i-really-mean-it"]);
    ceph_tool("rbd", &["pool", "init", pool]);
}

/// The OSD's log file.
pub fn osd_log() -> String {
    let dir = PathBuf::from(required_env("RBD_CG_TEST_CLUSTER_DIR"));
    std::fs::read_to_string(dir.join("log/osd.0.log")).unwrap_or_default()
}

/// Stderr of a failed command, which must be an `rbd-cg: ...: (<errno>) ...` line.
pub fn expect_errno(out: &Output, errno: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure with errno {errno}, got success");
    assert!(stderr.starts_with("rbd-cg: "), "error line: {stderr}");
    assert!(stderr.contains(&format!(": ({errno}) ")), "expected errno {errno} in: {stderr}");
    stderr
}

/// Checks the invariants of a pool/namespace after every operation has finished (or
/// been rerun or repaired): every directory name is `Ready`, `cg_id.<name>` holds its
/// id, `cg_header.<id>` holds its name and is `Active`, the id index agrees, and no
/// other `cg_*` object exists. Returns the names.
pub fn assert_consistent(cluster: &Cluster, pool: &str, ns: &str) -> Vec<String> {
    use rbd_cg_contract::names::*;
    use rbd_cg_contract::records::*;
    let io = ioctx(cluster, pool, ns);
    let directory = match io.omap_get_all(DIRECTORY_OBJECT, 0) {
        Ok(entries) => entries,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => panic!("reading the directory: {e}"),
    };
    let mut expected_objects = Vec::new();
    let mut names = Vec::new();
    let mut ids = Vec::new();
    for (key, value) in &directory {
        if let Some(name) = key.strip_prefix(DIR_NAME_KEY_PREFIX) {
            let entry: DirEntry = rbd_cg_contract::decode(value).expect("directory entry");
            assert_eq!(entry.state, DirState::Ready, "{name:?} is not Ready: {entry:?}");
            let id_record: GroupIdRecord = rbd_cg_contract::decode(
                &rados_get(pool, ns, &id_object(name)).unwrap_or_else(|| panic!("cg_id.{name} missing")),
            )
            .expect("id record");
            assert_eq!(id_record.id, entry.id, "cg_id.{name}");
            let header: GroupHeader = rbd_cg_contract::decode(
                &rados_get(pool, ns, &header_object(&entry.id)).unwrap_or_else(|| panic!("header of {name} missing")),
            )
            .expect("header");
            assert_eq!((header.name.as_str(), header.state), (name, HeaderState::Active));
            expected_objects.push(id_object(name));
            expected_objects.push(header_object(&entry.id));
            names.push(name.to_owned());
            ids.push((entry.id, name.to_owned()));
        } else if let Some(id) = key.strip_prefix(DIR_ID_KEY_PREFIX) {
            let entry: DirIdEntry = rbd_cg_contract::decode(value).expect("id entry");
            let listed = directory.iter().any(|(k, _)| *k == dir_name_key(&entry.name));
            assert!(listed, "id_{id} points at {:?}, which is not in the directory", entry.name);
        } else {
            panic!("unexpected directory key {key:?}");
        }
    }
    let id_keys = directory.iter().filter(|(k, _)| k.starts_with(DIR_ID_KEY_PREFIX)).count();
    assert_eq!(id_keys, ids.len(), "name and id indexes differ in size");
    let mut actual: Vec<String> =
        rados_objects(pool, ns).into_iter().filter(|o| o.starts_with("cg_") && o != DIRECTORY_OBJECT).collect();
    actual.sort();
    expected_objects.sort();
    assert_eq!(actual, expected_objects, "stray or missing cg_* objects");
    names
}

/// Runs `rbd-cg` with fault injection at `<op>:<step>` and expects the dead stop.
pub fn crash_at(op: &str, step: u32, args: &[&str]) {
    use rbd_cg_client::faults::{FAULT_ENV, FAULT_EXIT_CODE};
    let fault = format!("{op}:{step}");
    let out = rbd_cg_with_env(args, &[(FAULT_ENV, &fault)]);
    assert_eq!(
        out.status.code(),
        Some(FAULT_EXIT_CODE),
        "{args:?} at {fault}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates cephx user `client.<id>` with the given osd caps (mon `allow r`) and returns a
/// function that runs `rbd-cg` as that user.
pub fn rbd_cg_as(id: &str, osd_caps: &str) -> impl Fn(&[&str]) -> Output {
    let keyring = std::env::temp_dir().join(format!("rbd-cg-{id}-{}.keyring", std::process::id()));
    let keyring = keyring.to_str().expect("utf-8 temp dir").to_owned();
    let entity = format!("client.{id}");
    ceph_tool_ok("ceph", &["auth", "get-or-create", &entity, "mon", "allow r", "osd", osd_caps, "-o", &keyring]);
    let id = id.to_owned();
    move |args: &[&str]| {
        let mut all = vec!["--id", id.as_str(), "--keyring", keyring.as_str()];
        all.extend_from_slice(args);
        rbd_cg(&all)
    }
}

/// A snapshot of an image as stock `rbd snap ls --all` lists it (every namespace), with its
/// protection as cls_rbd records it (`rbd` shows protection for user snapshots only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSnap {
    pub id: u64,
    pub name: String,
    /// `user`, `group`, `trash`, ...
    pub namespace: String,
    pub protected: bool,
}

/// `POOL[/NS]/IMAGE` → (pool, namespace, image).
pub fn split_image_spec(spec: &str) -> (String, String, String) {
    let parts: Vec<&str> = spec.split('/').collect();
    match parts.as_slice() {
        [pool, ns, image] => ((*pool).into(), (*ns).into(), (*image).into()),
        [pool, image] => ((*pool).into(), String::new(), (*image).into()),
        _ => panic!("image spec {spec}"),
    }
}

/// The image id of `POOL[/NS]/IMAGE`.
pub fn image_id(spec: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", spec])).unwrap();
    info["id"].as_str().unwrap().to_owned()
}

/// Every snapshot of `POOL[/NS]/IMAGE` (`rbd snap ls --all`), with protection.
pub fn image_snapshots(spec: &str) -> Vec<ImageSnap> {
    let json = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", spec]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let (pool, ns, _) = split_image_spec(spec);
    let io = ioctx(&cluster(), &pool, &ns);
    let ids: Vec<u64> = listed.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    let records = rbd_cg_rados::snap_record::read_snapshots(&io, &image_id(spec), &ids).expect("snapshot records");
    listed
        .iter()
        .zip(records)
        .map(|(s, record)| ImageSnap {
            id: s["id"].as_u64().unwrap(),
            name: s["name"].as_str().unwrap().to_owned(),
            namespace: s["namespace"]["type"].as_str().unwrap_or("user").to_owned(),
            protected: record.is_some_and(|r| r.protection_status == rbd_cg_rados::ceph::cls_rbd::PROTECTION_PROTECTED),
        })
        .collect()
}

/// Removes member snapshot `snap_name` of `POOL[/NS]/IMAGE` behind the group's back, as an
/// operator bent on it could: unprotect it at the cls level, then `rbd snap rm --snap-id`.
pub fn remove_member_snapshot_by_hand(spec: &str, snap_name: &str) {
    let snap = image_snapshots(spec).into_iter().find(|s| s.name == snap_name).expect("member snapshot");
    let (pool, ns, _) = split_image_spec(spec);
    let io = ioctx(&cluster(), &pool, &ns);
    rbd_cg_rados::snap_record::set_protection(&io, &image_id(spec), snap.id, 0).expect("unprotect");
    ceph_tool_ok("rbd", &["snap", "rm", "--snap-id", &snap.id.to_string(), spec]);
}

/// A member snapshot moved into the user namespace under its own name, so that stock
/// by-name commands (`rbd object-map check`, `rbd diff --from-snap`) can reach it, until
/// this guard drops and puts it back into its group namespace.
pub struct ExposedForStock {
    io: IoCtx,
    image_id: String,
    namespace: rbd_cg_rados::ceph::cls_rbd::SnapshotNamespace,
    id: u64,
}

pub fn expose_for_stock(spec: &str, name: &str) -> ExposedForStock {
    use rbd_cg_rados::snap_record;
    let snap = image_snapshots(spec).into_iter().find(|s| s.name == name).expect("member snapshot");
    let (pool, ns, _) = split_image_spec(spec);
    let io = ioctx(&cluster(), &pool, &ns);
    let image_id = image_id(spec);
    let record = snap_record::read_snapshot(&io, &image_id, snap.id).unwrap().unwrap();
    let namespace = record.namespace.clone();
    snap_record::relabel(&io, &image_id, &record, name, &rbd_cg_rados::ceph::cls_rbd::SnapshotNamespace::User).unwrap();
    ExposedForStock { io, image_id, namespace, id: snap.id }
}

impl Drop for ExposedForStock {
    fn drop(&mut self) {
        use rbd_cg_rados::snap_record;
        if let Ok(Some(record)) = snap_record::read_snapshot(&self.io, &self.image_id, self.id) {
            let name = record.name.clone();
            let _ = snap_record::relabel(&self.io, &self.image_id, &record, &name, &self.namespace);
        }
    }
}
