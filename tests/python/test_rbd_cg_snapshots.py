"""Group snapshots through the binding: create (fenced by default), list, info, rename,
rollback with the data checked through python3-rbd, remove; and the GIL."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import rbd

import rbd_cg
from rbd_cg_testenv import BLOCK, POOL, read, write

HERE = os.path.dirname(os.path.abspath(__file__))



def member_group(groups, names, make_image, count=2, **image_args):
    group = names("g")
    groups.create(group)
    images = [make_image(f"i{n}", **image_args) for n in range(count)]
    for image in images:
        groups.add_image(group, image)
    return group, images



def test_create_list_info_rename_remove(groups, names, make_image, ioctx):
    group, images = member_group(groups, names, make_image)
    before = time.time()
    snap = groups.snap_create(group, "s1")
    assert snap["name"] == "s1" and snap["state"] == "complete" and snap["seq"] >= 1
    assert before - 5 <= snap["created"] <= time.time() + 5
    assert sorted(i["image_name"] for i in snap["images"]) == sorted(images)
    for member in snap["images"]:
        assert member["present"] is True
        assert member["pool"] == POOL and member["pool_id"] == ioctx.get_pool_id() and member["namespace"] == ""
        assert isinstance(member["snap_id"], int)
        assert member["snap_name"].startswith(".rbd_cg.")
        # the member snapshot is an ordinary RBD snapshot, visible to python3-rbd
        with rbd.Image(ioctx, member["image_name"], read_only=True) as img:
            assert member["snap_name"] in [s["name"] for s in img.list_snaps()]

    assert groups.snap_info(group, "s1") == snap
    s2 = groups.snap_create(group, "s2")
    listed = groups.snap_list(group)
    assert [s["name"] for s in listed] == ["s1", "s2"]
    assert listed[0] == snap and listed[1] == s2
    assert listed[0]["seq"] < listed[1]["seq"]

    groups.snap_rename(group, "s1", "first")
    assert groups.snap_info(group, "first")["id"] == snap["id"]
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.snap_info(group, "s1")

    groups.snap_remove(group, "first")
    assert [s["name"] for s in groups.snap_list(group)] == ["s2"]
    with rbd.Image(ioctx, images[0], read_only=True) as img:
        assert snap["images"][0]["snap_name"] not in [s["name"] for s in img.list_snaps()]
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.snap_remove(group, "first")
    with pytest.raises(rbd_cg.ObjectExists):
        groups.snap_create(group, "s2")


def test_rollback_restores_the_data(groups, names, make_image, ioctx):
    group, images = member_group(groups, names, make_image)
    for n, image in enumerate(images):
        write(ioctx, image, 0x41 + n)  # A, B
    groups.snap_create(group, "before")
    for image in images:
        write(ioctx, image, 0x5A)  # Z
    assert all(read(ioctx, image) == b"Z" * BLOCK for image in images)

    groups.snap_rollback(group, "before")
    assert [read(ioctx, image) for image in images] == [b"A" * BLOCK, b"B" * BLOCK]

    # Membership changed since the snapshot: refused.
    groups.add_image(group, make_image("late"))
    with pytest.raises(rbd_cg.ImageBusy):
        groups.snap_rollback(group, "before")
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.snap_rollback(group, "nope")


def test_fencing_modes(groups, names, make_image, ioctx):
    # layering only: no exclusive-lock, so the member cannot be fenced
    group, _ = member_group(groups, names, make_image, count=1, features=rbd.RBD_FEATURE_LAYERING)
    with pytest.raises(rbd_cg.InvalidArgument) as e:
        groups.snap_create(group, "fenced")
    assert e.value.errno == 22 and "allow-unfenced" in str(e.value)
    assert groups.snap_list(group) == []  # a failed create undoes itself

    assert groups.snap_create(group, "unfenced", allow_unfenced=True)["state"] == "complete"
    with pytest.warns(UserWarning, match="NOT crash-consistent"):
        assert groups.snap_create(group, "nofence", fence=False)["state"] == "complete"
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.snap_create(group, "both", allow_unfenced=True, fence=False)


def test_option_checks(groups, names, make_image):
    group, _ = member_group(groups, names, make_image, count=1)
    for bad in (0, -1, 601, float("nan"), float("inf")):
        with pytest.raises(rbd_cg.InvalidArgument):
            groups.snap_create(group, "s", fence_timeout=bad)
    for bad in (5, 3601, -1):
        with pytest.raises(rbd_cg.InvalidArgument):
            groups.snap_create(group, "s", watch_timeout=bad)
    groups.snap_create(group, "s1", max_snapshots=1, fence_timeout=2.5, watch_timeout=6, skip_quiesce=True)
    with pytest.raises(rbd_cg.ArgumentOutOfRange):
        groups.snap_create(group, "s2", max_snapshots=1)
    assert [s["name"] for s in groups.snap_list(group)] == ["s1"]


def test_explicit_lock_owner_is_read_only_image(groups, names, make_image, ioctx):
    group, images = member_group(groups, names, make_image, count=1)
    with rbd.Image(ioctx, images[0]) as img:
        img.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
        with pytest.raises(rbd_cg.ReadOnlyImage) as e:
            groups.snap_create(group, "s1", fence_timeout=5)
        assert e.value.errno == 30
    assert groups.snap_list(group) == []


def test_the_gil_is_released_during_snap_create(groups, names, make_image, conffile):
    """A quiesce hook in the same process answers while snap_create runs (its callback
    needs the GIL) and a Python thread keeps ticking meanwhile. In a child process: with
    the GIL held, the hook could never answer and the snapshot would hang, not fail."""
    group, images = member_group(groups, names, make_image, count=3)
    try:
        probe = subprocess.run(
            [sys.executable, os.path.join(HERE, "rbd_cg_gil_probe.py"), conffile, POOL, group, images[0]],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=HERE,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("snap_create with an in-process quiesce hook hung: the binding does not release the GIL")
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout.splitlines()[-1])
    assert report.get("state") == "complete", report
    assert report["events"][:2] == ["quiesce", "unquiesce"], report
    assert report["quiesced_in_call"] is True, report
    start, end = report["span"]
    assert end - start >= 0.3, report
    assert report["ticks"] > 20, report
    assert report["max_gap"] < (end - start) / 2, report
    assert [s["name"] for s in groups.snap_list(group)] == ["s1"]


def test_concurrent_calls_from_threads(groups, names, make_image):
    """One Groups object used by several native threads at once (as eventlet.tpool does)."""
    group_names = [names(f"t{n}") for n in range(6)]
    errors = []

    def work(name):
        try:
            groups.create(name)
            groups.add_image(name, make_image(name.removeprefix(names.prefix) + "-img"))
            groups.snap_create(name, "s")
            assert groups.info(name)["snapshots"] == 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in group_names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert set(group_names) <= set(groups.list())
