"""Which single load or unload a model's versions need next (upstream:
aspired_version_policy.h, availability_preserving_policy.h,
resource_preserving_policy.h).

The manager asks after every change; a policy only looks at a snapshot of the
model's versions, so it is a pure function and easy to test.
"""

from __future__ import annotations

import dataclasses
import enum

from tensorflow_serving.core.servable_state import ManagerState, ServableId


class Action(enum.Enum):
    LOAD = "load"
    UNLOAD = "unload"


@dataclasses.dataclass(frozen=True)
class VersionSnapshot:
    """What a policy knows about one version: its state and whether it is aspired."""

    id: ServableId
    state: ManagerState
    is_aspired: bool
    failed: bool = False  # ended because every load attempt failed


@dataclasses.dataclass(frozen=True)
class PolicyAction:
    action: Action
    id: ServableId


def _newest_to_load(versions: list[VersionSnapshot]) -> VersionSnapshot | None:
    candidates = [v for v in versions if v.is_aspired and v.state == ManagerState.START]
    return max(candidates, key=lambda v: v.id.version, default=None)


def _unaspired(versions: list[VersionSnapshot], *states: ManagerState) -> list[VersionSnapshot]:
    return [v for v in versions if not v.is_aspired and v.state in states]


class AspiredVersionPolicy:
    def next_action(self, versions: list[VersionSnapshot]) -> PolicyAction | None:
        raise NotImplementedError


class AvailabilityPreservingPolicy(AspiredVersionPolicy):
    """Default: load the new version before unloading the old, so a model that
    was available stays available throughout a version change.

    An unaspired version keeps serving until an aspired one is AVAILABLE; if
    the new version fails to load, the old one goes on serving. Only when no
    version is aspired at all (the model left the config, or its directories
    are gone) is the last version unloaded.
    """

    def next_action(self, versions: list[VersionSnapshot]) -> PolicyAction | None:
        never_loaded = _unaspired(versions, ManagerState.START)
        if never_loaded:
            return PolicyAction(Action.UNLOAD, never_loaded[0].id)
        serving_old = _unaspired(versions, ManagerState.AVAILABLE)
        aspired = [v for v in versions if v.is_aspired]
        if serving_old:
            aspired_available = any(v.state == ManagerState.AVAILABLE for v in aspired)
            if aspired_available or not aspired:
                oldest = min(serving_old, key=lambda v: v.id.version)
                return PolicyAction(Action.UNLOAD, oldest.id)
        to_load = _newest_to_load(versions)
        if to_load is not None:
            return PolicyAction(Action.LOAD, to_load.id)
        return None


class ResourcePreservingPolicy(AspiredVersionPolicy):
    """Unload the old version before loading the new one, so two versions never
    hold memory at once; the model is unavailable in between."""

    def next_action(self, versions: list[VersionSnapshot]) -> PolicyAction | None:
        to_unload = _unaspired(versions, ManagerState.START, ManagerState.AVAILABLE)
        if to_unload:
            return PolicyAction(Action.UNLOAD, to_unload[0].id)
        busy = _unaspired(versions, ManagerState.LOADING, ManagerState.UNLOADING)
        if busy:
            return None
        to_load = _newest_to_load(versions)
        if to_load is not None:
            return PolicyAction(Action.LOAD, to_load.id)
        return None
