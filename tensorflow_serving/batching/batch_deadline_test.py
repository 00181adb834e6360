"""A request whose client stopped waiting is dropped from the batching queue, not run."""

import sys
import threading
import time

import grpc

from tensorflow_serving.batching.shared_batch_scheduler import QueueOptions, SharedBatchScheduler
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import request_deadline
from tensorflow_serving.util.executors import CALLING_THREAD, WorkerThreads


def test_expired_tasks_are_answered_deadline_exceeded_and_never_run():
    scheduler = SharedBatchScheduler(1)
    pool = WorkerThreads(1)
    gate = threading.Event()
    batches = []

    def process(tasks):
        gate.wait(10)
        batches.append([t.inputs["x"] for t in tasks])
        return [t.inputs["x"] * 10 for t in tasks]

    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), process)
    held = queue.submit({"x": 1}, 1, pool)  # holds the only slot until the gate opens
    with request_deadline.at(time.monotonic() - 1):  # its client has given up already
        expired = queue.submit({"x": 2}, 1, CALLING_THREAD)
    with request_deadline.scope(60):
        kept = queue.submit({"x": 3}, 1, CALLING_THREAD)
    gate.set()
    assert held.result(timeout=10) == 10 and kept.result(timeout=10) == 30
    error = expired.exception(timeout=10)
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED and "not run" in error.message
    assert batches == [[1], [3]], "the expired request's rows never reached the model"
    assert queue.submit({"x": 4}, 1, CALLING_THREAD).result(timeout=10) == 40
    scheduler.stop()
    pool.shutdown()


def test_scope_without_a_real_deadline_sets_none():
    with request_deadline.scope(None):
        assert request_deadline.current() is None
    with request_deadline.scope(1e9):  # what gRPC reports for a call without a deadline
        assert request_deadline.current() is None
    with request_deadline.scope(10):
        assert request_deadline.current() > time.monotonic()
        assert not request_deadline.expired()
    with request_deadline.scope(0):
        assert request_deadline.expired()
    assert request_deadline.current() is None


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
