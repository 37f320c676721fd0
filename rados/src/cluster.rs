//! The connection to a cluster: configuration the way Ceph tools read it, the shared
//! librados handle, and cluster-wide calls (pools, instance id, blocklist).
//!
//! One `rados_t` is shared by every [`Cluster`] clone, [`IoCtx`] and image through an
//! [`Arc`]: `rados_shutdown` runs when the last of them is dropped, never under one that
//! still uses the handle.

use std::path::PathBuf;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{check, cstring, path_cstring, read_c_string, RadosError, RadosResult};
use crate::ioctx::IoCtx;
use crate::sys;

/// Default user id, as librados' `rados_create(NULL)`.
const DEFAULT_ID: &str = "admin";
/// Default cluster name.
const DEFAULT_CLUSTER: &str = "ceph";

/// `rados_conf_parse_env` uses a static buffer ("not threadsafe", says
/// librados.h), so connects from several threads take turns on it.
static PARSE_ENV_LOCK: Mutex<()> = Mutex::new(());

/// How to reach the cluster; [`Default`] behaves like the `ceph` / `rbd` tools
/// run without options.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Config file; `None` = librados' search path (`$CEPH_CONF`,
    /// `/etc/ceph/$cluster.conf`, `~/.ceph/config`, `./$cluster.conf`). A
    /// missing default file is tolerated (settings may come from `CEPH_ARGS`
    /// or `extra`); a missing explicit file is an error.
    pub conf_path: Option<PathBuf>,
    /// Cluster name; default: `--cluster` in `CEPH_ARGS`, else `"ceph"`.
    pub cluster_name: Option<String>,
    /// User id without `client.` (a leading `client.` is tolerated); default:
    /// `--id` / `--user` / `--name` in `CEPH_ARGS`, else `admin` (librados'
    /// default).
    pub id: Option<String>,
    /// Keyring file (`keyring` option).
    pub keyring: Option<PathBuf>,
    /// Extra `rados_conf_set` pairs, applied last (after `CEPH_ARGS`).
    pub extra: Vec<(String, String)>,
}

/// Identity options of `CEPH_ARGS`. librados fixes the entity name and
/// cluster when the handle is created, so `rados_conf_parse_env` ignores them;
/// the Ceph CLI tools honor them, and so does [`Cluster::connect`].
#[derive(Debug, Default, PartialEq, Eq)]
struct EarlyArgs {
    /// Full entity name, e.g. `client.admin`.
    name: Option<String>,
    cluster: Option<String>,
}

/// Picks `--id X` / `-i X` / `--user X` / `--name T.X` / `-n T.X` /
/// `--cluster X` (also `--flag=X`) out of a `CEPH_ARGS` value; the last one
/// wins, as in `ceph_argparse`.
fn parse_early_args(args: &str) -> EarlyArgs {
    enum Kind {
        Id,
        Name,
        Cluster,
    }
    let mut out = EarlyArgs::default();
    let mut words = args.split_whitespace();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (word, None),
        };
        let kind = match flag {
            "--id" | "--user" | "-i" => Kind::Id,
            "--name" | "-n" => Kind::Name,
            "--cluster" => Kind::Cluster,
            _ => continue,
        };
        let Some(value) = inline.or_else(|| words.next()) else {
            break;
        };
        match kind {
            Kind::Id => out.name = Some(format!("client.{value}")),
            Kind::Name => out.name = Some(value.to_owned()),
            Kind::Cluster => out.cluster = Some(value.to_owned()),
        }
    }
    out
}

/// Owner of a `rados_t`; shut down when the last [`Cluster`], [`IoCtx`] or
/// image referring to it is dropped.
#[derive(Debug)]
pub(crate) struct ClusterHandle {
    pub(crate) raw: sys::rados_t,
}

// SAFETY: a librados cluster handle (`RadosClient`) is internally synchronized;
// librados documents handles as usable from any thread, and the handle has no
// thread affinity. The pointer is only freed in `Drop`, which has exclusive
// access.
unsafe impl Send for ClusterHandle {}
// SAFETY: see `Send`; every call made through `&ClusterHandle` is a
// thread-safe librados entry point (ioctx creation, pool lookups).
unsafe impl Sync for ClusterHandle {}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `rados_create2` and is shut down
        // exactly once, here; every IoCtx/Image holds an `Arc` of this handle,
        // so none is alive any more.
        unsafe { sys::rados_shutdown(self.raw) };
    }
}

