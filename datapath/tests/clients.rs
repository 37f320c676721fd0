//! The server driven by the real Debian NBD clients: nbdinfo, qemu-io, qemu-img, nbdcopy,
//! fio's nbd engine. They must be installed (see the failure message); nothing is skipped.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{default_backend, require, run, Rng, Scratch, TestServer};
use rbd_cg_datapath::nbd::{ExportInfo, MemBackend, ServerConfig};

const T: Duration = Duration::from_secs(120);

fn server() -> TestServer {
    TestServer::start(default_backend(), ServerConfig::default())
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

#[test]
fn nbdinfo_lists_exports_sizes_and_flags() {
    require("nbdinfo", "libnbd-bin");
    let srv = server();
    for base in [format!("nbd://127.0.0.1:{}", srv.port), format!("nbd+unix://?socket={}", srv.sock.display())] {
        let out = run(Command::new("nbdinfo").args(["--list", "--json", &base]), T);
        assert!(out.ok(), "{}", out.all());
        let v = json(&out.stdout);
        assert_eq!(v["protocol"], "newstyle-fixed");
        assert_eq!(v["structured"], false);
        let exports = v["exports"].as_array().expect("exports");
        let names: Vec<_> = exports.iter().map(|e| e["export-name"].as_str().unwrap_or("")).collect();
        assert_eq!(names, ["disk", "ro"]);
        let disk = &exports[0];
        assert_eq!(disk["export-size"], 64u64 << 20);
        assert_eq!(disk["description"], "test disk");
        for (k, want) in [
            ("is_read_only", false),
            ("can_flush", true),
            ("can_fua", true),
            ("can_trim", true),
            ("can_zero", true),
            ("can_cache", true),
            ("can_multi_conn", true),
            ("can_df", false),
            ("can_fast_zero", false),
        ] {
            assert_eq!(disk[k], want, "disk {k}");
        }
        assert_eq!(disk["block_size_minimum"], 1);
        assert_eq!(disk["block_size_preferred"], 4096);
        assert_eq!(disk["block_size_maximum"], 32u64 << 20);
        let ro = &exports[1];
        assert_eq!(ro["export-size"], 8u64 << 20);
        assert_eq!(ro["is_read_only"], true);
        assert_eq!(ro["can_multi_conn"], false);
    }
    // A single export by URI, the default export by empty name, an unknown one.
    let out = run(Command::new("nbdinfo").args(["--size", &srv.unix_uri("ro")]), T);
    assert_eq!(out.stdout.trim(), (8u64 << 20).to_string(), "{}", out.all());
    let out = run(Command::new("nbdinfo").args(["--size", &format!("nbd://127.0.0.1:{}", srv.port)]), T);
    assert_eq!(out.stdout.trim(), (64u64 << 20).to_string(), "{}", out.all());
    let out = run(Command::new("nbdinfo").args(["--size", &srv.uri("nope")]), T);
    assert!(!out.ok(), "{}", out.all());
}

fn qemu_io(uri: &str, extra: &[&str], cmds: &[&str]) -> common::Out {
    let mut c = Command::new("qemu-io");
    c.args(extra).args(["-f", "raw", uri]);
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    run(&mut c, T)
}

fn assert_qemu_ok(out: &common::Out) {
    assert!(out.ok(), "{}", out.all());
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!text.contains("failed") && !text.contains("error"), "{}", out.all());
}

#[test]
fn qemu_io_patterns_over_tcp_and_unix() {
    require("qemu-io", "qemu-utils");
    let srv = server();
    for uri in [srv.uri("disk"), srv.unix_uri("disk")] {
        let out = qemu_io(
            &uri,
            &[],
            &[
                "write -P 0xab 0 1M",
                "read -P 0xab 0 1M",
                "flush",
                "write -z 1M 1M",
                "read -P 0 1M 1M",
                "write -P 0x11 2M 1M",
                "discard 2M 1M",
                "write -f -P 0xcd 3M 4k",
                "read -P 0xcd 3M 4k",
                "write -z -u 4M 64k",
                "read -P 0 4M 64k",
                "aio_write -P 0x77 5M 64k",
                "aio_write -P 0x78 6M 64k",
                "aio_flush",
                "read -P 0x77 5M 64k",
                "read -P 0x78 6M 64k",
                "write -P 0x5a 7654321 777",
                "read -P 0x5a 7654321 777",
                "read -P 0 0x3fff000 4k",
            ],
        );
        assert_qemu_ok(&out);
        let e = srv.backend().export("disk").unwrap();
        assert!(e.snapshot(0, 1 << 20).iter().all(|&b| b == 0xab));
        assert!(e.snapshot(1 << 20, 1 << 20).iter().all(|&b| b == 0));
        assert!(e.snapshot(3 << 20, 4096).iter().all(|&b| b == 0xcd));
        assert!(e.snapshot(5 << 20, 64 << 10).iter().all(|&b| b == 0x77));
        assert!(e.snapshot(7654321, 777).iter().all(|&b| b == 0x5a));
        // A pattern check that must fail does fail (the checks above are real).
        let out = qemu_io(&uri, &[], &["read -P 0xee 0 4k"]);
        assert!(format!("{}{}", out.stdout, out.stderr).contains("Pattern verification failed"), "{}", out.all());
    }
    // The read-only export: reads work with -r, a read-write open is refused.
    let out = qemu_io(&srv.unix_uri("ro"), &["-r"], &["read -P 0 0 64k"]);
    assert_qemu_ok(&out);
    let out = qemu_io(&srv.uri("ro"), &[], &["write 0 4k"]);
    assert!(!out.ok(), "{}", out.all());
}

