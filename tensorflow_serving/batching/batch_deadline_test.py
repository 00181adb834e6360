"""A request whose client stopped waiting is dropped from the batching queue, not run."""

import asyncio
import sys
import threading
import time

import grpc
import pytest

from tensorflow_serving.batching.shared_batch_scheduler import QueueOptions, SharedBatchScheduler
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import request_deadline, status


@pytest.fixture
def scheduler():
    s = SharedBatchScheduler(num_batch_threads=1)
    yield s
    s.stop()


def submit_all(queue, calls):
    """Runs each (value, seconds_remaining) on its own thread; returns results or errors."""
    answers = [None] * len(calls)

    def call(i, value, remaining):
        with request_deadline.scope(remaining):
            try:
                answers[i] = queue.submit({"x": value}, 1)
            except status.ServingError as error:
                answers[i] = error

    threads = [threading.Thread(target=call, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
        time.sleep(0.02)  # keep arrival order
    for t in threads:
        t.join(30)
    return answers


def recording(batches: list, factor: int = 1):
    """A batch function that appends each batch's inputs to `batches` and answers x * factor."""

    def process(tasks):
        batches.append([t.inputs["x"] for t in tasks])
        return [t.inputs["x"] * factor for t in tasks]

    return process


def test_expired_task_is_answered_deadline_exceeded_and_never_run(scheduler):
    batches = []
    process = recording(batches, factor=10)
    # A batch waits 0.5 s to fill: the first caller gives up after 0.1 s.
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=8, batch_timeout_micros=500_000), process
    )
    started = time.monotonic()
    expired, kept, patient = submit_all(queue, [(1, 0.1), (2, None), (3, 5.0)])
    assert time.monotonic() - started < 5
    assert isinstance(expired, status.ServingError)
    assert expired.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "not run" in expired.message
    assert (kept, patient) == (20, 30)
    assert batches == [[2, 3]], "the expired request's rows never reached the model"


def test_all_expired_batch_runs_nothing_and_later_work_still_runs(scheduler):
    batches = []
    process = recording(batches)
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=8, batch_timeout_micros=300_000), process
    )
    answers = submit_all(queue, [(1, 0.05), (2, 0.05)])
    assert all(a.code == grpc.StatusCode.DEADLINE_EXCEEDED for a in answers)
    assert batches == []
    assert submit_all(queue, [(4, None)]) == [4]
    assert batches == [[4]]


def test_event_loop_request_that_timed_out_is_not_run(scheduler):
    """A REST request cancelled on its loop (its 504 sent) is dropped from the queue too."""
    batches = []
    process = recording(batches, factor=10)
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=8, batch_timeout_micros=400_000), process
    )

    async def requests():
        async def one(value, seconds):
            with request_deadline.scope(seconds):  # as the REST server sets it
                async with asyncio.timeout(seconds):
                    return await queue.submit_async({"x": value}, 1)

        late, kept = await asyncio.gather(one(1, 0.1), one(2, 5.0), return_exceptions=True)
        return late, kept

    late, kept = asyncio.run(requests())
    assert isinstance(late, TimeoutError)
    assert kept == 20
    assert batches == [[2]], "the timed-out request's rows never reached the model"


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
