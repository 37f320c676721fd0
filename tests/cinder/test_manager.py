"""Full tier: Cinder's real VolumeManager (in-memory sqlite) drives the driver.

The records are made in the database as Cinder's API leaves them; the manager's own entry
points (what the RPC server calls) run the flows, with their status handling and
fallbacks; the tests check the statuses Cinder ends with and what is on the cluster.
"""

import pytest

from conftest import new_id

pytestmark = [pytest.mark.full, pytest.mark.usefixtures('clean_pool')]


def gname(group):
    return 'cinder-group-' + group.id


def test_group_flows_end_with_the_statuses_cinder_expects(cinder, ceph):
    from cinder import objects
    c = cinder
    group = c.create_group()
    assert group.status == 'available'
    assert gname(group) in ceph.groups()

    # Volumes created straight into the group (volume.group_id, only create_volume).
    vols = [c.create_volume(group) for _ in range(3)]
    assert [v.status for v in vols] == ['available'] * 3
    assert ceph.members(gname(group)) == {v.name: 'attached' for v in vols}
    for v in vols:
        ceph.write(v.name, v.id.encode())

    gs = c.create_group_snapshot(group)
    assert gs.status == 'available'
    snaps = c.snapshots(gs)
    assert [s.status for s in snaps] == ['available'] * 3
    info = ceph.group_snap_info(gname(group), 'cinder-gsnap-' + gs.id)
    assert info['status'] == 'complete' and len(info['images']) == 3

    g2 = c.create_group_from_group_snapshot(gs)
    assert g2.status == 'available'
    vols2 = c.volumes(g2)
    assert [v.status for v in vols2] == ['available'] * 3
    assert ceph.members(gname(g2)) == {v.name: 'attached' for v in vols2}
    source_of = {s.id: s.volume_id for s in snaps}
    for v in vols2:
        assert ceph.read(v.name, 36) == source_of[v.snapshot_id].encode()

    g3 = c.create_group_from_group(group)
    assert g3.status == 'available'
    vols3 = c.volumes(g3)
    assert [v.status for v in vols3] == ['available'] * 3
    assert ceph.members(gname(g3)) == {v.name: 'attached' for v in vols3}
    for v in vols3:
        assert ceph.read(v.name, 36) == v.source_volid.encode()
    assert list(ceph.group_snaps(gname(group))) == ['cinder-gsnap-' + gs.id]

    # Membership through update_group: one leaves, a volume made outside joins.
    outsider = c.create_volume()
    group.status = 'updating'
    group.save()
    c.manager.update_group(c.ctxt, group, add_volumes=outsider.id, remove_volumes=vols[0].id)
    group.refresh()
    assert group.status == 'available'
    vols[0].refresh()
    outsider.refresh()
    assert vols[0].group_id is None and outsider.group_id == group.id
    assert ceph.members(gname(group)) == {vols[1].name: 'attached', vols[2].name: 'attached',
                                          outsider.name: 'attached'}

    c.manager.delete_group_snapshot(c.ctxt, gs)
    assert c.deleted(objects.GroupSnapshot, gs.id).status == 'deleted'
    assert {c.deleted(objects.Snapshot, s.id).status for s in snaps} == {'deleted'}
    assert ceph.group_snaps(gname(group)) == {}
    assert all(ceph.snaps(v.name) == [] for v in vols)

    for g in (group, g2, g3):
        members = c.volumes(g)
        c.manager.delete_group(c.ctxt, g)
        assert c.deleted(objects.Group, g.id).status == 'deleted'
        assert {c.deleted(objects.Volume, v.id).status for v in members} == {'deleted'}
        assert gname(g) not in ceph.groups()
    vols[0].status = 'deleting'
    vols[0].save()
    c.manager.delete_volume(c.ctxt, vols[0])
    left = ceph.images() & {v.name for v in vols + vols2 + vols3 + [outsider]}
    assert not left


