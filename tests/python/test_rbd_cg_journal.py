"""The group journal through the binding: enable, status, snapshots cut at a journal
position, disable; stock python3-rbd writers are fenced in between and get the members back
afterwards. (The data path itself, `rbd-cg nbd serve`, is tested in tests/journal.rs.)"""

import pytest
import rbd

import rbd_cg


def journaled_group(groups, names, make_image, count=2):
    group = names("g")
    groups.create(group)
    images = [make_image(f"i{n}") for n in range(count)]
    for image in images:
        groups.add_image(group, image)
    return group, images


def test_enable_status_snapshots_disable(groups, names, make_image, ioctx):
    group, images = journaled_group(groups, names, make_image)
    status = groups.journal_status(group)
    assert status["enabled"] is False and status["state"] == "disabled"

    groups.journal_enable(group, object_size=1 << 20, max_size=8 << 20)
    try:
        status = groups.journal_status(group)
        assert status["enabled"] is True and status["state"] == "enabled"
        assert (status["segment_size"], status["max_bytes"]) == (1 << 20, 8 << 20)
        assert (status["head"], status["applied"], status["bytes"], status["writer"]) == (0, 0, 0, None)
        assert [(c["name"], c["position"], c["state"]) for c in status["consumers"]] == [("local", 0, "connected")]
        assert sorted(m["tag"] for m in status["members"]) == [1, 2]
        assert sorted(m["image"].rsplit("/", 1)[-1] for m in status["members"]) == sorted(images)

        # Stock writers are fenced; readers are not.
        with rbd.Image(ioctx, images[0]) as image:
            with pytest.raises(rbd.ReadOnlyImage):
                image.write(b"x" * 512, 0)
            assert image.read(0, 512) == b"\0" * 512
        # Membership is frozen while journaled.
        with pytest.raises(rbd_cg.ImageBusy):
            groups.remove_image(group, images[1])
        with pytest.raises(rbd_cg.ObjectExists):
            groups.journal_enable(group)

        # Snapshots are cut by a writer at one journal position.
        snap = groups.snap_create(group, "s1")
        assert snap["state"] == "complete" and snap["journal_position"] == 0
        assert [s["journal_position"] for s in groups.snap_list(group)] == [0]
        groups.snap_remove(group, "s1")
        assert groups.snap_list(group) == []
    finally:
        groups.journal_disable(group)

    status = groups.journal_status(group)
    assert status["enabled"] is False
    with rbd.Image(ioctx, images[0]) as image:
        image.write(b"y" * 512, 0)
    snap = groups.snap_create(group, "s2")
    assert snap["journal_position"] is None


def test_journal_of_a_missing_group(groups, names):
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.journal_status(names("none"))
    with pytest.raises(rbd_cg.ObjectNotFound):
        groups.journal_enable(names("none"))
