//! `rbd_cg.RBD` and `rbd_cg.Group`: python3-rbd's group API (`rbd.RBD().group_*`,
//! `rbd.Group`) over this binding, so that a program written for stock RBD groups switches
//! by changing its import (`from rbd_cg import RBD, Group`).
//!
//! Same names, signatures, return values and dict keys as python3-rbd (Pacific), and the
//! same exceptions: when python3-rbd is importable its own classes are raised (so
//! `except rbd.ObjectNotFound` keeps working), chosen the way it chooses them (the
//! `Object*` family for `group_create` and `Group`'s methods, the `Image*` family for
//! `group_rename`); without it, this module's classes of the same errno. Stock's
//! semantics where they differ from `Groups`'s: removing a missing group, adding a member
//! twice and removing a non-member succeed; listing a missing group is empty; removing a
//! group removes its snapshots and members first.
//!
//! Stock's calls take a `rados.Ioctx`; the connection behind it is reached through
//! `gc.get_referents` (python3-rados keeps its `Rados` in a private field the garbage
//! collector sees), and a `Cluster.from_rados` connection is opened once per `Rados`, pool
//! and namespace, then reused. Two deliberate differences, both stricter: group and
//! snapshot names follow this project's rules (stock's library accepts names its own CLI
//! cannot address, like `a/b`), and an image may belong to several groups (stock refuses a
//! second group with `ObjectExists`).
//!
//! Written in Python (run once at import, like the exception classes in `errors`): every
//! call is one or two calls of `Groups`, which hold the real logic.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The compatibility layer's source, run with `Cluster` and the exception classes in scope.
const SOURCE: &std::ffi::CStr = cr#"
import errno as _errno
import gc as _gc

try:
    import rbd as _stock
except ImportError:  # python3-rbd is not installed: this module's classes are raised
    _stock = None

RBD_GROUP_IMAGE_STATE_ATTACHED = 0
RBD_GROUP_IMAGE_STATE_INCOMPLETE = 1
RBD_GROUP_SNAP_STATE_INCOMPLETE = 0
RBD_GROUP_SNAP_STATE_COMPLETE = 1
RBD_SNAP_CREATE_SKIP_QUIESCE = 1 << 0
RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR = 1 << 1

_OBJECT = {_errno.ENOENT: "ObjectNotFound", _errno.EEXIST: "ObjectExists"}
_IMAGE = {_errno.ENOENT: "ImageNotFound", _errno.EEXIST: "ImageExists"}
_COMMON = {
    _errno.EPERM: "PermissionError",
    _errno.EACCES: "PermissionError",
    _errno.EINVAL: "InvalidArgument",
    _errno.EBUSY: "ImageBusy",
    _errno.EROFS: "ReadOnlyImage",
    _errno.ETIMEDOUT: "Timeout",
    _errno.EIO: "IOError",
    _errno.EOPNOTSUPP: "OperationNotSupported",
    _errno.ENOSPC: "NoSpace",
    _errno.ERANGE: "ArgumentOutOfRange",
}
_OURS = {"ImageNotFound": "ObjectNotFound", "ImageExists": "ObjectExists"}


def _raise(family, what, error):
    """Raises python3-rbd's exception for error (an rbd_cg.Error), as python3-rbd would."""
    code = error.errno
    name = family.get(code) or _COMMON.get(code)
    message = "%s: %s" % (what, error)
    if _stock is not None:
        cls = getattr(_stock, name, None) if name else None
        raise (cls or _stock.OSError)(message, errno=code) from error
    cls = globals().get(_OURS.get(name, name) or "Error", Error)
    raise cls(code, message) from error


_connections = {}


def _groups(ioctx):
    """The rbd_cg Groups of ioctx's pool and namespace, on the connection of its Rados."""
    handle = next((r for r in _gc.get_referents(ioctx) if type(r).__name__ == "Rados"), None)
    key = (id(handle), ioctx.get_pool_name(), ioctx.get_namespace())
    cached = _connections.get(key)
    if cached is None:
        cluster = Cluster.from_rados(handle) if handle is not None else Cluster()
        # The Rados handle is kept with its groups, so that its id is not reused meanwhile.
        cached = _connections[key] = (handle, cluster.groups(key[1], key[2]))
    return cached[1]


