"""The manager follows the aspired versions, retries failures and never drops
the serving version during a swap (with loaders that need no TensorFlow)."""

import sys
import threading

import pytest

from tensorflow_serving.core.aspired_version_policy import ResourcePreservingPolicy
from tensorflow_serving.core.aspired_versions_manager import (
    AspiredVersionsManager,
    ManagerOptions,
)
from tensorflow_serving.core.loader import Loader
from tensorflow_serving.core.servable_state import ManagerState, ServableId
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.fake_clock import FakeClock
from tensorflow_serving.util import status


class FakeLoader(Loader):
    """Loads a string; can fail a number of times, hang, or wait until `gate` opens."""

    def __init__(self, version, failures=0, gate=None, fingerprint=None, hang=False):
        self.version = version
        self.failures = failures
        self.gate = gate
        self.hang = hang
        self.fingerprint = fingerprint
        self.unloaded = False
        self.attempts = 0

    def load(self):
        self.attempts += 1
        if self.hang:
            threading.Event().wait(30)
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.attempts <= self.failures:
            raise status.failed_precondition(f"version {self.version} is corrupt")
        return f"servable-{self.version}"

    def unload(self, servable):
        self.unloaded = True


def aspire(manager, *loaders):
    manager.set_aspired_versions("m", [(ServableId("m", ld.version), ld) for ld in loaders])


def wait_for(predicate, timeout=10):
    return testing.wait_for(predicate, timeout, interval=0.005)


@pytest.fixture
def manager():
    options = ManagerOptions(max_num_load_retries=2, load_retry_interval_micros=1000)
    m = AspiredVersionsManager(options)
    yield m
    m.stop()


def serving(manager):
    return sorted(manager.serving_versions("m") or {})


def test_loads_aspired_version_and_serves_it(manager):
    aspire(manager, FakeLoader(1))
    assert wait_for(lambda: serving(manager) == [1])
    assert manager.serving_versions("m")[1].servable == "servable-1"


def state(manager, version):
    found = manager.monitor.versions("m").get(version)
    return None if found is None else found.state


def test_swap_never_leaves_the_model_without_a_version(manager):
    aspire(manager, FakeLoader(1))
    assert wait_for(lambda: serving(manager) == [1])
    # Every change of what serves, as the manager publishes it.
    published = []
    manager.monitor.add_listener(lambda _: published.append(serving(manager)))
    gate = threading.Event()
    aspire(manager, FakeLoader(2, gate=gate))
    assert wait_for(lambda: state(manager, 2) == ManagerState.LOADING)
    assert serving(manager) == [1], "the old version serves while the new one loads"
    gate.set()
    assert wait_for(lambda: serving(manager) == [2])
    assert wait_for(lambda: state(manager, 1) == ManagerState.END)
    assert [] not in published, "no moment without a version"


def test_retries_then_reports_the_error_and_keeps_serving_old(manager):
    aspire(manager, FakeLoader(2))
    assert wait_for(lambda: serving(manager) == [2])
    broken = FakeLoader(3, failures=99)
    aspire(manager, broken)
    assert wait_for(lambda: manager.monitor.versions("m")[3].state == ManagerState.END)
    assert broken.attempts == 3  # first try + max_num_load_retries
    assert "corrupt" in manager.monitor.versions("m")[3].error.message
    assert serving(manager) == [2]


def test_failed_version_is_retried_once_its_files_change(manager):
    aspire(manager, FakeLoader(1))
    assert wait_for(lambda: serving(manager) == [1])
    aspire(manager, FakeLoader(2, failures=99, fingerprint="broken"))
    assert wait_for(lambda: manager.monitor.versions("m")[2].state == ManagerState.END)
    same_files = FakeLoader(2, failures=99, fingerprint="broken")
    aspire(manager, same_files)  # no retry
    assert manager.monitor.versions("m")[2].state == ManagerState.END
    fixed = FakeLoader(2, fingerprint="fixed")
    aspire(manager, fixed)
    assert wait_for(lambda: serving(manager) == [2])
    # The manager has acted on both aspire calls, in order, by now.
    assert same_files.attempts == 0, "unchanged files are not loaded again"
    assert fixed.attempts == 1


