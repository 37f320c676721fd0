"""Connecting: constructor options, from_rados, context managers, threads."""

import threading

import pytest
import rados

import rbd_cg
from rbd_cg_testenv import POOL


def test_module():
    assert rbd_cg.__version__
    assert rbd_cg.Cluster.__doc__ and rbd_cg.Groups.snap_create.__doc__


def test_constructor_options(conffile):
    with rbd_cg.Cluster(conffile=conffile, rados_id="admin", cluster_name="ceph",
                        conf={"client_mount_timeout": "30", "rados_osd_op_timeout": "60"}) as c:
        assert isinstance(c.groups(POOL).list(), list)
    with pytest.raises(rbd_cg.ObjectNotFound):
        rbd_cg.Cluster(conffile="/nonexistent/ceph.conf")


def test_from_rados(conffile, groups, names, monkeypatch):
    groups.create(names("g"))
    client = rados.Rados(conffile=conffile, conf={"rados_osd_op_timeout": "60"})
    client.connect()
    try:
        c = rbd_cg.Cluster.from_rados(client)
        assert names("g") in c.groups(POOL).list()
        c.close()
        mon_host, keyring = client.conf_get("mon_host"), client.conf_get("keyring")
    finally:
        client.shutdown()

    # A handle configured by options only (no file, no CEPH_CONF): what it was given is
    # what the new connection uses.
    monkeypatch.delenv("CEPH_CONF")
    with pytest.raises(rbd_cg.Error):
        rbd_cg.Cluster(conf={"client_mount_timeout": "3"})  # proves nothing else is found
    bare = rados.Rados(conffile=rados.Rados.NO_CONF_FILE, conf={"mon_host": mon_host, "keyring": keyring})
    with rbd_cg.Cluster.from_rados(bare) as c:
        assert names("g") in c.groups(POOL).list()


def test_from_rados_takes_the_user(conffile, read_only_user, groups, names):
    groups.create(names("g"))
    user, keyring = read_only_user
    client = rados.Rados(conffile=conffile, rados_id=user, conf={"keyring": keyring})
    with rbd_cg.Cluster.from_rados(client) as c:
        ro = c.groups(POOL)
        assert names("g") in ro.list()
        with pytest.raises(rbd_cg.PermissionError):
            ro.create(names("other"))


def test_context_managers(conffile, groups, names):
    groups.create(names("g"))
    with rbd_cg.Cluster(conffile=conffile) as c:
        assert repr(c) == "<rbd_cg.Cluster connected>"
        g = c.groups(POOL)
        with c.groups(POOL) as scoped:
            assert names("g") in scoped.list()
        with pytest.raises(rbd_cg.Error) as e:
            scoped.list()
        assert e.value.errno == 107  # ENOTCONN
        scoped.close()  # again: nothing
    assert repr(c) == "<rbd_cg.Cluster closed>"
    with pytest.raises(rbd_cg.Error) as e:
        c.groups(POOL)
    assert e.value.errno == 107
    # Groups made before close() keep their share of the connection.
    assert names("g") in g.list()
    g.close()
    c.close()

    # exceptions propagate through __exit__
    with pytest.raises(rbd_cg.ObjectNotFound):
        with rbd_cg.Cluster(conffile=conffile) as c2:
            c2.groups(POOL).info(names("missing"))


def test_cluster_shared_by_threads(cluster, names):
    """Cluster and Groups made in one thread, used in others (no thread affinity)."""
    results, errors = [], []

    def work(n):
        try:
            with cluster.groups(POOL) as g:
                g.create(names(f"th{n}"))
                results.append(g.info(names(f"th{n}"))["name"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and sorted(results) == sorted(names(f"th{n}") for n in range(8))
