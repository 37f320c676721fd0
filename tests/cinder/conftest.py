"""Shared setup of the Cinder driver tests: a real Ceph cluster, the real cinder package.

Needs ``CEPH_CONF`` (a cluster whose OSDs load the rbd_cg class, e.g. from
``scripts/cluster.sh env``), cinder 29 and the ``rbd_cg`` binding in this Python (the venv of
``scripts/pyenv.sh``), the driver package (``pip install ./cinder``, or it is taken from the
source tree), and the CLI (``$RBD_CG_BIN``, default ``target/debug/rbd-cg``). Without a
reachable cluster every test fails (never skips).

Every test works in pool ``cinder-cg-test`` (made once, kept) as the restricted cephx user
``client.cinder-cg-test`` with the caps docs/CINDER.md gives a Cinder user, and uses fresh
uuids for everything it makes.
"""

import json
import os
import subprocess
import sys
import tempfile
import uuid

# Must come before cinder is imported: no eventlet monkey patching in the test process
# (cinder-facts.md), Cinder then runs its native-threading mode.
os.environ.setdefault('OS_CINDER_DISABLE_EVENTLET_PATCHING', '1')

import pytest  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
POOL = 'cinder-cg-test'
USER = 'cinder-cg-test'
# The caps docs/CINDER.md documents (the class grant matters when rbd_cg is not in the OSDs'
# `osd class default list`; the throwaway clusters list '*').
USER_CAPS = ['mon', 'profile rbd',
             'osd', 'profile rbd pool=%s, allow pool %s class rbd_cg' % (POOL, POOL)]

try:
    import rbd_cg_cinder  # noqa: F401 (pip install ./cinder; else the source tree)
except ImportError:
    sys.path.insert(0, os.path.join(REPO, 'cinder'))


