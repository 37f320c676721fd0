//! Group mirroring on two real clusters (`docs/MIRRORING.md`): the test cluster is the
//! primary (`CEPH_CONF`), a second throwaway cluster the secondary (`RBD_CG_MIRROR_CONF`,
//! started by `scripts/test.sh`). Writes go through `rbd-cg nbd serve` with a real NBD client
//! (libnbd, `tests/helpers/nbd_records.py`): a dependent chain across members, record k on
//! member i only after record k on member i-1 was acknowledged. The copy is read through
//! librbd on the secondary and must always be a prefix of that chain; kill -9, SIGSTOP, OSD
//! stops and a whole stopped primary cluster prove it, not reasoning.
//!
//! The scenarios share the two clusters and stop parts of them, so they run one at a time.

mod common;

use common::server::{helper, NbdServer};
use common::{ceph_tool_ok, namespace, required_env};
use serde_json::Value;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One scenario at a time (they stop daemons, OSDs and the primary cluster).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The test cluster (`CEPH_CONF`).
    A,
    /// The second cluster (`RBD_CG_MIRROR_CONF`).
    B,
}

impl Side {
    fn conf(self) -> String {
        match self {
            Side::A => required_env("CEPH_CONF"),
            Side::B => required_env("RBD_CG_MIRROR_CONF"),
        }
    }

    fn dir(self) -> String {
        match self {
            Side::A => required_env("RBD_CG_TEST_CLUSTER_DIR"),
            Side::B => required_env("RBD_CG_MIRROR_CLUSTER_DIR"),
        }
    }

    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// Runs `program` against this side's cluster.
    fn run(self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("CEPH_CONF", self.conf())
            .env_remove("RBD_CG_FAULT")
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"))
    }

    fn cg(self, args: &[&str]) -> Output {
        self.run(&required_env("RBD_CG_BIN"), args)
    }

