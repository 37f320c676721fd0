"""RBD volume driver with crash-consistent consistency groups (the ``rbd_cg`` RADOS class).

Everything Cinder's own RBD driver does stays as it is (this class extends it); on top:

* a Cinder group whose group type has ``consistent_group_snapshot_enabled='<is> True'`` is a
  group ``cinder-group-<group id>`` of the ``rbd_cg`` class in ``rbd_pool``; its volumes
  (images ``volume-<id>``) are the members;
* a Cinder group snapshot is a crash-consistent group snapshot ``cinder-gsnap-<id>``: one RBD
  snapshot per member (``.rbd_cg.<pool>_<group id>_<snap id>``, in cls_rbd's group snapshot
  namespace, protected, like stock ``rbd group snap create``'s), cut while every member's
  writers are fenced through the exclusive-lock protocol. Each Cinder snapshot of the group
  snapshot maps to its volume's member snapshot (recorded in its ``provider_location``);
  RBDDriver's by-name calls on it (clone, revert) run while the binding exposes it in the
  user namespace (``_exposed_member_snap``);
* other group types raise ``NotImplementedError``, so Cinder's volume manager serves them with
  its generic path (one snapshot after another, as for the stock RBD driver).

Membership follows Cinder's own flows, not only the group calls: a volume created into a group
(``volume.group_id`` set, only ``create_volume``/``create_volume_from_snapshot``/
``create_cloned_volume``/``clone_image`` are called) joins it; a deleted volume leaves every
group it was in (found through the back-references the class keeps on the image header);
retype and migration reconcile the image's membership with ``volume.group_id``.

Blocking calls of the binding go through ``eventlet.tpool`` under eventlet (the binding
releases the GIL and its objects are thread-safe), like RBDDriver's own librbd calls.
See docs/CINDER.md.
"""

import contextlib
import errno
import json
import threading

from eventlet import tpool
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils

from cinder import exception
from cinder.i18n import _
from cinder import interface
from cinder.objects import fields
from cinder import utils
from cinder.volume import configuration
from cinder.volume.drivers import rbd as rbd_driver
from cinder.volume import volume_utils

try:
    import rbd_cg
except ImportError:  # reported by check_for_setup_error
    rbd_cg = None

LOG = logging.getLogger(__name__)

RBD_CG_OPTS = [
    cfg.FloatOpt('rbd_cg_fence_timeout',
                 default=10.0, min=0.1, max=600.0,
                 help='Seconds a group snapshot may take to fence (become the '
                      'exclusive-lock owner of) every member before it fails. '
                      'Writers on the members pause, never fail, meanwhile.'),
    cfg.BoolOpt('rbd_cg_allow_unfenced',
                default=False,
                help='Snapshot members that cannot be fenced (no exclusive-lock '
                     'feature, e.g. multiattach volumes) without fencing them. '
                     'Such members are NOT crash-consistent with the others. '
                     'When False, a group snapshot of a group with such a '
                     'member fails.'),
    cfg.StrOpt('rbd_cg_clone_format',
               default='auto', choices=['auto', 'v1', 'v2'],
               help="RBD clone format for groups created from a group "
                    "snapshot or a source group: 'auto' (v2 when the "
                    "cluster requires Mimic or newer clients, else v1, "
                    "librbd's rule), 'v1' or 'v2'."),
]

CONF = cfg.CONF
CONF.register_opts(RBD_CG_OPTS, group=configuration.SHARED_CONF_GROUP)

GROUP_PREFIX = 'cinder-group-'
GROUP_SNAP_PREFIX = 'cinder-gsnap-'
# Temporary group snapshot of a source group while a new group is cloned from it.
CLONE_SNAP_PREFIX = 'cinder-clone-'
# librados errors after which the connection is made anew (once): not connected,
# blocklisted (EBLOCKLISTED is ESHUTDOWN).
_RECONNECT_ERRNOS = (errno.ENOTCONN, errno.ESHUTDOWN)


def group_name(group_id):
    """The rbd_cg group of Cinder group (or consistency group) ``group_id``."""
    return GROUP_PREFIX + group_id


def group_snap_name(group_snapshot_id):
    """The rbd_cg group snapshot of Cinder group snapshot (or cgsnapshot) ``group_snapshot_id``."""
    return GROUP_SNAP_PREFIX + group_snapshot_id


class _MemberSnapshot(object):
    """A Cinder snapshot seen through RBDDriver's eyes, named as its member snapshot.

    RBDDriver's snapshot paths (create_volume_from_snapshot, revert_to_snapshot) use
    ``snapshot.name`` as the RBD snapshot's name; a snapshot of a group snapshot lives under
    the group snapshot's member snapshot name instead. Everything else is the snapshot's own.
    """

    def __init__(self, snapshot, rbd_snap_name):
        self._snapshot = snapshot
        self.name = rbd_snap_name

    def __getattr__(self, attr):
        return getattr(self._snapshot, attr)

    def __getitem__(self, key):
        if key == 'name':
            return self.name
        return self._snapshot[key]


