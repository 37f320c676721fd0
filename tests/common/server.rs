//! `rbd-cg nbd serve` as the tests run it: a child process listening on a Unix socket of its
//! own, its log in a file, stopped by SIGTERM (and checked to exit 0) or killed with -9.

use super::required_env;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start serving (a restart after kill -9 waits out the dead
/// writer's watch, a few seconds).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running `rbd-cg nbd serve`.
pub struct NbdServer {
    child: Option<Child>,
    /// The socket it listens on.
    pub socket: PathBuf,
    /// Its stderr.
    pub log: PathBuf,
}

impl NbdServer {
    /// Starts serving `group` (`pool[/ns]/group`) on a socket named after `name`, and waits
    /// until it accepts connections. Panics with its log if it exits instead.
    pub fn start(group: &str, name: &str) -> NbdServer {
        Self::start_with_args(group, name, &[])
    }

    /// [`Self::start`] with more options of `rbd-cg nbd serve`.
    pub fn start_with_args(group: &str, name: &str, args: &[&str]) -> NbdServer {
        let (mut server, waiting) = Self::spawn(group, name, args);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if UnixStream::connect(&server.socket).is_ok() && server.log_text().contains("NBD on unix:") {
                return server;
            }
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("rbd-cg nbd serve {group} exited ({status}) instead of serving:\n{}", server.log_text());
            }
            assert!(Instant::now() < deadline, "rbd-cg nbd serve {group} is not serving after {waiting:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a server that is expected to fail: waits for it to exit and returns its status
    /// and log.
    pub fn start_failing(group: &str, name: &str) -> (ExitStatus, String) {
        let (mut server, _) = Self::spawn(group, name, &[]);
        let status = server.child.take().map(|mut c| c.wait().expect("waiting for rbd-cg nbd serve"));
        (status.expect("a child"), server.log_text())
    }

    fn spawn(group: &str, name: &str, args: &[&str]) -> (NbdServer, Duration) {
        let dir = std::env::temp_dir().join(format!("rbd-cg-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("socket directory");
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&socket);
        let stderr = File::options().create(true).append(true).open(&log).expect("server log");
        let mut command = Command::new(required_env("RBD_CG_BIN"));
        command
            .args(["nbd", "serve", "--socket"])
            .arg(&socket)
            .args(args)
            .arg(group)
            .env_remove("RBD_CG_FAULT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().expect("starting rbd-cg nbd serve");
        (NbdServer { child: Some(child), socket, log }, START_TIMEOUT)
    }

    /// `nbd+unix:///EXPORT?socket=...`, for qemu-io, nbdinfo, libnbd.
    pub fn uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.socket.display())
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// SIGTERM, then waits for it to exit; returns its status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    /// SIGKILL (nothing is finished), then reaps it.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        self.wait();
    }

    /// Waits for it to exit (stopped by a signal or by itself).
    pub fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("a running server");
        let status = child.wait().expect("waiting for rbd-cg nbd serve");
        self.child = None;
        status
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a command, panicking with its output unless it succeeds; returns stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tests/helpers/<name>`.
pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers").join(name)
}
