//! Fuzz-style tests over real sockets: random byte streams at every phase must not take the
//! server down, and random-but-valid pipelined request streams must give exactly the
//! results of applying the requests in the order they were sent (the ordering contract,
//! checked against a shadow image).

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use common::{assert_serves, Raw, Rng, TestServer};
use rbd_cg_datapath::nbd::proto::*;
use rbd_cg_datapath::nbd::{ExportInfo, MemBackend, ServerConfig};

fn fuzz_backend() -> MemBackend {
    MemBackend::new(vec![ExportInfo::new("f", 1 << 20), ExportInfo::new("r", 1 << 20).read_only(true)])
        .with_default("f")
}

#[test]
fn random_bytes_never_take_the_server_down() {
    let config = ServerConfig { handshake_timeout: Duration::from_secs(2), ..ServerConfig::default() };
    let srv = TestServer::start(fuzz_backend(), config);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in 0..300 {
        let mut c = if i % 2 == 0 { Raw::tcp(srv.port) } else { Raw::unix(&srv.sock) };
        let junk_len = 1 + rng.below(600) as usize;
        match i % 5 {
            // Garbage from the first byte.
            0 => {}
            // Valid client flags, then garbage options.
            1 => {
                c.greeting();
                let _ = c.send(&[0, 0, 0, 3]);
            }
            // Valid option headers with random option numbers and data.
            2 => {
                c.start();
                for _ in 0..rng.below(8) {
                    let len = rng.below(64) as usize;
                    let data = rng.bytes(len);
                    let _ = c.try_send_option(rng.below(16) as u32, &data);
                }
            }
            // Transmission, then garbage.
            3 => {
                c.go(if rng.below(2) == 0 { "f" } else { "r" });
            }
            // Transmission, then requests with a valid magic and random fields.
            _ => {
                c.go("f");
                for _ in 0..1 + rng.below(20) {
                    let h = RequestHeader {
                        flags: rng.next() as u16 & 0x1f,
                        command: rng.below(10) as u16,
                        handle: rng.next(),
                        offset: if rng.below(4) == 0 { rng.next() } else { rng.below(1 << 21) },
                        len: if rng.below(4) == 0 { rng.next() as u32 } else { rng.below(1 << 16) as u32 },
                    };
                    let _ = c.send(&h.encode());
                }
            }
        }
        let junk = rng.bytes(junk_len);
        let _ = c.send(&junk);
        let _ = c.s.flush();
        // Read whatever comes back, briefly, then hang up.
        c.set_read_timeout(Duration::from_millis(20));
        let _ = c.read_n(1 << 16);
    }
    assert!(srv.is_serving());
    assert_serves(srv.port, "f");
    // And a real client agrees.
    common::require("qemu-io", "qemu-utils");
    let out = common::run(
        std::process::Command::new("qemu-io").args([
            "-f",
            "raw",
            &srv.uri("f"),
            "-c",
            "write -P 0x3c 0 64k",
            "-c",
            "read -P 0x3c 0 64k",
        ]),
        Duration::from_secs(60),
    );
    assert!(out.ok() && !out.stdout.contains("failed"), "{}", out.all());
}

/// One pipelined request and what it must produce.
struct Expect {
    error: u32,
    data: Option<Vec<u8>>,
}