impl ClusterHandle {
    fn conf_set(&self, key: &str, value: &str) -> RadosResult<()> {
        let what = || format!("rados_conf_set({key})");
        let k = cstring(key, what)?;
        let v = cstring(value, what)?;
        // SAFETY: `raw` is a valid, not yet connected handle; `k` and `v` are
        // NUL-terminated and outlive the call, which copies them.
        let ret = unsafe { sys::rados_conf_set(self.raw, k.as_ptr(), v.as_ptr()) };
        check(ret, what).map(drop)
    }
}

/// A connected cluster. Cheap to clone (shares one librados handle);
/// `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<ClusterHandle>,
}

impl Cluster {
    /// Creates a handle, reads the configuration the way Ceph tools do
    /// (config file, then `CEPH_ARGS`, then `keyring` and `extra`), and
    /// connects.
    pub fn connect(opts: &ConnectOptions) -> RadosResult<Cluster> {
        let early = std::env::var("CEPH_ARGS").map(|a| parse_early_args(&a)).unwrap_or_default();
        let cluster_name = opts.cluster_name.as_deref().or(early.cluster.as_deref()).unwrap_or(DEFAULT_CLUSTER);
        let name = match (&opts.id, early.name) {
            (Some(id), _) => format!("client.{}", id.strip_prefix("client.").unwrap_or(id)),
            (None, Some(name)) => name,
            (None, None) => format!("client.{DEFAULT_ID}"),
        };
        let c_cluster = cstring(cluster_name, || "rados_create2: cluster name".into())?;
        let c_name = cstring(&name, || "rados_create2: user name".into())?;
        log::debug!("connecting to cluster {cluster_name:?} as {name}");

        let mut raw: sys::rados_t = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; both strings are NUL-terminated
        // and outlive the call; flags must be 0.
        let ret = unsafe { sys::rados_create2(&mut raw, c_cluster.as_ptr(), c_name.as_ptr(), 0) };
        check(ret, || "rados_create2".into())?;
        // From here on, `handle`'s Drop shuts the handle down on every error path.
        let handle = ClusterHandle { raw };

        if let Some(path) = &opts.conf_path {
            let what = format!("rados_conf_read_file({})", path.display());
            let c_path = path_cstring(path, &what)?;
            // SAFETY: valid unconnected handle; `c_path` is NUL-terminated and
            // outlives the call.
            let ret = unsafe { sys::rados_conf_read_file(handle.raw, c_path.as_ptr()) };
            check(ret, || what)?;
        } else {
            // SAFETY: valid unconnected handle; NULL selects the default search
            // path (including $CEPH_CONF).
            let ret = unsafe { sys::rados_conf_read_file(handle.raw, ptr::null()) };
            if ret == -libc::ENOENT {
                log::debug!("no default ceph config file found; using CEPH_ARGS / options only");
            } else {
                check(ret, || "rados_conf_read_file(default search path)".into())?;
            }
        }

        {
            let _guard = PARSE_ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            // SAFETY: valid unconnected handle; NULL means "$CEPH_ARGS". The
            // lock serializes librados' static parse buffer.
            let ret = unsafe { sys::rados_conf_parse_env(handle.raw, ptr::null()) };
            check(ret, || "rados_conf_parse_env(CEPH_ARGS)".into())?;
        }

        if let Some(keyring) = &opts.keyring {
            let value = keyring.to_str().ok_or_else(|| {
                RadosError::new(
                    format!("rados_conf_set(keyring): path {} is not UTF-8", keyring.display()),
                    libc::EINVAL,
                )
            })?;
            handle.conf_set("keyring", value)?;
        }
        for (k, v) in &opts.extra {
            handle.conf_set(k, v)?;
        }

        // SAFETY: valid, configured handle; connect is called once.
        let ret = unsafe { sys::rados_connect(handle.raw) };
        check(ret, || "rados_connect".into())?;
        log::debug!("connected to cluster {cluster_name:?}");
        Ok(Cluster { inner: Arc::new(handle) })
    }

    /// Opens an I/O context on the pool named `pool` (`ENOENT` if absent).
    pub fn ioctx(&self, pool: &str) -> RadosResult<IoCtx> {
        let what = || format!("rados_ioctx_create({pool})");
        let c_pool = cstring(pool, what)?;
        let mut raw: sys::rados_ioctx_t = ptr::null_mut();
        // SAFETY: connected handle; `c_pool` NUL-terminated and outlives the
        // call; `raw` is a valid out-pointer.
        let ret = unsafe { sys::rados_ioctx_create(self.inner.raw, c_pool.as_ptr(), &mut raw) };
        check(ret, what)?;
        Ok(IoCtx::from_raw(raw, Arc::clone(&self.inner)))
    }

