//! The group journal and its data path on the real cluster, through real clients: `rbd-cg
//! journal ...`, `rbd-cg nbd serve`, stock `rbd`/python3-rbd writers that must be kept out,
//! and userspace NBD clients (qemu-io, nbdinfo, fio's nbd engine, python3-libnbd through
//! `tests/helpers/nbd_records.py`). Kill -9 proves what survives, not reasoning.

mod common;

use common::server::{helper, run_ok, NbdServer};
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A group `rbd/<ns>/g` of `members` new images `m0..` of `size_mib` MiB; returns
/// (group spec, member specs).
fn group_of(ns: &str, members: usize, size_mib: u64) -> (String, Vec<String>) {
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    let specs: Vec<String> = (0..members).map(|i| format!("rbd/{ns}/m{i}")).collect();
    for spec in &specs {
        ceph_tool_ok("rbd", &["create", "--size", &format!("{size_mib}M"), spec]);
        rbd_cg_ok(&["image", "add", &group, spec]);
    }
    (group, specs)
}

fn status(group: &str) -> Value {
    serde_json::from_str(&rbd_cg_ok(&["journal", "status", "--format", "json", group])).expect("status JSON")
}

fn features(image: &str) -> Vec<String> {
    let info: Value = serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", image])).unwrap();
    info["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect()
}

/// SHA-256 of `rbd export` of `image` (the head, or `image@snap`).
fn export_digest(image: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("rbd export --no-progress {image} - | sha256sum"))
        .output()
        .expect("rbd export");
    assert!(out.status.success(), "rbd export {image}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}

fn sha256_file(path: &std::path::Path) -> String {
    run_ok("sha256sum", &[path.to_str().unwrap()]).split_whitespace().next().unwrap().to_owned()
}

/// `qemu-io` commands against one NBD export; panics unless it succeeds.
fn qemu_io(uri: &str, commands: &[&str]) -> String {
    let mut args = vec!["-f", "raw"];
    for c in commands {
        args.extend(["-c", c]);
    }
    args.push(uri);
    run_ok("qemu-io", &args)
}

/// Counts the records of `nbd_records.py` on each export: (records in a row, stray later).
fn count_records(uris: &[String]) -> Vec<(u64, bool)> {
    let mut args = vec![helper("nbd_records.py").to_str().unwrap().to_owned(), "count".to_owned()];
    args.extend(uris.iter().cloned());
    let out = Command::new("/usr/bin/python3").args(&args).output().expect("nbd_records.py count");
    assert!(out.status.success(), "counting records: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next().unwrap().parse().unwrap(), parts.next().unwrap() == "1")
        })
        .collect()
}

/// The last record acknowledged per export in an ack log of `nbd_records.py chain`
/// (`None`: none yet).
fn acknowledged(log: &std::path::Path, exports: usize) -> Vec<Option<u64>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut last = vec![None; exports];
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some(Ok(k)), Some(Ok(i))) = (parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<usize>))
        {
            last[i] = Some(k);
        }
    }
    last
}

/// `rbd bench` refused with EROFS. Where it prints the error depends on when the write fails:
/// before the first write is queued it goes to stderr, from an in-flight write to stdout.
fn refused_read_only(out: &std::process::Output) -> bool {
    !out.status.success()
        && (String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr))
            .contains("Read-only file system")
}

