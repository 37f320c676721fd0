"""Fast tier: the driver on hand-built Cinder objects, no database, a real cluster.

The volume manager is not involved: the tests call the driver the way the manager does
(same arguments, same objects) and check the model updates it returns and what is on the
cluster (``rbd ls``/``rbd snap ls`` and our CLI).

Without a database ``volume_utils.is_group_a_cg_snapshot_type`` cannot read a group type, so
it is patched to read it from the hand-built objects (group types ``CG_TYPE`` and
``PLAIN_TYPE`` below); every other database access fails the test (``no_database``).
"""

import json

import pytest

from conftest import backend_config, new_id

pytestmark = pytest.mark.fast

CG_TYPE = new_id()     # a group type with consistent_group_snapshot_enabled='<is> True'
PLAIN_TYPE = new_id()  # a group type without it


def _no_database(*args, **kwargs):
    raise AssertionError('the fast tier touched the database')


@pytest.fixture
def no_database(monkeypatch):
    from cinder.volume import volume_utils
    from oslo_db.sqlalchemy import enginefacade
    # Every session and connection of every oslo.db engine starts here.
    factory = enginefacade._AbstractTransactionFactory
    monkeypatch.setattr(factory, '_create_session', _no_database)
    monkeypatch.setattr(factory, '_create_connection', _no_database)
    # The group type lives in the database; here it is the hand-built object's type id.
    monkeypatch.setattr(volume_utils, 'is_group_a_cg_snapshot_type',
                        lambda group_or_snap: group_or_snap['group_type_id'] == CG_TYPE)


@pytest.fixture(scope='module')
def driver(cinder_env, cinder_ceph_conf):
    from cinder import context
    from rbd_cg_cinder.driver import RBDConsistencyGroupDriver
    config = backend_config('rbdcg-fast', cinder_ceph_conf)
    drv = RBDConsistencyGroupDriver(configuration=config, host='fasthost@rbdcg-fast#rbdcg-fast')
    drv.do_setup(context.get_admin_context())
    drv.check_for_setup_error()
    return drv


@pytest.fixture
def ctxt(cinder_env, no_database):
    from cinder import context
    return context.get_admin_context()


@pytest.fixture
def world(ctxt, driver, ceph):
    """Builds Cinder objects and remembers what to clean up."""
    w = World(ctxt, driver, ceph)
    yield w
    w.cleanup()


class World(object):
    def __init__(self, ctxt, driver, ceph):
        self.ctxt, self.driver, self.ceph = ctxt, driver, ceph
        self.volume_names = []
        self.group_names = []

    def group(self, cg=True, **kw):
        from cinder import objects
        fields = dict(context=self.ctxt, id=new_id(), name='g', description=None,
                      status='creating', group_type_id=CG_TYPE if cg else PLAIN_TYPE,
                      volume_type_ids=[], host=self.driver.host, user_id='u', project_id='p',
                      cluster_name=None, availability_zone='nova', group_snapshot_id=None,
                      source_group_id=None)
        fields.update(kw)
        g = objects.Group(**fields)
        g.volume_types = objects.VolumeTypeList(context=self.ctxt, objects=[])
        g.volumes = objects.VolumeList(context=self.ctxt, objects=[])
        self.group_names.append('cinder-group-' + g.id)
        return g

    def volume(self, group=None, size=1, **kw):
        from cinder import objects
        fields = dict(context=self.ctxt, id=new_id(), size=size, status='creating',
                      volume_type_id=None, encryption_key_id=None,
                      group_id=group.id if group is not None else None, _name_id=None,
                      use_quota=True, provider_location=None, host=self.driver.host,
                      snapshot_id=None, source_volid=None)
        fields.update(kw)
        v = objects.Volume(**fields)
        v.volume_type = None
        v.group = group
        if group is not None:
            group.volumes.objects.append(v)
        self.volume_names.append(v.name)
        return v

    def create_volume(self, group=None, **kw):
        v = self.volume(group, **kw)
        self.driver.create_volume(v)
        v.status = 'available'
        return v

    def group_snapshot(self, group):
        from cinder import objects
        gs = objects.GroupSnapshot(context=self.ctxt, id=new_id(), group_id=group.id,
                                   group_type_id=group.group_type_id, status='creating',
                                   user_id='u', project_id='p', name='gs', description=None)
        gs.group = group
        snaps = []
        for v in group.volumes:
            s = objects.Snapshot(context=self.ctxt, id=new_id(), volume_id=v.id,
                                 volume_size=v.size, group_snapshot_id=gs.id,
                                 cgsnapshot_id=None, status='creating',
                                 provider_location=None, volume_type_id=None)
            s.volume = v
            s.group_snapshot = gs
            snaps.append(s)
        gs.snapshots = objects.SnapshotList(context=self.ctxt, objects=snaps)
        return gs, snaps

    def cleanup(self):
        """Removes whatever a (failed) test left: images newest first (clones before their
        parents), then the groups (a member or member snapshot already gone is fine)."""
        images = self.ceph.images()
        for name in reversed(self.volume_names):
            for image in (name + '.deleted', name):
                if image in images:
                    self.ceph.purge_image(image)
        groups = self.ceph.groups()
        for name in self.group_names:
            # `ls` hides unfinished creations (e.g. a clone a test stopped dead).
            if name in groups or self.ceph.group_exists(name):
                self.ceph.cg('rm', '--force', '%s/%s' % (self.ceph.pool, name), check=False)


