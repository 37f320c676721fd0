"""Consistency groups for Ceph RBD (the ``rbd_cg`` RADOS class), from Python.

A binding of the Rust client ``rbd_cg_client`` (the library behind the ``rbd-cg`` CLI).
Every method blocks until the operation is done and releases the GIL meanwhile, so
other Python threads keep running; :class:`Cluster` and :class:`Groups` may be used
from any OS thread (e.g. through ``eventlet.tpool``) and by several threads at once.

Failures raise :class:`Error` (an :class:`OSError`) or one of its subclasses, chosen by
errno in the spirit of ``python3-rbd``'s exception names. ``e.errno`` is the positive
errno; ``str(e)`` (and ``e.strerror``) is the client's message, including advice on a
second line when the client has some.

Example::

    import rbd_cg
    with rbd_cg.Cluster(conffile="/etc/ceph/ceph.conf") as cluster:
        groups = cluster.groups("rbd")
        groups.create("db")
        groups.add_image("db", "db-data")
        groups.add_image("db", "db-wal")
        snap = groups.snap_create("db", "nightly")      # crash-consistent
        print(snap["state"], [i["image_name"] for i in snap["images"]])

The ``TypedDict`` classes below (``GroupInfo`` …) describe the plain ``dict`` values the
methods return; they exist for type checkers only (import them under
``typing.TYPE_CHECKING``), not at run time.
"""

import sys
from types import TracebackType
from typing import Any, Literal, Optional, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:
    from typing_extensions import NotRequired

__version__: str
"""Version of the binding (that of the Rust workspace)."""

# --------------------------------------------------------------------------- errors

class Error(OSError):
    """Base class of every error of this module.

    ``args`` is ``(errno, message)``, so ``errno`` is the positive errno and
    ``strerror`` the client's message (what failed, the errno and its text, then
    advice on a second line if there is some). ``str(e)`` is that message. Errnos
    without a subclass of their own raise ``Error`` itself.
    """

    errno: int
    strerror: str

class ObjectNotFound(Error):
    """``ENOENT``: no such group, snapshot, image or pool."""

class ObjectExists(Error):
    """``EEXIST``: a group, snapshot or image of that name exists already."""

class ImageBusy(Error):
    """``EBUSY``: the group is not empty (remove without ``force``), an interrupted
    operation must be finished first (rerun it or :meth:`Groups.repair`), a snapshot or
    rollback is in progress, or a member's lock could not be taken."""

class PermissionError(Error):
    """``EPERM`` or ``EACCES``: the cephx user's caps do not allow this (changes need
    ``rwx`` and class access on the group's pool and every member's pool)."""

class InvalidArgument(Error):
    """``EINVAL``: a bad name or spec, a conflicting option, or a member that cannot be
    fenced (no exclusive-lock feature; see ``allow_unfenced``)."""

class ArgumentOutOfRange(Error):
    """``ERANGE`` (or ``EDOM``): a value too large or out of range, e.g. too many
    members or snapshots for the limits given."""

class ReadOnlyImage(Error):
    """``EROFS``: an image is read-only (e.g. a non-primary mirror image)."""

class Timeout(Error):
    """``ETIMEDOUT``: e.g. fencing the members took longer than ``fence_timeout``."""

class IOError(Error):
    """``EIO``: an I/O error, a malformed reply, or an internal error of the binding
    (a Rust panic is reported as this, never as a crash)."""

class OperationNotSupported(Error):
    """``EOPNOTSUPP``: the OSDs' ``rbd_cg`` class is missing or too old, or the images
    have a feature group snapshots do not support (journaling, migrating …)."""

class NoSpace(Error):
    """``ENOSPC``: the cluster is full."""

# --------------------------------------------------------------------------- results

GroupState = Literal["ready", "creating", "removing", "renaming"]