#[test]
fn enable_fences_stock_writers_and_disable_gives_the_members_back() {
    let ns = namespace("jfence");
    let (group, members) = group_of(&ns, 2, 16);
    let before = features(&members[0]);
    ceph_tool_ok("rbd", &["bench", "--io-type", "write", "--io-total", "1M", &members[0]]);

    rbd_cg_ok(&["journal", "enable", &group]);
    let s = status(&group);
    assert_eq!(s["enabled"], true);
    assert_eq!(s["state"], "enabled");
    assert_eq!((s["head"].as_u64(), s["applied"].as_u64(), s["bytes"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(s["consumers"][0]["name"], "local");
    assert_eq!(s["consumers"][0]["state"], "connected");
    assert!(features(&members[0]).contains(&"non-primary".to_owned()));

    // Stock writers get EROFS, with and without a server; reads go on.
    let bench = ceph_tool("rbd", &["bench", "--io-type", "write", "--io-total", "64K", &members[0]]);
    assert!(refused_read_only(&bench), "rbd bench: {bench:?}");
    let python = |image: &str| {
        let (pool_ns, name) = image.rsplit_once('/').unwrap();
        let ns = pool_ns.split_once('/').unwrap().1;
        let script = format!(
            "import rados, rbd\ncluster = rados.Rados(conffile='')\ncluster.connect()\n\
             io = cluster.open_ioctx('rbd')\nio.set_namespace('{ns}')\n\
             with rbd.Image(io, '{name}') as image:\n    try:\n        image.write(b'x' * 512, 0)\n        print('wrote')\n\
             \x20   except rbd.ReadOnlyImage:\n        print('EROFS')\n    print(len(image.read(0, 4096)))\n"
        );
        let out = Command::new("/usr/bin/python3").arg("-c").arg(script).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert_eq!(python(&members[1]).trim(), "EROFS\n4096");
    for refused in [vec!["rm", &members[0] as &str], vec!["snap", "create", &format!("{}@x", members[0])]] {
        let out = ceph_tool("rbd", &refused);
        assert!(!out.status.success(), "rbd {refused:?} must be refused");
    }
    // Membership changes and removal of a journaled group are refused.
    ceph_tool_ok("rbd", &["create", "--size", "4M", &format!("rbd/{ns}/other")]);
    expect_errno(&rbd_cg(&["image", "add", &group, &format!("rbd/{ns}/other")]), libc::EBUSY);
    expect_errno(&rbd_cg(&["image", "rm", &group, &members[1]]), libc::EBUSY);

    let server = NbdServer::start(&group, &format!("{ns}-1"));
    let bench = ceph_tool("rbd", &["bench", "--io-type", "write", "--io-total", "64K", &members[0]]);
    assert!(refused_read_only(&bench), "rbd bench: {bench:?}");
    assert_eq!(python(&members[1]).trim(), "EROFS\n4096");
    qemu_io(&server.uri(&members[0]), &["write -P 0x5a 0 1M"]);
    // Killed with nothing recorded as applied: still fenced.
    server.kill9();
    assert_eq!(python(&members[1]).trim(), "EROFS\n4096");

    // Disable applies the journal first and gives the images back as they were.
    rbd_cg_ok(&["journal", "disable", &group]);
    assert_eq!(status(&group)["enabled"], false);
    assert_eq!(features(&members[0]), before);
    assert_eq!(python(&members[1]).trim(), "wrote\n4096");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("rbd export --no-progress {} - | head -c 1048576 | od -An -tx1 | sort -u", members[0]))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a\n*");
    ceph_tool_ok("rbd", &["bench", "--io-type", "write", "--io-total", "64K", &members[0]]);
    rbd_cg_ok(&["image", "add", &group, &format!("rbd/{ns}/other")]);
    assert!(omap_keys("rbd", &ns, "cg_dummy").is_empty());
    assert!(rados_objects("rbd", &ns).iter().all(|o| !o.starts_with("cg_journal")), "segments removed");
}

/// Pattern writes on several members at once through qemu-io, fio with verify=crc32c on
/// another, discards and write-zeroes; the server stops on SIGTERM with exit 0, and `rbd
/// export` of each member equals the same commands run on a local file.
#[test]
fn patterns_through_the_server_land_on_every_member() {
    let ns = namespace("jpatterns");
    let (group, members) = group_of(&ns, 3, 32);
    rbd_cg_ok(&["journal", "enable", &group]);
    let server = NbdServer::start(&group, &format!("{ns}-1"));

    // nbdinfo lists one export per member, named and sized like the images.
    let list = run_ok("nbdinfo", &["--list", "--json", &format!("nbd+unix:///?socket={}", server.socket.display())]);
    let list: Value = serde_json::from_str(&list).expect("nbdinfo JSON");
    let mut names: Vec<(String, u64)> = list["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["export-name"].as_str().unwrap().to_owned(), e["export-size"].as_u64().unwrap()))
        .collect();
    names.sort();
    assert_eq!(names, members.iter().map(|m| (m.clone(), 32 * MIB)).collect::<Vec<_>>());

    let dir = std::env::temp_dir().join(format!("rbd-cg-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let commands: Vec<Vec<String>> = (0..2)
        .map(|i| {
            let p = 0x10 + i as u8;
            vec![
                format!("write -P {p} 0 3M"),
                format!("write -P {} 4190000 300000", p + 1),
                format!("write -z 1M 64k"),
                format!("discard 8M 4M"),
                format!("write -P {} 12M 8M", p + 2),
                format!("discard 14M 5000"),
                "flush".into(),
                format!("write -P {} 31M 1M", p + 3),
            ]
        })
        .collect();
    // Local references, from the same commands on zeroed files.
    let mut expected = Vec::new();
    for (i, cmds) in commands.iter().enumerate() {
        let file = dir.join(format!("{ns}-ref{i}.raw"));
        run_ok("truncate", &["-s", "32M", file.to_str().unwrap()]);
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        qemu_io(file.to_str().unwrap(), &cmds);
        expected.push(sha256_file(&file));
    }
    // Members 0 and 1 by qemu-io at once; member 2 by fio, verified as it goes.
    let writers: Vec<_> = commands
        .iter()
        .enumerate()
        .map(|(i, cmds)| {
            let uri = server.uri(&members[i]);
            let cmds = cmds.clone();
            std::thread::spawn(move || {
                let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
                qemu_io(&uri, &cmds)
            })
        })
        .collect();
    let fio = run_ok(
        "fio",
        &[
            "--name=verify",
            "--ioengine=nbd",
            &format!("--uri={}", server.uri(&members[2])),
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--size=8M",
            "--verify=crc32c",
            "--verify_fatal=1",
            // No local-verify-*.state file left in the working directory.
            "--verify_state_save=0",
            "--do_verify=1",
            "--output-format=json",
        ],
    );
    let fio: Value = serde_json::from_str(&fio[fio.find('{').unwrap_or(0)..]).expect("fio JSON");
    assert_eq!(fio["jobs"][0]["error"], 0, "fio: {fio}");
    for writer in writers {
        writer.join().expect("qemu-io thread");
    }
    // Reads through the server see every acknowledged write.
    qemu_io(&server.uri(&members[0]), &["read -P 0x10 0 1M", "read -P 0 1M 64k", "read -P 0 8M 4M"]);

    let status_code = server.stop();
    assert!(status_code.success(), "the server exits 0 on SIGTERM: {status_code}");
    let s = status(&group);
    assert_eq!(s["head"], s["applied"], "everything durable is applied after a clean stop: {s}");
    assert!(s["head"].as_u64().unwrap() > 8);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&export_digest(&members[i]), want, "member {i}");
    }
}

/// Kill -9 the server many times while a client writes a dependent chain across three
/// members (record k on member 0, acknowledged, then on member 1, then on 2): after every
/// restart each acknowledged record is there, each member holds records 0..n in a row with
/// nothing after a gap, and a later member never holds a record its predecessor lacks.
#[test]
fn kill_9_loses_no_acknowledged_write_and_keeps_the_order() {
    let ns = namespace("jkill");
    let (group, members) = group_of(&ns, 3, 16);
    rbd_cg_ok(&["journal", "enable", &group]);
    let dir = std::env::temp_dir().join(format!("rbd-cg-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("{ns}-acks"));
    let rounds = std::env::var("RBD_CG_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6u64);
    let mut server = NbdServer::start(&group, &format!("{ns}-0"));
    let mut seen = vec![0u64; members.len()];
    for round in 0..rounds {
        // The chain restarts at record 0 each round: it rewrites what is there (same bytes)
        // and goes further.
        let _ = std::fs::remove_file(&log);
        let uris: Vec<String> = members.iter().map(|m| server.uri(m)).collect();
        let mut args = vec![helper("nbd_records.py").to_str().unwrap().to_owned(), "chain".into()];
        args.push(log.to_str().unwrap().to_owned());
        args.extend(uris.iter().cloned());
        let mut client = Command::new("/usr/bin/python3").args(&args).stderr(Stdio::null()).spawn().unwrap();
        // Kill at a different point each round: 0.6 s … 2.3 s into the writes.
        std::thread::sleep(Duration::from_millis(600 + (round * 347) % 1700));
        server.kill9();
        let _ = client.wait();
        let acked = acknowledged(&log, members.len());

        server = NbdServer::start(&group, &format!("{ns}-{}", round + 1));
        let uris: Vec<String> = members.iter().map(|m| server.uri(m)).collect();
        let counts = count_records(&uris);
        for (i, (n, stray)) in counts.iter().enumerate() {
            assert!(!stray, "round {round}: member {i} has a record after a gap: {counts:?}");
            if let Some(k) = acked[i] {
                assert!(*n > k, "round {round}: member {i} lost acknowledged record {k} (has {n}): {counts:?}");
            }
            assert!(*n >= seen[i], "round {round}: member {i} went back from {} to {n}", seen[i]);
            seen[i] = *n;
            if i > 0 {
                assert!(counts[i - 1].0 >= *n, "round {round}: member {i} is ahead of member {}: {counts:?}", i - 1);
            }
        }
        let s = status(&group);
        assert_eq!(s["head"], s["applied"], "round {round}: a restarted server applied everything: {s}");
    }
    assert!(seen[members.len() - 1] > 0, "the chain made progress: {seen:?}");
    assert!(server.stop().success());
}

/// A second server for the same group is refused, naming the holder; a frozen server loses
/// its lease to a new one, and once thawed it can append nothing more (its writes fail,
/// nothing it did not acknowledge appears later).
#[test]
fn one_writer_at_a_time() {
    let ns = namespace("jwriter");
    let (group, members) = group_of(&ns, 2, 16);
    rbd_cg_ok(&["journal", "enable", &group]);
    let first = NbdServer::start(&group, &format!("{ns}-1"));
    let (code, log) = NbdServer::start_failing(&group, &format!("{ns}-2"));
    assert!(!code.success());
    assert!(log.contains("held by a running writer") && log.contains("rbd-cg nbd serve"), "{log}");
    assert!(log.contains(&format!("pid {}", first.pid())), "the holder is named: {log}");
    let s = status(&group);
    assert!(s["writer"]["description"].as_str().unwrap().contains(&format!("pid {}", first.pid())), "{s}");
    // Membership changes are refused while journaled, naming the server.
    ceph_tool_ok("rbd", &["create", "--size", "4M", &format!("rbd/{ns}/other")]);
    let refused = expect_errno(&rbd_cg(&["image", "add", &group, &format!("rbd/{ns}/other")]), libc::EBUSY);
    assert!(refused.contains(&format!("pid {}", first.pid())), "{refused}");

    // Freeze the first; a new server takes over (after the old one fails to answer).
    qemu_io(&first.uri(&members[0]), &["write -P 0x01 0 64k"]);
    first.signal(libc::SIGSTOP);
    let second = NbdServer::start(&group, &format!("{ns}-3"));
    assert!(second.log_text().contains("does not answer"), "{}", second.log_text());
    qemu_io(&second.uri(&members[0]), &["read -P 0x01 0 64k", "write -P 0x02 0 64k"]);
    // Thawed, the old writer is blocklisted: it cannot append; it notices and stops.
    first.signal(libc::SIGCONT);
    let mut first = first;
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!first.running(), "a writer that lost its lease stops: {}", first.log_text());
    qemu_io(&second.uri(&members[0]), &["read -P 0x02 0 64k"]);
    assert!(second.stop().success());
    rbd_cg_ok(&["journal", "disable", &group]);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("rbd export --no-progress {} - | head -c 65536 | od -An -tx1 | sort -u", members[0]))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "02 02 02 02 02 02 02 02 02 02 02 02 02 02 02 02\n*");
}

/// Group snapshots while the server serves a dependent chain: no I/O error, and every
/// snapshot is a journal prefix across the members (member 1 never ahead of member 0 in it),
/// with its position recorded; snapshots are removed through the writer too.
#[test]
fn snapshots_while_serving_are_journal_prefixes() {
    let ns = namespace("jsnap");
    let (group, members) = group_of(&ns, 2, 16);
    rbd_cg_ok(&["journal", "enable", &group]);
    let server = NbdServer::start(&group, &format!("{ns}-1"));
    let dir = std::env::temp_dir().join(format!("rbd-cg-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("{ns}-acks"));
    let uris: Vec<String> = members.iter().map(|m| server.uri(m)).collect();
    let mut args = vec![helper("nbd_records.py").to_str().unwrap().to_owned(), "chain".into()];
    args.push(log.to_str().unwrap().to_owned());
    args.extend(uris.iter().cloned());
    let mut client = Command::new("/usr/bin/python3").args(&args).stderr(Stdio::piped()).spawn().unwrap();
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        rbd_cg_ok(&["snap", "create", &format!("{group}@s{i}")]);
    }
    assert!(matches!(client.try_wait(), Ok(None)), "the client saw no I/O error while snapshots were cut");
    let _ = client.kill();
    let _ = client.wait();
    let snaps: Value = serde_json::from_str(&rbd_cg_ok(&["snap", "ls", "--format", "json", &group])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 4);
    let mut previous = 0;
    for snap in snaps.as_array().unwrap() {
        assert_eq!((&snap["state"], &snap["status"]), (&json!("ok"), &json!("complete")));
        let position = snap["journal_position"].as_u64().expect("a journal position per snapshot");
        assert!(position >= previous, "positions grow: {snaps}");
        previous = position;
        // Each member snapshot read through librbd by id (it is in the group namespace,
        // where no by-name tool reaches it): records in a row, member 1 not ahead.
        let name = snap["name"].as_str().unwrap();
        let info: Value =
            serde_json::from_str(&rbd_cg_ok(&["snap", "info", "--format", "json", &format!("{group}@{name}")]))
                .unwrap();
        assert_eq!(info["journal_position"], snap["journal_position"]);
        let counts: Vec<u64> = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let snap_id = info["images"][i]["snap_id"].as_u64().expect("a member snapshot id");
                let (_, image) = m.rsplit_once('/').unwrap();
                let out = Command::new("/usr/bin/python3")
                    .arg("-c")
                    .arg(format!(
                        "import sys; sys.path.insert(0, '{}')\nimport nbd_records as r, rados, rbd\n\
                         c = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\n\
                         io.set_namespace('{ns}')\n\
                         with rbd.Image(io, '{image}', read_only=True) as im:\n\
                         \x20   im.set_snap_by_id({snap_id})\n    data = im.read(0, im.size())\n\
                         n = 0\n\
                         while r.is_record(data[n * 4096:(n + 1) * 4096], n, {i}): n += 1\nprint(n)",
                        helper("").display()
                    ))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{name} of {m}: {}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            })
            .collect();
        assert!(counts[1] <= counts[0] && counts[0] <= counts[1] + 1, "snapshot {name} is no prefix: {counts:?}");
    }
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s1")]);
    assert_eq!(
        serde_json::from_str::<Value>(&rbd_cg_ok(&["snap", "ls", "--format", "json", &group]))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(server.stop().success());
    // Without a server, a short-lived writer cuts and removes them.
    rbd_cg_ok(&["snap", "create", &format!("{group}@offline")]);
    rbd_cg_ok(&["snap", "rm", &format!("{group}@offline")]);
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s0")]);
    for m in &members {
        let snaps = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", m]);
        assert_eq!(serde_json::from_str::<Value>(&snaps).unwrap().as_array().unwrap().len(), 2, "{m}: {snaps}");
    }
}

/// The group's id, from `rbd-cg info`.
fn group_id(group: &str) -> String {
    let info: Value = serde_json::from_str(&rbd_cg_ok(&["info", "--format", "json", group])).unwrap();
    info["id"].as_str().unwrap().to_owned()
}

/// Under sustained writes the journal never holds more than `--max-size`, and a registered
/// consumer that does not move (a stopped mirror peer) is disconnected rather than letting
/// it fill up; the data is all there.
#[test]
fn the_journal_stays_within_its_bound_and_a_laggard_is_disconnected() {
    use rbd_cg_contract::journal::{ConsumerRecord, ConsumerSetRequest, ConsumerState};
    use rbd_cg_contract::methods::JOURNAL_CONSUMER_SET;
    let ns = namespace("jtrim");
    let (group, members) = group_of(&ns, 2, 64);
    rbd_cg_ok(&["journal", "enable", "--object-size", "1M", "--max-size", "4M", &group]);
    let id = group_id(&group);
    let peer = ConsumerRecord {
        name: "peer".into(),
        state: ConsumerState::Connected,
        position: 0,
        updated_ms: 1,
        data: Vec::new(),
    };
    let request = ConsumerSetRequest { group_id: id.clone(), consumer: peer, reset: false };
    ioctx(&cluster(), "rbd", &ns)
        .call_write(&rbd_cg_contract::names::header_object(&id), &JOURNAL_CONSUMER_SET, &request)
        .expect("registering a consumer");
    assert_eq!(status(&group)["consumers"].as_array().unwrap().len(), 2);

    let server = NbdServer::start(&group, &format!("{ns}-1"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (group, stop) = (group.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut most = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                most = most.max(status(&group)["bytes"].as_u64().unwrap());
                std::thread::sleep(Duration::from_millis(50));
            }
            most
        })
    };
    let commands: Vec<String> = (0..48).map(|i| format!("write -P {} {}M 1M", i + 1, i)).collect();
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    qemu_io(&server.uri(&members[0]), &commands);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let most = watcher.join().unwrap();
    assert!(most <= 4 * MIB, "the journal held {most} bytes, past its bound of 4 MiB");
    let s = status(&group);
    let peer = s["consumers"].as_array().unwrap().iter().find(|c| c["name"] == "peer").unwrap().clone();
    assert_eq!(peer["state"], "disconnected", "{s}");
    assert!(server.stop().success());
    let s = status(&group);
    assert!(s["bytes"].as_u64().unwrap() <= 4 * MIB, "{s}");
    assert_eq!(s["head"], s["applied"]);
    for i in [0u64, 17, 47] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "rbd export --no-progress {} - | tail -c +{} | head -c 1048576 | od -An -tx1 | sort -u",
                members[0],
                i * MIB + 1
            ))
            .output()
            .unwrap();
        let byte = format!("{:02x}", i + 1);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}\n*", vec![byte; 16].join(" ")), "MiB {i}");
    }
}