    fn cg_ok(self, args: &[&str]) -> String {
        let out = self.cg(args);
        assert!(out.status.success(), "{self:?}: rbd-cg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tool_ok(self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(out.status.success(), "{self:?}: {tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(self, group: &str) -> Value {
        serde_json::from_str(&self.cg_ok(&["mirror", "status", "--format", "json", group])).expect("status JSON")
    }

    /// The status, or `Null` while the group does not exist here (yet).
    fn status_or_null(self, group: &str) -> Value {
        let out = self.cg(&["mirror", "status", "--format", "json", group]);
        if out.status.code() == Some(libc::ENOENT) {
            return Value::Null;
        }
        assert!(out.status.success(), "{self:?}: mirror status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    fn cluster_sh(self, command: &str, args: &[&str]) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        let out = Command::new(script).arg(command).arg(self.dir()).args(args).output().expect("cluster.sh");
        assert!(out.status.success(), "cluster.sh {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `rbd-cg nbd serve` of `group` on `side`'s cluster.
fn serve(side: Side, group: &str, name: &str) -> NbdServer {
    NbdServer::start_with_args(group, name, &["-c", &side.conf()])
}

/// A stopped cluster, started again when this goes out of scope (a failing test must not
/// leave the primary down for the rest of the suite).
struct Stopped(Side);

impl Stopped {
    fn stop(side: Side) -> Stopped {
        side.cluster_sh("stop", &[]);
        Stopped(side)
    }

    fn start(self) {
        drop(self);
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        let out = Command::new(script).arg("start").arg(self.0.dir()).output().expect("cluster.sh start");
        assert!(out.status.success(), "cluster.sh start: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A namespace on both clusters, with a journaled, mirrored group of `members` images of
/// `size_mib` on side A: returns the group spec and the member specs.
fn mirrored_group(test: &str, members: usize, size_mib: u64, journal_args: &[&str]) -> (String, String, Vec<String>) {
    let ns = namespace(test);
    for side in [Side::A, Side::B] {
        side.tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    }
    let group = format!("rbd/{ns}/g");
    Side::A.cg_ok(&["create", &group]);
    let specs: Vec<String> = (0..members).map(|i| format!("rbd/{ns}/m{i}")).collect();
    for spec in &specs {
        Side::A.tool_ok("rbd", &["create", "--size", &format!("{size_mib}M"), spec]);
        Side::A.cg_ok(&["image", "add", &group, spec]);
    }
    let mut enable = vec!["journal", "enable"];
    enable.extend_from_slice(journal_args);
    enable.push(&group);
    Side::A.cg_ok(&enable);
    Side::A.cg_ok(&["mirror", "enable", "--mode", "journal", &group]);
    (ns, group, specs)
}

/// A running `rbd-cg mirror daemon` at `side`, pulling from the other side.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    metrics_file: PathBuf,
    side: Side,
}

impl Daemon {
    fn start(side: Side, ns: &str, name: &str) -> Daemon {
        Self::start_with(side, ns, name, &[])
    }

    fn start_with(side: Side, ns: &str, name: &str, args: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("rbd-cg-mirror-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("log directory");
        let log = dir.join(format!("{name}.log"));
        let metrics_file = dir.join(format!("{name}.metrics"));
        let _ = std::fs::remove_file(&metrics_file);
        let stderr = File::options().create(true).append(true).open(&log).expect("daemon log");
        let child = Command::new(required_env("RBD_CG_BIN"))
            .args(["mirror", "daemon", "--peer-conf", &side.other().conf(), "--pool", &format!("rbd/{ns}")])
            .args(["--metrics", "127.0.0.1:0", "--metrics-addr-file"])
            .arg(&metrics_file)
            .args(args)
            .env("CEPH_CONF", side.conf())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting rbd-cg mirror daemon");
        Daemon { child: Some(child), log, metrics_file, side }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; it must exit 0 (after finishing its waves).
    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.child.take().expect("running").wait().expect("waiting for the daemon");
        assert!(status.success(), "the daemon exited with {status}:\n{}", self.log_text());
    }

    fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.take().expect("running").wait();
    }

    /// The metrics text (waits for the server to be up).
    fn metrics(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&self.metrics_file) {
                let out = Command::new("curl").args(["-sf", &format!("http://{}/metrics", addr.trim())]).output();
                if let Ok(out) = out {
                    if out.status.success() {
                        return String::from_utf8_lossy(&out.stdout).into_owned();
                    }
                }
            }
            assert!(Instant::now() < deadline, "no metrics from the daemon at {:?}:\n{}", self.side, self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid (a frozen one must be woken to die).
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `nbd_records.py chain` over the members' exports of `server`.
struct Chain {
    child: Child,
    ack_log: PathBuf,
}

impl Chain {
    fn start(server: &NbdServer, members: &[String], name: &str) -> Chain {
        let ack_log = std::env::temp_dir().join(format!("rbd-cg-mirror-{}-{name}.acks", std::process::id()));
        let _ = std::fs::remove_file(&ack_log);
        let exports: Vec<String> = members.iter().map(|m| server.uri(m)).collect();
        let child = Command::new("/usr/bin/python3")
            .arg(helper("nbd_records.py"))
            .arg("chain")
            .arg(&ack_log)
            .args(&exports)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nbd_records.py chain");
        Chain { child, ack_log }
    }

    /// Records acknowledged on every member (all of 0..n).
    fn acknowledged(&self, members: usize) -> u64 {
        let text = std::fs::read_to_string(&self.ack_log).unwrap_or_default();
        let last = text.lines().rev().find_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.parse::<u64>().ok()?, parts.next()?.parse::<usize>().ok()?))
        });
        match last {
            Some((k, i)) if i + 1 == members => k + 1,
            Some((k, _)) => k,
            None => 0,
        }
    }

    fn wait_for(&self, members: usize, records: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acknowledged(members) < records {
            assert!(Instant::now() < deadline, "the chain writer stalled at {}", self.acknowledged(members));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records in a row per member on `side` (read through librbd, last member first), checked
/// to be a prefix of the chain: never a later record after a gap, never a member ahead of an
/// earlier one, and — when nothing changes the copy during the read (`live` false) — member
/// i has k or k - 1 records when member 0 has k. Returns member 0's count.
fn assert_prefix(side: Side, ns: &str, members: usize, when: &str) -> u64 {
    check_prefix(side, ns, members, when, false)
}

/// [`assert_prefix`] while the daemon may be applying.
fn assert_prefix_live(side: Side, ns: &str, members: usize, when: &str) -> u64 {
    check_prefix(side, ns, members, when, true)
}

fn check_prefix(side: Side, ns: &str, members: usize, when: &str, live: bool) -> u64 {
    let mut args = vec![helper("nbd_records.py").to_str().unwrap().to_owned(), "count-rbd".into()];
    args.extend(["rbd".into(), ns.to_owned()]);
    args.extend((0..members).map(|i| format!("m{i}")));
    let out = side.run("/usr/bin/python3", &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "counting records: {}", String::from_utf8_lossy(&out.stderr));
    let counts: Vec<(u64, bool)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next().unwrap().parse().unwrap(), parts.next().unwrap() == "1")
        })
        .collect();
    assert_eq!(counts.len(), members);
    let first = counts[0].0;
    for (i, (n, stray)) in counts.iter().enumerate() {
        assert!(!stray, "{when}: member {i} has a record after a gap: {counts:?}");
        assert!(*n <= first && (live || *n + 1 >= first), "{when}: not a prefix of the chain: {counts:?}");
        if i > 0 {
            assert!(*n <= counts[i - 1].0, "{when}: member {i} is ahead of member {}: {counts:?}", i - 1);
        }
    }
    first
}

/// Waits until `check(status)` holds on `side`.
fn wait_status(side: Side, group: &str, what: &str, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let status = side.status_or_null(group);
        if !status.is_null() && check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{side:?}: {what} not reached in {timeout:?}: {status:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the copy on `side` has applied everything the primary has.
fn wait_caught_up(side: Side, group: &str) -> Value {
    wait_status(side, group, "caught up", Duration::from_secs(180), |s| {
        (s["state"] == "replaying" || s["state"] == "stopped")
            && s["entries_behind"] == 0
            && s["mirror_position"].as_u64() == s["primary_position"].as_u64()
    })
}

/// SHA-256 of `rbd export` of each member on `side`.
fn digests(side: Side, members: &[String]) -> Vec<String> {
    members
        .iter()
        .map(|m| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("rbd export --no-progress {m} - | sha256sum"))
                .env("CEPH_CONF", side.conf())
                .output()
                .expect("rbd export");
            assert!(out.status.success(), "rbd export {m}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
        })
        .collect()
}

/// The primary's position (its journal head) as `mirror status` on it says.
fn primary_head(side: Side, group: &str) -> u64 {
    side.status(group)["primary_position"].as_u64().unwrap_or(0)
}

/// A number of the CLI's JSON (fractions are printed as strings, as `rbd` does).
fn num(value: &Value) -> f64 {
    value.as_f64().or_else(|| value.as_str().and_then(|s| s.parse().ok())).unwrap_or(0.0)
}

fn errno_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn journal_mode_copy_is_a_consistent_prefix_through_daemon_and_osd_faults() {
    let _serial = serial();
    let (ns, group, members) = mirrored_group("mprefix", 3, 32, &[]);
    let server = NbdServer::start(&group, "mprefix");
    let chain = Chain::start(&server, &members, "mprefix");
    chain.wait_for(3, 50);

    let mut daemon = Daemon::start(Side::B, &ns, "mprefix-0");
    wait_status(Side::B, &group, "replaying", Duration::from_secs(120), |s| s["state"] == "replaying");
    let mut observations = 0;
    let mut last = 0;
    // Every fault, then an observation with the daemon stopped (and one while it runs).
    let faults = ["kill9", "freeze", "term", "kill9", "osd", "freeze", "kill9", "term"];
    for (round, fault) in faults.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(700 + 331 * round as u64 % 1500));
        let live = assert_prefix_live(Side::B, &ns, 3, &format!("round {round}, daemon running"));
        observations += 1;
        match *fault {
            "kill9" => daemon.kill9(),
            "term" => daemon.stop(),
            "freeze" => {
                daemon.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_secs(2));
                // Frozen, its writes in flight still land: a read may race them.
                let frozen = assert_prefix_live(Side::B, &ns, 3, &format!("round {round}, daemon frozen"));
                observations += 1;
                assert!(frozen >= live);
                daemon.signal(libc::SIGCONT);
                std::thread::sleep(Duration::from_millis(500));
                daemon.kill9();
            }
            "osd" => {
                // The primary's OSD goes away under the daemon (and the writer): the peer is
                // unreachable for a while; the daemon's calls fail or wait, never half-apply.
                Side::A.cluster_sh("stop-osd", &["0"]);
                std::thread::sleep(Duration::from_secs(6));
                assert_prefix_live(Side::B, &ns, 3, &format!("round {round}, primary OSD down"));
                observations += 1;
                Side::A.cluster_sh("start-osd", &["0"]);
                daemon.kill9();
            }
            other => unreachable!("{other}"),
        }
        let stopped = assert_prefix(Side::B, &ns, 3, &format!("round {round} after {fault}"));
        observations += 1;
        assert!(stopped >= last, "the copy went backwards: {stopped} < {last}");
        last = stopped;
        daemon = Daemon::start(Side::B, &ns, &format!("mprefix-{}", round + 1));
    }
    assert!(last > 0, "nothing was mirrored");

    // Writes stop; the copy catches up and equals the primary.
    chain.stop();
    assert_eq!(server.stop().code(), Some(0));
    let head = primary_head(Side::A, &group);
    let status = wait_caught_up(Side::B, &group);
    assert_eq!(status["mirror_position"].as_u64(), Some(head), "{status:#}");
    assert_eq!(status["role"], "non-primary");
    assert_eq!(status["mode"], "journal");
    assert!(status["members"].as_array().unwrap().iter().all(|m| m["state"] == "replaying"), "{status:#}");
    assert_eq!(digests(Side::B, &members), digests(Side::A, &members));
    let final_count = assert_prefix(Side::B, &ns, 3, "caught up");
    assert!(final_count >= last);
    eprintln!("mirror prefix: {observations} observations, {final_count} records, head {head}");

    // The primary's status shows the peer caught up; the trimmed journal never held it back.
    let primary = Side::A.status(&group);
    assert_eq!(primary["state"], "primary");
    assert_eq!(primary["peers"][0]["state"], "connected", "{primary:#}");

    // Metrics, as documented.
    let metrics = daemon.metrics();
    let label = format!("group=\"rbd/{ns}/g\"");
    for name in ["rbd_cg_mirror_entries_replayed_total", "rbd_cg_mirror_bytes_replayed_total", "rbd_cg_mirror_leader"] {
        assert!(metrics.lines().any(|l| l.starts_with(name) && l.contains(&label)), "{name} missing:\n{metrics}");
    }
    assert!(metrics.contains(&format!("rbd_cg_mirror_state{{{label},state=\"replaying\"}} 1")), "{metrics}");
    assert!(metrics.contains(&format!("rbd_cg_mirror_entries_behind{{{label}}} 0")), "{metrics}");

    // Non-primary means read-only: stock librbd, our NBD server, membership and snapshots.
    let bench = Side::B.run("rbd", &["bench", "--io-type", "write", "--io-total", "64K", &members[0]]);
    let text = String::from_utf8_lossy(&bench.stdout).into_owned() + &String::from_utf8_lossy(&bench.stderr);
    assert!(!bench.status.success() && text.contains("Read-only file system"), "rbd bench on the copy: {text}");
    for refused in [
        vec!["image", "rm", group.as_str(), members[0].as_str()],
        vec!["snap", "create", &format!("{group}@x")],
        vec!["journal", "disable", group.as_str()],
    ] {
        let out = Side::B.cg(&refused);
        assert_eq!(out.status.code(), Some(libc::EROFS), "{refused:?}: {}", errno_of(&out));
    }
    // `rm` stops earlier on the journal (EBUSY, "disable it first"); the class refuses too.
    let out = Side::B.cg(&["rm", &group]);
    assert!(matches!(out.status.code(), Some(libc::EBUSY | libc::EROFS)), "rm: {}", errno_of(&out));
    Side::B.tool_ok("rbd", &["create", "--size", "4M", &format!("rbd/{ns}/other")]);
    let out = Side::B.cg(&["image", "add", &group, &format!("rbd/{ns}/other")]);
    assert_eq!(out.status.code(), Some(libc::EROFS), "image add: {}", errno_of(&out));
    let refused_server = Command::new(required_env("RBD_CG_BIN"))
        .args(["nbd", "serve", "--socket", "/tmp/rbd-cg-mirror-refused.sock", &group])
        .env("CEPH_CONF", Side::B.conf())
        .output()
        .expect("nbd serve");
    assert_eq!(refused_server.status.code(), Some(libc::EROFS), "nbd serve: {}", errno_of(&refused_server));
    daemon.stop();
}

#[test]
fn failover_with_the_primary_cluster_stopped_then_failback_and_a_planned_switch() {
    let _serial = serial();
    let (ns, group, members) = mirrored_group("mfailover", 2, 16, &[]);
    let daemon_b = Daemon::start(Side::B, &ns, "mfailover-b");
    let server = NbdServer::start(&group, "mfailover-a");
    let chain = Chain::start(&server, &members, "mfailover");
    chain.wait_for(2, 200);
    // Everything acknowledged up to here is on the copy once it has caught up with it.
    let acked = chain.acknowledged(2);
    let head = primary_head(Side::A, &group);
    wait_status(Side::B, &group, "caught up with the acknowledged records", Duration::from_secs(120), |s| {
        s["mirror_position"].as_u64().unwrap_or(0) >= head
    });

    // Site A is lost: its server dies, then the whole cluster stops.
    server.kill9();
    chain.stop();
    let stopped = Stopped::stop(Side::A);
    let started = Instant::now();
    Side::B.cg_ok(&["mirror", "promote", "--force", &group]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "promote --force took {took:?}");
    eprintln!("promote --force with the primary cluster stopped: {:.1} s", took.as_secs_f64());
    let count = assert_prefix(Side::B, &ns, 2, "promoted");
    assert!(count >= acked, "acknowledged records lost: {count} < {acked}");
    let status = Side::B.status(&group);
    assert_eq!((status["role"].as_str(), status["state"].as_str()), (Some("primary"), Some("primary")));

    // The promoted copy is writable through its own NBD server; the old daemon stops.
    let server_b = serve(Side::B, &group, "mfailover-b");
    let out = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "write -P 0x5a 8M 1M", &server_b.uri(&members[1])])
        .output()
        .expect("qemu-io");
    assert!(out.status.success(), "writing the promoted copy: {}", String::from_utf8_lossy(&out.stderr));
    daemon_b.stop();

    // Site A returns: demote it, resync it from B with a daemon at A.
    stopped.start();
    Side::A.cg_ok(&["mirror", "demote", &group]);
    let demoted = Side::A.status(&group);
    assert_eq!(demoted["role"], "non-primary");
    assert_eq!(demoted["state"], "stopped", "{demoted:#}");
    Side::A.cg_ok(&["mirror", "resync", &group]);
    let daemon_a = Daemon::start(Side::A, &ns, "mfailover-a");
    wait_status(Side::A, &group, "replaying from B", Duration::from_secs(180), |s| s["state"] == "replaying");
    assert_eq!(server_b.stop().code(), Some(0));
    wait_caught_up(Side::A, &group);
    assert_eq!(digests(Side::A, &members), digests(Side::B, &members));

    // A planned switch back: demote B, wait for A to apply everything, promote A.
    Side::B.cg_ok(&["mirror", "demote", &group]);
    let refused = Side::A.cg(&["mirror", "promote", &group]);
    if !refused.status.success() {
        assert_eq!(refused.status.code(), Some(libc::EBUSY), "{}", errno_of(&refused));
    }
    wait_status(Side::A, &group, "stopped", Duration::from_secs(60), |s| {
        s["state"] == "stopped" || s["role"] == "primary"
    });
    Side::A.cg_ok(&["mirror", "promote", &group]);
    assert_eq!(Side::A.status(&group)["role"], "primary");
    assert_eq!(digests(Side::A, &members), digests(Side::B, &members), "a planned switch loses nothing");
    daemon_a.stop();
    let server_a = NbdServer::start(&group, "mfailover-a2");
    let out = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "read -P 0x5a 8M 1M", "-c", "write -P 0x33 9M 4K", &server_a.uri(&members[1])])
        .output()
        .expect("qemu-io");
    assert!(out.status.success(), "the switched-back primary: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server_a.stop().code(), Some(0));
    // B, demoted, follows only after a resync; mirroring is switched off on both sides.
    assert_eq!(Side::B.status(&group)["state"], "stopped");
    Side::B.cg_ok(&["mirror", "disable", &group]);
    Side::A.cg_ok(&["mirror", "disable", &group]);
    assert_eq!(Side::A.status(&group)["enabled"], false);
}

#[test]
fn a_laggard_is_disconnected_and_resync_recovers_it() {
    let _serial = serial();
    let (ns, group, members) = mirrored_group("mlag", 2, 32, &["--object-size", "1M", "--max-size", "4M"]);
    let daemon = Daemon::start(Side::B, &ns, "mlag-0");
    wait_status(Side::B, &group, "replaying", Duration::from_secs(120), |s| s["state"] == "replaying");
    daemon.stop();
    // Far more than the journal's bound while the mirror is away: the writer trims past it.
    let server = NbdServer::start(&group, "mlag");
    for pass in 0..3u64 {
        // 512 KiB writes: a single write larger than the bound would fill a segment of its
        // own and leave no consumer within the bound.
        let commands: Vec<String> =
            (0..24u64).map(|i| format!("write -P 0x{:x} {} 512K", 0x41 + pass, i * 512 * 1024)).collect();
        let mut args = vec!["-f".to_owned(), "raw".to_owned()];
        for c in commands {
            args.extend(["-c".to_owned(), c]);
        }
        args.push(server.uri(&members[0]));
        let out = Command::new("qemu-io").args(&args).output().expect("qemu-io");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let journal: Value =
        serde_json::from_str(&Side::A.cg_ok(&["journal", "status", "--format", "json", &group])).expect("journal");
    let ours =
        journal["consumers"].as_array().unwrap().iter().find(|c| c["name"].as_str().unwrap().starts_with("mirror."));
    assert_eq!(ours.map(|c| c["state"].clone()), Some("disconnected".into()), "{journal:#}");
    let daemon = Daemon::start(Side::B, &ns, "mlag-1");
    wait_status(Side::B, &group, "disconnected", Duration::from_secs(60), |s| s["state"] == "disconnected");
    Side::B.cg_ok(&["mirror", "resync", &group]);
    wait_status(Side::B, &group, "replaying after resync", Duration::from_secs(180), |s| {
        s["state"] == "replaying" && !s["resync_requested"].as_bool().unwrap_or(true)
    });
    assert_eq!(server.stop().code(), Some(0));
    wait_caught_up(Side::B, &group);
    assert_eq!(digests(Side::B, &members), digests(Side::A, &members));
    daemon.stop();
}

#[test]
fn two_daemons_elect_one_and_the_other_takes_over() {
    let _serial = serial();
    let (ns, group, members) = mirrored_group("mtwo", 2, 16, &[]);
    let first = Daemon::start(Side::B, &ns, "mtwo-1");
    let second = Daemon::start(Side::B, &ns, "mtwo-2");
    let status = wait_status(Side::B, &group, "replaying", Duration::from_secs(120), |s| s["state"] == "replaying");
    let active_pid = |s: &Value| -> i32 {
        let daemon = s["daemon"].as_str().unwrap_or_default();
        daemon.split("pid ").nth(1).and_then(|r| r.split(',').next()).and_then(|p| p.parse().ok()).unwrap_or(0)
    };
    let active = active_pid(&status);
    assert!(active == first.pid() || active == second.pid(), "{status:#}");
    let leaders: Vec<bool> = [&first, &second]
        .iter()
        .map(|d| d.metrics().contains(&format!("rbd_cg_mirror_leader{{group=\"rbd/{ns}/g\"}} 1")))
        .collect();
    assert_eq!(leaders.iter().filter(|l| **l).count(), 1, "exactly one daemon is active: {leaders:?}");
    let (dead, survivor) = if active == first.pid() { (first, second) } else { (second, first) };
    let survivor_pid = survivor.pid();
    dead.kill9();
    let server = NbdServer::start(&group, "mtwo");
    let chain = Chain::start(&server, &members, "mtwo");
    chain.wait_for(2, 100);
    chain.stop();
    assert_eq!(server.stop().code(), Some(0));
    let head = primary_head(Side::A, &group);
    wait_status(Side::B, &group, "taken over and caught up", Duration::from_secs(120), |s| {
        active_pid(s) == survivor_pid && s["mirror_position"].as_u64() == Some(head)
    });
    assert_prefix(Side::B, &ns, 2, "after the takeover");
    assert_eq!(digests(Side::B, &members), digests(Side::A, &members));
    survivor.stop();
}

#[test]
fn a_bootstrap_killed_midway_resumes_where_it_was() {
    let _serial = serial();
    let ns = namespace("mboot");
    for side in [Side::A, Side::B] {
        side.tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    }
    let group = format!("rbd/{ns}/g");
    Side::A.cg_ok(&["create", &group]);
    let members: Vec<String> = (0..2).map(|i| format!("rbd/{ns}/m{i}")).collect();
    for spec in &members {
        Side::A.tool_ok("rbd", &["create", "--size", "192M", "--object-size", "1M", spec]);
        Side::A.tool_ok(
            "rbd",
            &["bench", "--io-type", "write", "--io-size", "1M", "--io-total", "192M", "--io-pattern", "seq", spec],
        );
        Side::A.cg_ok(&["image", "add", &group, spec]);
    }
    Side::A.cg_ok(&["journal", "enable", &group]);
    Side::A.cg_ok(&["mirror", "enable", "--mode", "journal", &group]);
    // 16 MiB/s per member: 12 s per copy, time to catch it midway.
    let daemon = Daemon::start_with(Side::B, &ns, "mboot-0", &["--sync-bandwidth", "16M"]);
    let syncing = wait_status(Side::B, &group, "copying", Duration::from_secs(120), |s| {
        s["state"] == "syncing" && s["members"].as_array().is_some_and(|m| m.iter().any(|m| num(&m["progress"]) > 5.0))
    });
    daemon.kill9();
    let progress: Vec<f64> =
        Side::B.status(&group)["members"].as_array().unwrap().iter().map(|m| num(&m["progress"])).collect();
    assert!(progress.iter().any(|p| *p > 0.0 && *p < 100.0), "{syncing:#}");
    let description = syncing["description"].as_str().unwrap().to_owned();
    let snap = description.rsplit(' ').next().unwrap().to_owned();
    let daemon = Daemon::start(Side::B, &ns, "mboot-1");
    let done = wait_caught_up(Side::B, &group);
    assert_eq!(done["last_snapshot"].as_str(), Some(snap.as_str()), "the same snapshot was resumed: {done:#}");
    assert_eq!(digests(Side::B, &members), digests(Side::A, &members));
    // The bootstrap snapshot is gone from the primary.
    let snaps = Side::A.cg_ok(&["snap", "ls", "--format", "json", &group]);
    assert!(!snaps.contains("mirror-"), "bootstrap snapshot left behind: {snaps}");
    assert!(daemon.log_text().contains("copying"), "{}", daemon.log_text());
    daemon.stop();
    // ceph_tool_ok is the primary's rbd; keep the helper in use for the namespace check.
    assert!(ceph_tool_ok("rbd", &["ls", &format!("rbd/{ns}")]).contains("m0"));
}

/// The u64 at offset 0 of each image of `rbd/ns` on `side`, at user snapshot `snap` (or the
/// head), through python3-rbd.
fn heads_on(side: Side, ns: &str, images: &[&str], snap: Option<&str>) -> Vec<u64> {
    try_heads_on(side, ns, images, snap).unwrap_or_else(|| panic!("{side:?}: reading heads at {snap:?} failed"))
}

/// [`heads_on`], `None` when the snapshot is gone.
fn try_heads_on(side: Side, ns: &str, images: &[&str], snap: Option<&str>) -> Option<Vec<u64>> {
    let snapshot = snap.map_or_else(|| "None".to_owned(), |s| format!("'{s}'"));
    let script = format!(
        "import rados, rbd, struct, sys\n\
         c = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\nio.set_namespace('{ns}')\n\
         for name in sys.argv[1:]:\n\
         \x20   with rbd.Image(io, name, snapshot={snapshot}, read_only=True) as im:\n\
         \x20       print(struct.unpack('<Q', im.read(0, 8))[0])\n\
         io.close()\nc.shutdown()\n"
    );
    let mut args = vec!["-c", script.as_str()];
    args.extend_from_slice(images);
    let out = side.run("/usr/bin/python3", &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("ImageNotFound") && snap.is_some() {
        return None;
    }
    assert!(out.status.success(), "{side:?}: reading heads at {snap:?}: {stderr}");
    Some(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().expect("u64")).collect())
}

/// The dependent writer's rounds: member 0 is at n or n + 1 when member 1 is at n.
fn assert_pair(heads: &[u64], when: &str) {
    assert!(heads[0] == heads[1] || heads[0] == heads[1] + 1, "{when}: not a state the primary had: {heads:?}");
}

#[test]
fn snapshot_mode_ships_consistent_group_snapshots_for_stock_writers() {
    let _serial = serial();
    let ns = namespace("msnap");
    for side in [Side::A, Side::B] {
        side.tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    }
    // Two groups: one promoted by force (primary lost), one switched by a planned demotion.
    let groups = [format!("rbd/{ns}/forced"), format!("rbd/{ns}/planned")];
    let images = [["f0", "f1"], ["p0", "p1"]];
    for (group, names) in groups.iter().zip(images) {
        Side::A.cg_ok(&["create", group]);
        for name in names {
            let spec = format!("rbd/{ns}/{name}");
            Side::A.tool_ok("rbd", &["create", "--size", "16M", &spec]);
            Side::A.cg_ok(&["image", "add", group, &spec]);
        }
        Side::A.cg_ok(&["mirror", "enable", "--mode", "snapshot", "--interval", "1s", group]);
    }
    // Stock librbd writers (python3-rbd), a dependent chain each: round n on image 0, then 1.
    let writers: Vec<common::faults::Writer> =
        images.iter().map(|names| common::faults::Writer::start(&ns, names)).collect();
    let mut daemon = Daemon::start(Side::B, &ns, "msnap-0");
    let mut seen = [0u64; 2];
    for round in 0..6 {
        for (i, group) in groups.iter().enumerate() {
            let status = wait_status(Side::B, group, "a shipped snapshot", Duration::from_secs(120), |s| {
                s["last_snapshot"].is_string()
            });
            assert_eq!(status["mode"], "snapshot");
            // The next round may remove that snapshot while we read it: then read the next.
            let mut attempt = 0;
            let (snap, heads) = loop {
                let last = Side::B.status(group)["last_snapshot"].as_str().unwrap_or_default().to_owned();
                let snap = format!("rbd-cg-mirror.{last}");
                match try_heads_on(Side::B, &ns, &images[i], Some(&snap)) {
                    Some(heads) => break (snap, heads),
                    None if attempt < 10 => attempt += 1,
                    None => panic!("{group}: cannot read its last snapshot {snap}"),
                }
            };
            assert_pair(&heads, &format!("round {round}, {group} at {snap}"));
            assert!(heads[0] >= seen[i], "{group} went backwards: {heads:?} < {}", seen[i]);
            seen[i] = heads[0];
        }
        std::thread::sleep(Duration::from_millis(900));
        if round == 2 {
            daemon.kill9();
            daemon = Daemon::start(Side::B, &ns, "msnap-1");
        }
    }
    assert!(seen.iter().all(|s| *s > 0), "nothing shipped: {seen:?}");

    // Forced: the daemon dies at an arbitrary point (maybe mid-round), the copy is promoted:
    // it is at its last complete group snapshot, never in between, and librbd may write it.
    daemon.kill9();
    let last = Side::B.status(&groups[0])["last_snapshot"].as_str().unwrap().to_owned();
    let at_last = heads_on(Side::B, &ns, &images[0], Some(&format!("rbd-cg-mirror.{last}")));
    Side::B.cg_ok(&["mirror", "promote", "--force", &groups[0]]);
    let promoted = heads_on(Side::B, &ns, &images[0], None);
    assert_eq!(promoted, at_last, "the promoted copy is its last complete snapshot");
    assert_pair(&promoted, "promoted");
    let script = format!(
        "import rados, rbd\nc = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\n\
         io.set_namespace('{ns}')\nwith rbd.Image(io, 'f0') as im:\n    im.write(b'\\xff' * 8, 0)\nio.close()\nc.shutdown()\n"
    );
    let out = Side::B.run("/usr/bin/python3", &["-c", &script]);
    assert!(out.status.success(), "librbd write to the promoted copy: {}", String::from_utf8_lossy(&out.stderr));

    // Planned: the writer stops, the primary is demoted (fenced, a final snapshot), the
    // copy ships it and stops; promoted, it holds exactly what the primary had.
    let daemon = Daemon::start(Side::B, &ns, "msnap-2");
    let mut writers = writers.into_iter();
    let forced_writer = writers.next().unwrap();
    let planned_writer = writers.next().unwrap();
    planned_writer.stop();
    Side::A.cg_ok(&["mirror", "demote", &groups[1]]);
    let final_heads = heads_on(Side::A, &ns, &images[1], None);
    let refused = Side::A.run("rbd", &["bench", "--io-type", "write", "--io-total", "4K", &format!("rbd/{ns}/p0")]);
    let text = String::from_utf8_lossy(&refused.stdout).into_owned() + &String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("Read-only file system"), "a demoted primary is read-only: {text}");
    wait_status(Side::B, &groups[1], "stopped", Duration::from_secs(120), |s| s["state"] == "stopped");
    Side::B.cg_ok(&["mirror", "promote", &groups[1]]);
    assert_eq!(heads_on(Side::B, &ns, &images[1], None), final_heads, "a planned switch loses nothing");
    daemon.stop();
    drop(forced_writer);
    for group in &groups {
        Side::B.cg_ok(&["mirror", "disable", group]);
        let _ = Side::A.cg(&["mirror", "disable", group]);
    }
}
