"""python3-rbd's group API in rbd_cg (``rbd_cg.RBD``, ``rbd_cg.Group``): every test runs
twice on the same cluster, once against stock ``rbd.RBD``/``rbd.Group`` (librbd's own
groups) and once against ours, and expects the same results, dict keys and exception
types. A program written for ``rbd.Group`` switches by changing its import.

Where ours is deliberately different (an image in two groups, names stock's library takes
but its CLI cannot address) is tested separately, at the end.
"""

import pytest
import rbd

import rbd_cg
from rbd_cg_testenv import POOL, read, write


@pytest.fixture(params=["stock", "rbd_cg"])
def api(request):
    """The module whose ``RBD`` and ``Group`` a test uses."""
    return rbd if request.param == "stock" else rbd_cg


@pytest.fixture
def group_names(api, ioctx, names):
    """``group_names("g")`` -> a fresh group name, removed afterwards through ``api``."""
    made = []

    def make(name):
        made.append(names(name))
        return made[-1]

    yield make
    for name in made:
        api.RBD().group_remove(ioctx, name)


def test_groups_are_created_listed_renamed_and_removed(api, ioctx, group_names):
    g, h, other = group_names("g"), group_names("h"), group_names("other")
    api.RBD().group_create(ioctx, g)
    api.RBD().group_create(ioctx, other)
    with pytest.raises(rbd.ObjectExists) as e:
        api.RBD().group_create(ioctx, g)
    assert e.value.errno == 17
    with pytest.raises(rbd.InvalidArgument):
        api.RBD().group_create(ioctx, "")
    listed = api.RBD().group_list(ioctx)
    assert g in listed and other in listed and listed == sorted(listed)
    with pytest.raises(rbd.ImageNotFound):
        api.RBD().group_rename(ioctx, h, group_names("x"))
    with pytest.raises(rbd.ImageExists):
        api.RBD().group_rename(ioctx, g, other)
    with pytest.raises(rbd.InvalidArgument):
        api.RBD().group_rename(ioctx, g, "")
    api.RBD().group_rename(ioctx, g, h)
    assert h in api.RBD().group_list(ioctx) and g not in api.RBD().group_list(ioctx)
    assert api.RBD().group_remove(ioctx, h) is None
    assert api.RBD().group_remove(ioctx, h) is None, "removing a missing group is fine"
    assert h not in api.RBD().group_list(ioctx)


def test_members_are_added_listed_and_removed(api, ioctx, group_names, make_image):
    a, b = make_image("a"), make_image("b")
    missing = api.Group(ioctx, group_names("nosuch"))
    assert list(missing.list_images()) == [] and list(missing.list_snaps()) == []
    for call in (lambda: missing.add_image(ioctx, a), lambda: missing.remove_image(ioctx, a)):
        with pytest.raises(rbd.ObjectNotFound):
            call()
    name = group_names("g")
    api.RBD().group_create(ioctx, name)
    group = api.Group(ioctx, name)
    assert group.add_image(ioctx, a) is None
    assert group.add_image(ioctx, a) is None, "adding a member again is fine"
    group.add_image(ioctx, b)
    with pytest.raises(rbd.ObjectNotFound):
        group.add_image(ioctx, a + "-nope")
    pool_id = ioctx.get_pool_id()
    listed = sorted(group.list_images(), key=lambda m: m["name"])
    assert listed == [{"name": a, "pool": pool_id, "state": 0}, {"name": b, "pool": pool_id, "state": 0}]
    assert group.remove_image(ioctx, b) is None
    assert group.remove_image(ioctx, b) is None, "removing a non-member is fine"
    with pytest.raises(rbd.ObjectNotFound):
        group.remove_image(ioctx, a + "-nope")
    assert list(group.list_images()) == [{"name": a, "pool": pool_id, "state": 0}]


def test_snapshots_are_created_listed_renamed_rolled_back_and_removed(api, ioctx, group_names, make_image):
    a = make_image("a")
    name = group_names("g")
    api.RBD().group_create(ioctx, name)
    group = api.Group(ioctx, name)
    with pytest.raises(rbd.ObjectNotFound):
        api.Group(ioctx, group_names("nosuch")).create_snap("s")
    group.create_snap("empty")  # a group without members can be snapshotted
    group.remove_snap("empty")
    group.add_image(ioctx, a)
    write(ioctx, a, 1)
    assert group.create_snap("s1") is None
    write(ioctx, a, 2)
    group.create_snap("s2", rbd.RBD_SNAP_CREATE_SKIP_QUIESCE)
    with pytest.raises(rbd.ObjectExists):
        group.create_snap("s1")
    with pytest.raises(rbd.InvalidArgument):
        group.create_snap("")
    # (Stock lists them in the order of its random snapshot ids, ours in creation order.)
    listed = sorted(group.list_snaps(), key=lambda s: s["name"])
    assert listed == [{"name": "s1", "state": 1}, {"name": "s2", "state": 1}]
    assert rbd.RBD_GROUP_SNAP_STATE_COMPLETE == api.RBD_GROUP_SNAP_STATE_COMPLETE == 1
    with pytest.raises(rbd.ObjectNotFound):
        group.rename_snap("nosuch", "x")
    with pytest.raises(rbd.ObjectExists):
        group.rename_snap("s1", "s2")
    group.rename_snap("s1", "first")
    group.rollback_to_snap("first")
    assert read(ioctx, a)[0] == 1
    with pytest.raises(rbd.ObjectNotFound):
        group.rollback_to_snap("nosuch")
    with pytest.raises(rbd.ObjectNotFound):
        group.remove_snap("nosuch")
    group.remove_snap("first")
    assert [s["name"] for s in group.list_snaps()] == ["s2"]
    # The member snapshot is out of plain sight, and out of reach of a by-name removal.
    with rbd.Image(ioctx, a) as image:
        member = [s for s in image.list_snaps() if s["namespace"] == rbd.RBD_SNAP_NAMESPACE_TYPE_GROUP]
        assert len(member) == 1
        with pytest.raises(rbd.ImageNotFound):
            image.remove_snap(member[0]["name"])


def test_removing_a_group_removes_its_snapshots_and_members(api, ioctx, group_names, make_image):
    a = make_image("a")
    name = group_names("g")
    api.RBD().group_create(ioctx, name)
    group = api.Group(ioctx, name)
    group.add_image(ioctx, a)
    group.create_snap("s")
    with pytest.raises(rbd.ImageHasSnapshots):
        rbd.RBD().remove(ioctx, a)  # stock rbd rm refuses an image with member snapshots
    api.RBD().group_remove(ioctx, name)
    assert name not in api.RBD().group_list(ioctx)
    with rbd.Image(ioctx, a, read_only=True) as image:
        assert list(image.list_snaps()) == []
    rbd.RBD().remove(ioctx, a)


def test_where_ours_differs_on_purpose(ioctx, group_names, make_image):
    """An image may be in several groups (stock: one); names follow rbd-cg's rules."""
    a = make_image("a")
    one, two = group_names("one"), group_names("two")
    for name in (one, two):
        rbd_cg.RBD().group_create(ioctx, name)
        rbd_cg.Group(ioctx, name).add_image(ioctx, a)
    assert [m["name"] for m in list(rbd_cg.Group(ioctx, two).list_images())] == [a]
    with pytest.raises(rbd.InvalidArgument):
        rbd_cg.RBD().group_create(ioctx, "a/b")
    # Both kinds of group live side by side in one pool.
    assert POOL == ioctx.get_pool_name()
