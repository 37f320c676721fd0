"""A driver that sends the default cgsnapshot type down Cinder's legacy path.

Its group methods raise NotImplementedError for groups of the default cgsnapshot type, as a
driver without group support does; the manager then calls create_consistencygroup & co.
(test_manager.test_the_legacy_calls_through_the_manager). Records which legacy calls came.
"""

from cinder.volume import group_types

from rbd_cg_cinder.driver import RBDConsistencyGroupDriver


def _group_path_unless_default(name):
    def method(self, context, group_or_snapshot, *args, **kwargs):
        if group_types.is_default_cgsnapshot_type(group_or_snapshot.group_type_id):
            raise NotImplementedError()
        return getattr(RBDConsistencyGroupDriver, name)(self, context, group_or_snapshot,
                                                        *args, **kwargs)
    method.__name__ = name
    return method


def _recorded(name):
    def method(self, *args, **kwargs):
        self.legacy_calls.append(name)
        return getattr(RBDConsistencyGroupDriver, name)(self, *args, **kwargs)
    method.__name__ = name
    return method


class LegacyPathDriver(RBDConsistencyGroupDriver):
    def __init__(self, *args, **kwargs):
        super(LegacyPathDriver, self).__init__(*args, **kwargs)
        self.legacy_calls = []


for _name in ('create_group', 'delete_group', 'update_group', 'create_group_snapshot',
              'delete_group_snapshot', 'create_group_from_src'):
    setattr(LegacyPathDriver, _name, _group_path_unless_default(_name))
for _name in ('create_consistencygroup', 'delete_consistencygroup', 'update_consistencygroup',
              'create_cgsnapshot', 'delete_cgsnapshot', 'create_consistencygroup_from_src'):
    setattr(LegacyPathDriver, _name, _recorded(_name))
