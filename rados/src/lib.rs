//! Talking to Ceph: everything the control plane, the data path and the mirror daemon
//! need from a cluster, and nothing about groups.
//!
//! - `sys` (private) fences the bindgen bindings of librados and librbd; the safe layer
//!   over them is [`cluster`] (connect, pools), [`ioctx`] (object I/O), [`op`] (compound
//!   operations), [`watch`] (watch/notify, advisory locks, self-managed snapshot ids) and
//!   [`image`] (librbd images). Every `unsafe` block of the client side lives in those
//!   modules, each with a `// SAFETY:` comment.
//! - [`cls`] makes object-class calls typed: a descriptor carries class, method, access
//!   and message types. [`ceph`] declares stock Ceph's descriptors (`cls_rbd`, `cls_lock`),
//!   object names and librbd's notify messages; [`rbd_cg`] checks our own class (its
//!   descriptors come from `rbd_cg_contract`).
//! - [`admin`] has what an operator's view needs: monitor commands, and the first object of
//!   a placement group (to reach the OSD that leads it).
//! - [`aio`] runs librados and librbd operations asynchronously, as futures any executor
//!   can poll: what the data path keeps in flight by the hundred.
//! - [`exclusive_lock`] is librbd's exclusive-lock protocol spoken from outside librbd:
//!   becoming the owner of an image's lock so that its writers wait (or fail), and cutting
//!   a snapshot under it. [`snap_record`] reads and relabels an image's snapshots by id.
//! - [`ctime`] prints a time the way Ceph's tools do (libc's `ctime`, local time).
//! - [`direct`] writes an RBD image at the RADOS level as librbd would (object names,
//!   snapshot context, object-map updates), for an owner of its lock that librbd itself
//!   refuses to let write (a `non-primary` journaled member).
//!
//! Errors are [`RadosError`]: what failed and the errno, like every Ceph tool reports.
//!
//! ```no_run
//! use rbd_cg_rados::{ceph::cls_rbd, ceph::objects, Cluster, ConnectOptions};
//! let cluster = Cluster::connect(&ConnectOptions::default())?;
//! let ioctx = cluster.ioctx("rbd")?;
//! let name = ioctx.call(objects::RBD_DIRECTORY, &cls_rbd::DIR_GET_NAME, &"10ab".to_owned())?;
//! # Ok::<(), rbd_cg_rados::RadosError>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod aio;
pub mod ceph;
pub mod cls;
pub mod cluster;
pub mod direct;
pub mod error;
pub mod exclusive_lock;
pub mod image;
pub mod ioctx;
pub mod op;
pub mod rbd_cg;
pub mod snap_record;
mod sys;
pub mod watch;

pub use cluster::{Cluster, ConnectOptions};
pub use error::{RadosError, RadosResult};
pub use ioctx::IoCtx;

/// Ends the process at once with exit status `code`, as a crash would (after flushing
/// stdout and stderr): no `atexit` handler and no static destructor runs. `std::process::exit`
/// runs the C++ static destructors of librados/librbd while their own threads (messenger,
/// timers) still run on a connected cluster, which now and then aborts the process instead
/// (`terminate called after throwing an instance of 'std::out_of_range' what(): map::at`,
/// seen in the fault-injection tests).
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes an integer and does not return; skipping destructors and
    // `atexit` handlers is the point (the kernel releases everything the process holds).
    unsafe { libc::_exit(code) }
}

/// A time (seconds since the Unix epoch) as libc's `ctime` prints it in local time, without
/// its newline: `Mon Dec  7 14:08:12 2026`, what `rbd snap ls` and `rbd info` show. libc
/// is the one place the local time zone rules live (`TZ`, `/etc/localtime`).
pub fn ctime(secs: i64) -> String {
    let t: libc::time_t = secs;
    // SAFETY: an all-zero `tm` is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; localtime_r is the thread-safe variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return secs.to_string();
    }
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is writable for its length, the format is NUL-terminated, `tm` was
    // filled above; strftime writes at most `buf.len()` bytes and returns how many.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), c"%a %b %e %H:%M:%S %Y".as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
pub use watch::{LockInfo, Locker, NotifyOutcome, PendingSnapIds, Watch, WatchHandler};