/// Replay never skips: a damaged entry in the middle stops it with `EBADMSG` naming where;
/// bytes past a segment's committed length (what a torn append would leave) are not entries
/// and are ignored.
#[test]
fn replay_stops_at_a_damaged_entry_and_ignores_bytes_past_the_tail() {
    use rbd_cg_contract::journal::{entry_len, segment_object};
    let ns = namespace("jdamage");
    let (group, members) = group_of(&ns, 1, 16);
    rbd_cg_ok(&["journal", "enable", &group]);
    let id = group_id(&group);
    // A server that records its applied position only every ten minutes: after kill -9,
    // everything it wrote is still to be replayed.
    let server = NbdServer::start_with_args(&group, &format!("{ns}-1"), &["--position-interval-ms", "600000"]);
    let commands: Vec<String> = (0..10).map(|i| format!("write -P {} {}k 64k", 0x30 + i, i * 64)).collect();
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    qemu_io(&server.uri(&members[0]), &commands);
    server.kill9();
    let s = status(&group);
    assert_eq!((s["head"].as_u64(), s["applied"].as_u64()), (Some(10), Some(0)), "{s}");

    // The segment the server wrote: flip one payload byte of entry 6.
    let segment = (0..4)
        .map(|n| segment_object(&id, n))
        .find(|o| rados_get("rbd", &ns, o).is_some_and(|d| !d.is_empty()))
        .expect("a segment with entries");
    let original = rados_get("rbd", &ns, &segment).unwrap();
    let mut damaged = original.clone();
    let entry = entry_len(65536);
    damaged[5 * entry + 72 + 1000] ^= 0xff;
    let file = std::env::temp_dir().join(format!("{ns}-segment"));
    std::fs::write(&file, &damaged).unwrap();
    ceph_tool_ok("rados", &["-p", "rbd", "-N", &ns, "put", &segment, file.to_str().unwrap()]);
    let out = rbd_cg(&["journal", "replay", &group]);
    let stderr = expect_errno(&out, libc::EBADMSG);
    assert!(stderr.contains("entry 6") && stderr.contains("segment"), "{stderr}");
    assert_eq!(status(&group)["applied"], 0, "nothing is recorded as applied past a damaged entry");

    // The original bytes back, plus garbage past the committed length: replayed in full.
    let mut torn = original.clone();
    torn.extend_from_slice(&[0x43, 0x47, 0x4a, 0x31, 1, 2, 3]);
    std::fs::write(&file, &torn).unwrap();
    ceph_tool_ok("rados", &["-p", "rbd", "-N", &ns, "put", &segment, file.to_str().unwrap()]);
    rbd_cg_ok(&["journal", "replay", &group]);
    let s = status(&group);
    assert_eq!((s["head"].as_u64(), s["applied"].as_u64()), (Some(10), Some(10)), "{s}");
    let server = NbdServer::start(&group, &format!("{ns}-2"));
    for i in 0..10 {
        qemu_io(&server.uri(&members[0]), &[&format!("read -P {} {}k 64k", 0x30 + i, i * 64)]);
    }
    assert!(server.stop().success());
}