def test_failed_version_with_unchanged_files_is_retried_after_a_doubling_backoff():
    clock = FakeClock(start=0.0)
    options = ManagerOptions(
        max_num_load_retries=0,
        failed_version_backoff_seconds=300,
        failed_version_max_backoff_seconds=600,
    )
    m = AspiredVersionsManager(options, clock=clock.now)
    # Loads wait at a gate, so a retry shows (not END) until the test lets it fail.
    never = threading.Event()
    try:
        aspire(m, FakeLoader(2, failures=99, fingerprint="same"))
        assert wait_for(lambda: state(m, 2) == ManagerState.END)
        # Each wait doubles (300 s, then 600), and stops doubling at the max (600).
        for backoff in (300, 600, 600):
            clock.advance(backoff - 1)
            aspire(m, FakeLoader(2, failures=99, fingerprint="same", gate=never))
            assert state(m, 2) == ManagerState.END, f"not retried before {backoff} s"
            clock.advance(1)
            gate = threading.Event()
            again = FakeLoader(2, failures=99, fingerprint="same", gate=gate)
            aspire(m, again)
            assert state(m, 2) != ManagerState.END, f"retried after {backoff} s"
            gate.set()
            assert wait_for(lambda: state(m, 2) == ManagerState.END)  # noqa: B023
            assert again.attempts == 1
        aspire(m, FakeLoader(2, fingerprint="fixed"))
        assert wait_for(lambda: serving(m) == [2]), "a change of files retries at once"
    finally:
        never.set()
        m.stop()


def test_a_backoff_of_zero_retries_a_failed_version_only_when_its_files_change():
    clock = FakeClock(start=0.0)
    options = ManagerOptions(max_num_load_retries=0, failed_version_backoff_seconds=0)
    m = AspiredVersionsManager(options, clock=clock.now)
    never = threading.Event()
    try:
        aspire(m, FakeLoader(2, failures=99, fingerprint="same"))
        assert wait_for(lambda: state(m, 2) == ManagerState.END)
        clock.advance(10**9)
        aspire(m, FakeLoader(2, failures=99, fingerprint="same", gate=never))
        assert state(m, 2) == ManagerState.END
    finally:
        never.set()
        m.stop()


def test_unload_waits_for_in_flight_requests(manager):
    first = FakeLoader(1)
    aspire(manager, first)
    assert wait_for(lambda: serving(manager) == [1])
    loaded = manager.serving_versions("m")[1]
    assert loaded.try_acquire()

    def retired() -> bool:
        """The unload has begun: no new request may start using the version."""
        if loaded.try_acquire():
            loaded.release()
            return False
        return True

    manager.set_aspired_versions("m", [])
    assert wait_for(lambda: serving(manager) == [])
    assert wait_for(retired), "the unload retires the version before it waits"
    assert not first.unloaded, "a request still holds version 1"
    assert state(manager, 1) == ManagerState.UNLOADING
    loaded.release()
    assert wait_for(lambda: first.unloaded)


def test_resource_preserving_unloads_first():
    m = AspiredVersionsManager(ManagerOptions(), policy=ResourcePreservingPolicy())
    try:
        m.set_aspired_versions("m", [(ServableId("m", 1), FakeLoader(1))])
        assert wait_for(lambda: serving(m) == [1])
        m.set_aspired_versions("m", [(ServableId("m", 2), FakeLoader(2))])
        assert wait_for(lambda: serving(m) == [2])
        states = [s.state for s in m.monitor.versions("m").values()]
        assert states.count(ManagerState.AVAILABLE) == 1
    finally:
        m.stop()


def test_load_timeout_fails_a_hanging_load():
    m = AspiredVersionsManager(ManagerOptions(max_num_load_retries=0, load_timeout_seconds=0.2))
    try:
        m.set_aspired_versions("m", [(ServableId("m", 1), FakeLoader(1, hang=True))])
        assert wait_for(
            lambda: (
                1 in m.monitor.versions("m")
                and m.monitor.versions("m")[1].state == ManagerState.END
            )
        )
        assert "did not finish" in m.monitor.versions("m")[1].error.message
    finally:
        m.stop()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