@interface.volumedriver
class RBDConsistencyGroupDriver(rbd_driver.RBDDriver):
    """RBD volume driver with crash-consistent consistency groups (rbd_cg).

    Version history:

    .. code-block:: none

        1.0.0 - groups, group snapshots, groups from a group snapshot or a
                source group, on the rbd_cg RADOS class (RBDDriver 1.3.0)
    """

    VERSION = '1.0.0'
    CI_WIKI_NAME = 'rbd_cg'

    def __init__(self, *args, **kwargs):
        super(RBDConsistencyGroupDriver, self).__init__(*args, **kwargs)
        self.configuration.append_config_values(RBD_CG_OPTS)
        self._cg_lock = threading.Lock()
        self._cg_key = None
        self._cg_cluster = None
        self._cg_groups = {}

    @classmethod
    def get_driver_options(cls):
        return super(RBDConsistencyGroupDriver, cls).get_driver_options() + RBD_CG_OPTS

    # ------------------------------------------------------------------ setup, stats

    def check_for_setup_error(self):
        super(RBDConsistencyGroupDriver, self).check_for_setup_error()
        if rbd_cg is None:
            msg = _('The rbd_cg Python module (the binding of rbd_cg_client) is not '
                    'installed; install its wheel next to cinder.')
            raise exception.VolumeBackendAPIException(data=msg)
        try:
            # Opening the pool's groups checks that the OSDs run a compatible rbd_cg class.
            self._groups()
        except rbd_cg.Error as e:
            msg = (_('rbd_cg is not usable on pool %(pool)s: %(err)s') %
                   {'pool': self.configuration.rbd_pool, 'err': e})
            raise exception.VolumeBackendAPIException(data=msg)

    def _update_volume_stats(self):
        super(RBDConsistencyGroupDriver, self)._update_volume_stats()
        self._stats['consistent_group_snapshot_enabled'] = True
        self._stats['driver_version'] = self.VERSION

    # ------------------------------------------------------------------ the binding

    @staticmethod
    def _blocking(fn, *args, **kwargs):
        """Runs a blocking call off the event loop (a native thread) under eventlet."""
        if utils.concurrency_mode_threading():
            return fn(*args, **kwargs)
        return tpool.execute(fn, *args, **kwargs)

    def _connect_cg(self):
        """A binding Cluster with RBDDriver's connection settings (the active target)."""
        name, conf, user, _secret = self._get_config_tuple()
        options = {}
        timeout = self.configuration.rados_connect_timeout
        if timeout is not None and timeout >= 0:
            for key in ('rados_osd_op_timeout', 'rados_mon_op_timeout',
                        'client_mount_timeout'):
                options[key] = str(timeout)
        return self._blocking(rbd_cg.Cluster, conffile=conf or None,
                              rados_id=user or None, cluster_name=name or None,
                              conf=options or None)

    def _groups(self, pool=None, namespace=''):
        """The (cached) binding Groups of ``pool`` (default rbd_pool) and ``namespace``."""
        pool = pool or self.configuration.rbd_pool
        key = self._get_config_tuple()[:3]
        with self._cg_lock:
            if self._cg_key != key:
                self._drop_cg_connection_locked()
            if self._cg_cluster is None:
                self._cg_cluster = self._connect_cg()
                self._cg_key = key
            groups = self._cg_groups.get((pool, namespace))
            if groups is None:
                groups = self._blocking(self._cg_cluster.groups, pool, namespace)
                self._cg_groups[(pool, namespace)] = groups
            return groups

    def _drop_cg_connection_locked(self):
        for groups in self._cg_groups.values():
            try:
                groups.close()
            except Exception:
                pass
        self._cg_groups = {}
        if self._cg_cluster is not None:
            try:
                self._cg_cluster.close()
            except Exception:
                pass
        self._cg_cluster = None
        self._cg_key = None

    def _cg(self, method, *args, **kwargs):
        """Calls ``Groups.<method>`` of rbd_pool; reconnects once after a lost connection."""
        pool = kwargs.pop('_pool', None)
        namespace = kwargs.pop('_namespace', '')
        for attempt in (1, 2):
            groups = self._groups(pool, namespace)
            try:
                return self._blocking(getattr(groups, method), *args, **kwargs)
            except rbd_cg.Error as e:
                if attempt == 1 and e.errno in _RECONNECT_ERRNOS:
                    LOG.warning('rbd_cg connection lost (%s); reconnecting.', e)
                    with self._cg_lock:
                        self._drop_cg_connection_locked()
                    continue
                raise

    def _snap_create(self, group, snap):
        """Cuts group snapshot ``group@snap``. If the group refuses (EBUSY) because a
        membership change was interrupted (a member left 'adding' or 'removing', e.g. by a
        join that failed half-way or a volume service that died), the group is repaired
        once and the snapshot tried once more."""
        try:
            return self._snap_create_once(group, snap)
        except rbd_cg.ImageBusy as e:
            if not self._repair_interrupted_membership(group, e):
                raise
        return self._snap_create_once(group, snap)

    def _snap_create_once(self, group, snap):
        return self._cg('snap_create', group, snap,
                        fence_timeout=self.configuration.rbd_cg_fence_timeout,
                        allow_unfenced=self.configuration.rbd_cg_allow_unfenced)

    def _repair_interrupted_membership(self, group, err):
        """Repairs ``group`` if (and only if) interrupted membership changes are all that
        is wrong with it; returns whether it did. ``repair`` also undoes 'creating'
        snapshots and completes interrupted rollbacks -- a 'creating' snapshot may be
        another service's snapshot in progress -- so when its dry run finds anything about
        snapshots the group is left alone (an administrator's ``rbd-cg repair``)."""
        stuck = ['%s (%s)' % (m['name'] or m['id'], m['state'])
                 for m in self._cg('list_images', group)
                 if m['state'] in ('adding', 'removing')]
        if not stuck:
            return False
        findings = self._cg('repair', group, check_only=True)['findings']
        other = [f for f in findings if 'snapshot' in f or 'rollback' in f]
        if other:
            LOG.warning('Group %(group)s has interrupted membership changes (%(stuck)s) '
                        'but also %(other)s; not repairing it here.',
                        {'group': group, 'stuck': ', '.join(stuck), 'other': other})
            return False
        LOG.warning('Group snapshot of %(group)s refused (%(err)s): interrupted membership '
                    'changes (%(stuck)s); repairing the group and trying once more.',
                    {'group': group, 'err': err, 'stuck': ', '.join(stuck)})
        report = self._cg('repair', group)
        LOG.info('Repaired group %(group)s: %(findings)s',
                 {'group': group, 'findings': '; '.join(report['findings'])})
        return True

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _is_cg_type(group_or_snapshot):
        # Through the module attribute, so tests without a database can patch it.
        return volume_utils.is_group_a_cg_snapshot_type(group_or_snapshot)

    def _backend_error(self, what, err):
        msg = _('%(what)s: %(err)s') % {'what': what, 'err': err}
        LOG.error(msg)
        return exception.VolumeBackendAPIException(data=msg)

    def _create_backend_group(self, name):
        try:
            self._cg('create', name)
        except rbd_cg.ObjectExists:
            # A rerun (e.g. after the volume service died mid-way): finish what is left.
            info = self._cg('info', name)
            if info['state'] != 'ready':
                LOG.warning('Group %(name)s is %(state)s; repairing it.',
                            {'name': name, 'state': info['state']})
                self._cg('repair', name)

    def _remove_backend_group(self, name):
        """Removes group ``name`` (its members and any leftover snapshots first)."""
        try:
            self._cg('remove', name, force=True)
        except rbd_cg.ObjectNotFound:
            LOG.info('Group %s is already gone.', name)

    def _join(self, name, image_name):
        """Adds image ``image_name`` of rbd_pool to group ``name``. A failed add leaves no
        membership behind: the add records the member 'adding' before it links the image,
        and a link that fails (other than the image vanishing, which the add undoes
        itself) would leave that record, which refuses every later group snapshot
        (EBUSY). So on failure the image leaves again (by its id when it is gone by then)."""
        image_id = self._image_id(image_name)
        try:
            self._cg('add_image', name, image_name)
        except rbd_cg.ObjectExists:
            LOG.debug('%(image)s is already a member of %(group)s.',
                      {'image': image_name, 'group': name})
        except Exception:
            with excutils.save_and_reraise_exception():
                self._undo_join(name, image_name, image_id)

    def _undo_join(self, name, image_name, image_id):
        try:
            if image_id is not None:
                self._cg('remove_image', name, image_id=image_id,
                         image_pool=self.configuration.rbd_pool)
            else:
                self._cg('remove_image', name, image_name)
            LOG.info('%(image)s left %(group)s again after a failed join.',
                     {'image': image_name, 'group': name})
        except rbd_cg.ObjectNotFound:
            pass  # nothing was recorded (or the group is gone)
        except Exception:
            LOG.exception('%(image)s could not leave %(group)s after a failed join; the '
                          'next group snapshot repairs the group.',
                          {'image': image_name, 'group': name})

    def _image_id(self, image_name):
        """The id of image ``image_name`` of rbd_pool, None if there is no such image."""
        try:
            with rbd_driver.RBDVolumeProxy(self, image_name, read_only=True) as image:
                return image.id()
        except self.rbd.ImageNotFound:
            return None

    def _leave(self, name, image_name):
        try:
            self._cg('remove_image', name, image_name)
        except rbd_cg.ObjectNotFound:
            LOG.debug('%(image)s is not a member of %(group)s (or either is gone).',
                      {'image': image_name, 'group': name})

    def _wanted_group(self, volume):
        """The rbd_cg group ``volume`` belongs in: that of its Cinder group when that is a
        consistent-snapshot group, else None."""
        if not volume.get('group_id', None):
            return None
        if not self._is_cg_type(volume.group):
            return None
        return group_name(volume.group_id)

    def _join_wanted_group(self, volume):
        """Called after a volume was created: a volume created into a consistent-snapshot
        group joins its rbd_cg group. On failure the image leaves the group again (``_join``),
        the new image is removed and the creation fails (the volume ends 'error', never a
        silent non-member)."""
        name = self._wanted_group(volume)
        if name is None:
            return
        try:
            self._join(name, volume.name)
        except Exception as e:
            with excutils.save_and_reraise_exception(reraise=False):
                LOG.error('Volume %(vol)s could not join group %(group)s: %(err)s',
                          {'vol': volume.id, 'group': name, 'err': e})
                try:
                    super(RBDConsistencyGroupDriver, self).delete_volume(volume)
                except Exception:
                    LOG.exception('Removing image %s again failed.', volume.name)
            raise self._backend_error(
                _('Volume %(vol)s could not join group %(group)s') %
                {'vol': volume.id, 'group': name}, e)

    def _memberships(self, image_name):
        """The rbd_cg groups image ``image_name`` of rbd_pool is a member of: a list of
        (pool, namespace, group name, image id), from ``Groups.groups_of_image``."""
        try:
            groups = self._cg('groups_of_image', image_name)
        except rbd_cg.ObjectNotFound:
            return []
        if not groups:
            return []
        with rbd_driver.RADOSClient(self) as client:
            try:
                with rbd_driver.RBDVolumeProxy(self, image_name, read_only=True,
                                               client=client.cluster,
                                               ioctx=client.ioctx) as image:
                    image_id = image.id()
            except self.rbd.ImageNotFound:
                return []
        memberships = []
        for group in groups:
            if group['name'] is None:
                LOG.warning('%(image)s refers to group id %(id)s in %(pool)s/%(ns)s, '
                            'which has no name (anymore).',
                            {'image': image_name, 'id': group['group_id'],
                             'pool': group['pool'], 'ns': group['namespace']})
                continue
            memberships.append((group['pool'], group['namespace'], group['name'], image_id))
        return memberships

    def _reconcile_membership(self, volume, join=True):
        """Makes the rbd_cg memberships of ``volume``'s image follow ``volume.group_id``:
        leaves every other ``cinder-group-*`` group, joins the wanted one (with ``join``)."""
        wanted = self._wanted_group(volume)
        pool = self.configuration.rbd_pool
        have = set()
        for m_pool, m_ns, name, _image_id in self._memberships(volume.name):
            if (m_pool, m_ns) != (pool, '') or not name.startswith(GROUP_PREFIX):
                continue
            if name == wanted:
                have.add(name)
                continue
            LOG.info('Volume %(vol)s leaves group %(group)s.',
                     {'vol': volume.id, 'group': name})
            self._leave(name, volume.name)
        if join and wanted and wanted not in have:
            LOG.info('Volume %(vol)s joins group %(group)s.',
                     {'vol': volume.id, 'group': wanted})
            self._join(wanted, volume.name)

    def _member_snap_name(self, snapshot):
        """The RBD snapshot of a snapshot that is part of a group snapshot (or cgsnapshot),
        else None."""
        group_snapshot_id = (snapshot.get('group_snapshot_id', None) or
                             snapshot.get('cgsnapshot_id', None))
        if not group_snapshot_id:
            return None
        location = snapshot.get('provider_location', None)
        if location:
            try:
                return json.loads(location)['rbd_snap']
            except (ValueError, KeyError, TypeError):
                pass
        # Not recorded (e.g. created by an older version): ask the group snapshot.
        if snapshot.get('group_snapshot_id', None):
            group_id = snapshot.group_snapshot.group_id
        else:
            group_id = snapshot.cgsnapshot.consistencygroup_id
        info = self._cg('snap_info', group_name(group_id), group_snap_name(group_snapshot_id))
        for image in info['images']:
            if (image['pool'], image['namespace'], image['image_name']) == (
                    self.configuration.rbd_pool, '', snapshot.volume_name):
                return image['snap_name']
        raise exception.SnapshotNotFound(snapshot_id=snapshot.id)

    def _member_of(self, snapshot):
        """(group, group snapshot) of a snapshot that is part of a group snapshot (or
        cgsnapshot), else None."""
        group_snapshot_id = (snapshot.get('group_snapshot_id', None) or
                             snapshot.get('cgsnapshot_id', None))
        if not group_snapshot_id:
            return None
        if snapshot.get('group_snapshot_id', None):
            group_id = snapshot.group_snapshot.group_id
        else:
            group_id = snapshot.cgsnapshot.consistencygroup_id
        return group_name(group_id), group_snap_name(group_snapshot_id)

    @contextlib.contextmanager
    def _exposed_member_snap(self, snapshot):
        """Yields the name librbd's by-name calls (clone, rollback) know a member snapshot
        by, or None for an ordinary snapshot. Member snapshots live in cls_rbd's group
        namespace, out of reach of by-name calls (and of ``rbd snap rm``): the binding
        exposes it in the user namespace for the block and hides it again afterwards (one
        a crash leaves exposed, ``rbd-cg repair`` hides). One made by release 0.1.0 is an
        ordinary user snapshot and used as it is."""
        if self._member_snap_name(snapshot) is None:
            yield None
            return
        group, snap = self._member_of(snapshot)
        spec = '%s/%s' % (self.configuration.rbd_pool, snapshot.volume_name)
        name = self._cg('expose_member_snapshot', group, snap, spec)
        try:
            yield name
        finally:
            try:
                self._cg('hide_member_snapshot', group, snap, spec)
            except Exception:
                LOG.exception('Could not hide member snapshot %(snap)s of %(vol)s again; '
                              '`rbd-cg repair %(group)s` will.',
                              {'snap': name, 'vol': snapshot.volume_name, 'group': group})

    def _protect(self, image_name, snap_name):
        """Protects a member snapshot for a v1 clone (our snapshot removal unprotects)."""
        with rbd_driver.RBDVolumeProxy(self, image_name) as image:
            if not image.is_protected_snap(snap_name):
                image.protect_snap(snap_name)

    def _is_clone_v2(self, image_name):
        with rbd_driver.RBDVolumeProxy(self, image_name, read_only=True) as image:
            try:
                return bool(image.op_features() &
                            self.rbd.RBD_OPERATION_FEATURE_CLONE_CHILD)
            except Exception:
                return False

    # ------------------------------------------------------------------ groups

    def create_group(self, context, group):
        """Creates group ``cinder-group-<id>`` for a consistent-snapshot group type."""
        if not self._is_cg_type(group):
            raise NotImplementedError()
        return self._create_group(group.id)

    def _create_group(self, group_id):
        name = group_name(group_id)
        try:
            self._create_backend_group(name)
        except rbd_cg.Error as e:
            raise self._backend_error(_('Creating group %s failed') % name, e)
        LOG.info('Created rbd_cg group %s.', name)
        return {'status': fields.GroupStatus.AVAILABLE}

    def delete_group(self, context, group, volumes):
        """Deletes the group's volumes, then the rbd_cg group."""
        if not self._is_cg_type(group):
            raise NotImplementedError()
        return self._delete_group(group.id, volumes)

    def _delete_group(self, group_id, volumes):
        name = group_name(group_id)
        # A group an interrupted operation left unfinished -- above all a group whose
        # create_group_from_src died mid-clone (or whose undo failed): it is 'creating',
        # its clones may be members, and remove_image refuses (EBUSY) on it, so no volume
        # could leave it. Remove it first: rm --force undoes a recorded clone plan (drops
        # the members, removes the clones it made) or drops the members and finishes
        # the removal. The volumes' images are then plain images, or already gone.
        try:
            state = self._group_state(name)
        except Exception as e:
            return self._delete_group_failed(name, volumes, e)
        if state not in (None, 'ready'):
            LOG.warning('Group %(group)s is %(state)s (an operation on it was interrupted); '
                        'removing it before its volumes.', {'group': name, 'state': state})
            try:
                self._remove_backend_group(name)
            except Exception as e:
                return self._delete_group_failed(name, volumes, e)
        volumes_update = []
        failed = False
        for volume in volumes:
            try:
                self.delete_volume(volume)
                volumes_update.append({'id': volume.id, 'status': 'deleted'})
            except Exception:
                LOG.exception('Deleting volume %(vol)s of group %(group)s failed.',
                              {'vol': volume.id, 'group': name})
                volumes_update.append({'id': volume.id, 'status': 'error'})
                failed = True
        if not failed:
            try:
                self._remove_backend_group(name)
            except rbd_cg.Error as e:
                LOG.error('Removing group %(group)s failed: %(err)s',
                          {'group': name, 'err': e})
                failed = True
        status = fields.GroupStatus.ERROR if failed else fields.GroupStatus.DELETED
        return {'status': status}, volumes_update

    def _delete_group_failed(self, name, volumes, err):
        """Nothing was deleted: the group and every volume 'error' (kept for a retry)."""
        LOG.error('Deleting group %(group)s failed: %(err)s', {'group': name, 'err': err})
        return ({'status': fields.GroupStatus.ERROR},
                [{'id': v.id, 'status': 'error'} for v in volumes])

    def update_group(self, context, group, add_volumes=None, remove_volumes=None):
        """Adds and removes members; all or nothing (a failure undoes the rest)."""
        if not self._is_cg_type(group):
            raise NotImplementedError()
        return self._update_group(group.id, add_volumes or [], remove_volumes or [])

    def _update_group(self, group_id, add_volumes, remove_volumes):
        name = group_name(group_id)
        added, add_update, add_failed = self._apply_to_each(
            name, add_volumes, self._join, 'Adding volume %(vol)s to group %(group)s')
        removed, remove_update, remove_failed = self._apply_to_each(
            name, remove_volumes, self._leave, 'Removing volume %(vol)s from group %(group)s')
        if not (add_failed or remove_failed):
            return None, add_update, remove_update
        # Cinder keeps the old membership on failure: so does the backend.
        for volume in added:
            try:
                self._leave(name, volume.name)
            except Exception:
                LOG.exception('Undoing the add of %s failed.', volume.id)
        for volume in removed:
            try:
                self._join(name, volume.name)
            except Exception:
                LOG.exception('Undoing the removal of %s failed.', volume.id)
        return {'status': fields.GroupStatus.ERROR}, add_update, remove_update

    @staticmethod
    def _apply_to_each(name, volumes, action, what):
        """``action(name, volume.name)`` for each volume: the volumes it worked for, one
        model update per volume ('error' where it failed), and whether any failed."""
        done, updates, failed = [], [], False
        for volume in volumes:
            try:
                action(name, volume.name)
                done.append(volume)
                updates.append({'id': volume.id})
            except Exception as e:
                LOG.error(what + ' failed: %(err)s', {'vol': volume.id, 'group': name, 'err': e})
                updates.append({'id': volume.id, 'status': 'error'})
                failed = True
        return done, updates, failed

    # ------------------------------------------------------------------ group snapshots

    def create_group_snapshot(self, context, group_snapshot, snapshots):
        """Takes crash-consistent group snapshot ``cinder-gsnap-<id>``."""
        if not self._is_cg_type(group_snapshot):
            raise NotImplementedError()
        return self._create_group_snapshot(group_snapshot.group_id, group_snapshot.id,
                                           snapshots)

    def _create_group_snapshot(self, group_id, group_snapshot_id, snapshots):
        name = group_name(group_id)
        snap = group_snap_name(group_snapshot_id)
        error = fields.SnapshotStatus.ERROR
        try:
            info = self._snap_create(name, snap)
        except Exception as e:
            LOG.error('Group snapshot %(group)s@%(snap)s failed: %(err)s',
                      {'group': name, 'snap': snap, 'err': e})
            # A failed create undoes itself; make sure nothing is left.
            self._remove_group_snapshot_quietly(name, snap)
            return ({'status': fields.GroupSnapshotStatus.ERROR},
                    [{'id': s.id, 'status': error} for s in snapshots])
        # Members by (pool, namespace, image name): an image of the same name in another
        # pool or namespace is another image. A member whose image is gone has no name.
        images = {}
        unknown = []
        for image in info['images']:
            if image['image_name']:
                images[(image['pool'], image['namespace'], image['image_name'])] = image
            else:
                unknown.append('%s/%s/<id %s>' % (image['pool'], image['namespace'],
                                                   image['image_id']))
        pool = self.configuration.rbd_pool
        wanted = {(pool, '', s.volume_name) for s in snapshots}
        snapshots_update = []
        missing = []
        for snapshot in snapshots:
            image = images.get((pool, '', snapshot.volume_name))
            if image is None or not image['present']:
                missing.append(snapshot.volume_name)
                continue
            snapshots_update.append({
                'id': snapshot.id,
                'status': fields.SnapshotStatus.AVAILABLE,
                'provider_location': json.dumps({'rbd_snap': image['snap_name']}),
            })
        unknown += ['%s/%s/%s' % key for key in sorted(set(images) - wanted)]
        if missing or unknown:
            # Cinder's group snapshot must be exactly the backend's: a member Cinder does
            # not know would also fail a later create_group_from_src from it.
            LOG.error('Group snapshot %(group)s@%(snap)s differs from Cinder\'s volumes '
                      '(lacks %(missing)s, has members Cinder does not know: %(unknown)s); '
                      'removing it.', {'group': name, 'snap': snap, 'missing': missing,
                                       'unknown': unknown})
            self._remove_group_snapshot_quietly(name, snap)
            return ({'status': fields.GroupSnapshotStatus.ERROR},
                    [{'id': s.id, 'status': error} for s in snapshots])
        LOG.info('Created crash-consistent group snapshot %(group)s@%(snap)s of '
                 '%(n)d volumes.', {'group': name, 'snap': snap, 'n': len(snapshots)})
        return {'status': fields.GroupSnapshotStatus.AVAILABLE}, snapshots_update

    def _remove_group_snapshot_quietly(self, name, snap):
        try:
            self._remove_group_snapshot(name, snap)
        except Exception:
            LOG.exception('Removing group snapshot %(group)s@%(snap)s failed.',
                          {'group': name, 'snap': snap})

    def _remove_group_snapshot(self, name, snap):
        """Removes a group snapshot and its member snapshots. Like RBDDriver.delete_snapshot,
        children (v1 clones) of a member snapshot are flattened when they keep it busy; an
        interrupted create of this snapshot is undone with repair."""
        try:
            self._cg('snap_remove', name, snap)
            return
        except rbd_cg.ObjectNotFound:
            return
        except rbd_cg.ImageBusy as e:
            LOG.info('Group snapshot %(group)s@%(snap)s is busy (%(err)s); flattening '
                     'the clones of its member snapshots.',
                     {'group': name, 'snap': snap, 'err': e})
        try:
            info = self._cg('snap_info', name, snap)
        except rbd_cg.ObjectNotFound:
            return
        if info['state'] == 'creating':
            others = [s for s in self._cg('snap_list', name)
                      if s['state'] == 'creating' and s['name'] != snap]
            if others:
                raise exception.SnapshotIsBusy(snapshot_name=snap)
            # An interrupted create (the volume service died): undo it.
            self._cg('repair', name)
        else:
            self._flatten_member_snap_children(name, snap, info)
        try:
            self._cg('snap_remove', name, snap)
        except rbd_cg.ObjectNotFound:
            return
        except rbd_cg.ImageBusy:
            raise exception.SnapshotIsBusy(snapshot_name=snap)

    def _flatten_member_snap_children(self, name, snap, info):
        """Flattens the clones of every member snapshot of ``name@snap`` (RBDDriver looks
        the snapshot up by name: each is exposed in the user namespace meanwhile)."""
        with rbd_driver.RADOSClient(self) as client:
            for image in info['images']:
                if not (image['present'] and image['image_name']):
                    continue
                if image['pool'] != self.configuration.rbd_pool or image['namespace']:
                    continue
                spec = '%s/%s' % (image['pool'], image['image_name'])
                try:
                    exposed = self._cg('expose_member_snapshot', name, snap, spec)
                except rbd_cg.ObjectNotFound:
                    continue
                try:
                    self._flatten_children(client.ioctx, image['image_name'], exposed)
                except self.rbd.ImageNotFound:
                    continue
                finally:
                    self._cg('hide_member_snapshot', name, snap, spec)

    def delete_group_snapshot(self, context, group_snapshot, snapshots):
        """Removes group snapshot ``cinder-gsnap-<id>`` and its member snapshots."""
        if not self._is_cg_type(group_snapshot):
            raise NotImplementedError()
        return self._delete_group_snapshot(group_snapshot.group_id, group_snapshot.id,
                                           snapshots)

    def _delete_group_snapshot(self, group_id, group_snapshot_id, snapshots):
        name = group_name(group_id)
        snap = group_snap_name(group_snapshot_id)
        try:
            self._remove_group_snapshot(name, snap)
        except Exception as e:
            LOG.error('Removing group snapshot %(group)s@%(snap)s failed: %(err)s',
                      {'group': name, 'snap': snap, 'err': e})
            return ({'status': fields.GroupSnapshotStatus.ERROR},
                    [{'id': s.id, 'status': fields.SnapshotStatus.ERROR}
                     for s in snapshots])
        return ({'status': fields.GroupSnapshotStatus.DELETED},
                [{'id': s.id, 'status': fields.SnapshotStatus.DELETED}
                 for s in snapshots])

    # ------------------------------------------------------------------ groups from a source

    def create_group_from_src(self, context, group, volumes, group_snapshot=None,
                              snapshots=None, source_group=None, source_vols=None):
        """Clones a group snapshot (or a fresh temporary group snapshot of a source group)
        into a new group whose members are the new volumes.

        Raises on any failure, after removing what it made: Cinder 29's manager overwrites
        the statuses this method returns with 'available', so only an exception gets the
        group and its volumes to 'error'.
        """
        if not self._is_cg_type(group):
            raise NotImplementedError()
        if group_snapshot is not None:
            return self._create_group_from_group_snapshot(
                group.id, volumes, group_snapshot.group_id, group_snapshot.id,
                snapshots or [])
        if source_group is not None:
            return self._create_group_from_source_group(
                group.id, volumes, source_group.id, source_vols or [])
        msg = _('create_group_from_src needs a group snapshot or a source group.')
        raise exception.InvalidInput(reason=msg)

    def _create_group_from_group_snapshot(self, group_id, volumes, source_group_id,
                                          group_snapshot_id, snapshots):
        by_id = {s.id: s for s in snapshots}
        plan = []
        for volume in volumes:
            snapshot = by_id.get(volume.snapshot_id)
            if snapshot is None:
                raise exception.SnapshotNotFound(snapshot_id=volume.snapshot_id)
            plan.append((volume, snapshot.volume_name, snapshot.volume_size))
        flatten = self.configuration.rbd_flatten_volume_from_snapshot
        return self._clone_group(group_id, volumes, group_name(source_group_id),
                                 group_snap_name(group_snapshot_id), plan,
                                 temporary=False, flatten=flatten)

    def _create_group_from_source_group(self, group_id, volumes, source_group_id,
                                        source_vols):
        by_id = {v.id: v for v in source_vols}
        plan = []
        for volume in volumes:
            source = by_id.get(volume.source_volid)
            if source is None:
                raise exception.VolumeNotFound(volume_id=volume.source_volid)
            plan.append((volume, source.name, source.size))
        source = group_name(source_group_id)
        temp = CLONE_SNAP_PREFIX + group_id
        try:
            self._snap_create(source, temp)
        except Exception as e:
            self._remove_group_snapshot_quietly(source, temp)
            raise self._backend_error(
                _('Snapshotting source group %s failed') % source, e)
        try:
            return self._clone_group(group_id, volumes, source, temp, plan,
                                     temporary=True, flatten=False)
        finally:
            self._remove_group_snapshot_quietly(source, temp)

    def _clone_group(self, group_id, volumes, source, snap, plan, temporary, flatten):
        """Clones ``source@snap`` into group ``cinder-group-<group_id>``; ``plan`` is
        (new volume, source image name, source size in GiB) per member.

        ``temporary``: ``snap`` is removed right after (by the caller), so v1 clones are
        flattened first; v2 clones need not be (their parent snapshots wait in RBD's trash).
        """
        new = group_name(group_id)
        image_names = {source_image: volume.name for volume, source_image, _s in plan}
        try:
            self._cg('clone', source, snap, new, image_names=image_names,
                     clone_format=self.configuration.rbd_cg_clone_format)
            v2 = self._is_clone_v2(plan[0][0].name) if plan else True
            if flatten or (temporary and not v2):
                for volume, _src, _size in plan:
                    self._flatten(self.configuration.rbd_pool, volume.name)
            volumes_update = []
            for volume, _src, source_size in plan:
                if volume.size > source_size:
                    new_size = None
                    if volume.encryption_key_id:
                        new_size = self._calculate_new_size(volume.size - source_size,
                                                            volume.name)
                    self._resize(volume, size=new_size)
                update = {'id': volume.id, 'status': 'available'}
                update.update(self._setup_volume(volume) or {})
                volumes_update.append(update)
        except Exception as e:
            LOG.error('Creating group %(new)s from %(src)s@%(snap)s failed: %(err)s',
                      {'new': new, 'src': source, 'snap': snap, 'err': e})
            self._undo_clone(new, [volume for volume, _s, _z in plan])
            if isinstance(e, exception.CinderException):
                raise
            raise self._backend_error(
                _('Creating group %(new)s from %(src)s@%(snap)s failed') %
                {'new': new, 'src': source, 'snap': snap}, e)
        LOG.info('Created group %(new)s of %(n)d clones of %(src)s@%(snap)s.',
                 {'new': new, 'n': len(plan), 'src': source, 'snap': snap})
        return {'status': fields.GroupStatus.AVAILABLE}, volumes_update

    def _undo_clone(self, new, volumes):
        try:
            self._remove_backend_group(new)
        except Exception:
            LOG.exception('Removing group %s again failed.', new)
        for volume in volumes:
            try:
                super(RBDConsistencyGroupDriver, self).delete_volume(volume)
            except Exception:
                LOG.exception('Removing clone %s again failed.', volume.name)

    # ------------------------------------------------------------------ volumes

    def create_volume(self, volume):
        update = super(RBDConsistencyGroupDriver, self).create_volume(volume)
        self._join_wanted_group(volume)
        return update

    def create_volume_from_snapshot(self, volume, snapshot):
        """A volume from a snapshot of a group snapshot is a clone of its member
        snapshot. The new volume joins a group only if it was created into one
        (``volume.group_id``), never its source's group."""
        with self._exposed_member_snap(snapshot) as member_snap:
            if member_snap is not None:
                # Clone v1 needs a protected parent snapshot (harmless for v2).
                self._protect(snapshot.volume_name, member_snap)
                snapshot = _MemberSnapshot(snapshot, member_snap)
            update = super(RBDConsistencyGroupDriver, self).create_volume_from_snapshot(
                volume, snapshot)
        self._join_wanted_group(volume)
        return update

    def create_cloned_volume(self, volume, src_vref):
        update = super(RBDConsistencyGroupDriver, self).create_cloned_volume(
            volume, src_vref)
        self._join_wanted_group(volume)
        return update

    def clone_image(self, context, volume, image_location, image_meta, image_service):
        update, cloned = super(RBDConsistencyGroupDriver, self).clone_image(
            context, volume, image_location, image_meta, image_service)
        if cloned:
            # Otherwise Cinder calls create_volume next, which joins.
            self._join_wanted_group(volume)
        return update, cloned

    def delete_volume(self, volume):
        """Drops the image from every group it is a member of, then deletes it (RBDDriver).

        In this order a failure leaves no group with a 'missing' member (which would fail
        its next group snapshot): if the group removal fails nothing is deleted; if the
        deletion fails the memberships are restored.
        """
        memberships = self._memberships(volume.name)
        left = []
        for pool, namespace, name, image_id in memberships:
            LOG.info('Volume %(vol)s leaves group %(group)s.',
                     {'vol': volume.id, 'group': name})
            try:
                self._cg('remove_image', name, image_id=image_id,
                         image_pool=self.configuration.rbd_pool,
                         _pool=pool, _namespace=namespace)
            except rbd_cg.ObjectNotFound:
                pass  # not a member (anymore), or the group is gone
            except rbd_cg.ImageBusy as e:
                try:
                    state = self._group_state(name, pool, namespace)
                except Exception:
                    LOG.exception('Reading the state of group %s failed.', name)
                    state = 'unknown'
                if state not in (None, 'creating'):
                    self._rejoin(volume, left)
                    raise self._backend_error(
                        _('Volume %(vol)s could not leave group %(group)s') %
                        {'vol': volume.id, 'group': name}, e)
                # Gone meanwhile, or an unfinished creation (a clone cut short) that
                # refuses membership changes: its own removal (delete_group, rm --force)
                # drops the member record; nothing to rejoin.
                LOG.warning('Group %(group)s is %(state)s; volume %(vol)s is deleted '
                            'without leaving it (removing the group drops the member).',
                            {'group': name, 'state': state or 'gone', 'vol': volume.id})
                continue
            except Exception as e:
                self._rejoin(volume, left)
                raise self._backend_error(
                    _('Volume %(vol)s could not leave group %(group)s') %
                    {'vol': volume.id, 'group': name}, e)
            left.append((pool, namespace, name))
        try:
            super(RBDConsistencyGroupDriver, self).delete_volume(volume)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._rejoin(volume, left)

    def _group_state(self, name, pool=None, namespace=''):
        """The state of group ``name`` ('ready', 'creating' ...), None if it is gone."""
        try:
            return self._cg('info', name, _pool=pool, _namespace=namespace)['state']
        except rbd_cg.ObjectNotFound:
            return None

    def _rejoin(self, volume, memberships):
        spec = '%s/%s' % (self.configuration.rbd_pool, volume.name)
        for pool, namespace, name in memberships:
            try:
                self._cg('add_image', name, spec, _pool=pool, _namespace=namespace)
            except Exception:
                LOG.exception('Volume %(vol)s could not rejoin group %(group)s.',
                              {'vol': volume.id, 'group': name})

    def revert_to_snapshot(self, context, volume, snapshot):
        with self._exposed_member_snap(snapshot) as member_snap:
            if member_snap is not None:
                snapshot = _MemberSnapshot(snapshot, member_snap)
            return super(RBDConsistencyGroupDriver, self).revert_to_snapshot(
                context, volume, snapshot)

    def retype(self, context, volume, new_type, diff, host):
        result = super(RBDConsistencyGroupDriver, self).retype(
            context, volume, new_type, diff, host)
        self._reconcile_membership(volume)
        return result

    def migrate_volume(self, context, volume, host):
        moved, update = super(RBDConsistencyGroupDriver, self).migrate_volume(
            context, volume, host)
        # A move to another pool deleted the source through delete_volume (which left its
        # groups); a move within the pool keeps the image: its membership follows group_id.
        if moved:
            self._reconcile_membership(volume, join=False)
        return moved, update

    def update_migrated_volume(self, ctxt, volume, new_volume, original_volume_status):
        update = super(RBDConsistencyGroupDriver, self).update_migrated_volume(
            ctxt, volume, new_volume, original_volume_status)
        # The image now behind ``volume`` is the migration's new image.
        name_id = (update or {}).get('_name_id')
        target = volume
        if name_id:
            target = _NamedVolume(volume, CONF.volume_name_template % name_id)
        self._reconcile_membership(target)
        return update

    # ------------------------------------------------------------------ legacy CG calls
    # Cinder 29 calls these only when create_group (etc.) raised NotImplementedError for a
    # group of the default cgsnapshot type. This driver never does (that type is a
    # consistent-snapshot type), so the manager does not reach them; they are thin
    # adapters to the same implementation for callers that do (see docs/CINDER.md).

    def create_consistencygroup(self, context, group):
        return self._create_group(group.id)

    def delete_consistencygroup(self, context, group, volumes):
        return self._delete_group(group.id, volumes)

    def update_consistencygroup(self, context, group, add_volumes=None,
                                remove_volumes=None):
        return self._update_group(group.id, add_volumes or [], remove_volumes or [])

    def create_cgsnapshot(self, context, cgsnapshot, snapshots):
        return self._create_group_snapshot(cgsnapshot.consistencygroup_id, cgsnapshot.id,
                                           snapshots)

    def delete_cgsnapshot(self, context, cgsnapshot, snapshots):
        return self._delete_group_snapshot(cgsnapshot.consistencygroup_id, cgsnapshot.id,
                                           snapshots)

    def create_consistencygroup_from_src(self, context, group, volumes, cgsnapshot=None,
                                         snapshots=None, source_cg=None,
                                         source_vols=None):
        if cgsnapshot is not None:
            return self._create_group_from_group_snapshot(
                group.id, volumes, cgsnapshot.consistencygroup_id, cgsnapshot.id,
                snapshots or [])
        if source_cg is not None:
            return self._create_group_from_source_group(
                group.id, volumes, source_cg.id, source_vols or [])
        msg = _('create_consistencygroup_from_src needs a cgsnapshot or a source CG.')
        raise exception.InvalidInput(reason=msg)


class _NamedVolume(object):
    """``volume`` under another image name (after a migration renamed nothing)."""

    def __init__(self, volume, name):
        self._volume = volume
        self.name = name

    def __getattr__(self, attr):
        return getattr(self._volume, attr)


__all__ = ['RBDConsistencyGroupDriver', 'RBD_CG_OPTS', 'group_name', 'group_snap_name']