class GroupInfo(TypedDict):
    """What :meth:`Groups.info` returns."""

    name: str
    """The group's name (as asked for)."""
    id: str
    """The group id (lowercase hex)."""
    pool: str
    """Pool name."""
    namespace: str
    """RBD namespace, ``""`` for the default one."""
    state: GroupState
    """``ready``; otherwise an operation was interrupted: rerun it or :meth:`Groups.repair`."""
    created: float
    """Creation time, seconds since the Unix epoch (``0.0`` if the header is gone)."""
    members: int
    """Number of member images."""
    snapshots: int
    """Number of group snapshots."""
    renaming_to: NotRequired[str]
    """Present while an interrupted rename of this name to another is pending."""
    renaming_from: NotRequired[str]
    """Present while an interrupted rename of another name to this one is pending."""

class RepairReport(TypedDict):
    """What :meth:`Groups.repair` returns."""

    findings: list[str]
    """One line per problem found (empty: the group is consistent)."""
    changed: bool
    """Whether anything was changed (always ``False`` with ``check_only``)."""

MemberState = Literal["attached", "adding", "removing", "missing"]

class MemberInfo(TypedDict):
    """One member image, as :meth:`Groups.list_images` returns it."""

    pool: str
    """Pool name (the pool id as text if the pool is gone)."""
    pool_id: int
    """Pool id."""
    namespace: str
    """RBD namespace, ``""`` for the default one."""
    name: Optional[str]
    """Image name, ``None`` if the image no longer exists (state ``missing``)."""
    id: str
    """Image id (survives ``rbd rename``)."""
    state: MemberState
    """``attached``; ``adding``/``removing`` (interrupted: repair); ``missing`` (image deleted)."""

class ImageGroup(TypedDict):
    """A group an image belongs to, as ``Groups.groups_of_image`` returns it."""

    pool: str
    """The group's pool (its id as text if the pool is gone)."""
    pool_id: int
    namespace: str
    """The group's RBD namespace, "" for the default one."""
    group_id: str
    name: Optional[str]
    """The group's name; None when its directory no longer knows it (being removed)."""

class SnapshotImage(TypedDict):
    """One member image snapshot of a group snapshot."""

    pool: str
    """Pool name (the pool id as text if the pool is gone)."""
    pool_id: int
    """Pool id."""
    namespace: str
    """RBD namespace, ``""`` for the default one."""
    image_id: str
    """Image id."""
    image_name: Optional[str]
    """Image name, ``None`` if the image no longer exists."""
    snap_name: str
    """The RBD snapshot's name (``.rbd_cg.<pool>_<group id>_<snapshot id>``)."""
    snap_id: Optional[int]
    """The RBD snapshot's id, ``None`` until it was cut."""
    present: bool
    """Whether that RBD snapshot exists now."""

SnapshotState = Literal["complete", "creating", "removing", "damaged"]

class SnapshotInfo(TypedDict):
    """A group snapshot, as :meth:`Groups.snap_info` and :meth:`Groups.snap_list` return it."""

    id: str
    """Snapshot id."""
    name: str
    """Snapshot name."""
    seq: int
    """Creation order within the group."""
    state: SnapshotState
    """``complete``; ``creating``/``removing`` (interrupted: repair); ``damaged`` (a member
    snapshot or image was deleted by hand: it can be removed, not rolled back to)."""
    created: float
    """Creation time, seconds since the Unix epoch."""
    images: list[SnapshotImage]
    """The member image snapshots."""
    journal_position: Optional[int]
    """Of a journaled group: the journal position the snapshot was cut at (it holds every
    entry up to it and none after it); None otherwise."""

class JournalWriter(TypedDict):
    """The journal writer holding the lease (``rbd-cg nbd serve``)."""

    epoch: int
    """Its lease epoch."""
    client: str
    """Its RADOS client (``client.<gid>``)."""
    addr: str
    """Its client address."""
    description: str
    """What it is (``rbd-cg nbd serve on HOST, pid N``)."""
    since: float
    """When it took the lease, seconds since the Unix epoch."""