def _image_spec(ioctx, name):
    namespace = ioctx.get_namespace()
    return "%s/%s%s" % (ioctx.get_pool_name(), namespace + "/" if namespace else "", name)


def _decode(name):
    return name.decode() if isinstance(name, bytes) else name


class RBD(object):
    """python3-rbd's RBD, for its group calls (group_create, group_remove, group_list,
    group_rename) on rbd_cg consistency groups."""

    def group_create(self, ioctx, name):
        """Creates group name in ioctx's pool and namespace (ObjectExists if it exists)."""
        name = _decode(name)
        try:
            _groups(ioctx).create(name)
        except Error as e:
            _raise(_OBJECT, "error creating group %r" % name.encode(), e)

    def group_remove(self, ioctx, name):
        """Removes group name with its snapshots (member snapshots included) and members
        (the images stay); a group that does not exist is fine."""
        name = _decode(name)
        groups = _groups(ioctx)
        try:
            groups.remove(name, force=True)
        except Error as e:
            if e.errno == _errno.ENOENT and name not in groups.list():
                return
            _raise(_OBJECT, "error removing group", e)

    def group_list(self, ioctx):
        """The group names of ioctx's pool and namespace, sorted."""
        try:
            return _groups(ioctx).list()
        except Error as e:
            _raise(_OBJECT, "error listing groups", e)

    def group_rename(self, ioctx, src, dest):
        """Renames group src to dest (ImageNotFound, ImageExists as python3-rbd)."""
        try:
            _groups(ioctx).rename(_decode(src), _decode(dest))
        except Error as e:
            _raise(_IMAGE, "error renaming group", e)


