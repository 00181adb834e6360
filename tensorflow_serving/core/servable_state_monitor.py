"""Remembers the last state of every version the manager has seen.

GetModelStatus and the readiness endpoints read it, and tests wait on it, so
a version that ended (unloaded, or failed to load) stays visible with its
error instead of vanishing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tensorflow_serving.core.servable_state import ManagerState, ServableState


class ServableStateMonitor:
    def __init__(self) -> None:
        self._states: dict[str, dict[int, ServableState]] = {}
        self._cond = threading.Condition()
        self._listeners: list[Callable[[ServableState], None]] = []

    def add_listener(self, listener: Callable[[ServableState], None]) -> None:
        """Calls `listener` with each new state (metrics and logs subscribe here)."""
        self._listeners.append(listener)

    def publish(self, state: ServableState) -> None:
        with self._cond:
            self._states.setdefault(state.id.name, {})[state.id.version] = state
            self._cond.notify_all()
        for listener in self._listeners:
            listener(state)

    def forget(self, name: str) -> None:
        """Drops a model's history once it left the config and fully ended."""
        with self._cond:
            self._states.pop(name, None)

    def versions(self, name: str) -> dict[int, ServableState]:
        with self._cond:
            return dict(self._states.get(name, {}))

    def model_names(self) -> list[str]:
        with self._cond:
            return sorted(self._states)

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Blocks until predicate() holds after some publish, or the timeout passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
            return True

    def available_versions(self, name: str) -> list[int]:
        return sorted(
            v for v, s in self.versions(name).items() if s.state == ManagerState.AVAILABLE
        )
