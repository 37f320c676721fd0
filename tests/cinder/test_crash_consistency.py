"""Crash consistency through Cinder: group snapshots taken by the VolumeManager while a plain
librbd writer keeps doing dependent writes on the group's volumes.

The writer (tests/helpers/fencing_writer.py, a separate /usr/bin/python3 process with
python3-rbd) writes round n to volume A, then B, then C, each after the previous write
completed. A crash-consistent snapshot therefore reads back A >= B >= C >= A - 1 (as in
tests/fencing.rs). Every group snapshot Cinder takes through this driver must pass, and the
writer must see zero I/O errors. The same check on a group of a plain group type, which the
manager snapshots one volume after another (its generic path), finds inconsistent snapshots:
the check bites.
"""

import json
import os
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, POOL

pytestmark = [pytest.mark.full, pytest.mark.usefixtures('clean_pool')]

WRITER = os.path.join(REPO, 'tests', 'helpers', 'fencing_writer.py')


class Writer(object):
    def __init__(self, images):
        self.dir = tempfile.mkdtemp(prefix='rbd-cg-cinder-writer-')
        self.status_path = os.path.join(self.dir, 'status.json')
        self.stop_path = os.path.join(self.dir, 'stop')
        self.proc = subprocess.Popen(
            ['/usr/bin/python3', WRITER, '--conf', os.environ['CEPH_CONF'], '--pool', POOL,
             '--status', self.status_path, '--stop', self.stop_path] + list(images),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def status(self):
        try:
            with open(self.status_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {'rounds': 0, 'errors': 0}

    def rounds(self):
        return self.status()['rounds']

    def wait_for_rounds(self, rounds, timeout=60.0):
        start = time.monotonic()
        while self.rounds() < rounds:
            assert self.proc.poll() is None, 'the writer died: %s' % self.proc.stderr.read()
            assert time.monotonic() - start < timeout, 'the writer did not reach %d' % rounds
            time.sleep(0.05)

    def stop(self):
        open(self.stop_path, 'w').close()
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, 'writer: %s' % err
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def heads(ceph, images, snap_of):
    """The round number at offset 0 of every image at its snapshot."""
    return [struct.unpack('<Q', ceph.read(image, 8, snap=snap_of[image]))[0]
            for image in images]


def consistent(values):
    return all(a >= b for a, b in zip(values, values[1:])) and values[-1] + 1 >= values[0]


def snapshots_under_writer(c, ceph, group, count):
    """``count`` group snapshots by the manager under a running writer; returns the list
    of head values per snapshot, the writer's final status and its rounds meanwhile."""
    vols = c.volumes(group)
    images = [v.name for v in vols]
    writer = Writer(images)
    try:
        writer.wait_for_rounds(50)
        before = writer.rounds()
        group_snapshots = []
        for _ in range(count):
            gs = c.create_group_snapshot(group)
            assert gs.status == 'available'
            group_snapshots.append(gs)
            time.sleep(0.15)
        after = writer.rounds()
        status = writer.stop()
    finally:
        writer.kill()
    results = []
    for gs in group_snapshots:
        snap_of = {}
        for s in c.snapshots(gs):
            assert s.status == 'available'
            location = json.loads(s.provider_location) if s.provider_location else None
            snap_of[s.volume.name] = location['rbd_snap'] if location else s.name
        results.append(heads(ceph, images, snap_of))
    return results, status, after - before, group_snapshots


def delete_all(c, group, group_snapshots):
    for gs in group_snapshots:
        c.manager.delete_group_snapshot(c.ctxt, gs)
    c.manager.delete_group(c.ctxt, group)


def test_group_snapshots_through_cinder_are_crash_consistent(cinder, ceph):
    c = cinder
    group = c.create_group()
    for _ in range(3):
        c.create_volume(group)
    results, status, rounds, gsnaps = snapshots_under_writer(c, ceph, group, 6)
    print('consistency-group snapshots:', results, 'writer:', status)
    assert status['errors'] == 0, status
    assert rounds > 6, 'the writer kept writing while Cinder took the snapshots'
    assert all(values[0] > 0 for values in results)
    assert [v for v in results if not consistent(v)] == []
    for v in c.volumes(group):
        locks = json.loads(subprocess.run(
            ['rbd', 'lock', 'ls', '--format', 'json', '%s/%s' % (POOL, v.name)],
            capture_output=True, text=True, check=True).stdout or '[]')
        assert not locks, 'a lock is left on %s: %s' % (v.name, locks)
    delete_all(c, group, gsnaps)


def test_the_check_bites_the_managers_generic_path(cinder, ceph):
    """A group type without consistent_group_snapshot_enabled: the driver declines, the
    manager snapshots the volumes one after another (what stock RBD always gets)."""
    c = cinder
    group = c.create_group(c.plain_type)
    for _ in range(3):
        c.create_volume(group)
    results, status, _rounds, gsnaps = snapshots_under_writer(c, ceph, group, 2)
    print('generic group snapshots:', results, 'writer:', status)
    assert status['errors'] == 0, status
    assert [v for v in results if not consistent(v)], \
        'one volume after another should have caught the writer between two volumes'
    delete_all(c, group, gsnaps)
