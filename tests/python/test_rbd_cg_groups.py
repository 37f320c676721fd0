"""Group lifecycle and membership through the binding."""

import os
import subprocess
import sys
import time

import pytest
import rbd

import rbd_cg
from rbd_cg_testenv import POOL

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_create_info_list_rename_remove(groups, names):
    db, web = names("db"), names("web")
    before = time.time()
    group_id = groups.create(db)
    assert isinstance(group_id, str) and group_id
    groups.create(web)

    info = groups.info(db)
    assert info == {
        "name": db,
        "id": group_id,
        "pool": POOL,
        "namespace": "",
        "state": "ready",
        "created": info["created"],
        "members": 0,
        "snapshots": 0,
    }
    assert before - 5 <= info["created"] <= time.time() + 5

    listed = groups.list()
    assert listed == sorted(listed)
    assert [n for n in listed if n.startswith(names.prefix)] == sorted([db, web])

    new = names("db2")
    groups.rename(db, new)
    assert groups.info(new)["id"] == group_id
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.info(db)

    groups.remove(new)
    groups.remove(web)
    assert not [n for n in groups.list() if n.startswith(names.prefix)]
    with pytest.raises(rbd_cg.ObjectNotFound) as e:
        groups.remove(new)
    assert e.value.errno == 2


def test_attributes_and_repr(groups):
    assert groups.pool == POOL
    assert groups.namespace == ""
    assert repr(groups) == f'<rbd_cg.Groups pool="{POOL}" namespace="">'


def test_images_add_list_remove(groups, names, make_image, ioctx):
    group = names("g")
    groups.create(group)
    a, b = make_image("a"), make_image("b")
    groups.add_image(group, a)  # bare name: this Groups' pool
    groups.add_image(group, f"{POOL}/{b}")  # full spec
    ids = {name: rbd.Image(ioctx, name, read_only=True).id() for name in (a, b)}

    members = sorted(groups.list_images(group), key=lambda m: m["name"])
    pool_id = ioctx.get_pool_id()
    assert members == [
        {"pool": POOL, "pool_id": pool_id, "namespace": "", "name": a, "id": ids[a], "state": "attached"},
        {"pool": POOL, "pool_id": pool_id, "namespace": "", "name": b, "id": ids[b], "state": "attached"},
    ]
    assert groups.info(group)["members"] == 2
    with pytest.raises(rbd_cg.ObjectExists):
        groups.add_image(group, a)

    groups.remove_image(group, a)
    assert [m["name"] for m in groups.list_images(group)] == [b]

    # An image deleted behind the group's back: listed as missing, removed by id.
    rbd.RBD().remove(ioctx, b)
    (missing,) = groups.list_images(group)
    assert missing["name"] is None and missing["state"] == "missing" and missing["id"] == ids[b]
    groups.remove_image(group, image_id=ids[b])
    assert groups.list_images(group) == []
    groups.remove(group)


def test_remove_image_needs_exactly_one_way(groups, names):
    group = names("g")
    groups.create(group)
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.remove_image(group)
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.remove_image(group, "x", image_id="abc")
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.remove_image(group, "x", image_pool=POOL)


def test_max_members(groups, names, make_image):
    group = names("g")
    groups.create(group)
    groups.add_image(group, make_image("a"), max_members=1)
    with pytest.raises(rbd_cg.ArgumentOutOfRange) as e:
        groups.add_image(group, make_image("b"), max_members=1)
    assert e.value.errno == 34
    with pytest.raises(rbd_cg.ArgumentOutOfRange):
        groups.add_image(group, names("b"), max_members=-1)


def test_remove_force_with_members_and_snapshots(groups, names, make_image, ioctx):
    group = names("g")
    groups.create(group)
    images = [make_image(n) for n in ("a", "b", "c")]
    for image in images:
        groups.add_image(group, image)
    groups.snap_create(group, "s1")
    groups.snap_create(group, "s2")
    assert groups.info(group)["snapshots"] == 2

    with pytest.raises(rbd_cg.ImageBusy) as e:
        groups.remove(group)
    assert e.value.errno == 16
    assert "remove them first" in str(e.value)

    groups.remove(group, force=True)
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.info(group)
    for image in images:  # the images stay, without the group's snapshots
        with rbd.Image(ioctx, image, read_only=True) as img:
            assert list(img.list_snaps()) == []


def test_repair_of_a_consistent_group(groups, names):
    group = names("g")
    groups.create(group)
    assert groups.repair(group) == {"findings": [], "changed": False}
    assert groups.repair(group, check_only=True) == {"findings": [], "changed": False}
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.repair(names("none"))


