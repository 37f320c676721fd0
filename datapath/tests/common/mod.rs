//! Shared by the integration tests: an in-process server on an ephemeral TCP port and a
//! Unix socket, a bounded external-command runner, and a raw blocking NBD client for the
//! byte-level protocol tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbd_cg_datapath::nbd::proto::{self, RequestHeader};
use rbd_cg_datapath::nbd::{ExportInfo, MemBackend, Server, ServerConfig};

pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// The default test export set: `disk` (64 MiB, default, multi-conn, described) and `ro`
/// (8 MiB, read-only).
pub fn default_backend() -> MemBackend {
    MemBackend::new(vec![
        ExportInfo::new("disk", 64 << 20).multi_conn(true).description("test disk"),
        ExportInfo::new("ro", 8 << 20).read_only(true),
    ])
    .with_default("disk")
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rbdcg-nbd-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server on 127.0.0.1:ephemeral and on a Unix socket, in its own runtime.
pub struct TestServer {
    pub rt: tokio::runtime::Runtime,
    pub server: Server<MemBackend>,
    pub port: u16,
    pub sock: PathBuf,
    done: Option<std::sync::mpsc::Receiver<()>>,
    pub scratch: Scratch,
}

impl TestServer {
    pub fn start(backend: MemBackend, config: ServerConfig) -> Self {
        init_logging();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let scratch = Scratch::new("srv");
        let sock = scratch.path("nbd.sock");
        let server = Server::new(Arc::new(backend), config);
        let (tcp, unix) = rt.block_on(async {
            let t = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
            let u = tokio::net::UnixListener::bind(&sock).expect("bind unix");
            (t, u)
        });
        let port = tcp.local_addr().expect("addr").port();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let s = server.clone();
        rt.spawn(async move {
            tokio::join!(s.serve_tcp(tcp), s.serve_unix(unix));
            let _ = done_tx.send(());
        });
        TestServer { rt, server, port, sock, done: Some(done_rx), scratch }
    }

    pub fn backend(&self) -> &Arc<MemBackend> {
        self.server.backend()
    }

    pub fn uri(&self, export: &str) -> String {
        format!("nbd://127.0.0.1:{}/{export}", self.port)
    }

    pub fn unix_uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.sock.display())
    }

    /// True while both listeners' serve loops are running.
    pub fn is_serving(&self) -> bool {
        matches!(self.done.as_ref().map(|d| d.try_recv()), Some(Err(std::sync::mpsc::TryRecvError::Empty)))
    }

    /// Triggers shutdown; true if the serve loops returned within `timeout`.
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        self.server.shutdown_handle().shutdown();
        match self.done.take() {
            Some(d) => d.recv_timeout(timeout).is_ok(),
            None => true,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(10));
    }
}

/// Output of a finished command.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    pub fn all(&self) -> String {
        format!("status {:?}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Fails the test with an install hint unless `tool` is on PATH.
pub fn require(tool: &str, package: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
    assert!(found, "{tool} not found: install the Debian package {package} (apt-get install -y {package})");
}

/// Runs a command to completion, killing it (and failing) after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Out {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let to = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out { status, stdout: to.join().unwrap_or_default(), stderr: te.join().unwrap_or_default() }
}