def apply(objs, updates):
    """Applies model updates ({'id', 'status', ...}) to objects, like the manager does."""
    by_id = {o.id: o for o in objs}
    for update in updates or []:
        update = dict(update)
        by_id[update.pop('id')].update(update)


def test_stats_advertise_consistent_group_snapshots(driver, no_database):
    stats = driver.get_volume_stats(refresh=True)
    assert stats['consistent_group_snapshot_enabled'] is True
    assert stats['backend_state'] == 'up'


def test_group_lifecycle(world, ceph):
    drv, ctxt = world.driver, world.ctxt

    # A group, and three volumes created straight into it (Cinder sets group_id and calls
    # only create_volume).
    group = world.group()
    gname = 'cinder-group-' + group.id
    assert drv.create_group(ctxt, group) == {'status': 'available'}
    assert gname in ceph.groups()
    vols = [world.create_volume(group) for _ in range(3)]
    for v in vols:
        ceph.write(v.name, ('data of %s' % v.id).encode())
    assert ceph.members(gname) == {v.name: 'attached' for v in vols}

    # A crash-consistent group snapshot: one member snapshot per volume.
    gs, snaps = world.group_snapshot(group)
    model, snaps_update = drv.create_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'available'}
    assert sorted(u['id'] for u in snaps_update) == sorted(s.id for s in snaps)
    assert all(u['status'] == 'available' for u in snaps_update)
    apply(snaps, snaps_update)
    info = ceph.group_snap_info(gname, 'cinder-gsnap-' + gs.id)
    assert info['status'] == 'complete'
    member_snap = info['images'][0]['snap_name']
    assert member_snap.startswith('.rbd_cg.')
    for v, s in zip(vols, snaps):
        assert ceph.snaps(v.name) == [member_snap]
        assert json.loads(s.provider_location) == {'rbd_snap': member_snap}
    for v in vols:  # written after the snapshot: the clones below must not see it
        ceph.write(v.name, b'LATER')

    # A group from the group snapshot: members are clones of the member snapshots.
    group2 = world.group(group_snapshot_id=gs.id)
    by_snap = {}
    for s in snaps:
        by_snap[s.id] = world.volume(group2, snapshot_id=s.id)
    vols2 = list(group2.volumes)
    model, vols_update = drv.create_group_from_src(ctxt, group2, vols2, group_snapshot=gs,
                                                   snapshots=snaps)
    assert model == {'status': 'available'}
    assert sorted(u['id'] for u in vols_update) == sorted(v.id for v in vols2)
    assert all(u['status'] == 'available' for u in vols_update)
    gname2 = 'cinder-group-' + group2.id
    assert ceph.members(gname2) == {v.name: 'attached' for v in vols2}
    for s in snaps:
        clone = by_snap[s.id].name
        parent = ceph.parent(clone)
        assert (parent['image'], parent['snapshot']) == (s.volume.name, member_snap)
        assert ceph.read(clone, 64).rstrip(b'\0') == ('data of %s' % s.volume.id).encode()

    # A group from the source group: a temporary crash-consistent snapshot, cloned, gone.
    group3 = world.group(source_group_id=group.id)
    src_of = {}
    for v in vols:
        src_of[world.volume(group3, source_volid=v.id).id] = v
    vols3 = list(group3.volumes)
    model, vols_update = drv.create_group_from_src(ctxt, group3, vols3, source_group=group,
                                                   source_vols=list(vols))
    assert model == {'status': 'available'}
    assert all(u['status'] == 'available' for u in vols_update)
    gname3 = 'cinder-group-' + group3.id
    assert ceph.members(gname3) == {v.name: 'attached' for v in vols3}
    assert list(ceph.group_snaps(gname)) == ['cinder-gsnap-' + gs.id]  # temp snapshot gone
    for v in vols3:
        assert ceph.read(v.name, 5) == b'LATER'
        parent = ceph.parent(v.name)
        if ceph.clone_v2():  # a clone of the temporary snapshot, now in RBD's trash
            assert parent['image'] == src_of[v.id].name, parent
        else:  # flattened: a v1 parent snapshot cannot go while it has children
            assert parent is None, parent
    for v in vols:
        assert ceph.snaps(v.name) == [member_snap]  # no temporary member snapshot left

    # Membership: one volume leaves, a new one (created outside the group) joins.
    outsider = world.create_volume()
    model, add_update, remove_update = drv.update_group(
        ctxt, group, add_volumes=[outsider], remove_volumes=[vols[0]])
    assert model is None
    assert add_update == [{'id': outsider.id}] and remove_update == [{'id': vols[0].id}]
    assert ceph.members(gname) == {vols[1].name: 'attached', vols[2].name: 'attached',
                                   outsider.name: 'attached'}
    assert ceph.backrefs(vols[0].name) == []
    vols[0].group_id = None
    vols[0].group = None
    outsider.group_id = group.id
    group.volumes.objects.remove(vols[0])
    group.volumes.objects.append(outsider)

    # Delete the group snapshot: every member snapshot goes.
    model, snaps_update = drv.delete_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'deleted'}
    assert sorted((u['id'], u['status']) for u in snaps_update) == \
        sorted((s.id, 'deleted') for s in snaps)
    assert ceph.group_snaps(gname) == {}
    for v in vols:
        assert ceph.snaps(v.name) == []

    # Delete everything.
    for g in (group, group2, group3):
        model, vols_update = drv.delete_group(ctxt, g, list(g.volumes))
        assert model == {'status': 'deleted'}
        assert sorted(u['id'] for u in vols_update) == sorted(v.id for v in g.volumes)
        assert all(u['status'] == 'deleted' for u in vols_update)
    drv.delete_volume(vols[0])
    images = ceph.images()
    assert not [n for n in world.volume_names if n in images or n + '.deleted' in images]
    assert not [n for n in world.group_names if n in ceph.groups()]