    /// Opens an I/O context on the pool with id `pool_id` (`ENOENT` if absent).
    pub fn ioctx_by_id(&self, pool_id: i64) -> RadosResult<IoCtx> {
        let mut raw: sys::rados_ioctx_t = ptr::null_mut();
        // SAFETY: connected handle; `raw` is a valid out-pointer.
        let ret = unsafe { sys::rados_ioctx_create2(self.inner.raw, pool_id, &mut raw) };
        check(ret, || format!("rados_ioctx_create2({pool_id})"))?;
        Ok(IoCtx::from_raw(raw, Arc::clone(&self.inner)))
    }

    /// An I/O context on pool `pool_id`, RBD namespace `namespace` (where an image lives).
    pub fn ioctx_in(&self, pool_id: i64, namespace: &str) -> RadosResult<IoCtx> {
        let mut ioctx = self.ioctx_by_id(pool_id)?;
        ioctx.set_namespace(namespace)?;
        Ok(ioctx)
    }

    /// Id of the pool named `pool` (`ENOENT` if absent).
    pub fn pool_lookup(&self, pool: &str) -> RadosResult<i64> {
        let what = || format!("rados_pool_lookup({pool})");
        let c_pool = cstring(pool, what)?;
        // SAFETY: connected handle; `c_pool` NUL-terminated and outlives the call.
        let ret = unsafe { sys::rados_pool_lookup(self.inner.raw, c_pool.as_ptr()) };
        if ret < 0 {
            let errno = i32::try_from(ret).unwrap_or(-libc::EIO);
            return Err(RadosError::new(what(), errno));
        }
        Ok(ret)
    }

    /// Name of the pool with id `pool_id` (`ENOENT` if absent).
    pub fn pool_name(&self, pool_id: i64) -> RadosResult<String> {
        let raw = self.inner.raw;
        read_c_string(&format!("rados_pool_reverse_lookup({pool_id})"), |buf, len| {
            // SAFETY: connected handle; `buf` is writable for `len` bytes
            // (provided by `read_c_string`); librados writes at most `len`
            // bytes including the NUL, or returns -ERANGE.
            unsafe { sys::rados_pool_reverse_lookup(raw, pool_id, buf, len) }
        })
    }

    /// The cluster's fsid (its unique id), as `ceph fsid` prints it.
    pub fn fsid(&self) -> RadosResult<String> {
        let raw = self.inner.raw;
        read_c_string("rados_cluster_fsid", |buf, len| {
            // SAFETY: connected handle; `buf` is writable for `len` bytes (provided by
            // `read_c_string`); librados writes the NUL-terminated fsid or returns -ERANGE.
            unsafe { sys::rados_cluster_fsid(raw, buf, len) }
        })
    }

    /// The cluster's `require_min_compat_client`, as a Ceph release number (luminous 12,
    /// mimic 13, ...): what decides whether clone v2 may be used.
    pub fn require_min_compat_client(&self) -> RadosResult<i8> {
        let (mut min_compat, mut require_min_compat) = (0i8, 0i8);
        // SAFETY: connected handle; both out-pointers are live locals.
        let ret =
            unsafe { sys::rados_get_min_compatible_client(self.inner.raw, &mut min_compat, &mut require_min_compat) };
        check(ret, || "rados_get_min_compatible_client".to_owned())?;
        Ok(require_min_compat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_args_from_ceph_args() {
        let e = parse_early_args("--keyring /k --id foo --mon_host 1.2.3.4");
        assert_eq!(e.name.as_deref(), Some("client.foo"));
        assert_eq!(e.cluster, None);
        let e = parse_early_args("--name=client.bar --cluster=c2 -m x");
        assert_eq!(e.name.as_deref(), Some("client.bar"));
        assert_eq!(e.cluster.as_deref(), Some("c2"));
        assert_eq!(parse_early_args("-i a --user b").name.as_deref(), Some("client.b"));
        assert_eq!(parse_early_args("-n osd.0").name.as_deref(), Some("osd.0"));
        assert_eq!(parse_early_args("--debug_ms 1 --id"), EarlyArgs::default());
        assert_eq!(parse_early_args(""), EarlyArgs::default());
    }

    #[test]
    fn connect_options_default_is_empty() {
        let o = ConnectOptions::default();
        assert!(o.conf_path.is_none() && o.cluster_name.is_none() && o.id.is_none());
        assert!(o.keyring.is_none() && o.extra.is_empty());
    }
}
