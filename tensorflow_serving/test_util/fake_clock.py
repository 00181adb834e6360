"""FakeClock: a batch scheduler Clock whose time moves only when a test says so."""

from __future__ import annotations

import threading


class FakeClock:
    """Time starts at `start` and moves only by advance(); timed waits end only then.

    `wait` blocks the scheduler's thread on its condition until advance() (or
    the scheduler itself) notifies it; the scheduler then re-reads now().
    `waiting()` counts the threads in wait and `waits()` the waits begun, so
    a test can wait for a scheduler to reach its timed wait instead of sleeping. Thread-safe.
    """

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._lock = threading.Lock()
        self._waiting = 0
        self._waits = 0
        self._conditions: set[threading.Condition] = set()

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, condition: threading.Condition, seconds: float) -> None:
        with self._lock:
            self._waiting += 1
            self._waits += 1
            self._conditions.add(condition)
        try:
            condition.wait()
        finally:
            with self._lock:
                self._waiting -= 1

    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    def waits(self) -> int:
        """How many timed waits have begun so far."""
        with self._lock:
            return self._waits

    def advance(self, seconds: float) -> None:
        """Moves time on and wakes every timed wait, which re-checks its own deadline."""
        with self._lock:
            self._now += seconds
            conditions = list(self._conditions)
        for condition in conditions:
            with condition:
                condition.notify_all()