/// A raw image with data, zero runs and a hole, `size` bytes.
fn make_image(path: &std::path::Path, size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut img = vec![0u8; size];
    let mut pos = 0;
    while pos < size {
        let n = (4096 * (1 + rng.below(64)) as usize).min(size - pos);
        if rng.below(3) != 0 {
            let chunk = rng.bytes(n);
            img[pos..pos + n].copy_from_slice(&chunk);
        }
        pos += n;
    }
    std::fs::write(path, &img).expect("write image");
    img
}

#[test]
fn qemu_img_convert_and_compare() {
    require("qemu-img", "qemu-utils");
    let srv = TestServer::start(MemBackend::new(vec![ExportInfo::new("img", 24 << 20)]), ServerConfig::default());
    let dir = Scratch::new("qimg");
    let src = dir.path("src.img");
    let img = make_image(&src, 24 << 20, 7);
    let src_s = src.to_str().unwrap();
    let out =
        run(Command::new("qemu-img").args(["convert", "-n", "-f", "raw", "-O", "raw", src_s, &srv.uri("img")]), T);
    assert!(out.ok(), "{}", out.all());
    assert_eq!(srv.backend().export("img").unwrap().snapshot(0, img.len()), img);
    let out = run(Command::new("qemu-img").args(["compare", "-f", "raw", "-F", "raw", src_s, &srv.unix_uri("img")]), T);
    assert!(out.ok(), "{}", out.all());
    // A one-byte difference is found.
    srv.backend().export("img").unwrap().fill(5 << 20, &[img[5 << 20] ^ 1]);
    let out = run(Command::new("qemu-img").args(["compare", "-f", "raw", "-F", "raw", src_s, &srv.uri("img")]), T);
    assert_eq!(out.status.code(), Some(1), "{}", out.all());
    // And the export converts back to a file identical to the source.
    let back = dir.path("back.img");
    srv.backend().export("img").unwrap().fill(5 << 20, &[img[5 << 20]]);
    let out = run(
        Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "raw", &srv.uri("img"), back.to_str().unwrap()]),
        T,
    );
    assert!(out.ok(), "{}", out.all());
    assert!(std::fs::read(&back).unwrap() == img);
}

#[test]
fn nbdcopy_round_trip_with_multi_conn() {
    require("nbdcopy", "libnbd-bin");
    let srv = TestServer::start(
        MemBackend::new(vec![ExportInfo::new("c", 32 << 20).multi_conn(true)]),
        ServerConfig::default(),
    );
    let dir = Scratch::new("nbdcopy");
    let src = dir.path("src.img");
    let img = make_image(&src, 32 << 20, 11);
    let out = run(Command::new("nbdcopy").args(["--connections=4", src.to_str().unwrap(), &srv.uri("c")]), T);
    assert!(out.ok(), "{}", out.all());
    assert!(srv.backend().export("c").unwrap().snapshot(0, img.len()) == img);
    let dst = dir.path("dst.img");
    std::fs::write(&dst, []).unwrap();
    let out = run(Command::new("nbdcopy").args([&srv.unix_uri("c"), dst.to_str().unwrap()]), T);
    assert!(out.ok(), "{}", out.all());
    assert!(std::fs::read(&dst).unwrap() == img);
}

#[test]
fn fio_nbd_randwrite_verify_crc32c() {
    require("fio", "fio");
    let srv = TestServer::start(
        MemBackend::new(vec![ExportInfo::new("fio", 32 << 20).multi_conn(true)]),
        ServerConfig::default(),
    );
    let dir = Scratch::new("fio");
    let out = run(
        Command::new("fio").current_dir(&dir.0).args([
            "--verify_state_save=0",
            "--name=verify",
            "--ioengine=nbd",
            &format!("--uri={}", srv.uri("fio")),
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--numjobs=4",
            "--size=8M",
            "--offset_increment=8M",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--do_verify=1",
            "--group_reporting",
            "--output-format=json",
        ]),
        T,
    );
    assert!(out.ok(), "{}", out.all());
    let v = json(&out.stdout[out.stdout.find('{').unwrap_or(0)..]);
    let job = &v["jobs"][0];
    assert_eq!(job["error"], 0, "{}", out.all());
    // Every job wrote its 8 MiB and read it back for verification.
    assert_eq!(job["write"]["io_bytes"], 32u64 << 20, "{}", out.all());
    assert_eq!(job["read"]["io_bytes"], 32u64 << 20, "{}", out.all());
}