fn valid_stream_matches_model(srv: &TestServer, unix: bool, seed: u64, rounds: usize) {
    const SIZE: u64 = 1 << 20;
    let mut c = if unix { Raw::unix(&srv.sock) } else { Raw::tcp(srv.port) };
    c.go("f");
    let mut shadow = srv.backend().export("f").unwrap().snapshot(0, SIZE as usize);
    let mut rng = Rng(seed);
    let mut handle = 0u64;
    for _ in 0..rounds {
        let mut batch = Vec::new();
        let mut expect: HashMap<u64, Expect> = HashMap::new();
        for _ in 0..1 + rng.below(16) {
            handle += 1;
            let len = match rng.below(8) {
                0 => 0,
                1 => 1 + rng.below(16) as u32,
                _ => 1 + rng.below(64 << 10) as u32,
            };
            let offset = if rng.below(10) == 0 {
                SIZE - rng.below(u64::from(len) + 1) + rng.below(4096)
            } else {
                rng.below(SIZE - u64::from(len))
            };
            let fua = if rng.below(4) == 0 { CMD_FLAG_FUA } else { 0 };
            let in_range = offset + u64::from(len) <= SIZE;
            let cmd = [CMD_READ, CMD_WRITE, CMD_WRITE, CMD_WRITE_ZEROES, CMD_TRIM, CMD_FLUSH, CMD_CACHE]
                [rng.below(7) as usize];
            let range = offset as usize..(offset + u64::from(len)) as usize;
            let (flags, payload, e) = match cmd {
                CMD_READ => {
                    let e = if !in_range {
                        Expect { error: 22, data: None }
                    } else {
                        Expect { error: 0, data: Some(shadow[range].to_vec()) }
                    };
                    (0, Vec::new(), e)
                }
                CMD_WRITE => {
                    let data = rng.bytes(len as usize);
                    if in_range {
                        shadow[range].copy_from_slice(&data);
                    }
                    (fua, data, Expect { error: if in_range { 0 } else { 28 }, data: None })
                }
                CMD_WRITE_ZEROES | CMD_TRIM => {
                    // MemBackend trims to zeroes, so both have the same effect here.
                    if in_range {
                        shadow[range].fill(0);
                    }
                    let err = match (in_range, cmd) {
                        (true, _) => 0,
                        (false, CMD_TRIM) => 22,
                        _ => 28,
                    };
                    let nohole = if cmd == CMD_WRITE_ZEROES && rng.below(2) == 0 { CMD_FLAG_NO_HOLE } else { 0 };
                    (fua | nohole, Vec::new(), Expect { error: err, data: None })
                }
                CMD_FLUSH => (fua, Vec::new(), Expect { error: 0, data: None }),
                _ => (0, Vec::new(), Expect { error: if in_range { 0 } else { 22 }, data: None }),
            };
            let (off, l) = if cmd == CMD_FLUSH { (0, 0) } else { (offset, len) };
            batch.extend_from_slice(&RequestHeader { flags, command: cmd, handle, offset: off, len: l }.encode());
            batch.extend_from_slice(&payload);
            expect.insert(handle, e);
        }
        c.send(&batch).expect("send batch");
        while !expect.is_empty() {
            let (err, h) = c.reply().expect("reply");
            let e = expect.remove(&h).unwrap_or_else(|| panic!("reply for unknown or repeated handle {h}"));
            assert_eq!(err, e.error, "handle {h}");
            if let Some(want) = e.data {
                let got = c.read_n(want.len()).expect("read payload");
                assert!(got == want, "handle {h}: read data differs from the model");
            }
        }
    }
    c.disc();
    let image = srv.backend().export("f").unwrap().snapshot(0, SIZE as usize);
    assert!(image == shadow, "final image differs from the model");
}

#[test]
fn valid_request_streams_match_the_model() {
    let srv = TestServer::start(fuzz_backend(), ServerConfig::default());
    valid_stream_matches_model(&srv, false, 1, 150);
    valid_stream_matches_model(&srv, true, 2, 150);
    assert_serves(srv.port, "f");
}

#[test]
fn valid_request_streams_match_the_model_with_slow_completions() {
    // Completions come later, from spawned tasks, in any order; the effects must still be
    // in wire order.
    let config = ServerConfig { max_in_flight: 8, ..ServerConfig::default() };
    let srv = TestServer::start(fuzz_backend().with_latency(Duration::from_micros(300)), config);
    valid_stream_matches_model(&srv, false, 3, 60);
    valid_stream_matches_model(&srv, true, 4, 60);
}