/// A restart replays from the recorded position even when it lies inside a segment, between
/// entries read in one batch: every entry after it is applied, none skipped (the writer here
/// records its position at most every 3 s, and is killed right after more writes; on a busy
/// machine one more record may land in between, so the test takes the position it finds).
#[test]
fn replay_starts_right_after_the_recorded_position() {
    let ns = namespace("jreplay");
    let (group, members) = group_of(&ns, 1, 16);
    rbd_cg_ok(&["journal", "enable", &group]);
    let server = NbdServer::start_with_args(&group, &format!("{ns}-1"), &["--position-interval-ms", "3000"]);
    let uri = server.uri(&members[0]);
    let first: Vec<String> = (0..10).map(|i| format!("write -P {} {}k 4k", 0x40 + i, i * 4)).collect();
    qemu_io(&uri, &first.iter().map(String::as_str).collect::<Vec<_>>());
    // Wait for the first ten to be recorded as applied (a guard against hanging, not a timing).
    let deadline = Instant::now() + Duration::from_secs(120);
    while status(&group)["applied"].as_u64() != Some(10) {
        assert!(Instant::now() < deadline, "the first ten were never recorded as applied: {}", status(&group));
        std::thread::sleep(Duration::from_millis(100));
    }
    let more: Vec<String> = (10..15).map(|i| format!("write -P {} {}k 4k", 0x40 + i, i * 4)).collect();
    qemu_io(&uri, &more.iter().map(String::as_str).collect::<Vec<_>>());
    server.kill9();
    let s = status(&group);
    let recorded = s["applied"].as_u64().unwrap();
    assert_eq!(s["head"].as_u64(), Some(15), "{s}");
    assert!((10..15).contains(&recorded), "the recorded position lies inside the segment, before its end: {s}");
    let server = NbdServer::start(&group, &format!("{ns}-2"));
    let replayed = format!("replayed entries {}..=15", recorded + 1);
    assert!(server.log_text().contains(&replayed), "{replayed}: {}", server.log_text());
    for i in 0..15 {
        qemu_io(&server.uri(&members[0]), &[&format!("read -P {} {}k 4k", 0x40 + i, i * 4)]);
    }
    qemu_io(&server.uri(&members[0]), &["write -P 0x77 1M 4k"]);
    assert!(server.stop().success());
    let s = status(&group);
    assert_eq!((s["head"].as_u64(), s["applied"].as_u64()), (Some(16), Some(16)), "{s}");
}