def pytest_configure(config):
    conf = os.environ.get('CEPH_CONF')
    if not conf or not os.path.isfile(conf):
        raise pytest.UsageError(
            'tests/cinder need a Ceph cluster: set CEPH_CONF (e.g. eval "$(scripts/cluster.sh '
            'env DIR)"); CEPH_CONF=%r' % conf)
    out = subprocess.run(['ceph', '--connect-timeout', '15', 'health'],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise pytest.UsageError('tests/cinder: the cluster of CEPH_CONF=%s is not reachable: %s'
                                % (conf, out.stderr.strip()))


def run(*args, check=True, input=None):
    """Runs a command; returns stdout (fails the test with stderr on error when ``check``)."""
    out = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and out.returncode != 0:
        pytest.fail('%s failed (%d): %s' % (' '.join(args), out.returncode, out.stderr.strip()))
    return out.stdout


def rbd_cg_bin():
    return os.environ.get('RBD_CG_BIN') or os.path.join(REPO, 'target', 'debug', 'rbd-cg')


class Ceph(object):
    """Looks at the cluster from outside, as admin, with the stock CLIs and ours."""

    pool = POOL

    def images(self):
        return set(json.loads(run('rbd', 'ls', '--format', 'json', POOL) or '[]'))

    def snaps(self, image):
        """Every snapshot of ``image``, member snapshots (in the group namespace) included."""
        return [s['name'] for s in json.loads(
            run('rbd', 'snap', 'ls', '--all', '--format', 'json', '%s/%s' % (POOL, image)) or '[]')]

    def info(self, image):
        return json.loads(run('rbd', 'info', '--format', 'json', '%s/%s' % (POOL, image)))

    def parent(self, image):
        return self.info(image).get('parent')

    def cg(self, *args, check=True):
        return run(rbd_cg_bin(), *args, check=check)

    def groups(self):
        return set(json.loads(self.cg('ls', POOL, '--format', 'json') or '[]'))

    def members(self, group):
        rows = json.loads(self.cg('image', 'ls', '%s/%s' % (POOL, group), '--format', 'json'))
        return {r['image'] if r.get('image') else r['id']: r['status'] for r in rows}

    def group_snaps(self, group):
        rows = json.loads(self.cg('snap', 'ls', '%s/%s' % (POOL, group), '--format', 'json'))
        return {r['name']: r for r in rows}

    def group_snap_info(self, group, snap):
        return json.loads(self.cg('snap', 'info', '%s/%s@%s' % (POOL, group, snap),
                                  '--format', 'json'))

    def group_info(self, group):
        return json.loads(self.cg('info', '%s/%s' % (POOL, group), '--format', 'json'))

    def group_exists(self, group):
        """Whether group ``group`` exists in any state (``ls`` hides unfinished creations)."""
        out = subprocess.run([rbd_cg_bin(), 'info', '%s/%s' % (POOL, group)],
                             capture_output=True, text=True)
        if out.returncode != 0 and 'No such file' not in out.stderr:
            pytest.fail('rbd-cg info %s: %s' % (group, out.stderr.strip()))
        return out.returncode == 0

    def pool_id(self):
        pools = json.loads(run('ceph', 'osd', 'pool', 'ls', 'detail', '--format', 'json'))
        return [p['pool_id'] for p in pools if p['pool_name'] == POOL][0]

    def backrefs(self, image):
        image_id = self.info(image)['id']
        keys = run('rados', '-p', POOL, 'listomapkeys', 'rbd_header.' + image_id).split()
        return [k for k in keys if k.startswith('rbd_cg.group.')]

    def clone_v2(self):
        """Whether librbd's 'auto' clone format is v2 here (Mimic or newer clients required)."""
        dump = json.loads(run('ceph', 'osd', 'dump', '--format', 'json'))
        order = ['jewel', 'kraken', 'luminous', 'mimic', 'nautilus', 'octopus', 'pacific']
        required = dump.get('require_min_compat_client', 'jewel')
        return required in order and order.index(required) >= order.index('mimic')

    def purge_image(self, image):
        """Removes an image with whatever snapshots it has (test cleanup)."""
        spec = '%s/%s' % (POOL, image)
        for snap in self.snaps(image):
            run('rbd', 'snap', 'unprotect', '%s@%s' % (spec, snap), check=False)
        run('rbd', 'snap', 'purge', '--no-progress', spec, check=False)
        run('rbd', 'rm', '--no-progress', spec, check=False)

    def create_image(self, name, size_mb=8):
        run('rbd', 'create', '--size', '%dM' % size_mb, '%s/%s' % (POOL, name))

    def remove_image(self, name):
        run('rbd', 'rm', '--no-progress', '%s/%s' % (POOL, name))

    def write(self, image, data, offset=0, snap=None):
        import rados
        import rbd
        with rados.Rados(conffile=os.environ['CEPH_CONF']) as cluster:
            with cluster.open_ioctx(POOL) as ioctx:
                with rbd.Image(ioctx, image, snapshot=snap) as im:
                    im.write(data, offset)

    def read(self, image, length, offset=0, snap=None):
        """Reads ``image`` (at snapshot ``snap``, looked up in every namespace and read by
        id: member snapshots are in the group namespace, where names do not reach)."""
        import rados
        import rbd
        with rados.Rados(conffile=os.environ['CEPH_CONF']) as cluster:
            with cluster.open_ioctx(POOL) as ioctx:
                with rbd.Image(ioctx, image, read_only=True) as im:
                    if snap is not None:
                        im.set_snap_by_id(next(s['id'] for s in im.list_snaps() if s['name'] == snap))
                    return im.read(offset, length)


@pytest.fixture(scope='session')
def ceph():
    return Ceph()


@pytest.fixture(scope='session')
def cinder_ceph_conf():
    """The pool and the restricted user; returns a ceph.conf for that user."""
    pools = run('ceph', 'osd', 'pool', 'ls').split()
    if POOL not in pools:
        run('ceph', 'osd', 'pool', 'create', POOL, '8')
        run('rbd', 'pool', 'init', POOL)
    existing = subprocess.run(['ceph', 'auth', 'get', 'client.' + USER], capture_output=True)
    if existing.returncode == 0:
        run('ceph', 'auth', 'caps', 'client.' + USER, *USER_CAPS)
    keyring = run('ceph', 'auth', 'get-or-create', 'client.' + USER, *USER_CAPS)
    tmp = tempfile.mkdtemp(prefix='rbd-cg-cinder-')
    keyring_path = os.path.join(tmp, 'ceph.client.%s.keyring' % USER)
    with open(keyring_path, 'w') as f:
        f.write(keyring)
    conf_path = os.path.join(tmp, 'ceph.conf')
    with open(os.environ['CEPH_CONF']) as f:
        base = f.read()
    with open(conf_path, 'w') as f:
        f.write(base)
        f.write('\n[client.%s]\nkeyring = %s\n' % (USER, keyring_path))
    return conf_path


@pytest.fixture(scope='session')
def cinder_env():
    """Cinder's global configuration, objects and RPC, set up once for the process."""
    from cinder import objects
    from oslo_config import cfg
    objects.register_all()
    conf = cfg.CONF
    conf([], project='cinder', default_config_files=[])
    lock_path = tempfile.mkdtemp(prefix='rbd-cg-cinder-locks-')
    conf.set_override('lock_path', lock_path, group='oslo_concurrency')
    return conf


@pytest.fixture
def clean_pool(ceph):
    """Removes whatever images and groups a test made and left (e.g. after a failure)."""
    images, groups = ceph.images(), ceph.groups()
    yield
    for _attempt in range(3):  # clones before parents: whatever could not go goes next time
        for image in ceph.images() - images:
            ceph.purge_image(image)
        for group in ceph.groups() - groups:
            ceph.cg('rm', '--force', '%s/%s' % (POOL, group), check=False)
        if not (ceph.images() - images or ceph.groups() - groups):
            break


@pytest.fixture(scope='session')
def cinder(cinder_env, cinder_ceph_conf):
    """The full tier's Cinder: a VolumeManager with this driver on in-memory sqlite."""
    import cinder_manager
    return cinder_manager.Cinder(cinder_env, cinder_ceph_conf)


@pytest.fixture(scope='session')
def cinder_legacy(cinder, cinder_env, cinder_ceph_conf):
    """A second VolumeManager whose driver sends the default cgsnapshot type down the
    legacy consistency-group path (legacy_driver.py)."""
    import cinder_manager
    return cinder_manager.Cinder(cinder_env, cinder_ceph_conf,
                                 driver_class='legacy_driver.LegacyPathDriver',
                                 backend='rbdcg-legacy')


def backend_config(backend, ceph_conf, **overrides):
    """A backend's Configuration for this driver (RBD options + ours)."""
    from cinder.volume import configuration
    from cinder.volume import driver as base_driver
    from cinder.volume.drivers import rbd
    from oslo_config import cfg
    from rbd_cg_cinder import driver as cg_driver
    conf = cfg.CONF
    config = configuration.Configuration(base_driver.volume_opts, config_group=backend)
    config.append_config_values(rbd.RBD_OPTS)
    config.append_config_values(cg_driver.RBD_CG_OPTS)
    settings = {'rbd_pool': POOL, 'rbd_ceph_conf': ceph_conf, 'rbd_user': USER,
                'rbd_cluster_name': 'ceph', 'rados_connect_timeout': 30,
                'volume_backend_name': backend, 'rados_connection_retries': 1,
                'rados_connection_interval': 1}
    settings.update(overrides)
    for key, value in settings.items():
        conf.set_override(key, value, group=backend)
    return config


def new_id():
    return str(uuid.uuid4())

