"""--cpu_scheduling_policy reaches every thread, old and new, and bad names are refused."""

import os
import sys
import threading

import grpc
import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import cpu_scheduling, status


def _policy_of_new_thread() -> int:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
    thread.start()
    thread.join()
    return seen[0]


@pytest.fixture
def running_thread():
    """A thread that exists before the policy changes, alive until the test ends."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    yield thread
    release.set()
    thread.join()
    cpu_scheduling.apply_to_process("normal")


def test_one_thread_can_leave_the_process_policy(running_thread):
    cpu_scheduling.apply_to_process("batch")
    seen = []

    def leave() -> None:
        seen.append(cpu_scheduling.apply_to_this_thread("normal"))
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=leave)
    thread.start()
    thread.join()
    assert seen == [True, os.SCHED_OTHER]
    assert cpu_scheduling.thread_policies(os.getpid())[running_thread.native_id] == os.SCHED_BATCH


def test_batch_reaches_existing_and_later_threads(running_thread):
    changed = cpu_scheduling.apply_to_process("batch")
    assert changed >= 2  # this thread and running_thread at least
    policies = cpu_scheduling.thread_policies(os.getpid())
    assert policies[running_thread.native_id] == os.SCHED_BATCH
    assert policies[threading.get_native_id()] == os.SCHED_BATCH
    assert _policy_of_new_thread() == os.SCHED_BATCH


def test_normal_restores_the_default_policy(running_thread):
    cpu_scheduling.apply_to_process("batch")
    cpu_scheduling.apply_to_process("normal")
    policies = cpu_scheduling.thread_policies(os.getpid())
    assert set(policies.values()) == {os.SCHED_OTHER}
    assert _policy_of_new_thread() == os.SCHED_OTHER


def test_a_refusing_system_is_logged_and_not_fatal(monkeypatch, caplog):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert cpu_scheduling.apply_to_process("batch") == 0
    assert "Could not set CPU scheduling policy batch" in caplog.text
    assert "Operation not permitted" in caplog.text


def test_unknown_policy_is_refused_with_its_name():
    with pytest.raises(status.ServingError) as raised:
        cpu_scheduling.apply_to_process("fifo")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'fifo'" in raised.value.message and "batch, normal" in raised.value.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