def test_other_group_types_are_left_to_the_manager(world, ceph):
    drv, ctxt = world.driver, world.ctxt
    group = world.group(cg=False)
    before = ceph.groups()
    with pytest.raises(NotImplementedError):
        drv.create_group(ctxt, group)
    v = world.create_volume(group)  # created into a non-CG group: stays a plain volume
    assert ceph.backrefs(v.name) == []
    gs, snaps = world.group_snapshot(group)
    with pytest.raises(NotImplementedError):
        drv.create_group_snapshot(ctxt, gs, snaps)
    with pytest.raises(NotImplementedError):
        drv.delete_group_snapshot(ctxt, gs, snaps)
    with pytest.raises(NotImplementedError):
        drv.update_group(ctxt, group, add_volumes=[v])
    with pytest.raises(NotImplementedError):
        drv.create_group_from_src(ctxt, world.group(cg=False), [], group_snapshot=gs,
                                  snapshots=snaps)
    with pytest.raises(NotImplementedError):
        drv.delete_group(ctxt, group, [v])
    assert ceph.groups() == before
    drv.delete_volume(v)


def test_volume_from_a_member_snapshot_is_no_member(world, ceph):
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    a, b = world.create_volume(group), world.create_volume(group)
    ceph.write(a.name, b'before')
    gs, snaps = world.group_snapshot(group)
    model, update = drv.create_group_snapshot(ctxt, gs, snaps)
    assert model['status'] == 'available'
    apply(snaps, update)
    ceph.write(a.name, b'after!')

    # A plain volume from the member snapshot of a: a clone of it, in no group.
    clone = world.volume(size=2, snapshot_id=snaps[0].id)
    drv.create_volume_from_snapshot(clone, snaps[0])
    member_snap = json.loads(snaps[0].provider_location)['rbd_snap']
    assert ceph.parent(clone.name)['snapshot'] == member_snap
    assert ceph.read(clone.name, 6) == b'before'
    assert ceph.info(clone.name)['size'] == 2 << 30  # bigger than its source: resized
    assert ceph.backrefs(clone.name) == []
    assert clone.name not in ceph.members('cinder-group-' + group.id)

    # The same, without the recorded provider_location (looked up from the group snapshot).
    snaps[1].provider_location = None
    clone_b = world.volume(snapshot_id=snaps[1].id)
    drv.create_volume_from_snapshot(clone_b, snaps[1])
    assert ceph.parent(clone_b.name)['snapshot'] == member_snap

    # A volume created from a member snapshot *into* a group joins that group.
    other = world.group()
    drv.create_group(ctxt, other)
    joined = world.volume(other, snapshot_id=snaps[0].id)
    drv.create_volume_from_snapshot(joined, snaps[0])
    assert ceph.members('cinder-group-' + other.id) == {joined.name: 'attached'}

    # Revert a member to its snapshot.
    drv.revert_to_snapshot(ctxt, a, snaps[0])
    assert ceph.read(a.name, 6) == b'before'

    # The group snapshot goes although it has clones: v1 clones are flattened first (as
    # RBDDriver does for a snapshot with dependent volumes); v2 clones keep their parent
    # snapshot in RBD's trash.
    model, _update = drv.delete_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'deleted'}
    assert ceph.snaps(a.name) == [] and ceph.snaps(b.name) == []
    assert ceph.read(clone.name, 6) == b'before'
    assert (ceph.parent(clone.name) is not None) == ceph.clone_v2()

    for v in (clone, clone_b):
        drv.delete_volume(v)
    drv.delete_group(ctxt, other, [joined])
    drv.delete_group(ctxt, group, [a, b])
    assert not (set(world.group_names) & ceph.groups())