def test_a_member_removed_behind_cinders_back_fails_the_group_snapshot(cinder, ceph):
    from cinder import exception
    from cinder import objects
    c = cinder
    group = c.create_group()
    vols = [c.create_volume(group) for _ in range(3)]
    ceph.remove_image(vols[1].name)
    gs = c.new_group_snapshot(group)
    with pytest.raises(exception.VolumeDriverException):
        c.manager.create_group_snapshot(c.ctxt, gs)
    gs.refresh()
    assert gs.status == 'error'
    assert {s.status for s in c.snapshots(gs)} == {'error'}
    # The backend kept nothing of it.
    assert ceph.group_snaps(gname(group)) == {}
    assert ceph.snaps(vols[0].name) == [] and ceph.snaps(vols[2].name) == []
    # Cinder can clean up: delete the errored group snapshot, then the group.
    c.manager.delete_group_snapshot(c.ctxt, gs)
    assert c.deleted(objects.GroupSnapshot, gs.id).status == 'deleted'
    c.manager.delete_group(c.ctxt, group)
    assert c.deleted(objects.Group, group.id).status == 'deleted'
    assert gname(group) not in ceph.groups()
    assert not ceph.images() & {v.name for v in vols}


def test_a_failed_group_from_snapshot_is_an_error_not_a_success(cinder, ceph):
    """Cinder 29's manager sets every new volume 'available' after create_group_from_src
    returns, whatever the driver reported: only an exception makes them 'error'."""
    from cinder import exception
    c = cinder
    group = c.create_group()
    vols = [c.create_volume(group) for _ in range(2)]
    gs = c.create_group_snapshot(group)
    # The backend group snapshot vanishes behind Cinder's back.
    ceph.cg('snap', 'rm', '%s/%s@cinder-gsnap-%s' % (ceph.pool, gname(group), gs.id))
    g2 = c.new_group(group_snapshot_id=gs.id)
    for s in c.snapshots(gs):
        c.new_volume(g2, snapshot_id=s.id)
    with pytest.raises(exception.VolumeBackendAPIException):
        c.manager.create_group_from_src(c.ctxt, g2, group_snapshot=gs)
    g2.refresh()
    assert g2.status == 'error'
    new_vols = c.volumes(g2)
    assert [v.status for v in new_vols] == ['error'] * 2
    assert gname(g2) not in ceph.groups()
    assert not ceph.images() & {v.name for v in new_vols}
    # Clean up through Cinder.
    c.manager.delete_group(c.ctxt, g2)
    c.manager.delete_group_snapshot(c.ctxt, gs)
    c.manager.delete_group(c.ctxt, group)
    assert not ceph.images() & {v.name for v in vols}


def test_membership_follows_the_volume_flows(cinder, ceph):
    c = cinder
    group = c.create_group()
    a = c.create_volume(group)
    gs = c.create_group_snapshot(group)
    snap = c.snapshots(gs)[0]
    member_snap = ceph.group_snap_info(gname(group), 'cinder-gsnap-' + gs.id)['images'][0]
    # A plain volume from a member snapshot: a clone of it, in no group.
    from_snap = c.create_volume(snapshot_id=snap.id)
    assert from_snap.status == 'available'
    assert ceph.parent(from_snap.name)['snapshot'] == member_snap['snap_name']
    assert ceph.backrefs(from_snap.name) == []
    # A clone of a member, created into the group: joins it.
    cloned_in = c.create_volume(group, source_volid=a.id)
    assert cloned_in.status == 'available'
    assert ceph.members(gname(group)) == {a.name: 'attached', cloned_in.name: 'attached'}
    # A volume of a non-consistent group type: generic group, plain volume.
    plain = c.create_group(c.plain_type)
    assert plain.status == 'available' and gname(plain) not in ceph.groups()
    in_plain = c.create_volume(plain)
    assert in_plain.status == 'available' and ceph.backrefs(in_plain.name) == []
    plain_gs = c.create_group_snapshot(plain)  # the manager's generic path
    assert plain_gs.status == 'available'
    assert ceph.snaps(in_plain.name) == ['snapshot-' + c.snapshots(plain_gs)[0].id]

    c.manager.delete_group_snapshot(c.ctxt, plain_gs)
    c.manager.delete_group(c.ctxt, plain)
    from_snap.status = 'deleting'
    from_snap.save()
    c.manager.delete_volume(c.ctxt, from_snap)
    c.manager.delete_group_snapshot(c.ctxt, gs)
    c.manager.delete_group(c.ctxt, group)
    assert not ceph.images() & {v.name for v in (a, from_snap, cloned_in, in_plain)}
    assert gname(group) not in ceph.groups()


