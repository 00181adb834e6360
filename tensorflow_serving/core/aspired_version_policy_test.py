"""The policies choose the next load/unload the way their names promise."""

import sys

from tensorflow_serving.core.aspired_version_policy import (
    Action,
    AvailabilityPreservingPolicy,
    PolicyAction,
    ResourcePreservingPolicy,
    VersionSnapshot,
)
from tensorflow_serving.core.servable_state import ManagerState as S
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.test_util import testing


def v(version, state, aspired=True, failed=False):
    return VersionSnapshot(ServableId("m", version), state, aspired, failed)


def act(action, version):
    return PolicyAction(action, ServableId("m", version))


def test_availability_loads_new_before_unloading_old():
    policy = AvailabilityPreservingPolicy()
    assert policy.next_action([v(1, S.AVAILABLE, False), v(2, S.START)]) == act(Action.LOAD, 2)
    assert policy.next_action([v(1, S.AVAILABLE, False), v(2, S.LOADING)]) is None
    assert policy.next_action([v(1, S.AVAILABLE, False), v(2, S.AVAILABLE)]) == act(
        Action.UNLOAD, 1
    )


def test_availability_keeps_old_version_when_new_one_failed():
    policy = AvailabilityPreservingPolicy()
    versions = [v(2, S.AVAILABLE, False), v(3, S.END, True, failed=True)]
    assert policy.next_action(versions) is None


def test_availability_unloads_when_nothing_is_aspired_any_more():
    policy = AvailabilityPreservingPolicy()
    assert policy.next_action([v(1, S.AVAILABLE, False)]) == act(Action.UNLOAD, 1)


def test_availability_loads_newest_first():
    policy = AvailabilityPreservingPolicy()
    assert policy.next_action([v(1, S.START), v(3, S.START), v(2, S.START)]) == act(Action.LOAD, 3)


def test_resource_preserving_unloads_before_loading():
    policy = ResourcePreservingPolicy()
    assert policy.next_action([v(1, S.AVAILABLE, False), v(2, S.START)]) == act(Action.UNLOAD, 1)
    assert policy.next_action([v(1, S.UNLOADING, False), v(2, S.START)]) is None
    assert policy.next_action([v(1, S.END, False), v(2, S.START)]) == act(Action.LOAD, 2)


def test_never_loaded_unaspired_version_is_dropped():
    for policy in (AvailabilityPreservingPolicy(), ResourcePreservingPolicy()):
        assert policy.next_action([v(5, S.START, False)]) == act(Action.UNLOAD, 5)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