/// Runs `datapath/tests/py/<script>` with the system python3 (for python3-libnbd).
pub fn python(script: &str, args: &[&str], timeout: Duration) -> Out {
    require("python3", "python3");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
    run(Command::new("/usr/bin/python3").env("PYTHONDONTWRITEBYTECODE", "1").arg(path).args(args), timeout)
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A blocking raw NBD client over TCP or a Unix socket.
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Sock {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(b),
            Sock::Unix(s) => s.read(b),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(b),
            Sock::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Raw {
    pub s: Sock,
}

/// An option reply.
#[derive(Debug)]
pub struct OptReply {
    pub option: u32,
    pub kind: u32,
    pub data: Vec<u8>,
}

impl Raw {
    pub fn tcp(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Raw { s: Sock::Tcp(s) }
    }

    pub fn unix(path: &Path) -> Raw {
        let s = UnixStream::connect(path).expect("connect unix");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Raw { s: Sock::Unix(s) }
    }

    pub fn set_read_timeout(&self, d: Duration) {
        match &self.s {
            Sock::Tcp(s) => s.set_read_timeout(Some(d)).expect("timeout"),
            Sock::Unix(s) => s.set_read_timeout(Some(d)).expect("timeout"),
        }
    }

    pub fn read_n(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.s.read_exact(&mut b)?;
        Ok(b)
    }

    pub fn send(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    /// Reads the greeting and checks it.
    pub fn greeting(&mut self) {
        let g = self.read_n(18).expect("greeting");
        assert_eq!(&g[0..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(u16::from_be_bytes([g[16], g[17]]), 3);
    }

    /// Greeting plus client flags `FIXED_NEWSTYLE | NO_ZEROES`.
    pub fn start(&mut self) {
        self.greeting();
        self.send(&3u32.to_be_bytes()).expect("client flags");
    }

    pub fn send_option(&mut self, option: u32, data: &[u8]) {
        self.try_send_option(option, data).expect("send option");
    }

    /// Like `send_option`, for fuzzing: the server may already have closed.
    pub fn try_send_option(&mut self, option: u32, data: &[u8]) -> std::io::Result<()> {
        let mut b = Vec::new();
        b.extend_from_slice(b"IHAVEOPT");
        b.extend_from_slice(&option.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        self.send(&b)
    }

    pub fn option_reply(&mut self) -> std::io::Result<OptReply> {
        let h = self.read_n(20)?;
        assert_eq!(u64::from_be_bytes(h[0..8].try_into().unwrap()), proto::OPT_REPLY_MAGIC);
        let option = u32::from_be_bytes(h[8..12].try_into().unwrap());
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize;
        let data = self.read_n(len)?;
        Ok(OptReply { option, kind, data })
    }

    pub fn info_data(name: &str, infos: &[u16]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    /// Sends `NBD_OPT_GO`/`INFO` and collects replies up to the final one.
    pub fn info_or_go(&mut self, option: u32, name: &str, infos: &[u16]) -> Vec<OptReply> {
        self.send_option(option, &Self::info_data(name, infos));
        let mut v = Vec::new();
        loop {
            let r = self.option_reply().expect("option reply");
            let last = r.kind != proto::REP_INFO;
            v.push(r);
            if last {
                return v;
            }
        }
    }

    /// Full handshake with `NBD_OPT_GO`; returns (size, transmission flags).
    pub fn go(&mut self, name: &str) -> (u64, u16) {
        self.start();
        let replies = self.info_or_go(proto::OPT_GO, name, &[proto::INFO_BLOCK_SIZE]);
        let last = replies.last().expect("replies");
        assert_eq!(last.kind, proto::REP_ACK, "OPT_GO {name:?} refused: {replies:?}");
        let e = replies.iter().find(|r| r.kind == proto::REP_INFO && r.data[0..2] == [0, 0]).expect("NBD_INFO_EXPORT");
        (u64::from_be_bytes(e.data[2..10].try_into().unwrap()), u16::from_be_bytes([e.data[10], e.data[11]]))
    }

    pub fn connect_go(port: u16, name: &str) -> Raw {
        let mut r = Raw::tcp(port);
        r.go(name);
        r
    }

    pub fn request(&mut self, command: u16, flags: u16, handle: u64, offset: u64, len: u32, payload: &[u8]) {
        let mut b = RequestHeader { flags, command, handle, offset, len }.encode().to_vec();
        b.extend_from_slice(payload);
        self.send(&b).expect("send request");
    }

    /// Reads one simple reply header: (error, handle).
    pub fn reply(&mut self) -> std::io::Result<(u32, u64)> {
        let h = self.read_n(16)?;
        assert_eq!(u32::from_be_bytes(h[0..4].try_into().unwrap()), proto::SIMPLE_REPLY_MAGIC, "reply magic");
        Ok((u32::from_be_bytes(h[4..8].try_into().unwrap()), u64::from_be_bytes(h[8..16].try_into().unwrap())))
    }

    /// One request, one reply (with `read_len` payload bytes on success); returns
    /// (error, payload).
    pub fn call(
        &mut self,
        command: u16,
        flags: u16,
        offset: u64,
        len: u32,
        payload: &[u8],
        read_len: usize,
    ) -> (u32, Vec<u8>) {
        self.request(command, flags, 0x1234, offset, len, payload);
        let (err, handle) = self.reply().expect("reply");
        assert_eq!(handle, 0x1234);
        let data = if err == 0 && read_len > 0 { self.read_n(read_len).expect("read payload") } else { Vec::new() };
        (err, data)
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> u32 {
        self.call(proto::CMD_WRITE, 0, offset, data.len() as u32, data, 0).0
    }

    pub fn read(&mut self, offset: u64, len: u32) -> (u32, Vec<u8>) {
        self.call(proto::CMD_READ, 0, offset, len, &[], len as usize)
    }

    /// True if the server closed the connection (EOF or reset) within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 1];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue, // drain anything still queued
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false, // timed out: still open
            }
        }
    }

    /// Soft disconnect.
    pub fn disc(mut self) {
        self.request(proto::CMD_DISC, 0, 0, 0, 0, &[]);
    }
}

/// A write-then-read round trip on a fresh connection: the server still serves.
pub fn assert_serves(port: u16, export: &str) {
    let mut c = Raw::connect_go(port, export);
    let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(c.write(12288, &data), 0);
    let (err, back) = c.read(12288, 8192);
    assert_eq!(err, 0);
    assert_eq!(back, data);
    c.disc();
}
