"""Group mirroring's control plane through the binding, on one cluster: enable, status,
demote (and what a non-primary group refuses), promote, resync, disable. The daemon that
copies a group to a second cluster is tested in the Rust tests; here the group is only ever
the primary side, or a demoted former primary (docs/MIRRORING.md)."""

import errno

import pytest

import rbd_cg
from rbd_cg_testenv import POOL


@pytest.fixture
def make_group(groups, names, make_image):
    """``make_group(journal=True)``: a group of two members, journaled or not; mirroring
    and the journal are disabled afterwards (a demoted group refuses removal, a journaled
    one membership changes), so that the usual cleanup can remove it."""
    made = []

    def make(journal=True, count=2):
        group = names(f"g{len(made)}")
        groups.create(group)
        images = [make_image(f"g{len(made)}i{n}") for n in range(count)]
        for image in images:
            groups.add_image(group, image)
        made.append(group)
        if journal:
            groups.journal_enable(group, object_size=1 << 20, max_size=8 << 20)
        return group, images

    yield make
    for group in made:
        groups.mirror_disable(group)
        if groups.journal_status(group)["enabled"]:
            groups.journal_disable(group)


def test_status_of_a_group_not_mirrored(groups, make_group):
    group, _ = make_group(journal=False)
    status = groups.mirror_status(group)
    assert status["enabled"] is False
    assert (status["state"], status["mode"], status["role"]) == ("disabled", "", "")
    assert status["group"] == f"{POOL}/{group}"
    assert (status["members"], status["peers"], status["demoted_at"]) == ([], [], None)
    # Disabling what is not mirrored changes nothing.
    groups.mirror_disable(group)
    # The role-changing calls need a mirrored group.
    for call in (groups.mirror_demote, groups.mirror_promote, groups.mirror_resync):
        with pytest.raises(rbd_cg.ObjectNotFound):
            call(group)


def test_status_of_a_missing_group(groups, names):
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.mirror_status(names("none"))
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.mirror_enable(names("none"))


def test_journal_mode_enable_and_status(groups, make_group):
    group, images = make_group()
    groups.mirror_enable(group, mode="journal")
    status = groups.mirror_status(group)
    assert status["enabled"] is True
    assert (status["mode"], status["role"], status["state"]) == ("journal", "primary", "primary")
    assert "primary" in status["description"]
    assert status["demoted_at"] is None and status["resync_requested"] is False
    assert (status["primary_position"], status["mirror_position"], status["entries_behind"]) == (0, 0, 0)
    assert status["peers"] == []  # no mirror daemon has registered on its journal
    assert sorted(m["image"] for m in status["members"]) == sorted(images)
    assert all((m["state"], m["progress"]) == ("primary", 100.0) for m in status["members"])
    assert status["last_snapshot"] is None and status["last_snapshot_time"] is None
    assert isinstance(status["seconds_behind"], float)

    # Again with the same mode: no change. The default mode is journal.
    groups.mirror_enable(group, mode="journal")
    groups.mirror_enable(group)
    assert groups.mirror_status(group)["mode"] == "journal"
    # The other mode: the group is mirrored already.
    with pytest.raises(rbd_cg.ObjectExists) as raised:
        groups.mirror_enable(group, mode="snapshot", interval=60)
    assert raised.value.errno == errno.EEXIST
    # Resync is for a copy, not for the primary.
    with pytest.raises(rbd_cg.InvalidArgument) as raised:
        groups.mirror_resync(group)
    assert raised.value.errno == errno.EINVAL
    # Promoting a primary changes nothing.
    groups.mirror_promote(group)
    assert groups.mirror_status(group)["role"] == "primary"


def test_journal_mode_needs_a_journal(groups, make_group):
    group, _ = make_group(journal=False)
    with pytest.raises(rbd_cg.InvalidArgument) as raised:
        groups.mirror_enable(group, mode="journal")
    assert raised.value.errno == errno.EINVAL
    assert "journal" in str(raised.value)
    assert groups.mirror_status(group)["enabled"] is False


def test_bad_arguments(groups, make_group):
    group, _ = make_group(journal=False)
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.mirror_enable(group, mode="image")
    with pytest.raises(rbd_cg.ArgumentOutOfRange):
        groups.mirror_enable(group, mode="snapshot", interval=-1)
    with pytest.raises(rbd_cg.ArgumentOutOfRange):
        groups.mirror_enable(group, mode="snapshot", interval=0)
    with pytest.raises(rbd_cg.ArgumentOutOfRange):
        groups.mirror_enable(group, mode="snapshot", interval=7 * 24 * 3600 + 1)
    assert groups.mirror_status(group)["enabled"] is False