def test_a_deleted_volume_leaves_its_groups(world, ceph):
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    v = world.create_volume(group)
    keep = world.create_volume(group)
    gname = 'cinder-group-' + group.id
    # Also a member of a group Cinder knows nothing about (an admin's group).
    admin_group = 'admin-' + new_id()
    world.group_names.append(admin_group)
    ceph.cg('create', '%s/%s' % (ceph.pool, admin_group))
    ceph.cg('image', 'add', '%s/%s' % (ceph.pool, admin_group), '%s/%s' % (ceph.pool, v.name))
    assert len(ceph.backrefs(v.name)) == 2
    # While a client has it open, RBDDriver cannot delete it: the memberships come back.
    import os
    import rados
    import rbd
    from cinder import exception
    with rados.Rados(conffile=os.environ['CEPH_CONF']) as cluster:
        with cluster.open_ioctx(ceph.pool) as ioctx:
            with rbd.Image(ioctx, v.name):
                with pytest.raises(exception.VolumeIsBusy):
                    drv.delete_volume(v)
    assert v.name in ceph.images()
    assert ceph.members(gname) == {v.name: 'attached', keep.name: 'attached'}
    assert ceph.members(admin_group) == {v.name: 'attached'}
    drv.delete_volume(v)
    assert v.name not in ceph.images()
    assert ceph.members(gname) == {keep.name: 'attached'}  # no 'missing' member left
    assert ceph.members(admin_group) == {}
    ceph.cg('rm', '%s/%s' % (ceph.pool, admin_group))
    drv.delete_group(ctxt, group, [keep])


