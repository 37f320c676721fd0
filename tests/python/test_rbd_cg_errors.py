"""Errors: the exception class follows the errno, errno/strerror/str are the client's."""

import errno
import pickle

import pytest

import rbd_cg
from rbd_cg_testenv import POOL

CLASSES = {
    "ObjectNotFound": [errno.ENOENT],
    "ObjectExists": [errno.EEXIST],
    "ImageBusy": [errno.EBUSY],
    "PermissionError": [errno.EPERM, errno.EACCES],
    "InvalidArgument": [errno.EINVAL],
    "ArgumentOutOfRange": [errno.ERANGE],
    "ReadOnlyImage": [errno.EROFS],
    "Timeout": [errno.ETIMEDOUT],
    "IOError": [errno.EIO],
    "OperationNotSupported": [errno.EOPNOTSUPP],
    "NoSpace": [errno.ENOSPC],
}


def test_hierarchy():
    assert issubclass(rbd_cg.Error, OSError)
    for name in CLASSES:
        cls = getattr(rbd_cg, name)
        assert issubclass(cls, rbd_cg.Error) and cls.__module__ == "rbd_cg"
        assert cls.__doc__
    # the module's PermissionError/IOError shadow nothing outside it
    assert rbd_cg.PermissionError is not PermissionError
    e = rbd_cg.ObjectNotFound(errno.ENOENT, "group rbd/x: (2) No such file or directory")
    assert (e.errno, e.strerror, str(e)) == (2, "group rbd/x: (2) No such file or directory", e.strerror)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is rbd_cg.ObjectNotFound and again.errno == 2 and str(again) == str(e)


def test_enoent(groups, names):
    with pytest.raises(rbd_cg.ObjectNotFound) as e:
        groups.info(names("missing"))
    assert e.value.errno == errno.ENOENT
    assert e.value.args == (errno.ENOENT, str(e.value))
    assert str(e.value) == f"group {POOL}/{names('missing')}: (2) No such file or directory"
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.add_image(names("missing"), "x")


def test_eexist(groups, names):
    groups.create(names("g"))
    with pytest.raises(rbd_cg.ObjectExists) as e:
        groups.create(names("g"))
    assert e.value.errno == errno.EEXIST and isinstance(e.value, OSError)


def test_ebusy_removing_a_group_with_members(groups, names, make_image):
    groups.create(names("g"))
    groups.add_image(names("g"), make_image("a"))
    with pytest.raises(rbd_cg.ImageBusy) as e:
        groups.remove(names("g"))
    assert e.value.errno == errno.EBUSY
    # the hint is part of the message, on its own line
    assert str(e.value).splitlines()[1] == "The group still has images or snapshots; remove them first."


@pytest.mark.parametrize("bad", ["", "a/b", "a@b", "x" * 129, "tab\there", "nul\0"])
def test_einval_bad_names(groups, bad):
    with pytest.raises(rbd_cg.InvalidArgument) as e:
        groups.create(bad)
    assert e.value.errno == errno.EINVAL


def test_einval_bad_specs_and_options(groups, names):
    groups.create(names("g"))
    for spec in ("", "p/", "/x", "a/b/c/d", "img@snap"):
        with pytest.raises(rbd_cg.InvalidArgument):
            groups.add_image(names("g"), spec)
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.clone(names("g"), "s", names("c"), image_names={}, image_name_format="{image}")
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.clone(names("g"), "s", names("c"), clone_format="v3")
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.snap_create(names("g"), "bad/name")


def test_eperm_for_a_read_only_user(conffile, read_only_user, groups, names):
    groups.create(names("g"))
    user, keyring = read_only_user
    with rbd_cg.Cluster(conffile=conffile, rados_id=user, keyring=keyring) as cluster:
        ro = cluster.groups(POOL)
        assert names("g") in ro.list()  # reading is allowed
        assert ro.info(names("g"))["state"] == "ready"
        for change in (
            lambda: ro.create(names("new")),
            lambda: ro.rename(names("g"), names("renamed")),
            lambda: ro.remove(names("g")),
            lambda: ro.snap_create(names("g"), "s"),
        ):
            with pytest.raises(rbd_cg.PermissionError) as e:
                change()
            assert e.value.errno in (errno.EPERM, errno.EACCES)
    assert groups.info(names("g"))["state"] == "ready"


def test_other_errnos_raise_the_base_class(cluster):
    g = cluster.groups(POOL)
    g.close()
    with pytest.raises(rbd_cg.Error) as e:
        g.list()
    assert type(e.value) is rbd_cg.Error and e.value.errno == errno.ENOTCONN


def test_missing_pool_and_class(cluster):
    with pytest.raises(rbd_cg.ObjectNotFound):
        cluster.groups("no-such-pool-rbd-cg")
    with pytest.raises(rbd_cg.InvalidArgument):
        cluster.groups("")
    with pytest.raises(rbd_cg.InvalidArgument):
        cluster.groups("rbd/ns")


def test_a_panic_is_an_exception_not_an_abort():
    panic = getattr(rbd_cg, "_panic_for_tests", None) or rbd_cg.rbd_cg._panic_for_tests
    with pytest.raises(rbd_cg.IOError) as e:
        panic("boom")
    assert e.value.errno == errno.EIO
    assert "panic: boom" in str(e.value)
    # the interpreter and the module carry on
    with pytest.raises(rbd_cg.IOError):
        panic("again")