def test_demote_refuses_changes_then_promote(groups, make_group, make_image):
    group, images = make_group()
    groups.snap_create(group, "before")
    groups.mirror_enable(group, mode="journal")
    head = groups.journal_status(group)["head"]

    groups.mirror_demote(group)
    status = groups.mirror_status(group)
    assert (status["mode"], status["role"]) == ("journal", "non-primary")
    assert isinstance(status["demoted_at"], int) and not isinstance(status["demoted_at"], bool)
    # The journal's last entry once everything pending was applied.
    demoted_at = status["demoted_at"]
    assert demoted_at >= head and demoted_at == groups.journal_status(group)["head"]
    # A demoted former primary copies nothing until resync: it says so.
    assert status["state"] == "stopped"
    assert "resync" in status["description"]
    # Demoting again changes nothing.
    groups.mirror_demote(group)
    assert groups.mirror_status(group)["demoted_at"] == demoted_at

    # A non-primary group is read-only: snapshots and membership follow the primary.
    with pytest.raises(rbd_cg.ReadOnlyImage) as raised:
        groups.snap_create(group, "while-demoted")
    assert raised.value.errno == errno.EROFS
    assert [s["name"] for s in groups.snap_list(group)] == ["before"]
    with pytest.raises(rbd_cg.ReadOnlyImage):
        groups.snap_remove(group, "before")
    extra = make_image("extra")
    with pytest.raises(rbd_cg.ReadOnlyImage):
        groups.add_image(group, extra)
    assert sorted(m["name"] for m in groups.list_images(group)) == sorted(images)
    # Mirroring in another mode is refused while it is mirrored at all.
    with pytest.raises(rbd_cg.ObjectExists):
        groups.mirror_enable(group, mode="snapshot")

    # Promoted back (planned: it was demoted, nothing to wait for): writable again.
    groups.mirror_promote(group)
    status = groups.mirror_status(group)
    assert (status["role"], status["state"], status["demoted_at"]) == ("primary", "primary", None)
    snap = groups.snap_create(group, "after")
    assert snap["state"] == "complete" and snap["journal_position"] is not None
    assert [s["name"] for s in groups.snap_list(group)] == ["before", "after"]
    groups.snap_remove(group, "after")
    groups.snap_remove(group, "before")


def test_resync_of_a_demoted_group(groups, make_group):
    group, _ = make_group()
    groups.mirror_enable(group)
    groups.mirror_demote(group)
    assert groups.mirror_status(group)["resync_requested"] is False
    groups.mirror_resync(group)
    status = groups.mirror_status(group)
    assert status["resync_requested"] is True and status["role"] == "non-primary"
    # Asking again changes nothing.
    groups.mirror_resync(group)
    assert groups.mirror_status(group)["resync_requested"] is True
    # Promotion clears the way; the primary refuses resync again.
    groups.mirror_promote(group, force=True)
    assert groups.mirror_status(group)["role"] == "primary"
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.mirror_resync(group)


def test_snapshot_mode(groups, make_group):
    group, images = make_group(journal=False)
    groups.mirror_enable(group, mode="snapshot", interval=60)
    status = groups.mirror_status(group)
    assert (status["enabled"], status["mode"], status["role"], status["state"]) == (
        True,
        "snapshot",
        "primary",
        "primary",
    )
    assert "60 s" in status["description"]
    assert status["peers"] == []
    assert sorted(m["image"] for m in status["members"]) == sorted(images)
    # The same mode again (whatever the interval): no change.
    groups.mirror_enable(group, mode="snapshot", interval=120)
    assert "60 s" in groups.mirror_status(group)["description"]
    # Journal mode on it: it has no journal.
    with pytest.raises(rbd_cg.InvalidArgument):
        groups.mirror_enable(group, mode="journal")

    # Demoted in snapshot mode: the members are fenced (journaled), a final group snapshot
    # is cut, and demoted_at is its sequence number.
    groups.mirror_demote(group)
    status = groups.mirror_status(group)
    assert status["role"] == "non-primary"
    final = [s for s in groups.snap_list(group) if s["name"].startswith("mirror-final-")]
    assert len(final) == 1 and status["demoted_at"] == final[0]["seq"], (status, final)
    assert groups.journal_status(group)["enabled"]
    with pytest.raises(rbd_cg.ReadOnlyImage):
        groups.snap_create(group, "while-demoted")
    # Promoted: primary again, the members given back to librbd (no journal).
    groups.mirror_promote(group)
    assert groups.mirror_status(group)["role"] == "primary"
    assert not groups.journal_status(group)["enabled"]


def test_disable(groups, make_group):
    group, _ = make_group()
    groups.mirror_enable(group, mode="journal")
    groups.mirror_disable(group)
    status = groups.mirror_status(group)
    assert status["enabled"] is False and status["state"] == "disabled"
    # A demoted group can be disabled too, and is writable again afterwards.
    groups.mirror_enable(group, mode="journal")
    groups.mirror_demote(group)
    groups.mirror_disable(group)
    assert groups.mirror_status(group)["enabled"] is False
    groups.snap_create(group, "after-disable")
    groups.snap_remove(group, "after-disable")
    # Once disabled, the other mode may be chosen.
    groups.mirror_enable(group, mode="snapshot", interval=30)
    assert groups.mirror_status(group)["mode"] == "snapshot"
    groups.mirror_disable(group)
    assert groups.mirror_status(group)["enabled"] is False