def test_retype_and_migration_reconcile_membership(world, ceph):
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    v = world.create_volume(group)
    gname = 'cinder-group-' + group.id
    # Cinder's API refuses to retype or migrate a volume that is in a group (test_manager
    # shows it); should the driver see one whose group_id is gone, its image leaves.
    v.group_id = None
    v.group = None
    drv.retype(ctxt, v, None, {}, {'host': drv.host})
    assert ceph.members(gname) == {}
    assert ceph.backrefs(v.name) == []
    # ... and a volume whose group_id names a CG group joins it (e.g. a migrated image
    # renamed into place).
    v.group_id, v.group = group.id, group
    drv.update_migrated_volume(ctxt, v, v, 'available')
    assert ceph.members(gname) == {v.name: 'attached'}
    drv.delete_group(ctxt, group, [v])


def test_group_snapshot_failure_is_an_error_and_leaves_nothing(world, ceph):
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    vols = [world.create_volume(group) for _ in range(3)]
    ceph.remove_image(vols[1].name)  # behind Cinder's back
    gs, snaps = world.group_snapshot(group)
    model, update = drv.create_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'error'}
    assert sorted((u['id'], u['status']) for u in update) == sorted((s.id, 'error') for s in snaps)
    gname = 'cinder-group-' + group.id
    assert ceph.group_snaps(gname) == {}
    for v in (vols[0], vols[2]):
        assert ceph.snaps(v.name) == []
    model, vols_update = drv.delete_group(ctxt, group, vols)
    assert model == {'status': 'deleted'}, vols_update
    assert gname not in ceph.groups()


def test_update_group_failure_changes_nothing(world, ceph):
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    member = world.create_volume(group)
    good = world.create_volume()
    ghost = world.volume()  # no image behind it
    model, add_update, remove_update = drv.update_group(
        ctxt, group, add_volumes=[good, ghost], remove_volumes=[member])
    assert model == {'status': 'error'}
    assert {u['id']: u.get('status') for u in add_update} == {good.id: None, ghost.id: 'error'}
    # All or nothing: the membership is what Cinder still has.
    assert ceph.members('cinder-group-' + group.id) == {member.name: 'attached'}
    drv.delete_volume(good)
    drv.delete_group(ctxt, group, [member])


def test_legacy_consistency_group_calls(world, ceph):
    """The four legacy calls, with the objects the manager converts groups into."""
    from cinder.objects import cgsnapshot as cgsnapshot_obj
    from cinder.objects import consistencygroup as cg_obj
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    cg = cg_obj.ConsistencyGroup(context=ctxt)
    cg.from_group(group)
    assert drv.create_consistencygroup(ctxt, cg) == {'status': 'available'}
    gname = 'cinder-group-' + group.id
    assert gname in ceph.groups()
    vols = [world.create_volume(group) for _ in range(2)]
    for v in vols:
        v.consistencygroup_id = cg.id
    gs, snaps = world.group_snapshot(group)
    cgsnap = cgsnapshot_obj.CGSnapshot(context=ctxt)
    cgsnap.from_group_snapshot(gs)
    for s in snaps:
        s.cgsnapshot_id = cgsnap.id
    model, update = drv.create_cgsnapshot(ctxt, cgsnap, snaps)
    assert model == {'status': 'available'}
    assert all(u['status'] == 'available' for u in update)
    assert list(ceph.group_snaps(gname)) == ['cinder-gsnap-' + gs.id]
    model, update = drv.delete_cgsnapshot(ctxt, cgsnap, snaps)
    assert model == {'status': 'deleted'}
    assert ceph.group_snaps(gname) == {}
    model, update = drv.delete_consistencygroup(ctxt, cg, vols)
    assert model == {'status': 'deleted'}
    assert gname not in ceph.groups()
    assert not ({v.name for v in vols} & ceph.images())


