//! `rbd_cg.Groups`: the groups of one pool and namespace.
//!
//! The client's `Groups` is `Send` but not `Sync` (its librados I/O context must not be
//! used by two threads at once), while a Python object can be called from any number of
//! threads at once (Cinder offloads calls to `eventlet.tpool`'s native threads). So this
//! object keeps a small pool of client `Groups`: a call takes one (opening a new one
//! when all are busy), runs without the GIL, and puts it back. Calls from several
//! threads thus run concurrently instead of queueing behind one lock, and a single-thread
//! caller reuses one I/O context (opening one costs a class check on the OSD).

use crate::convert;
use crate::errors::{invalid, out_of_range, Failure};
use crate::unblocked;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use rbd_cg_client::clone::{CloneNaming, CloneOptions};
use rbd_cg_client::groups::Groups as ClientGroups;
use rbd_cg_client::image_groups::groups_of_image;
use rbd_cg_client::journal::JournalOptions;
use rbd_cg_client::members::image_by_id;
use rbd_cg_client::snapshots::{FenceMode, SnapCreateOptions};
use rbd_cg_client::spec::PoolSpec;
use rbd_cg_client::{Error, Result};
use rbd_cg_contract::names::{MAX_GROUP_MEMBERS, MAX_GROUP_SNAPSHOTS};
use rbd_cg_rados::Cluster as Connection;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Idle client `Groups` kept for reuse; more may be open while busy.
const MAX_IDLE: usize = 4;

/// The open state: the connection and the idle client `Groups`.
struct Pool {
    connection: Connection,
    idle: Vec<ClientGroups>,
}

/// The consistency groups of one pool and RBD namespace.
///
/// Image specs are "[POOL[/NAMESPACE]/]NAME"; a bare NAME is an image in this object's
/// pool and namespace. Every multi-object change is crash-safe: an interrupted call is
/// finished by calling it again or by repair(). Thread-safe (calls from several threads
/// run concurrently); a context manager (close() on exit).
#[pyclass(module = "rbd_cg", frozen)]
pub(crate) struct Groups {
    location: PoolSpec,
    /// `None` once closed.
    pool: Mutex<Option<Pool>>,
}

/// A client `Groups` for a long-lived process: snapshot ids are allocated ahead across
/// snapshots (refill-ahead), so a group snapshot almost never waits for the monitor.
fn open_client(connection: &Connection, location: &PoolSpec) -> Result<ClientGroups> {
    let mut groups = ClientGroups::open(connection, location)?;
    groups.set_refill_ahead(true);
    Ok(groups)
}

impl Groups {
    /// Opens `pool`/`namespace` (checking the class) with `connection`.
    pub(crate) fn open(py: Python<'_>, connection: Connection, pool: &str, namespace: &str) -> PyResult<Groups> {
        if pool.is_empty() || pool.contains('/') || namespace.contains('/') {
            let error = invalid(format!("bad pool {pool:?} or namespace {namespace:?}"));
            return Err(Failure::Client(error).into_pyerr(py));
        }
        let location = PoolSpec { pool: pool.to_owned(), namespace: namespace.to_owned() };
        let first = {
            let (connection, location) = (connection.clone(), location.clone());
            unblocked(py, move || Ok(open_client(&connection, &location)?))?
        };
        Ok(Groups { location, pool: Mutex::new(Some(Pool { connection, idle: vec![first] })) })
    }

    /// Runs `op` on a client `Groups` without the GIL; a panic becomes `IOError`.
    fn call<T: Send>(&self, py: Python<'_>, op: impl FnOnce(&ClientGroups) -> Result<T> + Send) -> PyResult<T> {
        unblocked(py, || {
            let (idle, connection) = {
                let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
                let pool = pool.as_mut().ok_or_else(|| Error::new("the Groups object is closed", libc::ENOTCONN))?;
                (pool.idle.pop(), pool.connection.clone())
            };
            let groups = match idle {
                Some(groups) => groups,
                None => open_client(&connection, &self.location)?,
            };
            // A panic in `op` unwinds past here: that `groups` is dropped, not reused.
            let result = op(&groups);
            if let Some(pool) = self.pool.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                if pool.idle.len() < MAX_IDLE {
                    pool.idle.push(groups);
                }
            }
            Ok(result?)
        })
    }
}

