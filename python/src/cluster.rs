//! `rbd_cg.Cluster`: one librados connection, shared by every thread.

use crate::errors::{invalid, Failure};
use crate::groups::Groups;
use crate::unblocked;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use rbd_cg_client::Error;
use rbd_cg_rados::{Cluster as Connection, ConnectOptions};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// The `conf_get` keys `Cluster.from_rados` copies from a `rados.Rados` handle (besides
/// `name`, `cluster` and the `conffile`/`rados_id` attributes).
const COPIED_OPTIONS: [&str; 7] =
    ["mon_host", "keyring", "key", "keyfile", "client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"];

/// A connection to a Ceph cluster (one librados handle).
///
/// Settings are read the way Ceph tools read them: the config file (conffile, or
/// $CEPH_CONF, /etc/ceph/$cluster.conf ... when None), then $CEPH_ARGS, then keyring and
/// conf. Connects in the constructor. Thread-safe; a context manager (close() on exit).
#[pyclass(module = "rbd_cg", frozen)]
pub(crate) struct Cluster {
    /// `None` once closed. The connection itself is `Send + Sync` and cheap to clone
    /// (an `Arc` of the librados handle); the lock only guards `close`.
    connection: Mutex<Option<Connection>>,
}

impl Cluster {
    fn connect(py: Python<'_>, options: ConnectOptions) -> PyResult<Cluster> {
        let connection = unblocked(py, move || {
            Connection::connect(&options)
                .map_err(|e| Failure::Client(Error::from(e).context("connecting to the cluster")))
        })?;
        Ok(Cluster { connection: Mutex::new(Some(connection)) })
    }

    fn connection(&self) -> Result<Connection, Failure> {
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        connection.clone().ok_or_else(|| Failure::Client(Error::new("the Cluster is closed", libc::ENOTCONN)))
    }
}

/// Reads `rados.conf_get(key)`; `None` for an empty value.
fn conf_get(rados: &Bound<'_, PyAny>, key: &str) -> PyResult<Option<String>> {
    let value: Option<String> = rados.call_method1("conf_get", (key,))?.extract()?;
    Ok(value.filter(|v| !v.is_empty()))
}

/// Reads attribute `name` of `rados` as an optional non-empty string (absent, `None`,
/// empty or not a string: `None`).
fn str_attr(rados: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    if !rados.hasattr(name)? {
        return Ok(None);
    }
    let value = rados.getattr(name)?;
    Ok(value.extract::<String>().ok().filter(|v| !v.is_empty()))
}

#[pymethods]
impl Cluster {
    /// Connects.
    ///
    /// conffile: Ceph config file; None searches the default places. rados_id: user id
    /// without "client." (default: $CEPH_ARGS's, else admin). cluster_name: default
    /// "ceph". keyring: keyring file. conf: more config options, set last.
    #[new]
    #[pyo3(signature = (conffile=None, rados_id=None, cluster_name=None, keyring=None, conf=None))]
    fn new(
        py: Python<'_>,
        conffile: Option<PathBuf>,
        rados_id: Option<String>,
        cluster_name: Option<String>,
        keyring: Option<PathBuf>,
        conf: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Cluster> {
        let mut extra = Vec::new();
        if let Some(conf) = conf {
            for (key, value) in conf.iter() {
                extra.push((key.extract::<String>()?, value.extract::<String>()?));
            }
        }
        Cluster::connect(py, ConnectOptions { conf_path: conffile, cluster_name, id: rados_id, keyring, extra })
    }

    /// Connects with the configuration of an existing rados.Rados handle: its conffile
    /// and rados_id attributes and its conf_get() values of mon_host, keyring, key,
    /// keyfile, name, cluster, client_mount_timeout, rados_mon_op_timeout and
    /// rados_osd_op_timeout (empty values skipped). The handle stays the caller's.
    #[staticmethod]
    fn from_rados(py: Python<'_>, rados: &Bound<'_, PyAny>) -> PyResult<Cluster> {
        let conf_path = str_attr(rados, "conffile")?.map(PathBuf::from);
        let id = match (str_attr(rados, "rados_id")?, conf_get(rados, "name")?) {
            (Some(id), _) => Some(id),
            (None, Some(name)) if name.starts_with("client.") => Some(name),
            (None, Some(name)) => {
                let error = invalid(format!("Cluster.from_rados: entity {name:?} is not a client"));
                return Err(Failure::Client(error).into_pyerr(py));
            }
            (None, None) => None,
        };
        let cluster_name = conf_get(rados, "cluster")?;
        let mut extra = Vec::new();
        for key in COPIED_OPTIONS {
            if let Some(value) = conf_get(rados, key)? {
                extra.push((key.to_owned(), value));
            }
        }
        Cluster::connect(py, ConnectOptions { conf_path, cluster_name, id, keyring: None, extra })
    }

    /// The groups of pool (and RBD namespace, "" for the default one). Checks that the
    /// OSDs run a compatible rbd_cg class.
    #[pyo3(signature = (pool, namespace=""))]
    fn groups(&self, py: Python<'_>, pool: &str, namespace: &str) -> PyResult<Groups> {
        let connection = self.connection().map_err(|f| f.into_pyerr(py))?;
        Groups::open(py, connection, pool, namespace)
    }

    /// Drops this connection; Groups made from it keep working until closed or
    /// collected. Calling it again does nothing.
    fn close(&self, py: Python<'_>) {
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner).take();
        // The last reference shuts librados down, which waits for its threads: not with the GIL.
        py.detach(move || drop(connection));
    }

    /// Returns the cluster itself.
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Calls close(); exceptions propagate.
    #[pyo3(signature = (exc_type, exc_value, traceback))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyType>>,
        exc_value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        let _ = (exc_type, exc_value, traceback);
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let open = self.connection.lock().unwrap_or_else(PoisonError::into_inner).is_some();
        format!("<rbd_cg.Cluster {}>", if open { "connected" } else { "closed" })
    }
}
