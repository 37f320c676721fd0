"""Groups.clone: a new group whose members are RBD clones of a group snapshot."""

import pytest
import rbd

import rbd_cg
from rbd_cg_testenv import BLOCK, POOL, read, write




@pytest.fixture
def snapshotted(groups, names, make_image, ioctx):
    """Group ``names("src")`` with members a (data A) and b (data B), snapshot s1, then
    both overwritten with Z."""
    group = names("src")
    groups.create(group)
    images = [make_image("a"), make_image("b")]
    for image, byte in zip(images, b"AB"):
        groups.add_image(group, image)
        write(ioctx, image, byte)
    snap = groups.snap_create(group, "s1")
    for image in images:
        write(ioctx, image, ord("Z"))
    return group, images, snap


def check_clones(groups, ioctx, clones, new_group, images, snap):
    member_snaps = {i["image_name"]: i["snap_name"] for i in snap["images"]}
    assert sorted(c["source_name"] for c in clones) == sorted(images)
    for c in clones:
        assert set(c) == {
            "source_pool_id", "source_namespace", "source_id", "source_name", "source_snap",
            "pool", "pool_id", "namespace", "id", "name",
        }
        assert c["pool"] == POOL and c["pool_id"] == ioctx.get_pool_id() and c["namespace"] == ""
        assert c["source_snap"] == member_snaps[c["source_name"]]
        with rbd.Image(ioctx, c["name"], read_only=True) as img:
            assert img.id() == c["id"]
            assert img.parent_info() == (POOL, c["source_name"], c["source_snap"])
            spec = img.get_parent_image_spec()
            assert (spec["pool_name"], spec["image_name"], spec["snap_name"]) == (
                POOL, c["source_name"], c["source_snap"])
        # the clone shows the snapshot's data, not what was written after it
        expected = b"A" if c["source_name"] == images[0] else b"B"
        assert read(ioctx, c["name"]) == expected * BLOCK
    members = groups.list_images(new_group)
    assert sorted(m["name"] for m in members) == sorted(c["name"] for c in clones)
    assert all(m["state"] == "attached" for m in members)
    info = groups.info(new_group)
    assert info["state"] == "ready" and info["members"] == len(images) and info["snapshots"] == 0


def test_clone_with_the_default_names(groups, names, ioctx, snapshotted):
    group, images, snap = snapshotted
    new_group = names("copy")
    clones = groups.clone(group, "s1", new_group)
    assert sorted(c["name"] for c in clones) == sorted(f"{new_group}-{image}" for image in images)
    check_clones(groups, ioctx, clones, new_group, images, snap)

    # The clone group is a group like any other: snapshot it, remove it (the clones stay).
    assert groups.snap_create(new_group, "c1")["state"] == "complete"
    groups.remove(new_group, force=True)
    for c in clones:
        assert read(ioctx, c["name"]) in (b"A" * BLOCK, b"B" * BLOCK)


def test_clone_with_explicit_names_and_format(groups, names, ioctx, snapshotted):
    group, images, snap = snapshotted
    wanted = {images[0]: names("x"), f"{POOL}/{images[1]}": names("y")}
    new_group = names("explicit")
    clones = groups.clone(group, "s1", new_group, image_names=wanted, clone_format="v2")
    assert {c["source_name"]: c["name"] for c in clones} == {images[0]: names("x"), images[1]: names("y")}
    check_clones(groups, ioctx, clones, new_group, images, snap)

    patterned = names("pat")
    clones = groups.clone(group, "s1", patterned, image_name_format="{image}-{snap}-{source_group}")
    assert sorted(c["name"] for c in clones) == sorted(f"{image}-s1-{group}" for image in images)
    check_clones(groups, ioctx, clones, patterned, images, snap)


def test_clone_errors(groups, names, snapshotted):
    group, images, _ = snapshotted
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.clone(group, "nope", names("n1"))
    with pytest.raises(rbd_cg.ObjectExists):
        groups.clone(group, "s1", group)
    with pytest.raises(rbd_cg.Error):  # every member must be named
        groups.clone(group, "s1", names("n2"), image_names={images[0]: names("only")})
