"""The full tier's Cinder: the real VolumeManager with this driver, on in-memory sqlite.

As cinder-facts.md measured: sqlite://, a fake messaging transport, db_sync; the manager is
built without init_host (the driver is set up by hand). Objects are created in the database
the way the API would leave them, then the manager's own RPC entry points are called.
"""

from conftest import backend_config, new_id

BACKEND = 'rbdcg-full'
HOST = 'fullhost'
CG_SPECS = {'consistent_group_snapshot_enabled': '<is> True'}

_ENV = {}


def setup_cinder(conf):
    """Database and messaging for the process (once)."""
    if _ENV:
        return
    from oslo_messaging import conffixture
    from cinder import rpc
    from cinder.db import migration
    conf.set_override('connection', 'sqlite://', group='database')
    conf.set_override('host', HOST)
    conf.set_override('enabled_backends', [BACKEND, 'rbdcg-legacy'])
    fixture = conffixture.ConfFixture(conf)
    fixture.setUp()
    fixture.transport_url = 'fake:/'
    conf.set_override('transport_url', 'fake:/')
    rpc.init(conf)
    migration.db_sync()
    # Some manager flows (e.g. delete_volume) take coordination locks: a file backend.
    from cinder import coordination
    import tempfile
    conf.set_override('backend_url', 'file://' + tempfile.mkdtemp(prefix='rbd-cg-coord-'),
                      group='coordination')
    coordination.COORDINATOR.start()
    _ENV['fixture'] = fixture


class Cinder(object):
    """A VolumeManager of backend ``rbdcg-full`` and helpers to make Cinder records."""

    def __init__(self, conf, ceph_conf,
                 driver_class='rbd_cg_cinder.driver.RBDConsistencyGroupDriver',
                 backend=BACKEND):
        from cinder import context
        from cinder.volume import manager as volume_manager
        setup_cinder(conf)
        backend_config(backend, ceph_conf)
        self.backend = backend
        self.host = '%s@%s' % (HOST, backend)
        self.pool_host = '%s#%s' % (self.host, backend)
        self.ctxt = context.RequestContext(user_id='user', project_id='project', is_admin=True)
        self.manager = volume_manager.VolumeManager(
            volume_driver=driver_class, service_name=backend, host=self.host)
        self.driver = self.manager.driver
        self.driver.do_setup(self.ctxt)
        self.driver.check_for_setup_error()
        self.driver.set_initialized()
        self.manager.stats = {'allocated_capacity_gb': 0, 'pools': {}}
        self.volume_type = self._volume_type()
        self.cg_type = self._group_type(CG_SPECS)
        self.plain_type = self._group_type({})

    # -------------------------------------------------------------- records

    def _volume_type(self):
        from cinder import objects
        vt = objects.VolumeType(context=self.ctxt, name='rbdcg-' + new_id()[:8],
                                extra_specs={'volume_backend_name': self.backend},
                                is_public=True, projects=[], description='')
        vt.create()
        return vt

    def _group_type(self, specs):
        from cinder.volume import group_types
        return group_types.create(self.ctxt, 'gt-' + new_id()[:8], specs)

    def default_cgsnapshot_type(self):
        from cinder.volume import group_types
        return group_types.get_default_cgsnapshot_type()

    def new_group(self, group_type=None, **kw):
        from cinder import objects
        group_type = group_type or self.cg_type
        g = objects.Group(context=self.ctxt, name='g', description='', status='creating',
                          group_type_id=group_type['id'], volume_type_ids=[self.volume_type.id],
                          host=self.pool_host, user_id='user', project_id='project',
                          availability_zone='nova', **kw)
        g.create()
        return g

    def new_volume(self, group=None, size=1, **kw):
        from cinder import objects
        v = objects.Volume(context=self.ctxt, size=size, status='creating',
                           attach_status='detached', host=self.pool_host,
                           volume_type_id=self.volume_type.id, user_id='user',
                           project_id='project', availability_zone='nova',
                           group_id=group.id if group is not None else None, **kw)
        v.create()
        return v

    def new_group_snapshot(self, group):
        from cinder import objects
        gs = objects.GroupSnapshot(context=self.ctxt, group_id=group.id, name='gs',
                                   description='', status='creating',
                                   group_type_id=group.group_type_id, user_id='user',
                                   project_id='project')
        gs.create()
        for v in objects.VolumeList.get_all_by_generic_group(self.ctxt, group.id):
            s = objects.Snapshot(context=self.ctxt, volume_id=v.id, volume_size=v.size,
                                 group_snapshot_id=gs.id, status='creating', user_id='user',
                                 project_id='project', volume_type_id=v.volume_type_id,
                                 display_name='s')
            s.create()
        return gs

    # -------------------------------------------------------------- flows

    def create_group(self, group_type=None):
        g = self.new_group(group_type)
        self.manager.create_group(self.ctxt, g)
        g.refresh()
        return g

    def create_volume(self, group=None, **kw):
        v = self.new_volume(group, **kw)
        self.manager.create_volume(self.ctxt, v)
        v.refresh()
        return v

    def create_group_snapshot(self, group):
        gs = self.new_group_snapshot(group)
        self.manager.create_group_snapshot(self.ctxt, gs)
        gs.refresh()
        return gs

    def snapshots(self, group_snapshot):
        from cinder import objects
        return list(objects.SnapshotList.get_all_for_group_snapshot(self.ctxt,
                                                                    group_snapshot.id))

    def volumes(self, group):
        from cinder import objects
        return list(objects.VolumeList.get_all_by_generic_group(self.ctxt, group.id))

    def create_group_from_group_snapshot(self, group_snapshot):
        source = self.group(group_snapshot.group_id)
        g = self.new_group(self.type_of(source), group_snapshot_id=group_snapshot.id)
        for s in self.snapshots(group_snapshot):
            self.new_volume(g, size=s.volume_size, snapshot_id=s.id)
        self.manager.create_group_from_src(self.ctxt, g, group_snapshot=group_snapshot)
        g.refresh()
        return g

    def create_group_from_group(self, source):
        g = self.new_group(self.type_of(source), source_group_id=source.id)
        for v in self.volumes(source):
            self.new_volume(g, size=v.size, source_volid=v.id)
        self.manager.create_group_from_src(self.ctxt, g, source_group=source)
        g.refresh()
        return g

    def group(self, group_id):
        from cinder import objects
        return objects.Group.get_by_id(self.ctxt, group_id)

    def type_of(self, group):
        return {'id': group.group_type_id}

    def deleted(self, cls, record_id):
        """The record as the database keeps it after destroy()."""
        ctxt = self.ctxt.elevated(read_deleted='yes')
        return cls.get_by_id(ctxt, record_id)