/// A FUSE mount of one export (`nbdfuse DIR/disk URI`), unmounted (lazily) and its process
/// stopped on drop.
struct FuseExport {
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl FuseExport {
    fn mount(dir: &std::path::Path, uri: &str) -> FuseExport {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("nbdfuse")
            .arg(dir.join("disk"))
            .arg(uri)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nbdfuse");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.join("disk").exists() {
            assert!(Instant::now() < deadline, "nbdfuse did not mount {uri}");
            std::thread::sleep(Duration::from_millis(50));
        }
        FuseExport { dir: dir.to_owned(), child }
    }

    fn disk(&self) -> String {
        self.dir.join("disk").to_str().unwrap().to_owned()
    }
}

impl Drop for FuseExport {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loop mount of a filesystem image, unmounted (lazily) on drop.
struct LoopMount(std::path::PathBuf);

impl LoopMount {
    fn mount(image: &str, dir: &std::path::Path) -> LoopMount {
        std::fs::create_dir_all(dir).unwrap();
        run_ok("mount", &["-o", "loop", image, dir.to_str().unwrap()]);
        LoopMount(dir.to_owned())
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// ext4 on a member (the kernel's, over a loop device on an nbdfuse file): files written
/// and fsync'ed until the server is killed are all there, intact, after a restart, and
/// fsck finds the filesystem clean once the kernel replayed its own journal.
#[test]
fn ext4_on_a_member_survives_kill_9_and_replay() {
    let ns = namespace("jext4");
    let (group, members) = group_of(&ns, 1, 128);
    rbd_cg_ok(&["journal", "enable", &group]);
    let dir = std::env::temp_dir().join(format!("rbd-cg-tests-{}", std::process::id())).join(&ns);
    let log = dir.join("durable");
    let server = NbdServer::start(&group, &format!("{ns}-1"));
    {
        let fuse = FuseExport::mount(&dir.join("fuse"), &server.uri(&members[0]));
        run_ok("mkfs.ext4", &["-q", "-F", &fuse.disk()]);
        let mounted = LoopMount::mount(&fuse.disk(), &dir.join("mnt"));
        let mut writer = Command::new("/usr/bin/python3")
            .arg(helper("fs_writer.py"))
            .arg(&mounted.0)
            .arg(&log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        server.kill9();
        let _ = writer.wait();
        drop(mounted);
    }
    let durable = std::fs::read_to_string(&log).unwrap_or_default();
    let files: Vec<(&str, &str)> = durable.lines().filter_map(|l| l.split_once(' ')).collect();
    assert!(!files.is_empty(), "the writer made files durable before the kill");

    let server = NbdServer::start(&group, &format!("{ns}-2"));
    {
        let fuse = FuseExport::mount(&dir.join("fuse2"), &server.uri(&members[0]));
        {
            // The kernel replays its own journal on mount.
            let mounted = LoopMount::mount(&fuse.disk(), &dir.join("mnt2"));
            for (name, digest) in &files {
                let found = run_ok("sha256sum", &[mounted.0.join(name).to_str().unwrap()]);
                assert!(
                    found.starts_with(digest),
                    "{name} lost or damaged after the kill ({} files durable)",
                    files.len()
                );
            }
            run_ok("umount", &[mounted.0.to_str().unwrap()]);
        }
        let fsck = Command::new("e2fsck").args(["-fn", &fuse.disk()]).output().unwrap();
        assert!(
            fsck.status.success(),
            "fsck: {}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
    }
    assert!(server.stop().success());
}

/// NBD protocol bits for the malformed-input test (`NetworkBlockDevice/nbd` doc/proto.md).
mod nbd_wire {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
    pub const OPT_REPLY_MAGIC: u64 = 0x3_e889_0455_65a9;
    pub const REQUEST_MAGIC: u32 = 0x2560_9513;
    pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
    pub const OPT_GO: u32 = 7;
    pub const REP_ACK: u32 = 1;

    pub fn connect(socket: &std::path::Path) -> UnixStream {
        let stream = UnixStream::connect(socket).expect("connecting to the server");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Reads the server's greeting and sends fixed-newstyle, no-zeroes flags.
    pub fn greet(stream: &mut UnixStream) {
        let mut greeting = [0u8; 18];
        stream.read_exact(&mut greeting).expect("greeting");
        assert_eq!(&greeting[..8], b"NBDMAGIC");
        stream.write_all(&3u32.to_be_bytes()).unwrap();
    }

    pub fn option(stream: &mut UnixStream, option: u32, data: &[u8]) {
        let mut message = IHAVEOPT.to_be_bytes().to_vec();
        message.extend(option.to_be_bytes());
        message.extend((data.len() as u32).to_be_bytes());
        message.extend(data);
        stream.write_all(&message).unwrap();
    }

    /// Reads option replies up to the final one; returns the final reply type.
    pub fn final_reply(stream: &mut UnixStream) -> Option<u32> {
        loop {
            let mut head = [0u8; 20];
            stream.read_exact(&mut head).ok()?;
            assert_eq!(u64::from_be_bytes(head[..8].try_into().unwrap()), OPT_REPLY_MAGIC);
            let kind = u32::from_be_bytes(head[12..16].try_into().unwrap());
            let len = u32::from_be_bytes(head[16..20].try_into().unwrap()) as usize;
            let mut data = vec![0u8; len];
            stream.read_exact(&mut data).ok()?;
            if kind == REP_ACK || kind & 0x8000_0000 != 0 {
                return Some(kind);
            }
        }
    }

    /// Handshake into the transmission phase of `export`.
    pub fn go(socket: &std::path::Path, export: &str) -> UnixStream {
        let mut stream = connect(socket);
        greet(&mut stream);
        let mut data = (export.len() as u32).to_be_bytes().to_vec();
        data.extend(export.as_bytes());
        data.extend(0u16.to_be_bytes());
        option(&mut stream, OPT_GO, &data);
        assert_eq!(final_reply(&mut stream), Some(REP_ACK), "OPT_GO {export}");
        stream
    }

    pub fn request(stream: &mut UnixStream, kind: u16, cookie: u64, offset: u64, length: u32, data: &[u8]) {
        let mut message = REQUEST_MAGIC.to_be_bytes().to_vec();
        message.extend(0u16.to_be_bytes());
        message.extend(kind.to_be_bytes());
        message.extend(cookie.to_be_bytes());
        message.extend(offset.to_be_bytes());
        message.extend(length.to_be_bytes());
        message.extend(data);
        let _ = stream.write_all(&message);
    }

    /// A simple reply's (error, cookie); `None` when the server closed the connection.
    pub fn reply(stream: &mut UnixStream) -> Option<(u32, u64)> {
        let mut head = [0u8; 16];
        stream.read_exact(&mut head).ok()?;
        assert_eq!(u32::from_be_bytes(head[..4].try_into().unwrap()), SIMPLE_REPLY_MAGIC);
        Some((u32::from_be_bytes(head[4..8].try_into().unwrap()), u64::from_be_bytes(head[8..16].try_into().unwrap())))
    }
}

/// Malformed handshakes, options and requests, and random bytes, against the real server:
/// each gets the protocol's error or a closed connection, the server keeps serving everyone
/// else (a client connected all along included), never panics, and the OSD stays up.
#[test]
fn malformed_nbd_input_keeps_the_server_serving() {
    use nbd_wire::*;
    use std::io::Write;
    let ns = namespace("jfuzz");
    let (group, members) = group_of(&ns, 1, 4);
    rbd_cg_ok(&["journal", "enable", &group]);
    let mut server = NbdServer::start(&group, &format!("{ns}-1"));
    let export = members[0].as_str();
    let mut bystander = go(&server.socket, export);

    // Requests in the transmission phase: past the end, unknown command, oversized, a
    // write whose payload never comes; then bad magic, which ends the connection.
    let mut stream = go(&server.socket, export);
    request(&mut stream, 0, 1, 4 * MIB, 4096, &[]); // read past the end
    assert_eq!(reply(&mut stream), Some((22, 1)), "EINVAL for a read past the end");
    request(&mut stream, 1, 2, 4 * MIB - 512, 1024, &[0u8; 1024]); // write past the end
    assert_eq!(reply(&mut stream), Some((28, 2)), "ENOSPC for a write past the end (proto.md)");
    request(&mut stream, 99, 3, 0, 512, &[]); // unknown command
    assert_eq!(reply(&mut stream), Some((22, 3)));
    request(&mut stream, 0, 4, 0, 512 << 20, &[]); // a 512 MiB read
    let oversized = reply(&mut stream);
    assert!(oversized.is_none() || matches!(oversized, Some((e, 4)) if e != 0), "{oversized:?}");
    let mut stream = go(&server.socket, export);
    request(&mut stream, 0, 5, 0, 4096, &[]);
    assert_eq!(reply(&mut stream), Some((0, 5)));
    let mut data = [0u8; 4096];
    std::io::Read::read_exact(&mut stream, &mut data).expect("the read's data");
    let _ = stream
        .write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(reply(&mut stream), None, "bad request magic closes the connection");
    let mut stream = go(&server.socket, export);
    request(&mut stream, 1, 6, 0, 65536, &[1u8; 100]); // then hang up mid-payload
    drop(stream);

    // Handshakes: unknown option, unknown export, truncated option, garbage.
    let mut stream = connect(&server.socket);
    greet(&mut stream);
    option(&mut stream, 4242, b"xyz");
    assert!(final_reply(&mut stream).is_some_and(|k| k & 0x8000_0000 != 0), "unknown option: an error reply");
    let mut data = 7u32.to_be_bytes().to_vec();
    data.extend(b"missing");
    data.extend(0u16.to_be_bytes());
    option(&mut stream, OPT_GO, &data);
    assert!(final_reply(&mut stream).is_some_and(|k| k & 0x8000_0000 != 0), "unknown export: an error reply");
    option(&mut stream, OPT_GO, &[0, 0, 0, 200, b'x']); // name length past the data
    assert!(final_reply(&mut stream).is_none_or(|k| k & 0x8000_0000 != 0));
    let mut stream = connect(&server.socket);
    greet(&mut stream);
    let mut huge = IHAVEOPT.to_be_bytes().to_vec();
    huge.extend(OPT_GO.to_be_bytes());
    huge.extend(u32::MAX.to_be_bytes()); // a 4 GiB option
    let _ = stream.write_all(&huge);
    assert!(final_reply(&mut stream).is_none_or(|k| k & 0x8000_0000 != 0));

    // Random bytes, some after a valid greeting, some in the transmission phase.
    let mut seed = 0x243f_6a88_85a3_08d3u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..150 {
        let len = (next() % 600) as usize;
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut stream = match round % 3 {
            0 => connect(&server.socket),
            1 => {
                let mut s = connect(&server.socket);
                greet(&mut s);
                s
            }
            _ => go(&server.socket, export),
        };
        let _ = stream.write_all(&noise);
        stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut sink = [0u8; 4096];
        let _ = std::io::Read::read(&mut stream, &mut sink);
    }

    assert!(server.running(), "the server survived: {}", server.log_text());
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
    request(&mut bystander, 1, 7, 0, 4096, &[0x42u8; 4096]);
    assert_eq!(reply(&mut bystander), Some((0, 7)), "a client connected all along is still served");
    qemu_io(&server.uri(export), &["read -P 0x42 0 4k", "write -P 0x43 4k 4k", "read -P 0x43 4k 4k"]);
    ceph_tool_ok("ceph", &["osd", "stat"]);
    assert!(ceph_tool_ok("ceph", &["osd", "stat"]).contains("1 up"), "the OSD is up");
    drop(bystander);
    assert!(server.stop().success());
}

/// `journal enable` and `journal disable` stopped dead after every step are finished by a
/// rerun (an interrupted enable is undone by `disable` too), and leave the members exactly as
/// they were; a snapshot create or removal of a journaled group stopped after its first step
/// is finished by `repair`, through a writer.
#[test]
fn journal_operations_are_finished_after_a_crash_at_every_step() {
    let ns = namespace("jcrash");
    let (group, members) = group_of(&ns, 2, 8);
    let before = features(&members[0]);
    let segments = || rados_objects("rbd", &ns).into_iter().filter(|o| o.starts_with("cg_journal.")).count();

    for step in 1..=2 {
        crash_at("journal-enable", step, &["journal", "enable", &group]);
        assert_eq!(status(&group)["state"], "enabling", "after enable step {step}");
        expect_errno(&rbd_cg(&["image", "rm", &group, &members[1]]), libc::EBUSY);
        if step == 1 {
            rbd_cg_ok(&["journal", "enable", &group]);
            assert_eq!(status(&group)["state"], "enabled");
        }
        rbd_cg_ok(&["journal", "disable", &group]);
        assert_eq!(status(&group)["enabled"], false, "after enable step {step}");
        assert_eq!(features(&members[0]), before);
    }

    for step in 1..=4 {
        rbd_cg_ok(&["journal", "enable", &group]);
        let server = NbdServer::start(&group, &format!("{ns}-{step}"));
        qemu_io(&server.uri(&members[1]), &[&format!("write -P {step} 0 64k")]);
        server.kill9();
        crash_at("journal-disable", step, &["journal", "disable", &group]);
        let s = status(&group);
        let expected = if step == 1 { "enabled" } else { "disabling" };
        assert_eq!(s["state"], expected, "after disable step {step}: {s}");
        rbd_cg_ok(&["journal", "disable", &group]);
        assert_eq!(status(&group)["enabled"], false, "after disable step {step}");
        assert_eq!(features(&members[0]), before);
        assert_eq!(segments(), 0, "segments removed");
        // What the killed server acknowledged was applied before the members were given back.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("rbd export --no-progress {} - | head -c 65536 | od -An -tx1 | sort -u", members[1]))
            .output()
            .unwrap();
        let byte = format!("{step:02x}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}\n*", vec![byte; 16].join(" ")));
    }

    rbd_cg_ok(&["journal", "enable", &group]);
    let member_snaps = |m: &str| {
        let out = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", m]);
        serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len()
    };
    crash_at("snap-create", 1, &["snap", "create", &format!("{group}@a")]);
    rbd_cg_ok(&["repair", &group]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@b")]);
    assert_eq!(member_snaps(&members[0]), 1);
    for step in 1..=2 {
        crash_at("snap-remove", step, &["snap", "rm", &format!("{group}@b")]);
        rbd_cg_ok(&["repair", &group]);
        assert_eq!(member_snaps(&members[0]), 0, "after snap-remove step {step}");
        assert_eq!(member_snaps(&members[1]), 0);
        let snaps: Value = serde_json::from_str(&rbd_cg_ok(&["snap", "ls", "--format", "json", &group])).unwrap();
        assert!(snaps.as_array().unwrap().is_empty(), "{snaps}");
        rbd_cg_ok(&["snap", "create", &format!("{group}@b")]);
    }
    let check = rbd_cg(&["repair", "--check", &group]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    rbd_cg_ok(&["journal", "disable", &group]);
}

/// Member snapshots of a journaled group are like every group's: the journal writer cuts them
/// in cls_rbd's group namespace and protected (plain `rbd snap ls` does not list them, stock
/// `rbd snap rm` cannot name them), and removes them by id, unprotecting them as librbd would
/// — but not while a clone of either format still depends on one: then the removal is refused
/// and the snapshot stays protected, until the clone is gone. `rm` of a journaled group is
/// refused before anything is removed.
#[test]
fn member_snapshots_of_a_journaled_group_are_hidden_protected_and_removed_by_id() {
    let ns = namespace("jhidden");
    let (group, members) = group_of(&ns, 2, 8);
    // Snapshots from before the journal, each with a clone group (clone-v1 and clone-v2).
    for format in ["1", "2"] {
        rbd_cg_ok(&["snap", "create", &format!("{group}@v{format}")]);
        let clone = format!("rbd/{ns}/clone{format}");
        rbd_cg_ok(&["clone", "--clone-format", format, &format!("{group}@v{format}"), &clone]);
    }
    rbd_cg_ok(&["journal", "enable", &group]);
    // Cut by a short-lived writer (no server runs).
    rbd_cg_ok(&["snap", "create", &format!("{group}@cut")]);
    let group_snaps = || -> Vec<String> {
        let listed: Value = serde_json::from_str(&rbd_cg_ok(&["snap", "ls", "--format", "json", &group])).unwrap();
        listed.as_array().unwrap().iter().map(|s| format!("{}={}", s["name"], s["status"])).collect()
    };
    let info: Value =
        serde_json::from_str(&rbd_cg_ok(&["snap", "info", "--format", "json", &format!("{group}@cut")])).unwrap();
    for (i, m) in members.iter().enumerate() {
        let snaps = image_snapshots(m);
        assert_eq!(snaps.len(), 3, "{m}: {snaps:?}");
        assert!(snaps.iter().all(|s| s.namespace == "group" && s.protected), "{m}: {snaps:?}");
        let cut = snaps.iter().find(|s| Some(s.id) == info["images"][i]["snap_id"].as_u64()).expect("cut by id");
        let plain: Value = serde_json::from_str(&ceph_tool_ok("rbd", &["snap", "ls", "--format", "json", m])).unwrap();
        assert_eq!(plain, json!([]), "plain rbd snap ls of {m} lists no member snapshot");
        assert!(!ceph_tool("rbd", &["snap", "rm", &format!("{m}@{}", cut.name)]).status.success());
        let by_id = ceph_tool("rbd", &["snap", "rm", "--snap-id", &cut.id.to_string(), m]);
        assert!(!by_id.status.success(), "rbd snap rm --snap-id meets the protection");
    }

    expect_errno(&rbd_cg(&["rm", &group]), libc::EBUSY);
    assert_eq!(group_snaps().len(), 3, "rm of a journaled group removed nothing: {:?}", group_snaps());
    assert_eq!(image_snapshots(&members[0]).len(), 3);

    // The writer removes the journal's own snapshot by id, unprotecting it.
    rbd_cg_ok(&["snap", "rm", &format!("{group}@cut")]);
    for m in &members {
        assert_eq!(image_snapshots(m).len(), 2, "{m}");
    }
    // Clone children of either format keep their parent snapshot: refused, still protected,
    // finished once the clones are gone.
    for format in ["1", "2"] {
        let snap = format!("{group}@v{format}");
        let refused = expect_errno(&rbd_cg(&["snap", "rm", &snap]), libc::EBUSY);
        assert!(refused.contains("clone children"), "{refused}");
        assert!(group_snaps().contains(&format!("\"v{format}\"=\"complete\"")), "{:?}", group_snaps());
        for m in &members {
            let snaps = image_snapshots(m);
            assert!(snaps.iter().all(|s| s.namespace == "group" && s.protected), "{m}: {snaps:?}");
        }
        // The clone group goes, then its images (`{group}-{image}`, clone's default names).
        rbd_cg_ok(&["rm", &format!("rbd/{ns}/clone{format}")]);
        let refused = expect_errno(&rbd_cg(&["snap", "rm", &snap]), libc::EBUSY);
        assert!(refused.contains("clone children"), "the clone images still depend on it: {refused}");
        for i in 0..members.len() {
            ceph_tool_ok("rbd", &["rm", "--no-progress", &format!("rbd/{ns}/clone{format}-m{i}")]);
        }
        rbd_cg_ok(&["snap", "rm", &snap]);
    }
    assert_eq!(group_snaps(), Vec::<String>::new());
    for m in &members {
        assert_eq!(image_snapshots(m).len(), 0, "{m}");
    }
    let check = rbd_cg(&["repair", "--check", &group]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    rbd_cg_ok(&["journal", "disable", &group]);
    rbd_cg_ok(&["rm", &group]);
}