def test_cinder_refuses_to_delete_retype_or_migrate_a_group_member(cinder, ceph):
    """A volume leaves a group through update_group only: the API refuses the rest."""
    from cinder import exception
    from cinder import objects
    from cinder.volume import api as volume_api
    from oslo_utils import timeutils
    c = cinder
    api = volume_api.API()
    group = c.create_group()
    v = c.create_volume(group)
    with pytest.raises(exception.InvalidVolume, match='belong to a group'):
        api.delete(c.ctxt, v)
    other_type = objects.VolumeType(context=c.ctxt, name='other-' + new_id()[:8],
                                    extra_specs={}, is_public=True, projects=[],
                                    description='')
    other_type.create()
    with pytest.raises(exception.InvalidVolume, match='consistency group'):
        api.retype(c.ctxt, v, other_type.id)
    service = objects.Service(context=c.ctxt, host='otherhost@' + c.backend,
                              binary='cinder-volume', topic='cinder-volume', disabled=False,
                              report_count=1, updated_at=timeutils.utcnow())
    service.create()
    try:
        with pytest.raises(exception.InvalidVolume, match='be part of a group'):
            api.migrate_volume(c.ctxt, v, 'otherhost@%s#%s' % (c.backend, c.backend), None,
                               False, False)
    finally:
        service.destroy()
    v.refresh()
    assert v.status == 'available' and v.group_id == group.id
    assert ceph.members(gname(group)) == {v.name: 'attached'}
    c.manager.delete_group(c.ctxt, group)
    assert gname(group) not in ceph.groups()


def test_the_default_cgsnapshot_type_takes_the_group_path(cinder, ceph, monkeypatch):
    """Consistency groups (the /consistencygroups API) are groups of the default cgsnapshot
    type, which is a consistent-snapshot type: the manager calls create_group & co., which
    handle it, so the legacy driver methods are not reached."""
    from cinder import objects
    c = cinder
    legacy = []
    for name in ('create_consistencygroup', 'delete_consistencygroup', 'create_cgsnapshot',
                 'delete_cgsnapshot', 'update_consistencygroup',
                 'create_consistencygroup_from_src'):
        monkeypatch.setattr(c.driver, name,
                            lambda *a, _name=name, **k: legacy.append(_name))
    default_type = c.default_cgsnapshot_type()
    assert default_type['group_specs'] == {'consistent_group_snapshot_enabled': '<is> True'}
    group = c.create_group(default_type)
    assert group.status == 'available' and gname(group) in ceph.groups()
    vols = [c.create_volume(group) for _ in range(2)]
    assert ceph.members(gname(group)) == {v.name: 'attached' for v in vols}
    gs = c.create_group_snapshot(group)
    assert gs.status == 'available'
    assert list(ceph.group_snaps(gname(group))) == ['cinder-gsnap-' + gs.id]
    c.manager.delete_group_snapshot(c.ctxt, gs)
    c.manager.delete_group(c.ctxt, group)
    assert c.deleted(objects.Group, group.id).status == 'deleted'
    assert legacy == []
    assert gname(group) not in ceph.groups()


def test_the_legacy_calls_through_the_manager(cinder_legacy, ceph):
    """If create_group & co. raise NotImplementedError for the default cgsnapshot type (as
    drivers without group support do), the manager converts to ConsistencyGroup/CGSnapshot
    objects and calls the four legacy methods: they work the same."""
    from cinder import objects
    c = cinder_legacy
    group = c.create_group(c.default_cgsnapshot_type())
    assert group.status == 'available' and gname(group) in ceph.groups()
    vols = [c.create_volume(group) for _ in range(2)]
    gs = c.create_group_snapshot(group)
    assert gs.status == 'available'
    assert {s.status for s in c.snapshots(gs)} == {'available'}
    assert list(ceph.group_snaps(gname(group))) == ['cinder-gsnap-' + gs.id]
    c.manager.delete_group_snapshot(c.ctxt, gs)
    assert c.deleted(objects.GroupSnapshot, gs.id).status == 'deleted'
    assert ceph.group_snaps(gname(group)) == {}
    c.manager.delete_group(c.ctxt, group)
    assert c.deleted(objects.Group, group.id).status == 'deleted'
    assert gname(group) not in ceph.groups()
    assert not ceph.images() & {v.name for v in vols}
    assert c.driver.legacy_calls == ['create_consistencygroup', 'create_cgsnapshot',
                                     'delete_cgsnapshot', 'delete_consistencygroup']