#[pymethods]
impl Groups {
    /// The pool name.
    #[getter]
    fn pool(&self) -> &str {
        &self.location.pool
    }

    /// The RBD namespace, "" for the default one.
    #[getter]
    fn namespace(&self) -> &str {
        &self.location.namespace
    }

    /// Creates group name and returns its id. ObjectExists if it exists.
    fn create(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        self.call(py, |g| g.create(name))
    }

    /// Shows group name (also one an interrupted operation left behind).
    fn info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let info = self.call(py, |g| g.info(name))?;
        convert::group_info(py, &info)
    }

    /// The names of the groups, sorted.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.call(py, |g| g.list())
    }

    /// Renames group old to new (same pool and namespace).
    fn rename(&self, py: Python<'_>, old: &str, new: &str) -> PyResult<()> {
        self.call(py, |g| g.rename(old, new))
    }

    /// Removes group name. Without force a group with members or snapshots is refused
    /// with ImageBusy; with force its snapshots and members are removed first (the
    /// member images themselves are never deleted).
    #[pyo3(signature = (name, force=false))]
    fn remove(&self, py: Python<'_>, name: &str, force: bool) -> PyResult<()> {
        self.call(py, |g| g.remove_with(name, force))
    }

    /// Finishes (or undoes) whatever interrupted operations left on group name; with
    /// check_only, only reports what it would do.
    #[pyo3(signature = (name, check_only=false))]
    fn repair<'py>(&self, py: Python<'py>, name: &str, check_only: bool) -> PyResult<Bound<'py, PyDict>> {
        let report = self.call(py, |g| g.repair(name, check_only))?;
        convert::repair_report(py, &report)
    }

    /// Adds image (a spec; format-2 images only) to group. max_members: refuse when the
    /// group already has this many members (default: the limit).
    #[pyo3(signature = (group, image, *, max_members=None))]
    fn add_image(&self, py: Python<'_>, group: &str, image: &str, max_members: Option<i64>) -> PyResult<()> {
        self.call(py, |g| {
            let spec = convert::image_spec(image, &self.location)?;
            let max = convert::limit(max_members, "max_members", MAX_GROUP_MEMBERS)?;
            g.add_image(group, &spec, max)
        })
    }

    /// Removes an image from group: by spec image, or by image_id (for an image deleted
    /// behind the group's back) in image_pool ("POOL[/NAMESPACE]", default this object's).
    #[pyo3(signature = (group, image=None, *, image_id=None, image_pool=None))]
    fn remove_image(
        &self,
        py: Python<'_>,
        group: &str,
        image: Option<&str>,
        image_id: Option<&str>,
        image_pool: Option<&str>,
    ) -> PyResult<()> {
        self.call(py, |g| {
            let image = match (image, image_id) {
                (Some(spec), None) if image_pool.is_none() => {
                    g.resolve_image(&convert::image_spec(spec, &self.location)?)?
                }
                (Some(_), None) => return Err(invalid("image_pool goes with image_id, not with an image spec")),
                (None, Some(id)) => image_by_id(g, &convert::pool_spec(image_pool, &self.location)?, id)?,
                _ => return Err(invalid("remove_image needs exactly one of image and image_id")),
            };
            g.remove_image(group, &image)
        })
    }

    /// The groups image (a spec) belongs to, in any pool: dicts with pool, pool_id,
    /// namespace, group_id and name (None when the group's directory no longer knows it).
    fn groups_of_image<'py>(&self, py: Python<'py>, image: &str) -> PyResult<Bound<'py, PyList>> {
        let groups = self.call(py, |g| {
            let spec = convert::image_spec(image, &self.location)?;
            groups_of_image(g.cluster(), &spec)
        })?;
        convert::image_groups(py, &groups)
    }

    /// The name of the group with id group_id in this pool and namespace; None when there
    /// is none.
    fn group_name(&self, py: Python<'_>, group_id: &str) -> PyResult<Option<String>> {
        self.call(py, |g| g.group_name(group_id))
    }

    /// The members of group.
    fn list_images<'py>(&self, py: Python<'py>, group: &str) -> PyResult<Bound<'py, PyList>> {
        let members = self.call(py, |g| g.list_images(group))?;
        convert::members(py, &members)
    }

    /// Snapshots every member of group at one point in time (crash-consistent by
    /// default: every member's writers are fenced through the exclusive-lock protocol
    /// until all member snapshots are cut) and returns the snapshot, as snap_info.
    ///
    /// allow_unfenced: snapshot members without exclusive-lock unfenced (else refused).
    /// fence=False: no fencing at all (NOT crash-consistent; warns). The two exclude each
    /// other, as --allow-unfenced and --no-fence of rbd-cg. fence_timeout: seconds, in
    /// (0, 600]. watch_timeout: seconds, 6 to 3600. max_snapshots: refuse when the group
    /// already has this many snapshots (default: the limit).
    #[pyo3(signature = (
        group, snap, *, skip_quiesce=false, ignore_quiesce_error=false, allow_unfenced=false, fence=true,
        fence_timeout=10.0, watch_timeout=10, max_snapshots=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn snap_create<'py>(
        &self,
        py: Python<'py>,
        group: &str,
        snap: &str,
        skip_quiesce: bool,
        ignore_quiesce_error: bool,
        allow_unfenced: bool,
        fence: bool,
        fence_timeout: f64,
        watch_timeout: i64,
        max_snapshots: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let fence = match (allow_unfenced, fence) {
            (true, false) => {
                let error = invalid("allow_unfenced=True and fence=False exclude each other");
                return Err(Failure::Client(error).into_pyerr(py));
            }
            (false, false) => {
                let warning = py.get_type::<pyo3::exceptions::PyUserWarning>();
                PyErr::warn(
                    py,
                    &warning,
                    c"rbd_cg: snap_create(fence=False): this group snapshot is NOT crash-consistent",
                    1,
                )?;
                FenceMode::NoFence
            }
            (true, true) => FenceMode::AllowUnfenced,
            (false, true) => FenceMode::Fenced,
        };
        let snapshot = self.call(py, |g| {
            if !(fence_timeout > 0.0 && fence_timeout <= 600.0) {
                return Err(invalid(format!(
                    "fence_timeout must be more than 0 and at most 600 s, not {fence_timeout}"
                )));
            }
            let watch_timeout_secs = u32::try_from(watch_timeout)
                .ok()
                .filter(|s| (6..=3600).contains(s))
                .ok_or_else(|| invalid(format!("watch_timeout must be 6 to 3600 s, not {watch_timeout}")))?;
            let options = SnapCreateOptions {
                max_snapshots: convert::limit(max_snapshots, "max_snapshots", MAX_GROUP_SNAPSHOTS)?,
                fence,
                skip_quiesce,
                ignore_quiesce_error,
                fence_timeout: Duration::from_secs_f64(fence_timeout),
                watch_timeout_secs,
                ..SnapCreateOptions::default()
            };
            g.snap_create(group, snap, &options)
        })?;
        convert::snapshot(py, &snapshot)
    }

    /// Gives group one journal for all its members (every write through `rbd-cg nbd
    /// serve` goes into it, in one order), and fences the members against stock librbd
    /// writers. object_size: bytes per journal segment (1 MiB to 128 MiB, default 16 MiB);
    /// max_size: bound of journal space (at least two segments, default 1 GiB). ImageBusy
    /// while another client has a member open; a rerun finishes an interrupted enable.
    #[pyo3(signature = (group, *, object_size=None, max_size=None))]
    fn journal_enable(
        &self,
        py: Python<'_>,
        group: &str,
        object_size: Option<u64>,
        max_size: Option<u64>,
    ) -> PyResult<()> {
        self.call(py, |g| {
            let defaults = JournalOptions::default();
            let options = JournalOptions {
                segment_size: object_size.unwrap_or(defaults.segment_size),
                max_bytes: max_size.unwrap_or(defaults.max_bytes),
            };
            g.journal_enable(group, &options)
        })
    }

    /// Applies everything in group's journal to its members, gives them back to stock
    /// writers and drops the journal (also undoes an interrupted enable). ImageBusy while
    /// a server writes through the journal.
    fn journal_disable(&self, py: Python<'_>, group: &str) -> PyResult<()> {
        self.call(py, |g| g.journal_disable(group))
    }

    /// The journal of group: enabled, state, head, applied, bytes, max_bytes, segment_size,
    /// segments (first, active), writer (None, or epoch, client, addr, description, since),
    /// consumers (name, position, state, updated) and members (tag, pool_id, namespace, id,
    /// image). enabled is False (and the rest empty) for a group without one.
    fn journal_status<'py>(&self, py: Python<'py>, group: &str) -> PyResult<Bound<'py, PyDict>> {
        let info = self.call(py, |g| g.journal_status(group))?;
        convert::journal(py, &info)
    }

    /// Mirrors group to a second cluster (run on the primary): a mirror daemon at the
    /// other site (`rbd-cg mirror daemon`) keeps a crash-consistent copy of it. mode
    /// "journal" replays the group journal in order (journal_enable first, else
    /// InvalidArgument); "snapshot" takes a group snapshot every interval seconds (1 to
    /// 604800; ArgumentOutOfRange otherwise). Enabling again with the same mode changes
    /// nothing; with another mode, or on a non-primary copy, ObjectExists.
    #[pyo3(signature = (group, mode="journal", interval=300))]
    fn mirror_enable(&self, py: Python<'_>, group: &str, mode: &str, interval: i64) -> PyResult<()> {
        self.call(py, |g| {
            let mode = convert::mirror_mode(mode)?;
            let interval = u64::try_from(interval)
                .map_err(|_| out_of_range(format!("interval must be a positive number of seconds, not {interval}")))?;
            g.mirror_enable(group, mode, interval)
        })
    }

    /// Stops mirroring group (on either side). On a primary the mirror consumers of its
    /// journal go too; a secondary's copy stays read-only until disabled there as well.
    fn mirror_disable(&self, py: Python<'_>, group: &str) -> PyResult<()> {
        self.call(py, |g| g.mirror_disable(group))
    }

    /// The mirroring state of group (either side): group, enabled, mode, role, state,
    /// description, primary_position, mirror_position, entries_behind, seconds_behind,
    /// last_snapshot, last_snapshot_time, demoted_at, resync_requested, members (image,
    /// state, progress), peers (consumer, state, position, entries_behind), daemon,
    /// updated. enabled is False (state "disabled") for a group that is not mirrored.
    fn mirror_status<'py>(&self, py: Python<'py>, group: &str) -> PyResult<Bound<'py, PyDict>> {
        let status = self.call(py, |g| g.mirror_status(group))?;
        convert::mirror_status(py, &status)
    }

    /// Makes this side of group the primary. Without force the old primary must be
    /// demoted and everything it wrote applied here (ImageBusy otherwise); with force only
    /// a finished first sync is needed (the primary is lost). Waits up to 30 s for the
    /// mirror daemon to let go of the members, then fences it. A rerun finishes an
    /// interrupted promotion.
    #[pyo3(signature = (group, force=false))]
    fn mirror_promote(&self, py: Python<'_>, group: &str, force: bool) -> PyResult<()> {
        self.call(py, |g| g.mirror_promote(group, force))
    }

    /// Makes the primary group read-only (snapshots, membership changes and journal
    /// writers are then refused with ReadOnlyImage), so that the other side can be
    /// promoted. ImageBusy while `rbd-cg nbd serve` writes it.
    fn mirror_demote(&self, py: Python<'_>, group: &str) -> PyResult<()> {
        self.call(py, |g| g.mirror_demote(group))
    }

    /// Asks the mirror daemon to copy the whole group again from the primary (on a
    /// secondary or a demoted former primary; InvalidArgument on a primary).
    fn mirror_resync(&self, py: Python<'_>, group: &str) -> PyResult<()> {
        self.call(py, |g| g.mirror_resync(group))
    }

    /// The snapshots of group in creation order, each member snapshot checked.
    fn snap_list<'py>(&self, py: Python<'py>, group: &str) -> PyResult<Bound<'py, PyList>> {
        let snapshots = self.call(py, |g| g.snap_list(group))?;
        convert::snapshots(py, &snapshots)
    }

    /// Shows snapshot snap of group.
    fn snap_info<'py>(&self, py: Python<'py>, group: &str, snap: &str) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = self.call(py, |g| g.snap_info(group, snap))?;
        convert::snapshot(py, &snapshot)
    }

    /// Renames snapshot old of group to new.
    fn snap_rename(&self, py: Python<'_>, group: &str, old: &str, new: &str) -> PyResult<()> {
        self.call(py, |g| g.snap_rename(group, old, new))
    }

    /// Removes snapshot snap of group and its member image snapshots.
    fn snap_remove(&self, py: Python<'_>, group: &str, snap: &str) -> PyResult<()> {
        self.call(py, |g| g.snap_remove(group, snap))
    }

    /// Rolls every member of group back to snapshot snap. Refused (ImageBusy) when the
    /// membership changed since, and (ObjectNotFound) when a member snapshot is gone.
    fn snap_rollback(&self, py: Python<'_>, group: &str, snap: &str) -> PyResult<()> {
        self.call(py, |g| g.snap_rollback(group, snap, &mut |_, _, _, _, _| {}))
    }

    /// Moves the member snapshot of image (a spec) in group@snap into the user namespace,
    /// where librbd's by-name calls (rbd.Image(..., snapshot=...), RBD.clone,
    /// rollback_to_snap) find it, and returns its name there; hide_member_snapshot puts it
    /// back. It stays protected meanwhile; repair() hides one left exposed by a crash.
    fn expose_member_snapshot(&self, py: Python<'_>, group: &str, snap: &str, image: &str) -> PyResult<String> {
        self.call(py, |g| {
            let image = g.resolve_image(&convert::image_spec(image, &self.location)?)?;
            g.expose_member_snapshot(group, snap, &image)
        })
    }

    /// Moves the member snapshot of image in group@snap back into the group namespace
    /// (nothing to do when it is not exposed).
    fn hide_member_snapshot(&self, py: Python<'_>, group: &str, snap: &str, image: &str) -> PyResult<()> {
        self.call(py, |g| {
            let image = g.resolve_image(&convert::image_spec(image, &self.location)?)?;
            g.hide_member_snapshot(group, snap, &image)
        })
    }

    /// Creates group new_group (here) whose members are RBD clones of the member
    /// snapshots of group@snap, named by image_names (source image spec -> new name) or
    /// image_name_format ("{image}", "{group}", "{snap}", "{source_group}"; default
    /// "{group}-{image}"); returns the new members.
    #[pyo3(signature = (group, snap, new_group, *, image_names=None, image_name_format=None, clone_format="auto"))]
    #[allow(clippy::too_many_arguments)]
    fn clone<'py>(
        &self,
        py: Python<'py>,
        group: &str,
        snap: &str,
        new_group: &str,
        image_names: Option<Bound<'py, PyDict>>,
        image_name_format: Option<String>,
        clone_format: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        // In the dict's order (the client reports the clones in member order anyway).
        let image_names = match image_names {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|(source, name)| Ok((source.extract::<String>()?, name.extract::<String>()?)))
                    .collect::<PyResult<Vec<_>>>()?,
            ),
        };
        let images = self.call(py, |g| {
            let naming = match (image_names, image_name_format) {
                (Some(_), Some(_)) => return Err(invalid("give image_names or image_name_format, not both")),
                (Some(names), None) => CloneNaming::Explicit(
                    names
                        .iter()
                        .map(|(source, name)| Ok((convert::image_spec(source, &self.location)?, name.clone())))
                        .collect::<Result<_>>()?,
                ),
                (None, Some(format)) => CloneNaming::Format(format),
                (None, None) => CloneNaming::default(),
            };
            let options = CloneOptions { naming, format: convert::clone_format(clone_format)? };
            g.clone_group(group, snap, new_group, &options)
        })?;
        convert::cloned(py, &images)
    }

    /// Drops this object's I/O contexts; later calls raise Error (ENOTCONN).
    fn close(&self, py: Python<'_>) {
        let pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner).take();
        py.detach(move || drop(pool));
    }

    /// Returns the object itself.
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
        format!("<rbd_cg.Groups pool={:?} namespace={:?}>", self.location.pool, self.location.namespace)
    }
}