class JournalConsumer(TypedDict):
    """A consumer of the journal: ``local`` (the group's own images) or a mirror peer."""

    name: str
    position: int
    """Every entry up to this one is applied by it."""
    state: Literal["connected", "disconnected"]
    """``disconnected``: it fell behind past the journal's bound."""
    updated: float
    """When its position last moved, seconds since the Unix epoch."""

class JournalMember(TypedDict):
    """A journaled member and its tag (the entries' member tag)."""

    tag: int
    pool_id: int
    namespace: str
    id: str
    """Image id."""
    image: str
    """``pool/[namespace/]name``."""

class JournalStatus(TypedDict):
    """The journal of a group, as :meth:`Groups.journal_status` returns it."""

    enabled: bool
    state: Literal["disabled", "enabling", "enabled", "disabling"]
    head: int
    """Sequence number of the newest durable entry."""
    applied: int
    """Newest entry applied to every member image."""
    bytes: int
    """Journal space in use."""
    max_bytes: int
    """Its bound."""
    segment_size: int
    """Bytes per segment object."""
    segments: tuple[int, int]
    """The first (oldest) and the active segment."""
    writer: Optional[JournalWriter]
    consumers: list[JournalConsumer]
    members: list[JournalMember]

class MirrorMember(TypedDict):
    """A member of a mirrored group, as :meth:`Groups.mirror_status` shows it."""

    image: str
    """The image's name (the same on both sides)."""
    state: str
    """``primary`` on the primary; on a secondary ``syncing`` while it is copied, else the
    group's state (``replaying``, ``stopped`` …)."""
    progress: float
    """Percent of the image copied by the current sync (100 when not syncing; 0 on a
    secondary that has not finished a first sync)."""

class MirrorPeer(TypedDict):
    """A mirror daemon's consumer of the primary's journal (journal mode, on the primary)."""

    consumer: str
    """``mirror.<secondary cluster fsid>``."""
    state: Literal["connected", "disconnected"]
    """``disconnected``: it fell behind past the journal's bound (``mirror_resync`` on the
    secondary recovers it)."""
    position: int
    """Every entry up to this one is applied at the peer."""
    entries_behind: int
    """Entries the peer has yet to apply."""

class MirrorStatus(TypedDict):
    """The mirroring state of a group, as :meth:`Groups.mirror_status` returns it (the
    fields of ``rbd-cg mirror status --format json``, its two times in seconds)."""

    group: str
    """``pool[/namespace]/group``."""
    enabled: bool
    """Whether the group is mirrored at all (False: ``state`` is ``disabled``, ``mode`` and
    ``role`` are empty)."""
    mode: Literal["journal", "snapshot", ""]
    role: Literal["primary", "non-primary", ""]
    state: str
    """``primary``, ``syncing``, ``replaying``, ``stopped`` (the primary is demoted and
    everything it wrote is applied; a demoted former primary waiting for ``mirror_resync``),
    ``disconnected`` (``mirror_resync`` needed), ``error`` or ``disabled``."""
    description: str
    """What happened last."""
    primary_position: int
    """The primary's newest journal entry (as last seen, on a secondary)."""
    mirror_position: int
    """Every entry up to this one is applied on the mirror (on a primary: the slowest peer)."""
    entries_behind: int
    """Entries not applied yet."""
    seconds_behind: float
    """How old the oldest entry not applied yet is (a secondary)."""
    last_snapshot: Optional[str]
    """The last group snapshot of the primary copied completely."""
    last_snapshot_time: Optional[float]
    """When that copy was complete here, seconds since the Unix epoch."""
    demoted_at: Optional[int]
    """Journal mode: the journal entry at which the primary was demoted (on the demoted
    group itself, or as the secondary saw it)."""
    resync_requested: bool
    """``mirror_resync`` was asked for and the daemon has not started it yet."""
    members: list[MirrorMember]
    peers: list[MirrorPeer]
    """A primary in journal mode: its mirror consumers."""
    daemon: str
    """The mirror daemon last at work on it (a secondary; empty otherwise)."""
    updated: Optional[float]
    """When the daemon last recorded its state, seconds since the Unix epoch (None: never)."""

