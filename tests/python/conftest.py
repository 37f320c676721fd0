"""Harness of the Python binding's tests: a real Ceph cluster, never a mock.

The cluster is the one ``CEPH_CONF`` points at (``scripts/test.sh`` starts a throwaway one
and exports it; by hand: ``eval "$(scripts/cluster.sh env DIR)"``). Without it, or when it
does not answer, the whole run stops with an error saying so: these tests never pass by
skipping.

Every test gets a fresh name prefix (``names``) for its groups and images in pool
``$RBD_CG_TEST_POOL`` (default ``rbd``) and everything carrying that prefix is removed
afterwards, so tests can share one cluster (also with the Rust tests, which work in
their own namespaces).
"""

import itertools
import os
import subprocess

import pytest
import rados
import rbd

import rbd_cg
from rbd_cg_testenv import IMAGE_SIZE, POOL
_counter = itertools.count()


def pytest_sessionstart(session):
    """Refuses to run without a reachable cluster."""
    conf = os.environ.get("CEPH_CONF")
    if not conf:
        raise pytest.UsageError(
            "CEPH_CONF is not set: the rbd_cg Python tests need a real Ceph cluster whose OSDs load "
            "the rbd_cg class. Run them through scripts/test.sh, or start one with "
            "`scripts/cluster.sh start DIR --class target/fault-injection/debug/libcls_rbd_cg.so` and "
            '`eval "$(scripts/cluster.sh env DIR)"`.'
        )
    client = rados.Rados(conffile=conf, conf={"client_mount_timeout": "15"})
    try:
        client.connect(timeout=15)
        if not client.pool_exists(POOL):
            raise pytest.UsageError(f"the test pool {POOL!r} does not exist in the cluster of {conf}")
    except rados.Error as e:
        raise pytest.UsageError(f"cannot reach the Ceph cluster of CEPH_CONF={conf}: {e}") from e
    finally:
        client.shutdown()


@pytest.fixture(scope="session")
def conffile():
    return os.environ["CEPH_CONF"]


@pytest.fixture(scope="session")
def rados_client(conffile):
    """A python-rados connection (Debian's python3-rados) for setting up and checking."""
    client = rados.Rados(conffile=conffile)
    client.connect()
    yield client
    client.shutdown()


@pytest.fixture(scope="session")
def ioctx(rados_client):
    io = rados_client.open_ioctx(POOL)
    yield io
    io.close()


@pytest.fixture(scope="session")
def cluster(conffile):
    """The binding's connection, shared by the whole run (as a driver would)."""
    with rbd_cg.Cluster(conffile=conffile) as c:
        yield c


@pytest.fixture
def groups(cluster):
    """The groups of the test pool."""
    with cluster.groups(POOL) as g:
        yield g


class Names:
    """Names unique to one test: ``names("db")`` -> ``py<pid>-<n>-db``."""

    def __init__(self, prefix):
        self.prefix = prefix

    def __call__(self, name):
        return self.prefix + name


@pytest.fixture
def names(cluster, ioctx):
    """A fresh name prefix; every group and image named with it is removed afterwards."""
    n = Names(f"py{os.getpid()}-{next(_counter)}-")
    yield n
    cleanup(cluster, ioctx, n.prefix)


def cleanup(cluster, ioctx, prefix):
    """Removes the groups and images whose names start with ``prefix``: groups first
    (their snapshots hold member snapshots), clones before their parents."""
    g = cluster.groups(POOL)
    try:

        def remove_groups():
            for group in g.list():
                if group.startswith(prefix):
                    try:
                        g.remove(group, force=True)
                    except rbd_cg.Error:
                        pass

        remove_groups()
        mine = [name for name in rbd.RBD().list(ioctx) if name.startswith(prefix)]
        clones = [name for name in mine if has_parent(ioctx, name)]
        for name in clones:
            remove_image(ioctx, name)
        remove_groups()
        for name in mine:
            if name not in clones:
                remove_image(ioctx, name)
        remove_groups()  # members whose images are gone now drop out too
        left = [name for name in g.list() if name.startswith(prefix)]
        left += [name for name in rbd.RBD().list(ioctx) if name.startswith(prefix)]
        assert not left, f"cleanup left {left}"
    finally:
        g.close()


def has_parent(ioctx, name):
    with rbd.Image(ioctx, name, read_only=True) as image:
        try:
            image.get_parent_image_spec()
            return True
        except rbd.ImageNotFound:
            return False


def remove_image(ioctx, name):
    """Removes an image with all its snapshots (unprotecting them)."""
    try:
        with rbd.Image(ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap["name"]):
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
    except rbd.ImageNotFound:
        return
    rbd.RBD().remove(ioctx, name)


@pytest.fixture
def make_image(ioctx, names):
    """``make_image("a")`` creates image ``names("a")`` (default features) and returns its name."""

    def make(name, size=IMAGE_SIZE, **kwargs):
        full = names(name)
        rbd.RBD().create(ioctx, full, size, **kwargs)
        return full

    return make


@pytest.fixture(scope="session")
def read_only_user(tmp_path_factory):
    """A cephx user with ``profile rbd-read-only`` caps: ``(id, keyring path)``."""
    entity = "client.rbdcg-py-ro"
    keyring = tmp_path_factory.mktemp("cephx") / "ro.keyring"
    subprocess.run(
        ["ceph", "auth", "get-or-create", entity, "mon", "profile rbd", "osd", "profile rbd-read-only",
         "-o", str(keyring)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return entity.removeprefix("client."), str(keyring)