def test_the_driver_under_eventlet(cinder_ceph_conf, ceph):
    """cinder-volume runs monkey patched: binding calls must not stall the event loop."""
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    env.pop('OS_CINDER_DISABLE_EVENTLET_PATCHING', None)
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, os.path.join(here, 'eventlet_smoke.py'),
                          cinder_ceph_conf], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['monkey_patched'] and not result['threading_mode'], result
    assert result['snapshot'] == 'available' and result['snapshots'] == ['available'], result
    assert result['deleted'] == 'deleted' and result['group_deleted'] == 'deleted', result
    # The ticker green thread ran (every 5 ms) while the snapshot was being cut.
    assert result['ticks_during_snapshot'] >= max(3, result['snapshot_seconds'] / 0.005 / 4), \
        result


def test_multiattach_members_need_allow_unfenced(world, ceph):
    """RBDDriver turns exclusive-lock off for multiattach volumes, so they cannot be fenced:
    a group snapshot fails unless rbd_cg_allow_unfenced (then they are cut unfenced)."""
    from cinder import objects
    from oslo_config import cfg
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    plain = world.create_volume(group)
    shared = world.volume(group)
    shared.volume_type = objects.VolumeType(context=ctxt, id=new_id(), qos_specs_id=None,
                                            extra_specs={'multiattach': '<is> True'})
    update = drv.create_volume(shared)
    assert 'saved_features' in update['provider_location']
    assert 'exclusive-lock' not in ceph.info(shared.name)['features']
    assert ceph.members('cinder-group-' + group.id) == {
        plain.name: 'attached', shared.name: 'attached'}
    gs, snaps = world.group_snapshot(group)
    model, updates = drv.create_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'error'}
    assert {u['status'] for u in updates} == {'error'}
    assert ceph.group_snaps('cinder-group-' + group.id) == {}

    cfg.CONF.set_override('rbd_cg_allow_unfenced', True, group='rbdcg-fast')
    try:
        gs2, snaps2 = world.group_snapshot(group)
        model, updates = drv.create_group_snapshot(ctxt, gs2, snaps2)
    finally:
        cfg.CONF.clear_override('rbd_cg_allow_unfenced', group='rbdcg-fast')
    assert model == {'status': 'available'}
    assert {u['status'] for u in updates} == {'available'}
    drv.delete_group_snapshot(ctxt, gs2, snaps2)
    drv.delete_group(ctxt, group, [plain, shared])


@pytest.mark.parametrize('step', [1, 5])
def test_deleting_a_group_snapshot_a_crash_left_creating(world, ceph, step):
    """cinder-volume died while cutting a group snapshot (here rbd-cg, stopped dead after
    snap-create step 1, the record, or 5, every member snapshot cut and released): the
    snapshot is 'creating' on the cluster, 'creating' or 'error' in Cinder; deleting it
    undoes the interrupted create (repair). After step 5 that takes ~10 s: librbd's
    notifications wait for the dead client's watches to time out (FENCING.md section 6)."""
    import os
    import subprocess
    from conftest import rbd_cg_bin
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    vols = [world.create_volume(group) for _ in range(2)]
    gs, snaps = world.group_snapshot(group)
    gname = 'cinder-group-' + group.id
    crashed = subprocess.run(
        [rbd_cg_bin(), 'snap', 'create', '%s/%s@cinder-gsnap-%s' % (ceph.pool, gname, gs.id)],
        env=dict(os.environ, RBD_CG_FAULT='snap-create:%d' % step), capture_output=True)
    assert crashed.returncode == 86, crashed.stderr
    assert ceph.group_snaps(gname)['cinder-gsnap-' + gs.id]['status'] == 'creating'
    model, updates = drv.delete_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'deleted'}
    assert {u['status'] for u in updates} == {'deleted'}
    assert ceph.group_snaps(gname) == {}
    assert all(ceph.snaps(v.name) == [] for v in vols)
    drv.delete_group(ctxt, group, vols)