class ClonedImage(TypedDict):
    """One member of the group :meth:`Groups.clone` made."""

    source_pool_id: int
    """Pool id of the source image."""
    source_namespace: str
    """RBD namespace of the source image."""
    source_id: str
    """Image id of the source image."""
    source_name: str
    """Name of the source image."""
    source_snap: str
    """Name of the source image's snapshot the clone was made from."""
    pool: str
    """Pool name of the clone (the source image's pool)."""
    pool_id: int
    """Pool id of the clone."""
    namespace: str
    """RBD namespace of the clone (the source image's)."""
    id: str
    """Image id of the clone."""
    name: str
    """Name of the clone."""

# --------------------------------------------------------------------------- API

class Cluster:
    """A connection to a Ceph cluster (one librados handle).

    Settings are read the way Ceph tools read them: the config file (``conffile``, or
    ``$CEPH_CONF``, ``/etc/ceph/$cluster.conf`` … when ``None``), then ``$CEPH_ARGS``,
    then ``keyring`` and ``conf``. Connects in the constructor (raising :class:`Error`
    on failure, e.g. :class:`Timeout` when no monitor answers within
    ``client_mount_timeout``).

    Thread-safe: one ``Cluster`` may be shared by every thread. Usable as a context
    manager (``close()`` on exit).
    """

    def __init__(
        self,
        conffile: Optional[str] = None,
        rados_id: Optional[str] = None,
        cluster_name: Optional[str] = None,
        keyring: Optional[str] = None,
        conf: Optional[dict[str, str]] = None,
    ) -> None:
        """Connects.

        :param conffile: Ceph config file; ``None`` searches the default places (a missing
            default file is fine when ``$CEPH_ARGS`` or ``conf`` give the monitors).
        :param rados_id: user id without ``client.`` (default: ``$CEPH_ARGS``'s, else ``admin``).
        :param cluster_name: cluster name (default ``ceph``).
        :param keyring: keyring file.
        :param conf: more config options (``{"mon_host": ..., "key": ...}``), set last.
        """

    @staticmethod
    def from_rados(rados: Any) -> "Cluster":
        """Connects with the configuration of an existing ``rados.Rados`` handle.

        Reads its ``conffile`` and ``rados_id`` attributes (when present) and its
        ``conf_get()`` values of ``mon_host``, ``keyring``, ``key``, ``keyfile``, ``name``,
        ``cluster``, ``client_mount_timeout``, ``rados_mon_op_timeout`` and
        ``rados_osd_op_timeout`` (empty values are skipped), and opens a new connection
        with them (``$CEPH_ARGS`` applies too, as for every connection). The
        ``rados.Rados`` handle is not used afterwards and stays the caller's; it need not
        be connected. A ``name`` that is not a ``client.`` entity is :class:`InvalidArgument`.
        """

    def groups(self, pool: str, namespace: str = "") -> "Groups":
        """The groups of ``pool`` (and RBD ``namespace``, ``""`` for the default one).

        Checks that the OSDs run a compatible ``rbd_cg`` class: raises
        :class:`ObjectNotFound` if the pool does not exist and :class:`OperationNotSupported`
        (with installation advice) if the class is missing.
        """

    def close(self) -> None:
        """Drops this connection. :class:`Groups` objects made from it keep working until
        they are closed or garbage collected (the librados handle shuts down after the
        last one). Calling ``close`` again does nothing; ``groups()`` afterwards raises
        :class:`Error` (``ENOTCONN``)."""

    def __enter__(self) -> "Cluster":
        """Returns the cluster itself."""

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Calls :meth:`close`; exceptions propagate."""

class Groups:
    """The consistency groups of one pool and RBD namespace.

    Image specs are ``"[POOL[/NAMESPACE]/]NAME"``; a bare ``NAME`` is an image in this
    object's pool and namespace. Group and snapshot names are 1 to 128 bytes of UTF-8
    without ``/``, ``@``, NUL or control characters (else :class:`InvalidArgument`).

    Every multi-object change is crash-safe: an interrupted call is finished by calling
    it again or by :meth:`repair`.

    Thread-safe: calls from several threads run concurrently (each takes its own I/O
    context from a small pool). Usable as a context manager (``close()`` on exit).
    Made by :meth:`Cluster.groups`, not directly.
    """

    @property
    def pool(self) -> str:
        """The pool name."""

    @property
    def namespace(self) -> str:
        """The RBD namespace, ``""`` for the default one."""

    def create(self, name: str) -> str:
        """Creates group ``name`` and returns its id. :class:`ObjectExists` if it exists."""

    def info(self, name: str) -> GroupInfo:
        """Shows group ``name`` (also one an interrupted operation left behind)."""

    def list(self) -> list[str]:
        """The names of the groups, sorted (interrupted creations are not shown)."""

    def rename(self, old: str, new: str) -> None:
        """Renames group ``old`` to ``new`` (same pool and namespace)."""

    def remove(self, name: str, force: bool = False) -> None:
        """Removes group ``name``.

        Without ``force`` a group with members or snapshots is refused with
        :class:`ImageBusy`; with ``force`` its snapshots (and their member image
        snapshots) and then its members are removed first. The member images themselves
        are never deleted.
        """

    def repair(self, name: str, check_only: bool = False) -> RepairReport:
        """Finishes (or undoes) whatever interrupted operations left on group ``name``;
        with ``check_only``, only reports what it would do."""

    def add_image(self, group: str, image: str, *, max_members: Optional[int] = None) -> None:
        """Adds image ``image`` (a spec; format-2 images only) to ``group``.

        :param max_members: refuse (:class:`ArgumentOutOfRange`) when the group already
            has this many members (default: the limit, 4096).
        """

    def remove_image(
        self,
        group: str,
        image: Optional[str] = None,
        *,
        image_id: Optional[str] = None,
        image_pool: Optional[str] = None,
    ) -> None:
        """Removes an image from ``group``: by spec ``image``, or by ``image_id`` (for an
        image deleted behind the group's back; see :meth:`list_images`) in ``image_pool``
        (``"POOL[/NAMESPACE]"``, default this object's pool and namespace). Give exactly
        one of ``image`` and ``image_id`` (else :class:`InvalidArgument`)."""

    def groups_of_image(self, image: str) -> list[ImageGroup]:
        """The groups ``image`` (a spec, relative to this pool and namespace) belongs to,
        in any pool. ``ObjectNotFound`` when the image does not exist."""

    def group_name(self, group_id: str) -> Optional[str]:
        """The name of the group with id ``group_id`` in this pool and namespace; None
        when there is none."""

    def list_images(self, group: str) -> list[MemberInfo]:
        """The members of ``group``."""

    def snap_create(
        self,
        group: str,
        snap: str,
        *,
        skip_quiesce: bool = False,
        ignore_quiesce_error: bool = False,
        allow_unfenced: bool = False,
        fence: bool = True,
        fence_timeout: float = 10.0,
        watch_timeout: int = 10,
        max_snapshots: Optional[int] = None,
    ) -> SnapshotInfo:
        """Snapshots every member of ``group`` at one point in time; returns the snapshot.

        By default the snapshot is crash-consistent: the client becomes every member's
        exclusive-lock owner (writers on other clients pause, never fail), cuts all
        member snapshots, and hands the locks back. A failed call undoes itself.

        :param skip_quiesce: do not notify quiesce hooks (``rbd_quiesce_watch``) first.
        :param ignore_quiesce_error: go on when a quiesce hook fails.
        :param allow_unfenced: snapshot members without the exclusive-lock feature
            unfenced (not crash-consistent for them); without it such members are refused
            with :class:`InvalidArgument`.
        :param fence: ``False`` fences nothing at all (one member after another; NOT
            crash-consistent; issues a :class:`UserWarning`). ``allow_unfenced=True``
            with ``fence=False`` is :class:`InvalidArgument`, as ``--allow-unfenced``
            with ``--no-fence`` is for ``rbd-cg``.
        :param fence_timeout: seconds fencing all members may take (0 < t <= 600).
        :param watch_timeout: seconds after which the OSDs drop the watches of a crashed
            client, freeing its writers (6 to 3600).
        :param max_snapshots: refuse (:class:`ArgumentOutOfRange`) when the group already
            has this many snapshots (default: the limit, 4096).
        """

    def journal_enable(self, group: str, *, object_size: Optional[int] = None, max_size: Optional[int] = None) -> None:
        """Gives ``group`` one journal for all its members: every write through
        ``rbd-cg nbd serve`` goes into it, tagged with its member, in one order; the
        members are fenced against stock librbd writers (``EROFS``; reads work).

        :param object_size: bytes per journal segment object (1 MiB to 128 MiB; default
            16 MiB).
        :param max_size: bound of journal space (at least two segments; default 1 GiB).
        :raises ImageBusy: another client has a member open, or the group is busy.
        :raises ObjectExists: the group journals already.
        :raises InvalidArgument: a member belongs to another group too, uses librbd's own
            journaling, is mirrored, or the group has no members.
        """

    def journal_disable(self, group: str) -> None:
        """Applies everything in ``group``'s journal to its members, gives them back to
        stock writers and drops the journal; also undoes an interrupted enable.

        :raises ImageBusy: a server writes through the journal (stop it first).
        """

    def journal_status(self, group: str) -> JournalStatus:
        """The journal of ``group`` (``enabled`` False without one)."""

    def mirror_enable(self, group: str, mode: Literal["journal", "snapshot"] = "journal", interval: int = 300) -> None:
        """Mirrors ``group`` to a second cluster (run on the primary): a mirror daemon at
        the other site (``rbd-cg mirror daemon``) keeps a crash-consistent copy of the
        whole group there. See ``docs/MIRRORING.md``.

        :param mode: ``"journal"`` replays the group journal in order (the group must be
            journaled: :meth:`journal_enable`); ``"snapshot"`` takes a group snapshot every
            ``interval`` seconds (recorded; the daemon does not ship snapshot mode yet).
        :param interval: snapshot mode: seconds between group snapshots (1 to 604800).
        :raises InvalidArgument: journal mode on a group without a journal, or a bad mode.
        :raises ObjectExists: the group is mirrored already in the other mode, or is a
            non-primary copy (enabling again with the same mode changes nothing).
        :raises ArgumentOutOfRange: snapshot mode with an interval out of range.
        """

    def mirror_disable(self, group: str) -> None:
        """Stops mirroring ``group`` (on either side; nothing to do when it is not
        mirrored). On a primary the mirror consumers of its journal are removed too; a
        secondary's copy stays read-only until mirroring is disabled there as well."""

    def mirror_status(self, group: str) -> MirrorStatus:
        """The mirroring state of ``group`` on this cluster (``enabled`` False when it is
        not mirrored)."""

    def mirror_promote(self, group: str, force: bool = False) -> None:
        """Makes this side of ``group`` the primary (it takes writes again). Waits up to
        30 s for the mirror daemon to let go of the members, then blocklists it and
        breaks its locks. A rerun finishes an interrupted promotion; promoting a primary
        changes nothing.

        :param force: promote although the old primary is not demoted (it is lost); the
            copy is then at a crash-consistent state of it. Without it, the old primary
            must be demoted and every entry it wrote applied here (state ``stopped``).
        :raises ImageBusy: the first sync is not finished, or (without ``force``) the
            primary is not demoted or not everything it wrote is applied yet.
        :raises ObjectNotFound: the group is not mirrored.
        """

    def mirror_demote(self, group: str) -> None:
        """Makes the primary ``group`` non-primary, so that the other side can be promoted.
        In journal mode everything pending in the journal is applied first and the
        journal's last entry recorded (``demoted_at``). From then on snapshots, membership
        changes and journal writers (``rbd-cg nbd serve``) are refused with
        :class:`ReadOnlyImage`. Demoting a non-primary group changes nothing.

        :raises ImageBusy: ``rbd-cg nbd serve`` writes the group (stop it first).
        :raises ObjectNotFound: the group is not mirrored.
        """

    def mirror_resync(self, group: str) -> None:
        """Asks the mirror daemon to copy the whole group again from the primary (on a
        secondary, or on a demoted former primary, which only then follows the new one).

        :raises InvalidArgument: the group is primary (demote it first).
        :raises ObjectNotFound: the group is not mirrored.
        """

    def snap_list(self, group: str) -> list[SnapshotInfo]:
        """The snapshots of ``group`` in creation order, each member snapshot checked."""

    def snap_info(self, group: str, snap: str) -> SnapshotInfo:
        """Shows snapshot ``snap`` of ``group``."""

    def snap_rename(self, group: str, old: str, new: str) -> None:
        """Renames snapshot ``old`` of ``group`` to ``new``."""

    def snap_remove(self, group: str, snap: str) -> None:
        """Removes snapshot ``snap`` of ``group`` and its member image snapshots (ones
        already gone are fine)."""

    def snap_rollback(self, group: str, snap: str) -> None:
        """Rolls every member of ``group`` back to snapshot ``snap``.

        Refused with :class:`ImageBusy` when the membership changed since the snapshot,
        and with :class:`ObjectNotFound` when a member snapshot is gone (``damaged``).
        Writers should be stopped first, as for ``rbd snap rollback``.
        """

    def clone(
        self,
        group: str,
        snap: str,
        new_group: str,
        *,
        image_names: Optional[dict[str, str]] = None,
        image_name_format: Optional[str] = None,
        clone_format: Literal["auto", "v1", "v2", "1", "2"] = "auto",
    ) -> list[ClonedImage]:
        """Creates group ``new_group`` in this pool and namespace whose members are RBD
        clones of the member snapshots of ``group@snap``; returns the new members.

        Each clone is created in its source image's pool and namespace, named either by
        ``image_names`` (source image spec -> new name, every member listed; a bare name
        is an image in this object's pool and namespace) or by ``image_name_format``, a
        pattern with ``{image}``, ``{group}``, ``{snap}`` and ``{source_group}`` (default
        ``"{group}-{image}"``). Give at most one of the two (else :class:`InvalidArgument`).

        :param clone_format: ``"auto"`` (clone v2 when the cluster requires Mimic or newer
            clients, else v1), ``"v1"`` (parent snapshots are protected) or ``"v2"``.

        Crash-safe: calling it again or :meth:`repair` of ``new_group`` finishes an
        interrupted clone, ``remove(new_group, force=True)`` undoes it.
        """

    def expose_member_snapshot(self, group: str, snap: str, image: str) -> str:
        """Moves the member snapshot of ``image`` (a spec) in ``group@snap`` into the user
        namespace, where librbd's by-name calls (``rbd.Image(..., snapshot=...)``,
        ``RBD.clone``, ``rollback_to_snap``) find it, and returns its name there. It stays
        protected; :meth:`hide_member_snapshot` puts it back, :meth:`repair` hides one a
        crash left exposed."""

    def hide_member_snapshot(self, group: str, snap: str, image: str) -> None:
        """Moves the member snapshot of ``image`` in ``group@snap`` back into the group
        namespace (nothing to do when it is not exposed)."""

    def close(self) -> None:
        """Drops this object's I/O contexts (and its share of the connection). Later
        calls raise :class:`Error` (``ENOTCONN``). Calling it again does nothing."""

    def __enter__(self) -> "Groups":
        """Returns the object itself."""

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Calls :meth:`close`; exceptions propagate."""

# ---- python3-rbd's group API -------------------------------------------------------------

RBD_GROUP_IMAGE_STATE_ATTACHED: int
"""``Group.list_images`` state of an attached member (0, as python3-rbd)."""
RBD_GROUP_IMAGE_STATE_INCOMPLETE: int
"""``Group.list_images`` state of a member being added or removed (1)."""
RBD_GROUP_SNAP_STATE_INCOMPLETE: int
"""``Group.list_snaps`` state of a snapshot being created or removed, or damaged (0)."""
RBD_GROUP_SNAP_STATE_COMPLETE: int
"""``Group.list_snaps`` state of a complete snapshot (1)."""
RBD_SNAP_CREATE_SKIP_QUIESCE: int
"""``Group.create_snap`` flag: do not notify quiesce hooks."""
RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR: int
"""``Group.create_snap`` flag: go on when a quiesce hook fails."""

class GroupImage(TypedDict):
    """``Group.list_images`` entry, as python3-rbd's."""

    name: str
    pool: int
    """Pool id."""
    state: int
    """``RBD_GROUP_IMAGE_STATE_*``."""

class GroupSnap(TypedDict):
    """``Group.list_snaps`` entry, as python3-rbd's."""

    name: str
    state: int
    """``RBD_GROUP_SNAP_STATE_*``."""

class RBD:
    """python3-rbd's ``rbd.RBD``, for its group calls, on rbd_cg consistency groups: a
    program written for ``rbd.RBD().group_*`` switches with ``from rbd_cg import RBD``.
    Errors are python3-rbd's own exception classes when it is installed (``ObjectExists``,
    ``ObjectNotFound``, ``InvalidArgument``; ``ImageNotFound``/``ImageExists`` for
    ``group_rename``), else this module's of the same errno."""

    def group_create(self, ioctx: Any, name: str) -> None:
        """Creates group ``name`` in ``ioctx``'s (a ``rados.Ioctx``) pool and namespace."""

    def group_remove(self, ioctx: Any, name: str) -> None:
        """Removes group ``name`` with its snapshots and members (the images stay); a group
        that does not exist is fine."""

    def group_list(self, ioctx: Any) -> list[str]:
        """The group names, sorted."""

    def group_rename(self, ioctx: Any, src: str, dest: str) -> None:
        """Renames group ``src`` to ``dest``."""

class Group:
    """python3-rbd's ``rbd.Group`` on an rbd_cg consistency group: ``Group(ioctx, name)``
    (not checked until used); switch with ``from rbd_cg import Group``."""

    def __init__(self, ioctx: Any, name: str) -> None:
        """The group ``name`` of ``ioctx``'s pool and namespace."""

    def add_image(self, image_ioctx: Any, image_name: str) -> None:
        """Adds an image (adding a member again is fine)."""

    def remove_image(self, image_ioctx: Any, image_name: str) -> None:
        """Removes an image from the group (a non-member is fine)."""

    def list_images(self) -> list[GroupImage]:
        """The members; ``[]`` for a group that does not exist."""

    def create_snap(self, snap_name: str, flags: int = 0) -> None:
        """Creates a crash-consistent group snapshot (``RBD_SNAP_CREATE_*`` flags)."""

    def remove_snap(self, snap_name: str) -> None:
        """Removes a group snapshot and its member snapshots."""

    def rename_snap(self, old_snap_name: str, new_snap_name: str) -> None:
        """Renames a group snapshot."""

    def list_snaps(self) -> list[GroupSnap]:
        """The group snapshots in creation order; ``[]`` for a group that does not exist."""

    def rollback_to_snap(self, name: str) -> None:
        """Rolls every member back to a group snapshot."""

    def __enter__(self) -> "Group":
        """Returns the object itself."""

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool:
        """Nothing to release; exceptions propagate."""