class Group(object):
    """python3-rbd's Group: the group name of ioctx's pool and namespace (not checked
    until used)."""

    def __init__(self, ioctx, name):
        self._ioctx = ioctx
        self._name = _decode(name)

    def __enter__(self):
        """Returns the object itself."""
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        """Nothing to release; exceptions propagate."""
        return False

    def _groups(self):
        return _groups(self._ioctx)

    def _exists(self):
        return self._name in self._groups().list()

    def add_image(self, image_ioctx, image_name):
        """Adds image image_name of image_ioctx; adding a member again is fine."""
        spec = _image_spec(image_ioctx, _decode(image_name))
        groups = self._groups()
        try:
            groups.add_image(self._name, spec)
        except Error as e:
            if e.errno == _errno.EEXIST and any(
                m["state"] == "attached" and _image_spec_of(m) == spec for m in groups.list_images(self._name)
            ):
                return
            _raise(_OBJECT, "error adding image to group", e)

    def remove_image(self, image_ioctx, image_name):
        """Removes image image_name of image_ioctx from the group; an image that is not a
        member is fine."""
        spec = _image_spec(image_ioctx, _decode(image_name))
        groups = self._groups()
        try:
            groups.remove_image(self._name, spec)
        except Error as e:
            if e.errno == _errno.ENOENT and self._exists():
                try:
                    members = groups.list_images(self._name)
                except Error:
                    members = None
                if members is not None and not any(_image_spec_of(m) == spec for m in members):
                    try:
                        groups.groups_of_image(spec)  # ObjectNotFound if the image is missing
                        return
                    except Error:
                        pass
            _raise(_OBJECT, "error removing image from group", e)

    def list_images(self):
        """[{'name', 'pool' (pool id), 'state' (RBD_GROUP_IMAGE_STATE_*)}]; [] for a group
        that does not exist."""
        try:
            members = self._groups().list_images(self._name)
        except Error as e:
            if e.errno == _errno.ENOENT and not self._exists():
                return []
            _raise(_OBJECT, "error listing images of group", e)
        return [
            {
                "name": m["name"],
                "pool": m["pool_id"],
                "state": RBD_GROUP_IMAGE_STATE_ATTACHED if m["state"] == "attached" else RBD_GROUP_IMAGE_STATE_INCOMPLETE,
            }
            for m in members
            if m["name"] is not None
        ]

    def create_snap(self, snap_name, flags=0):
        """Creates group snapshot snap_name, crash-consistent across the members; flags:
        RBD_SNAP_CREATE_SKIP_QUIESCE, RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR."""
        known = RBD_SNAP_CREATE_SKIP_QUIESCE | RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR
        try:
            if flags & ~known or (flags & known) == known:
                raise InvalidArgument(_errno.EINVAL, "bad snapshot create flags %r" % flags)
            self._groups().snap_create(
                self._name,
                _decode(snap_name),
                skip_quiesce=bool(flags & RBD_SNAP_CREATE_SKIP_QUIESCE),
                ignore_quiesce_error=bool(flags & RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR),
            )
        except Error as e:
            _raise(_OBJECT, "error creating group snapshot", e)

    def remove_snap(self, snap_name):
        """Removes group snapshot snap_name and its member snapshots."""
        try:
            self._groups().snap_remove(self._name, _decode(snap_name))
        except Error as e:
            _raise(_OBJECT, "error removing group snapshot", e)

    def rename_snap(self, old_snap_name, new_snap_name):
        """Renames group snapshot old_snap_name to new_snap_name."""
        try:
            self._groups().snap_rename(self._name, _decode(old_snap_name), _decode(new_snap_name))
        except Error as e:
            _raise(_OBJECT, "error renaming group snapshot", e)

    def list_snaps(self):
        """[{'name', 'state' (RBD_GROUP_SNAP_STATE_*)}] in creation order; [] for a group
        that does not exist. A damaged snapshot (a member snapshot gone) is incomplete."""
        try:
            snaps = self._groups().snap_list(self._name)
        except Error as e:
            if e.errno == _errno.ENOENT and not self._exists():
                return []
            _raise(_OBJECT, "error listing group snapshots", e)
        return [
            {
                "name": s["name"],
                "state": RBD_GROUP_SNAP_STATE_COMPLETE if s["state"] == "complete" else RBD_GROUP_SNAP_STATE_INCOMPLETE,
            }
            for s in snaps
        ]

    def rollback_to_snap(self, name):
        """Rolls every member back to group snapshot name."""
        try:
            self._groups().snap_rollback(self._name, _decode(name))
        except Error as e:
            _raise(_OBJECT, "error rolling back group to snapshot", e)


def _image_spec_of(member):
    namespace = member["namespace"]
    return "%s/%s%s" % (member["pool"], namespace + "/" if namespace else "", member["name"])
"#;

/// Names [`SOURCE`] defines for the module.
const EXPORTED: [&str; 8] = [
    "RBD",
    "Group",
    "RBD_GROUP_IMAGE_STATE_ATTACHED",
    "RBD_GROUP_IMAGE_STATE_INCOMPLETE",
    "RBD_GROUP_SNAP_STATE_INCOMPLETE",
    "RBD_GROUP_SNAP_STATE_COMPLETE",
    "RBD_SNAP_CREATE_SKIP_QUIESCE",
    "RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR",
];

/// Defines `RBD`, `Group` and python3-rbd's group constants in module `m` (after the
/// exception classes and `Cluster`, which they use).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let namespace = PyDict::new(py);
    namespace.set_item("__name__", "rbd_cg")?;
    let names = std::iter::once("Cluster").chain(crate::errors::NAMES.iter().map(|(name, _)| *name));
    for name in names {
        namespace.set_item(name, m.getattr(name)?)?;
    }
    py.run(SOURCE, Some(&namespace), None)?;
    for name in EXPORTED {
        let value = namespace
            .get_item(name)?
            .ok_or_else(|| pyo3::exceptions::PySystemError::new_err(format!("rbd_cg: {name} was not defined")))?;
        m.add(name, value)?;
    }
    Ok(())
}
