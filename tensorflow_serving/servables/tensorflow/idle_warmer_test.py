"""The idle warmer reruns the latest call at idle priority, only within its window,
never after its model is forgotten, and gives up on a call that fails."""

import os
import sys
import threading
import time
import weakref

import pytest

from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import cpu_scheduling


class _Feeds(list):
    """A feed list that a weak reference can watch."""


class _Recorder:
    """A graph call that records who ran it, on which thread, under which policy."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, *feeds):
        with self.lock:
            self.calls.append((threading.get_ident(), os.sched_getscheduler(0), feeds))

    def count(self) -> int:
        with self.lock:
            return len(self.calls)


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
    """Asserts that `predicate` comes to hold within 10 s (the warmer runs within ms)."""
    assert testing.wait_for(predicate, timeout=10.0, interval=0.005), "timed out"


@pytest.fixture
def warmer():
    made = []

    def make(window_seconds: float) -> IdleWarmer:
        made.append(IdleWarmer(window_seconds))
        return made[-1]

    yield make
    for each in made:
        each.stop()


def test_reruns_the_latest_call_on_an_idle_priority_thread(warmer):
    # The server sets its policy on every thread after start-up; the warmer
    # must still end up at idle priority.
    idle = warmer(5.0)
    cpu_scheduling.apply_to_process("batch")
    try:
        first, latest = _Recorder(), _Recorder()
        idle.note("model", first, ["old"])
        idle.note("model", latest, ["x", "y"])
        _wait_for(lambda: latest.count() >= 3)
        thread, policy, feeds = latest.calls[-1]
        assert thread != threading.get_ident()
        assert policy == os.SCHED_IDLE
        assert feeds == ("x", "y")
    finally:
        cpu_scheduling.apply_to_process("normal")


def test_stops_after_the_window_and_lets_go_of_the_inputs(warmer):
    idle = warmer(0.05)
    call = _Recorder()
    feeds = _Feeds([1])
    watch = weakref.ref(feeds)
    idle.note("model", call, feeds)
    del feeds
    _wait_for(lambda: call.count() >= 1)
    time.sleep(0.3)
    settled = call.count()
    time.sleep(0.2)
    assert call.count() == settled
    assert watch() is None


def test_a_new_request_after_the_window_starts_warming_again(warmer):
    idle = warmer(0.05)
    call = _Recorder()
    idle.note("model", call, [])
    time.sleep(0.3)
    settled = call.count()
    idle.note("model", call, [])
    _wait_for(lambda: call.count() > settled)


def test_forget_hands_the_release_to_the_warmer_while_a_rerun_is_in_progress(warmer):
    # Unloading must not wait for an idle-priority thread that a busy host
    # may starve; the session still must not close under a running rerun.
    idle = warmer(5.0)
    call, released = _HeldCall(), []
    idle.note("model", call, [])
    assert call.started.wait(10)
    idle.forget("model", lambda: released.append(threading.get_ident()))
    time.sleep(0.2)
    assert released == []  # the rerun still runs: its session must stay open
    call.finish.set()
    _wait_for(lambda: released)
    assert released[0] != threading.get_ident()  # released by the warmer, after the rerun
    runs = call.calls
    time.sleep(0.2)
    assert call.calls == runs and len(released) == 1


def test_forget_releases_at_once_when_no_rerun_is_in_progress(warmer):
    idle = warmer(0.05)
    call = _Recorder()
    idle.note("model", call, [])
    _wait_for(lambda: call.count() >= 1)
    time.sleep(0.2)  # the window has passed: nothing runs
    released = []
    idle.forget("model", lambda: released.append(threading.get_ident()))
    assert released == [threading.get_ident()]


def test_a_failing_release_does_not_stop_the_warmer(warmer):
    idle = warmer(5.0)
    held = _HeldCall()

    def failing_release():
        raise RuntimeError("close failed")

    idle.note("model-a", held, [])
    assert held.started.wait(10)
    idle.forget("model-a", failing_release)
    held.finish.set()
    call = _Recorder()
    idle.note("model-b", call, [])
    _wait_for(lambda: call.count() >= 1)


def test_forgetting_another_model_leaves_the_latest_call_warm(warmer):
    idle = warmer(5.0)
    call = _Recorder()
    idle.note("model-a", call, [])
    _wait_for(lambda: call.count() >= 1)
    idle.forget("model-b", lambda: None)
    settled = call.count()
    _wait_for(lambda: call.count() > settled)


def test_a_failing_rerun_is_not_repeated(warmer):
    idle = warmer(5.0)
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("session closed")

    idle.note("model", failing, [])
    _wait_for(lambda: len(calls) >= 1)
    time.sleep(0.2)
    assert len(calls) == 1


def test_stop_during_a_rerun_ends_the_thread_once_the_rerun_returns():
    # At shutdown the models are unloaded (forget), then the warmer stopped;
    # on a busy host its starved thread is often still in its last rerun.
    idle = IdleWarmer(5.0)
    held = _HeldCall()
    idle.note("model", held, [])
    assert held.started.wait(10)
    idle.forget("model", lambda: None)
    stopper = threading.Thread(target=idle.stop, daemon=True)
    stopper.start()
    time.sleep(0.1)  # stop() has asked while the rerun runs
    held.finish.set()
    stopper.join(10)
    assert not stopper.is_alive(), "stop() missed its wake-up and waits forever"


def test_stop_ends_the_thread():
    idle = IdleWarmer(5.0)
    idle.note("model", _Recorder(), [])
    idle.stop()
    assert "idle_warmer" not in {thread.name for thread in threading.enumerate()}


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
