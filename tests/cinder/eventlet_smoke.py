"""The driver under eventlet, as cinder-volume runs it (monkey patched): binding calls go
through eventlet.tpool, so other green threads keep running while a group snapshot is cut.

Run by test_fast.test_the_driver_under_eventlet in its own process (monkey patching is for
the whole process):  python eventlet_smoke.py CEPH_CONF_OF_THE_CINDER_USER
Prints one JSON line: {"monkey_patched", "threading_mode", "ticks_during_snapshot", ...}.
"""

from cinder import monkey_patch; monkey_patch.patch()  # noqa: E702,I100  (as cinder-volume)

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import eventlet  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import rbd_cg_cinder  # noqa: F401,E402
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                    'cinder'))

from cinder import context  # noqa: E402
from cinder import objects  # noqa: E402
from cinder import utils  # noqa: E402
from cinder.volume import volume_utils  # noqa: E402
from oslo_config import cfg  # noqa: E402

from conftest import backend_config  # noqa: E402


def main():
    ceph_conf = sys.argv[1]
    objects.register_all()
    cfg.CONF([], project='cinder', default_config_files=[])
    # No database here: every group below is of a consistent-snapshot type.
    volume_utils.is_group_a_cg_snapshot_type = lambda group_or_snap: True
    from rbd_cg_cinder.driver import RBDConsistencyGroupDriver
    config = backend_config('rbdcg-eventlet', ceph_conf)
    drv = RBDConsistencyGroupDriver(configuration=config, host='evhost@rbdcg-eventlet#x')
    ctxt = context.get_admin_context()
    drv.do_setup(ctxt)
    drv.check_for_setup_error()

    def new(cls, **kw):
        return cls(context=ctxt, id=str(uuid.uuid4()), **kw)

    group = new(objects.Group, status='creating', group_type_id=str(uuid.uuid4()),
                volume_type_ids=[], host=drv.host)
    drv.create_group(ctxt, group)
    volumes = []
    for _ in range(3):
        v = new(objects.Volume, size=1, status='creating', volume_type_id=None,
                encryption_key_id=None, group_id=group.id, _name_id=None, use_quota=True,
                provider_location=None)
        v.volume_type = None
        v.group = group
        drv.create_volume(v)
        volumes.append(v)
    gs = new(objects.GroupSnapshot, group_id=group.id, group_type_id=group.group_type_id,
             status='creating')
    snaps = []
    for v in volumes:
        s = new(objects.Snapshot, volume_id=v.id, volume_size=v.size, group_snapshot_id=gs.id,
                status='creating', provider_location=None)
        s.volume = v
        snaps.append(s)

    ticks = []
    running = [True]

    def ticker():
        while running[0]:
            ticks.append(time.monotonic())
            eventlet.sleep(0.005)

    ticker_thread = eventlet.spawn(ticker)
    eventlet.sleep(0)
    before = len(ticks)
    start = time.monotonic()
    model, updates = drv.create_group_snapshot(ctxt, gs, snaps)
    took = time.monotonic() - start
    during = len(ticks) - before
    running[0] = False
    ticker_thread.wait()

    deleted, _ = drv.delete_group_snapshot(ctxt, gs, snaps)
    removed, _ = drv.delete_group(ctxt, group, volumes)
    print(json.dumps({
        'monkey_patched': monkey_patch.is_patched(),
        'threading_mode': utils.concurrency_mode_threading(),
        'snapshot': model['status'],
        'snapshots': sorted({u['status'] for u in updates}),
        'snapshot_seconds': took,
        'ticks_during_snapshot': during,
        'deleted': deleted['status'],
        'group_deleted': removed['status'],
    }))


if __name__ == '__main__':
    main()
