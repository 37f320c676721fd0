//! Byte-level protocol tests with a raw client: what the real clients never send.

mod common;

use std::time::{Duration, Instant};

use common::{assert_serves, default_backend, Raw, TestServer};
use rbd_cg_datapath::nbd::proto::*;
use rbd_cg_datapath::nbd::{ExportInfo, Fault, MemBackend, NbdErrno, ServerConfig};

const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;
const EPERM: u32 = 1;

fn server() -> TestServer {
    TestServer::start(default_backend(), ServerConfig::default())
}

#[test]
fn bad_requests_get_errors_and_the_connection_goes_on() {
    let srv = server();
    let mut c = Raw::connect_go(srv.port, "disk");
    let size = 64u64 << 20;
    // Out of range: reads, trims and cache EINVAL; writes and write-zeroes ENOSPC.
    assert_eq!(c.call(CMD_READ, 0, size - 4096, 8192, &[], 8192).0, EINVAL);
    assert_eq!(c.call(CMD_READ, 0, u64::MAX - 10, 4096, &[], 4096).0, EINVAL);
    assert_eq!(c.call(CMD_READ, 0, size + 1, 0, &[], 0).0, EINVAL);
    assert_eq!(c.call(CMD_WRITE, 0, size - 1, 2, &[1, 2], 0).0, ENOSPC);
    assert_eq!(c.call(CMD_WRITE_ZEROES, 0, size, 1, &[], 0).0, ENOSPC);
    assert_eq!(c.call(CMD_TRIM, 0, size, 4096, &[], 0).0, EINVAL);
    assert_eq!(c.call(CMD_CACHE, 0, size, 4096, &[], 0).0, EINVAL);
    // Unknown command, block status (not negotiated), flags that do not apply.
    assert_eq!(c.call(99, 0, 0, 4096, &[], 0).0, EINVAL);
    assert_eq!(c.call(CMD_BLOCK_STATUS, 0, 0, 4096, &[], 0).0, EINVAL);
    assert_eq!(c.call(CMD_READ, CMD_FLAG_DF, 0, 4096, &[], 4096).0, EINVAL);
    assert_eq!(c.call(CMD_WRITE, CMD_FLAG_NO_HOLE, 0, 4, &[1, 2, 3, 4], 0).0, EINVAL);
    assert_eq!(c.call(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 0, 4, &[], 0).0, EINVAL);
    assert_eq!(c.call(CMD_FLUSH, 0x8000, 0, 0, &[], 0).0, EINVAL);
    // Read larger than the maximum block size: EINVAL, no payload.
    assert_eq!(c.call(CMD_READ, 0, 0, (32 << 20) + 1, &[], 0).0, EINVAL);
    // Zero-length requests are successful no-ops.
    assert_eq!(c.call(CMD_READ, 0, 4096, 0, &[], 0).0, 0);
    assert_eq!(c.call(CMD_WRITE, CMD_FLAG_FUA, 4096, 0, &[], 0).0, 0);
    assert_eq!(c.call(CMD_TRIM, 0, 4096, 0, &[], 0).0, 0);
    assert_eq!(c.call(CMD_WRITE_ZEROES, 0, size, 0, &[], 0).0, 0);
    // FUA is accepted on every command; flush, cache, FUA write work.
    assert_eq!(c.call(CMD_FLUSH, CMD_FLAG_FUA, 0, 0, &[], 0).0, 0);
    assert_eq!(c.call(CMD_CACHE, 0, 0, 1 << 20, &[], 0).0, 0);
    assert_eq!(c.call(CMD_WRITE, CMD_FLAG_FUA, 100, 3, b"abc", 0).0, 0);
    assert_eq!(c.read(99, 5), (0, vec![0, b'a', b'b', b'c', 0]));
    // Unaligned and last-byte accesses are fine (minimum block size 1).
    assert_eq!(c.write(size - 1, &[9]), 0);
    assert_eq!(c.read(size - 1, 1), (0, vec![9]));
    assert_eq!(c.call(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE | CMD_FLAG_FUA, 100, 2, &[], 0).0, 0);
    assert_eq!(c.read(99, 5), (0, vec![0, 0, 0, b'c', 0]));
    c.disc();
    let stats = srv.backend().export("disk").unwrap().stats();
    assert!(stats.fua.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

#[test]
fn read_only_export_refuses_writes_with_eperm() {
    let srv = server();
    let mut c = Raw::connect_go(srv.port, "ro");
    assert_eq!(c.write(0, &[1; 4096]), EPERM);
    assert_eq!(c.call(CMD_TRIM, 0, 0, 4096, &[], 0).0, EPERM);
    assert_eq!(c.call(CMD_WRITE_ZEROES, 0, 0, 4096, &[], 0).0, EPERM);
    // The refused write's payload was consumed: the stream is still in sync.
    assert_eq!(c.read(0, 4096), (0, vec![0; 4096]));
    assert_eq!(c.call(CMD_FLUSH, 0, 0, 0, &[], 0).0, 0);
    c.disc();
    assert_eq!(srv.backend().export("ro").unwrap().allocated_blocks(), 0);
}

#[test]
fn oversize_write_closes_only_that_connection() {
    let srv = server();
    let mut good = Raw::connect_go(srv.port, "disk");
    assert_eq!(good.write(0, b"before"), 0);
    let mut bad = Raw::connect_go(srv.port, "disk");
    bad.request(CMD_WRITE, 0, 1, 0, (32 << 20) + 1, &[0; 4096]);
    assert!(bad.closed_by_server(), "oversize write must close the connection");
    assert_eq!(good.write(6, b"after"), 0);
    assert_eq!(good.read(0, 11), (0, b"beforeafter".to_vec()));
    good.disc();
    assert_serves(srv.port, "disk");
}

#[test]
fn bad_request_magic_disconnects() {
    let srv = server();
    let mut c = Raw::connect_go(srv.port, "disk");
    let mut h = RequestHeader { flags: 0, command: CMD_READ, handle: 1, offset: 0, len: 512 }.encode();
    h[0] ^= 0xff;
    c.send(&h).unwrap();
    assert!(c.closed_by_server());
    assert_serves(srv.port, "disk");
}

#[test]
fn replies_are_out_of_order() {
    let backend = default_backend().with_latency(Duration::from_millis(300));
    let srv = TestServer::start(backend, ServerConfig::default());
    let mut c = Raw::connect_go(srv.port, "disk");
    // A slow read, then a request answered at once (unknown command): the second reply
    // arrives first.
    c.request(CMD_READ, 0, 1, 0, 4096, &[]);
    c.request(99, 0, 2, 0, 0, &[]);
    assert_eq!(c.reply().unwrap(), (EINVAL, 2));
    assert_eq!(c.reply().unwrap(), (0, 1));
    assert_eq!(c.read_n(4096).unwrap(), vec![0; 4096]);
    c.disc();
}

#[test]
fn in_flight_limit_applies_back_pressure() {
    let backend = default_backend().with_latency(Duration::from_millis(100));
    let config = ServerConfig { max_in_flight: 4, ..ServerConfig::default() };
    let srv = TestServer::start(backend, config);
    let mut c = Raw::connect_go(srv.port, "disk");
    let start = Instant::now();
    for i in 0..16u64 {
        c.request(CMD_WRITE, 0, i, i * 4096, 4096, &[i as u8; 4096]);
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..16 {
        let (err, h) = c.reply().unwrap();
        assert_eq!(err, 0);
        assert!(seen.insert(h));
    }
    // 16 requests, 4 at a time, 100 ms each: at least 4 rounds.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(380), "took {took:?}: in-flight limit not applied");
    for i in 0..16u64 {
        assert_eq!(c.read(i * 4096, 4096), (0, vec![i as u8; 4096]));
    }
    c.disc();
}

#[test]
fn backend_errors_map_to_nbd_errors() {
    let srv = server();
    let mut c = Raw::connect_go(srv.port, "disk");
    let b = srv.backend();
    for (kind, wire) in [(NbdErrno::Io, 5), (NbdErrno::NoSpc, 28), (NbdErrno::NotSup, 95), (NbdErrno::Perm, 1)] {
        b.set_fault(Some(Fault { export: "disk".into(), range: 8192..12288, kind }));
        assert_eq!(c.write(8192, &[1; 512]), wire);
        assert_eq!(c.read(10000, 10).0, wire);
        assert_eq!(c.call(CMD_TRIM, 0, 0, 1 << 20, &[], 0).0, wire);
        assert_eq!(c.write(0, &[1; 512]), 0, "outside the faulty range");
    }
    b.set_fault(Some(Fault { export: "disk".into(), range: 0..0, kind: NbdErrno::Io }));
    assert_eq!(c.call(CMD_FLUSH, 0, 0, 0, &[], 0).0, 5);
    b.set_fault(None);
    assert_eq!(c.call(CMD_FLUSH, 0, 0, 0, &[], 0).0, 0);
    c.disc();
}

// ---- handshake ----

fn closed_after(srv: &TestServer, f: impl FnOnce(&mut Raw)) {
    let mut c = Raw::tcp(srv.port);
    f(&mut c);
    assert!(c.closed_by_server(), "server should have closed the connection");
}

#[test]
fn malformed_handshakes_are_closed() {
    let srv = server();
    // Client without FIXED_NEWSTYLE, with unknown flags.
    closed_after(&srv, |c| {
        c.greeting();
        c.send(&0u32.to_be_bytes()).unwrap();
    });
    closed_after(&srv, |c| {
        c.greeting();
        c.send(&0x8000_0001u32.to_be_bytes()).unwrap();
    });
    // Bad option magic.
    closed_after(&srv, |c| {
        c.start();
        c.send(b"IHAVEOPX\0\0\0\x07\0\0\0\0").unwrap();
    });
    // Option data over 64 KiB.
    closed_after(&srv, |c| {
        c.start();
        let mut h = b"IHAVEOPT".to_vec();
        h.extend_from_slice(&OPT_GO.to_be_bytes());
        h.extend_from_slice(&(64 * 1024 + 1u32).to_be_bytes());
        c.send(&h).unwrap();
    });
    // EXPORT_NAME too long, not UTF-8, unknown.
    closed_after(&srv, |c| {
        c.start();
        c.send_option(OPT_EXPORT_NAME, &[b'a'; 4097]);
    });
    closed_after(&srv, |c| {
        c.start();
        c.send_option(OPT_EXPORT_NAME, &[0xff, 0xfe]);
    });
    closed_after(&srv, |c| {
        c.start();
        c.send_option(OPT_EXPORT_NAME, b"nope");
    });
    // Garbage instead of a handshake, and a client that hangs up half-way.
    closed_after(&srv, |c| {
        c.greeting();
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    });
    {
        let mut c = Raw::tcp(srv.port);
        c.start();
        c.send(b"IHAVE").unwrap();
    }
    assert_serves(srv.port, "disk");
}

#[test]
fn option_errors_are_replied_and_negotiation_goes_on() {
    let srv = server();
    let mut c = Raw::tcp(srv.port);
    c.start();
    for opt in [OPT_STRUCTURED_REPLY, OPT_STARTTLS, 4, 9, 10, 11, 1000, u32::MAX] {
        c.send_option(opt, b"");
        let r = c.option_reply().unwrap();
        assert_eq!((r.option, r.kind), (opt, REP_ERR_UNSUP), "option {opt}");
    }
    c.send_option(OPT_LIST, b"x");
    assert_eq!(c.option_reply().unwrap().kind, REP_ERR_INVALID);
    // Malformed INFO / GO data.
    for bad in [&b""[..], &[0, 0, 0, 9, b'd'][..], &[0, 0, 0, 0, 0, 2, 0, 1][..], &[0xff; 6][..]] {
        c.send_option(OPT_GO, bad);
        assert_eq!(c.option_reply().unwrap().kind, REP_ERR_INVALID, "{bad:?}");
    }
    let r = c.info_or_go(OPT_INFO, "nope", &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].kind, REP_ERR_UNKNOWN);
    // INFO with name and description requested, then GO on the default export.
    let r = c.info_or_go(OPT_INFO, "disk", &[INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]);
    assert_eq!(r.last().unwrap().kind, REP_ACK);
    let info = |t: u16| r.iter().find(|x| x.kind == REP_INFO && x.data[0..2] == t.to_be_bytes()).map(|x| &x.data[2..]);
    assert_eq!(info(INFO_NAME), Some(&b"disk"[..]));
    assert_eq!(info(INFO_DESCRIPTION), Some(&b"test disk"[..]));
    let bs = info(INFO_BLOCK_SIZE).unwrap();
    assert_eq!(bs, &[0, 0, 0, 1, 0, 0, 0x10, 0, 2, 0, 0, 0]);
    let e = info(INFO_EXPORT).unwrap();
    assert_eq!(u64::from_be_bytes(e[0..8].try_into().unwrap()), 64 << 20);
    let flags = u16::from_be_bytes([e[8], e[9]]);
    let want = FLAG_HAS_FLAGS
        | FLAG_SEND_FLUSH
        | FLAG_SEND_FUA
        | FLAG_SEND_TRIM
        | FLAG_SEND_WRITE_ZEROES
        | FLAG_SEND_CACHE
        | FLAG_CAN_MULTI_CONN;
    assert_eq!(flags, want);
    // Empty name = the default export; its canonical name is reported.
    let r = c.info_or_go(OPT_GO, "", &[INFO_NAME]);
    assert_eq!(r.last().unwrap().kind, REP_ACK);
    assert!(r.iter().any(|x| x.kind == REP_INFO && x.data == [&[0u8, 1][..], b"disk"].concat()));
    assert_eq!(c.write(0, b"go"), 0);
    c.disc();
}

#[test]
fn empty_name_without_default_is_unknown() {
    let srv = TestServer::start(MemBackend::new(vec![ExportInfo::new("only", 1 << 20)]), ServerConfig::default());
    let mut c = Raw::tcp(srv.port);
    c.start();
    assert_eq!(c.info_or_go(OPT_GO, "", &[])[0].kind, REP_ERR_UNKNOWN);
    c.send_option(OPT_EXPORT_NAME, b"");
    assert!(c.closed_by_server());
}

#[test]
fn export_name_honours_no_zeroes() {
    let srv = server();
    for (client_flags, tail) in [(1u32, 124usize), (3, 0)] {
        let mut c = Raw::tcp(srv.port);
        c.greeting();
        c.send(&client_flags.to_be_bytes()).unwrap();
        c.send_option(OPT_EXPORT_NAME, b"ro");
        let r = c.read_n(10 + tail).unwrap();
        assert_eq!(u64::from_be_bytes(r[0..8].try_into().unwrap()), 8 << 20);
        assert_ne!(u16::from_be_bytes([r[8], r[9]]) & FLAG_READ_ONLY, 0);
        assert!(r[10..].iter().all(|&b| b == 0));
        // Transmission follows at once.
        assert_eq!(c.read(0, 16), (0, vec![0; 16]));
        c.disc();
    }
}

#[test]
fn abort_is_acknowledged_then_closed() {
    let srv = server();
    let mut c = Raw::tcp(srv.port);
    c.start();
    c.send_option(OPT_ABORT, b"ignored");
    let r = c.option_reply().unwrap();
    assert_eq!((r.option, r.kind), (OPT_ABORT, REP_ACK));
    assert!(c.closed_by_server());
}

#[test]
fn list_names_every_export() {
    let srv = server();
    let mut c = Raw::unix(&srv.sock);
    c.start();
    c.send_option(OPT_LIST, b"");
    let mut names = Vec::new();
    loop {
        let r = c.option_reply().unwrap();
        if r.kind == REP_ACK {
            break;
        }
        assert_eq!(r.kind, REP_SERVER);
        let n = u32::from_be_bytes(r.data[0..4].try_into().unwrap()) as usize;
        names.push(String::from_utf8(r.data[4..4 + n].to_vec()).unwrap());
    }
    assert_eq!(names, ["disk", "ro"]);
}

#[test]
fn handshake_times_out() {
    let config = ServerConfig { handshake_timeout: Duration::from_millis(300), ..ServerConfig::default() };
    let srv = TestServer::start(default_backend(), config);
    let mut c = Raw::tcp(srv.port);
    c.start();
    let start = Instant::now();
    assert!(c.closed_by_server());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert_serves(srv.port, "disk");
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    let config = ServerConfig { max_connections: 3, ..ServerConfig::default() };
    let srv = TestServer::start(default_backend(), config);
    let mut open: Vec<Raw> = (0..3).map(|_| Raw::connect_go(srv.port, "disk")).collect();
    for _ in 0..3 {
        let mut extra = Raw::tcp(srv.port);
        extra.set_read_timeout(Duration::from_secs(5));
        assert!(extra.closed_by_server(), "a connection beyond the limit must be closed without a greeting");
    }
    let mut u = Raw::unix(&srv.sock);
    assert!(u.closed_by_server(), "the limit is shared by all listeners");
    // The open ones still work; when one leaves, a new one is served.
    assert_eq!(open[0].write(0, b"x"), 0);
    open.pop().unwrap().disc();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Raw::tcp(srv.port);
        let mut b = [0u8; 8];
        if std::io::Read::read_exact(&mut c.s, &mut b).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_answers_requests_already_read_then_closes() {
    let backend = default_backend().with_latency(Duration::from_millis(200));
    let mut srv = TestServer::start(backend, ServerConfig::default());
    let mut c = Raw::connect_go(srv.port, "disk");
    for i in 0..8u64 {
        c.request(CMD_WRITE, CMD_FLAG_FUA, i, i * 4096, 4096, &[0x40 + i as u8; 4096]);
    }
    // Let the server read them (it submits at once; completions take 200 ms).
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = &srv.backend().export("disk").unwrap().stats().writes;
    while stats.load(std::sync::atomic::Ordering::Relaxed) < 8 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let h = srv.server.shutdown_handle();
    h.shutdown();
    // Every request read is answered, successfully, before the close.
    let mut got = Vec::new();
    for _ in 0..8 {
        let (err, h) = c.reply().expect("reply after shutdown");
        assert_eq!(err, 0);
        got.push(h);
    }
    got.sort();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert!(c.closed_by_server());
    assert!(srv.shutdown(Duration::from_secs(5)), "serve loops must return");
    for i in 0..8u64 {
        assert_eq!(srv.backend().export("disk").unwrap().snapshot(i * 4096, 4096), vec![0x40 + i as u8; 4096]);
    }
    // Listeners are closed.
    assert!(std::net::TcpStream::connect(("127.0.0.1", srv.port)).is_err());
}
