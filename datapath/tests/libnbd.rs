//! Precise protocol tests through python3-libnbd (system `/usr/bin/python3`, `import nbd`),
//! with libnbd's own client-side checks switched off where the server must judge.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{default_backend, python, TestServer};
use rbd_cg_datapath::nbd::{ExportInfo, Fault, MemBackend, NbdErrno, ServerConfig};

const T: Duration = Duration::from_secs(60);

#[test]
fn py_out_of_range_and_read_only_errors_keep_the_connection() {
    let srv = TestServer::start(default_backend(), ServerConfig::default());
    let out = python("bounds.py", &[&srv.uri("disk"), &srv.unix_uri("ro")], T);
    assert!(out.ok() && out.stdout.contains("ok"), "{}", out.all());
}

#[test]
fn py_backend_errors_reach_the_client() {
    let srv = TestServer::start(default_backend(), ServerConfig::default());
    for (kind, name) in [(NbdErrno::Io, "EIO"), (NbdErrno::NoSpc, "ENOSPC"), (NbdErrno::Perm, "EPERM")] {
        srv.backend().set_fault(Some(Fault { export: "disk".into(), range: (1 << 20)..(1 << 20) + 4096, kind }));
        let out = python("faults.py", &[&srv.uri("disk"), name, &(1u64 << 20).to_string()], T);
        assert!(out.ok() && out.stdout.contains("ok"), "{name}: {}", out.all());
    }
}

#[test]
fn py_connections_beyond_the_limit_are_refused() {
    let config = ServerConfig { max_connections: 4, ..ServerConfig::default() };
    let srv = TestServer::start(default_backend(), config);
    let out = python("limit.py", &[&srv.uri("disk"), "4"], T);
    assert!(out.ok() && out.stdout.contains("ok"), "{}", out.all());
}

#[test]
fn py_shutdown_with_writes_in_flight_keeps_every_acknowledged_write() {
    common::require("python3", "python3");
    let count = 1000u64;
    let backend = MemBackend::new(vec![ExportInfo::new("s", count * 4096)]).with_latency(Duration::from_millis(50));
    let mut srv = TestServer::start(backend, ServerConfig::default());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/shutdown.py");
    let mut child = Command::new("/usr/bin/python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(script)
        .args([&srv.uri("s"), &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("SUBMITTED"));
    // Shut down as soon as the server has read some of the writes.
    let export = std::sync::Arc::clone(srv.backend().export("s").unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while export.stats().writes.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "server read no write");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(srv.shutdown(Duration::from_secs(20)), "serve loops did not return after shutdown");
    let acked_line = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let status = child.wait().expect("wait");
    assert!(status.success(), "shutdown.py failed: {acked_line}");
    let acked: Vec<u64> =
        acked_line.strip_prefix("ACKED").unwrap_or("").split_whitespace().filter_map(|s| s.parse().ok()).collect();
    let submitted = export.stats().writes.load(Ordering::Relaxed);
    eprintln!("shutdown test: {submitted} of {count} writes read and acknowledged");
    // Every write the server read was completed and acknowledged before the close; those
    // are the first ones sent (the server reads in order); the rest were never read.
    assert!(
        acked == (0..submitted).collect::<Vec<_>>(),
        "{} writes read, {} acknowledged: {acked:?}",
        submitted,
        acked.len()
    );
    assert!(submitted > 0 && submitted < count, "shutdown did not interrupt the stream ({submitted} of {count})");
    for i in acked {
        assert!(export.snapshot(i * 4096, 4096).iter().all(|&b| u64::from(b) == i % 251 + 1), "write {i} missing");
    }
    // The writes never read left nothing behind.
    assert!(export.snapshot(submitted * 4096, 4096).iter().all(|&b| b == 0));
}
