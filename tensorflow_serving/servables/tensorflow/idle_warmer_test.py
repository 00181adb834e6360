"""The idle warmer reruns the latest call at idle priority, only within its window,
never after its model is forgotten, and gives up on a call that fails.

The window runs on a fake clock that only the test moves, and the tests wait
on what the warmer shows (its reruns, `idle`), never on time passing.
"""

import os
import sys
import threading
import weakref

import pytest

from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import cpu_scheduling

WINDOW_SECONDS = 1.0


class _Feeds(list):
    """A feed list that a weak reference can watch."""


class _Clock:
    """The warmer's time: stands still until the test moves it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def pass_the_window(self) -> None:
        self.now += 2 * WINDOW_SECONDS


class _Recorder:
    """A graph call that counts its runs and remembers the last one's thread, policy, feeds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.runs = 0
        self.last = None

    def __call__(self, *feeds):
        with self.lock:
            self.runs += 1
            self.last = (threading.get_ident(), os.sched_getscheduler(0), feeds)

    def count(self) -> int:
        with self.lock:
            return self.runs


class _HeldCall:
    """A graph call that stays in progress until the test lets it finish."""

    def __init__(self):
        self.calls = 0
        self.started = threading.Event()
        self.finish = threading.Event()

    def __call__(self, *feeds):
        self.calls += 1
        self.started.set()
        self.finish.wait()


def _wait_for(predicate) -> None:
    """Asserts that `predicate` comes to hold (the warmer acts within milliseconds)."""
    assert testing.wait_for(predicate, timeout=30.0, interval=0.005), "timed out"


@pytest.fixture
def clock():
    return _Clock()


@pytest.fixture
def warmer(clock):
    made = []

    def make() -> IdleWarmer:
        made.append(IdleWarmer(WINDOW_SECONDS, clock=clock))
        return made[-1]

    yield make
    for each in made:
        assert each.stop(timeout=30), "the warming thread did not end"


def test_reruns_the_latest_call_on_an_idle_priority_thread(warmer):
    # The server sets its policy on every thread after start-up; the warmer
    # must still end up at idle priority.
    idle = warmer()
    cpu_scheduling.apply_to_process("batch")
    try:
        first, latest = _Recorder(), _Recorder()
        idle.note("model", first, ["old"])
        idle.note("model", latest, ["x", "y"])
        _wait_for(lambda: latest.count() >= 3)
        thread, policy, feeds = latest.last
        assert thread != threading.get_ident()
        assert policy == os.SCHED_IDLE
        assert feeds == ("x", "y")
        assert not idle.idle
    finally:
        cpu_scheduling.apply_to_process("normal")


def test_stops_after_the_window_and_lets_go_of_the_inputs(warmer, clock):
    idle = warmer()
    call = _Recorder()
    feeds = _Feeds([1])
    watch = weakref.ref(feeds)
    idle.note("model", call, feeds)
    del feeds
    _wait_for(lambda: call.count() >= 1)
    clock.pass_the_window()
    _wait_for(lambda: idle.idle)
    assert watch() is None, "the last request's inputs are let go"
    settled = call.count()
    assert idle.idle and call.count() == settled


def test_a_new_request_after_the_window_starts_warming_again(warmer, clock):
    idle = warmer()
    call = _Recorder()
    idle.note("model", call, [])
    _wait_for(lambda: call.count() >= 1)
    clock.pass_the_window()
    _wait_for(lambda: idle.idle)
    settled = call.count()
    idle.note("model", call, [])
    _wait_for(lambda: call.count() > settled)


def test_forget_hands_the_release_to_the_warmer_while_a_rerun_is_in_progress(warmer):
    # Unloading must not wait for an idle-priority thread that a busy host
    # may starve; the session still must not close under a running rerun.
    idle = warmer()
    call, released = _HeldCall(), []
    idle.note("model", call, [])
    assert call.started.wait(30)
    idle.forget("model", lambda: released.append(threading.get_ident()))
    assert released == [], "the rerun still runs: its session must stay open"
    assert not idle.idle
    call.finish.set()
    _wait_for(lambda: released)
    assert released[0] != threading.get_ident(), "released by the warmer, after the rerun"
    _wait_for(lambda: idle.idle)
    assert call.calls == 1, "a forgotten model's call is not rerun"
    assert len(released) == 1


def test_forget_releases_at_once_when_no_rerun_is_in_progress(warmer, clock):
    idle = warmer()
    call = _Recorder()
    idle.note("model", call, [])
    _wait_for(lambda: call.count() >= 1)
    clock.pass_the_window()
    _wait_for(lambda: idle.idle)
    released = []
    idle.forget("model", lambda: released.append(threading.get_ident()))
    assert released == [threading.get_ident()]


def test_a_failing_release_does_not_stop_the_warmer(warmer):
    idle = warmer()
    held = _HeldCall()

    def failing_release():
        raise RuntimeError("close failed")

    idle.note("model-a", held, [])
    assert held.started.wait(30)
    idle.forget("model-a", failing_release)
    held.finish.set()
    call = _Recorder()
    idle.note("model-b", call, [])
    _wait_for(lambda: call.count() >= 1)


def test_forgetting_another_model_leaves_the_latest_call_warm(warmer):
    idle = warmer()
    call = _Recorder()
    idle.note("model-a", call, [])
    _wait_for(lambda: call.count() >= 1)
    idle.forget("model-b", lambda: None)
    settled = call.count()
    _wait_for(lambda: call.count() > settled)


def test_a_failing_rerun_is_not_repeated(warmer):
    idle = warmer()
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("session closed")

    idle.note("model", failing, [])
    _wait_for(lambda: len(calls) >= 1)
    _wait_for(lambda: idle.idle)
    assert len(calls) == 1


def test_stop_during_a_rerun_ends_the_thread_once_the_rerun_returns(clock):
    # At shutdown the models are unloaded (forget), then the warmer stopped;
    # on a busy host its starved thread is often still in its last rerun.
    idle = IdleWarmer(WINDOW_SECONDS, clock=clock)
    held = _HeldCall()
    idle.note("model", held, [])
    assert held.started.wait(30)
    idle.forget("model", lambda: None)
    assert not idle.stop(timeout=0), "asked to stop while the rerun runs"
    held.finish.set()
    # A second stop() only waits: it does not wake the thread again.
    assert idle.stop(timeout=30), "stop() missed its wake-up and waits forever"


def test_stop_ends_the_thread(clock):
    idle = IdleWarmer(WINDOW_SECONDS, clock=clock)
    idle.note("model", _Recorder(), [])
    assert idle.stop()
    assert idle.stop(timeout=0), "stopping again is harmless"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