def rbd_cg_cli():
    """The rbd-cg binary (scripts/test.sh exports RBD_CG_BIN; else the debug build)."""
    path = os.environ.get("RBD_CG_BIN") or os.path.join(REPO, "target", "debug", "rbd-cg")
    if not os.access(path, os.X_OK):
        pytest.fail(f"rbd-cg not found at {path}: build it (cargo build -p rbd_cg_cli) or set RBD_CG_BIN")
    return path


def test_repair_finishes_an_interrupted_create(groups, names, conffile):
    """A create stopped dead after its second step (the CLI's fault injection, as a
    crash would) shows as creating; repair reports and finishes it."""
    group = names("crashed")
    env = dict(os.environ, RBD_CG_FAULT="create:2")
    crashed = subprocess.run(
        [rbd_cg_cli(), "--conf", conffile, "create", f"{POOL}/{group}"], env=env, capture_output=True, timeout=60
    )
    assert crashed.returncode == 86, crashed.stderr  # FAULT_EXIT_CODE
    info = groups.info(group)
    assert info["state"] == "creating"
    assert group not in groups.list()
    with pytest.raises(rbd_cg.ImageBusy):
        groups.rename(group, names("other"))

    report = groups.repair(group, check_only=True)
    assert report["changed"] is False and len(report["findings"]) == 1
    assert "interrupted" in report["findings"][0]
    assert groups.info(group)["state"] == "creating"

    report = groups.repair(group)
    assert report["changed"] is True and len(report["findings"]) == 1
    assert groups.info(group)["state"] == "ready" and groups.info(group)["id"] == info["id"]
    assert group in groups.list()


def test_groups_of_image_and_group_name(groups, names, make_image, cluster):
    """Which groups an image is in, with names, without knowing how the class stores it."""
    g1, g2 = names("g1"), names("g2")
    id1, id2 = groups.create(g1), groups.create(g2)
    a, b = make_image("a"), make_image("b")
    assert groups.groups_of_image(a) == []
    groups.add_image(g1, a)
    groups.add_image(g2, a)
    groups.add_image(g2, b)
    found = sorted(groups.groups_of_image(a), key=lambda g: g["name"])
    pool_id = found[0]["pool_id"]
    assert found == [
        {"pool": POOL, "pool_id": pool_id, "namespace": "", "group_id": id1, "name": g1},
        {"pool": POOL, "pool_id": pool_id, "namespace": "", "group_id": id2, "name": g2},
    ]
    assert [g["name"] for g in groups.groups_of_image(f"{POOL}/{b}")] == [g2]
    assert groups.group_name(id1) == g1
    assert groups.group_name("0000000000000000") is None
    groups.rename(g1, names("g1b"))
    assert groups.group_name(id1) == names("g1b")
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.groups_of_image(names("no-such-image"))
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.group_name("NOT-AN-ID")
    groups.remove(names("g1b"), force=True)
    groups.remove(g2, force=True)
    assert groups.groups_of_image(a) == []


def test_an_interpreter_that_exits_right_after_a_snapshot_ends_normally(names, make_image, conffile):
    """No thread of the binding may be inside librados when the interpreter tears down: a
    process that takes a snapshot and exits at once neither hangs nor crashes (repeated,
    with and without closing the objects first)."""
    group = names("exit")
    image = make_image("m")
    script = f"""
import sys, rbd_cg
cluster = rbd_cg.Cluster(conffile={conffile!r})
groups = cluster.groups({POOL!r})
groups.snap_create({group!r}, sys.argv[1])
if sys.argv[2] == "close":
    groups.close()
    cluster.close()
"""
    setup = f"""
import rbd_cg
g = rbd_cg.Cluster(conffile={conffile!r}).groups({POOL!r})
g.create({group!r})
g.add_image({group!r}, {image!r})
"""
    subprocess.run([sys.executable, "-c", setup], check=True, timeout=60)
    for n in range(6):
        mode = "close" if n % 2 else "leave"
        done = subprocess.run([sys.executable, "-c", script, f"s{n}", mode], capture_output=True, timeout=60)
        assert done.returncode == 0, (mode, done.returncode, done.stderr)
    check = f"""
import rbd_cg
g = rbd_cg.Cluster(conffile={conffile!r}).groups({POOL!r})
assert [s["state"] for s in g.snap_list({group!r})] == ["complete"] * 6
g.remove({group!r}, force=True)
"""
    subprocess.run([sys.executable, "-c", check], check=True, timeout=60)