def test_a_lost_binding_connection_is_made_anew(world, ceph):
    """One cached binding Cluster per driver; a call that finds it gone (ENOTCONN, or
    ESHUTDOWN when blocklisted) reconnects once and goes on."""
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    for groups in list(drv._cg_groups.values()):
        groups.close()  # as if the connection had died under it
    v = world.create_volume(group)
    assert ceph.members('cinder-group-' + group.id) == {v.name: 'attached'}
    drv.delete_group(ctxt, group, [v])
    assert 'cinder-group-' + group.id not in ceph.groups()


def _crash(ceph, fault, *args):
    """Runs rbd-cg stopped dead after a step (RBD_CG_FAULT, exit status 86): a crash."""
    import os
    import subprocess
    from conftest import rbd_cg_bin
    crashed = subprocess.run([rbd_cg_bin(), *args], capture_output=True, text=True,
                             env=dict(os.environ, RBD_CG_FAULT=fault))
    assert crashed.returncode == 86, crashed.stderr


@pytest.mark.parametrize('step', [4, 6])
def test_deleting_a_group_a_crash_left_mid_clone(world, ceph, step):
    """cinder-volume died inside create_group_from_src (here rbd-cg clone, stopped dead
    after clone step 4, every clone a member with the plan recorded, or 6, the plan
    dropped): the new group is 'creating' on the cluster, which refuses to let members
    leave (EBUSY). Deleting the group in Cinder removes it first (rm --force undoes the
    clone) and then the volumes; a volume deleted on its own tolerates the group too."""
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    source = world.create_volume(group)
    gs, snaps = world.group_snapshot(group)
    model, update = drv.create_group_snapshot(ctxt, gs, snaps)
    assert model['status'] == 'available'
    apply(snaps, update)
    group2 = world.group(group_snapshot_id=gs.id)
    new = world.volume(group2, snapshot_id=snaps[0].id)
    gname, gname2 = 'cinder-group-' + group.id, 'cinder-group-' + group2.id
    # One member: rbd-cg names clones by a pattern, here the new volume's image name.
    _crash(ceph, 'clone:%d' % step, 'clone',
           '%s/%s@cinder-gsnap-%s' % (ceph.pool, gname, gs.id), '%s/%s' % (ceph.pool, gname2),
           '--image-name-format', new.name)
    assert ceph.group_info(gname2)['state'] == 'creating'
    assert ceph.members(gname2) == {new.name: 'attached'}
    assert ceph.parent(new.name)['image'] == source.name
    if step == 6:
        # The clone is a plain member now (plan dropped): deleting the volume alone works
        # too, leaving the member record to the group's removal.
        drv.delete_volume(new)
        assert new.name not in ceph.images()
    model, vols_update = drv.delete_group(ctxt, group2, [new])
    assert model == {'status': 'deleted'}
    assert vols_update == [{'id': new.id, 'status': 'deleted'}]
    assert new.name not in ceph.images()
    assert not ceph.group_exists(gname2)
    # The source is untouched.
    assert ceph.members(gname) == {source.name: 'attached'}
    assert ceph.group_snaps(gname)['cinder-gsnap-' + gs.id]['status'] == 'complete'
    model, _u = drv.delete_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'deleted'}
    model, _u = drv.delete_group(ctxt, group, [source])
    assert model == {'status': 'deleted'}
    assert not ({source.name, new.name} & ceph.images())


def test_interrupted_joins_do_not_block_group_snapshots(world, ceph):
    """An image add records the member 'adding' before it links the image; a member left
    'adding' refuses every group snapshot (EBUSY). A join that fails half-way leaves again;
    and a group snapshot that finds such a member (a volume service died mid-join)
    repairs the group once and goes on."""
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    gname = 'cinder-group-' + group.id
    member = world.create_volume(group)

    # A link that fails after the member was recorded: a back-reference to this group
    # that cannot be decoded (EIO from the class) on the outsider's header.
    outsider = world.create_volume()
    key = 'rbd_cg.group.%016x_%s_' % (ceph.pool_id(), ceph.group_info(gname)['id'])
    from conftest import run
    run('rados', '-p', ceph.pool, 'setomapval',
        'rbd_header.' + ceph.info(outsider.name)['id'], key, 'garbage')
    model, add_update, _r = drv.update_group(ctxt, group, add_volumes=[outsider])
    assert model == {'status': 'error'}
    assert add_update == [{'id': outsider.id, 'status': 'error'}]
    assert ceph.members(gname) == {member.name: 'attached'}  # no 'adding' left behind
    assert ceph.backrefs(outsider.name) == []

    # Interrupted adds (rbd-cg stopped dead after image-add step 1): a volume of the group
    # whose image exists (completed by the repair) and an image deleted since (dropped).
    late = world.create_volume()
    _crash(ceph, 'image-add:1', 'image', 'add', '%s/%s' % (ceph.pool, gname),
           '%s/%s' % (ceph.pool, late.name))
    late.group_id, late.group = group.id, group
    group.volumes.objects.append(late)
    gone = 'gone-' + new_id()
    ceph.create_image(gone)
    _crash(ceph, 'image-add:1', 'image', 'add', '%s/%s' % (ceph.pool, gname),
           '%s/%s' % (ceph.pool, gone))
    ceph.remove_image(gone)
    assert sorted(ceph.members(gname).values()) == ['adding', 'adding', 'attached']
    gs, snaps = world.group_snapshot(group)
    model, update = drv.create_group_snapshot(ctxt, gs, snaps)
    assert model == {'status': 'available'}
    assert {u['status'] for u in update} == {'available'} and len(update) == 2
    assert ceph.members(gname) == {member.name: 'attached', late.name: 'attached'}
    drv.delete_group_snapshot(ctxt, gs, snaps)
    drv.delete_volume(outsider)
    model, _u = drv.delete_group(ctxt, group, [member, late])
    assert model == {'status': 'deleted'}


def test_a_group_snapshot_with_members_cinder_does_not_know_is_an_error(world, ceph):
    """The backend's group snapshot must hold exactly Cinder's volumes (a group from it
    would otherwise fail): members are told apart by pool, namespace and name, so an image
    of the same name in another namespace is a stranger too."""
    from conftest import run
    drv, ctxt = world.driver, world.ctxt
    group = world.group()
    drv.create_group(ctxt, group)
    gname = 'cinder-group-' + group.id
    vol = world.create_volume(group)
    namespace = 'ns-' + new_id()[:8]
    twin = '%s/%s/%s' % (ceph.pool, namespace, vol.name)
    extra = 'extra-' + new_id()
    run('rbd', 'namespace', 'create', '%s/%s' % (ceph.pool, namespace))
    try:
        run('rbd', 'create', '--size', '8M', twin)
        ceph.create_image(extra)
        for stranger in (twin, '%s/%s' % (ceph.pool, extra)):
            ceph.cg('image', 'add', '%s/%s' % (ceph.pool, gname), stranger)
            gs, snaps = world.group_snapshot(group)
            model, update = drv.create_group_snapshot(ctxt, gs, snaps)
            assert model == {'status': 'error'}, stranger
            assert update == [{'id': snaps[0].id, 'status': 'error'}]
            assert ceph.group_snaps(gname) == {}  # removed again
            assert ceph.snaps(vol.name) == []
            ceph.cg('image', 'rm', '%s/%s' % (ceph.pool, gname), stranger)
        gs, snaps = world.group_snapshot(group)
        model, update = drv.create_group_snapshot(ctxt, gs, snaps)
        assert model == {'status': 'available'}
        drv.delete_group_snapshot(ctxt, gs, snaps)
        model, _u = drv.delete_group(ctxt, group, [vol])
        assert model == {'status': 'deleted'}
    finally:  # the group first: its snapshots keep member snapshots on the twin
        ceph.cg('rm', '--force', '%s/%s' % (ceph.pool, gname), check=False)
        run('rbd', 'rm', '--no-progress', twin, check=False)
        run('rbd', 'rm', '--no-progress', '%s/%s' % (ceph.pool, extra), check=False)
        run('rbd', 'namespace', 'remove', '%s/%s' % (ceph.pool, namespace), check=False)
