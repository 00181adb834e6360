"""The scheduler answers every request exactly once, keeps to its batch slots, and
starts batches when the configured timeout says (a FakeClock drives the time)."""

import asyncio
import random
import sys
import threading

import pytest

from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.batching.shared_batch_scheduler import (
    ARRIVAL_WAIT_SECONDS,
    QueueOptions,
    SharedBatchScheduler,
)
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.fake_clock import FakeClock
from tensorflow_serving.util import status
from tensorflow_serving.util.executors import CALLING_THREAD, Runner, WorkerThreads


class Recorder:
    """A batch function that echoes each task's input and records every batch.

    With `gate`, each batch first waits (up to 10 s) until the test sets it;
    `started` counts the batches that began.
    """

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.running = 0
        self.max_running = 0
        self.batches: list[list] = []
        self.started = 0
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, tasks):
        with self._lock:
            self.started += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        if self.gate is not None:
            self.gate.wait(10)
        with self._lock:
            self.running -= 1
            self.batches.append([t.inputs["id"] for t in tasks])
            self.threads.append(threading.current_thread().name)
        return [task.inputs["id"] for task in tasks]

    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]


@pytest.fixture
def pool():
    runner = WorkerThreads(4, thread_name_prefix="lent")
    yield runner
    runner.shutdown(wait=False)


def held_slot(queue, recorder, pool, size=1):
    """Starts a batch of one task (`size` rows) holding the only slot until the gate opens."""
    first = queue.submit({"id": "held"}, size, pool)
    assert testing.wait_for(lambda: recorder.started == 1, timeout=10)
    return first


@pytest.mark.parametrize("slots", [1, 2])
def test_every_request_gets_its_own_answer_across_queues_within_the_slots(slots):
    scheduler = SharedBatchScheduler(slots)
    recorders = [Recorder(), Recorder()]
    queues = [scheduler.add_queue(QueueOptions(max_batch_size=8), r) for r in recorders]
    wrong, errors = [], []

    def client(worker):
        rng = random.Random(worker)
        for call in range(25):
            token = (worker, call)
            try:
                task = rng.choice(queues).submit({"id": token}, 1, CALLING_THREAD)
                if task.result(timeout=30) != token:
                    wrong.append(token)
            except status.ServingError as error:
                errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a request was never answered"
    assert wrong == [] and errors == []
    assert max(r.max_running for r in recorders) <= slots
    assert max(max(r.sizes()) for r in recorders) <= 8
    scheduler.stop()


def test_a_lone_request_on_the_calling_thread_is_answered_before_submit_returns():
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    task = queue.submit({"id": "alone"}, 1, CALLING_THREAD)
    assert task.done() and task.result() == "alone"
    assert recorder.threads == [threading.current_thread().name]
    scheduler.stop()


@pytest.mark.parametrize("timeout_micros", [0, 50_000])
def test_a_slot_that_frees_runs_what_is_queued_at_once_when_no_timeout_is_pending(
    pool, timeout_micros
):
    clock = FakeClock()
    scheduler = SharedBatchScheduler(1, clock)
    gate = threading.Event()
    recorder = Recorder(gate)
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=32, batch_timeout_micros=timeout_micros), recorder
    )
    first = held_slot(queue, recorder, pool, size=32)  # a full batch: starts without waiting
    queued = [queue.submit({"id": i}, 1, CALLING_THREAD) for i in range(3)]
    assert not any(task.done() for task in queued), "no free slot: they wait in the queue"
    clock.advance(2 * timeout_micros / 1e6)  # any timeout passes while the slot is busy
    waits = clock.waits()
    gate.set()
    assert [task.result(timeout=10) for task in queued] == [0, 1, 2]
    assert first.result(timeout=10) == "held"
    assert recorder.batches == [["held"], [0, 1, 2]]
    assert clock.waits() == waits, "the batch started without waiting again"
    scheduler.stop()


def test_a_timeout_holds_a_partial_batch_until_it_passes(pool):
    clock = FakeClock()
    scheduler = SharedBatchScheduler(1, clock)
    recorder = Recorder()
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=8, batch_timeout_micros=50_000), recorder
    )
    tasks = [queue.submit({"id": i}, 1, pool) for i in range(3)]
    assert testing.wait_for(lambda: clock.waits() >= 1, timeout=10)
    waits = clock.waits()
    clock.advance(0.049)
    assert testing.wait_for(lambda: clock.waits() == waits + 1, timeout=10)
    assert recorder.batches == [], "0.049 s < batch_timeout_micros: still waiting"
    clock.advance(0.002)
    assert [task.result(timeout=10) for task in tasks] == [0, 1, 2]
    assert recorder.batches == [[0, 1, 2]]
    scheduler.stop()


def test_a_timeout_ends_early_when_the_batch_is_full(pool):
    clock = FakeClock()
    scheduler = SharedBatchScheduler(1, clock)
    recorder = Recorder()
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=4, batch_timeout_micros=10_000_000), recorder
    )
    first = queue.submit({"id": 0}, 1, pool)
    assert testing.wait_for(lambda: clock.waiting() == 1, timeout=10)
    rest = [queue.submit({"id": i}, 1, pool) for i in (1, 2, 3)]
    assert [task.result(timeout=10) for task in [first, *rest]] == [0, 1, 2, 3]
    assert recorder.batches == [[0, 1, 2, 3]], "a full batch runs without the clock moving"
    scheduler.stop()


class LateRunner(Runner):
    """A runner that starts what it is given only when the test calls start().

    Stands for a batch thread that is free but has not picked up its work yet,
    so the test can queue more rows before it does.
    """

    def __init__(self):
        self.calls: list = []

    def execute(self, fn, /, *args):
        self.calls.append((fn, args, {}))

    def start(self) -> threading.Thread:
        fn, args, kwargs = self.calls.pop(0)
        thread = threading.Thread(target=fn, args=args, kwargs=kwargs, name="late")
        thread.start()
        return thread


def test_timeout_zero_a_free_thread_takes_every_queued_row_at_once():
    clock = FakeClock()
    scheduler = SharedBatchScheduler(1, clock)
    recorder = Recorder()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8, batch_timeout_micros=0), recorder)
    late = LateRunner()
    first = queue.submit({"id": 0}, 1, late)
    rest = [queue.submit({"id": i}, 1, CALLING_THREAD) for i in (1, 2, 3, 4)]
    assert len(late.calls) == 1, "the first task's runner took the free slot"
    late.start().join(10)
    assert [task.result(timeout=10) for task in [first, *rest]] == [0, 1, 2, 3, 4]
    assert recorder.batches == [[0, 1, 2, 3, 4]], "5 of 8 rows, in one batch"
    assert clock.waits() == 0, "timeout 0: the batch never waited for more"
    scheduler.stop()


def lead_while_one_arrives():
    """A free slot about to take a lone queued task while another request is arriving.

    Returns (clock, arrivals, scheduler, recorder, queue, the queued task, the leader).
    """
    clock = FakeClock()
    arrivals = Arrivals(clock)
    scheduler = SharedBatchScheduler(1, clock, arrivals)
    recorder = Recorder()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8, batch_timeout_micros=0), recorder)
    arrivals.begin()  # a request the transport took in and is still decoding
    late = LateRunner()
    first = queue.submit({"id": 0}, 1, late)
    return clock, arrivals, scheduler, recorder, queue, first, late.start()


def test_timeout_zero_a_batch_takes_the_requests_still_arriving():
    _, arrivals, scheduler, recorder, queue, first, leader = lead_while_one_arrives()
    assert testing.wait_for(lambda: arrivals.waiting() == 1, timeout=10)
    assert recorder.started == 0, "the free slot waits for the request in hand"
    arrivals.handing()
    second = queue.submit({"id": 1}, 1, CALLING_THREAD)
    arrivals.handed_over()
    leader.join(10)
    assert [first.result(timeout=10), second.result(timeout=10)] == [0, 1]
    assert recorder.batches == [[0, 1]]
    scheduler.stop()


class ArrivalsOnYield(Arrivals):
    """Arrivals whose let_arrive() runs what a thread waiting for the CPU would do then."""

    def __init__(self, clock, on_yield=None):
        super().__init__(clock)
        self.yields = 0
        self.on_yield = on_yield

    def let_arrive(self) -> None:
        self.yields += 1
        if self.on_yield is not None:
            on_yield, self.on_yield = self.on_yield, None
            on_yield()


def test_timeout_zero_a_request_received_but_not_yet_counted_joins_the_batch():
    # gRPC holds a request on a thread that waits for the CPU: the batch thread
    # yields once before a partial batch, and that thread queues its request.
    clock = FakeClock()
    second: list = []
    arrivals = ArrivalsOnYield(
        clock, lambda: second.append(queue.submit({"id": 1}, 1, CALLING_THREAD))
    )
    scheduler = SharedBatchScheduler(1, clock, arrivals)
    recorder = Recorder()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8, batch_timeout_micros=0), recorder)
    first = queue.submit({"id": 0}, 1, CALLING_THREAD)
    assert [first.result(timeout=10), second[0].result(timeout=10)] == [0, 1]
    assert recorder.batches == [[0, 1]]
    assert arrivals.yields == 1, "one yield per partial batch"
    assert clock.waits() == 0, "nothing arrived late: no wait"
    scheduler.stop()


def test_timeout_zero_a_full_batch_starts_without_yielding(pool):
    clock = FakeClock()
    arrivals = ArrivalsOnYield(clock)
    scheduler = SharedBatchScheduler(1, clock, arrivals)
    gate = threading.Event()
    recorder = Recorder(gate)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=4, batch_timeout_micros=0), recorder)
    held = held_slot(queue, recorder, pool, size=4)
    assert arrivals.yields == 0, "a full batch does not wait for anyone"
    full = [queue.submit({"id": i}, 1, CALLING_THREAD) for i in range(4)]
    gate.set()
    assert held.result(timeout=10) == "held"
    assert [task.result(timeout=10) for task in full] == [0, 1, 2, 3]
    assert recorder.batches == [["held"], [0, 1, 2, 3]]
    assert arrivals.yields == 0
    scheduler.stop()


def test_timeout_zero_a_request_that_never_arrives_delays_a_batch_at_most_the_arrival_wait():
    # e.g. a handler that blocks: its request never reaches the queue
    clock, _, scheduler, recorder, _, first, leader = lead_while_one_arrives()
    assert testing.wait_for(lambda: clock.waiting() == 1, timeout=10)
    clock.advance(ARRIVAL_WAIT_SECONDS)
    assert first.result(timeout=10) == 0
    leader.join(10)
    assert recorder.batches == [[0]]
    assert clock.waits() == 1, "one wait, no longer than ARRIVAL_WAIT_SECONDS"
    assert clock.now() == 1000.0 + ARRIVAL_WAIT_SECONDS
    scheduler.stop()


def test_timeout_zero_after_a_large_batch_the_next_starts_at_once(pool):
    clock = FakeClock()
    scheduler = SharedBatchScheduler(1, clock)
    gate = threading.Event()
    recorder = Recorder(gate)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    held_slot(queue, recorder, pool)
    large = [queue.submit({"id": f"l{i}"}, 1, CALLING_THREAD) for i in range(7)]
    gate.set()
    assert [task.result(timeout=10) for task in large] == [f"l{i}" for i in range(7)]
    # The slot is free again: a lone task runs alone, as a trickle of them would.
    for i in range(3):
        assert queue.submit({"id": i}, 1, pool).result(timeout=10) == i
    assert recorder.sizes() == [1, 7, 1, 1, 1]
    assert clock.waits() == 0, "no batch waited for rows that were not queued"
    scheduler.stop()


def test_a_timeout_counts_from_the_first_task_not_the_last(pool):
    clock = FakeClock()
    scheduler = SharedBatchScheduler(1, clock)
    recorder = Recorder()
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=8, batch_timeout_micros=50_000), recorder
    )
    first = queue.submit({"id": 0}, 1, pool)
    assert testing.wait_for(lambda: clock.waiting() == 1, timeout=10)
    clock.advance(0.030)
    assert testing.wait_for(lambda: clock.waits() == 2, timeout=10)
    second = queue.submit({"id": 1}, 1, pool)
    clock.advance(0.020)  # 50 ms after the first task, 20 ms after the second
    assert [first.result(timeout=10), second.result(timeout=10)] == [0, 1]
    assert recorder.batches == [[0, 1]]
    scheduler.stop()


def test_a_failing_batch_fails_each_of_its_requests_and_the_queue_goes_on():
    scheduler = SharedBatchScheduler(1)
    failures = iter([True, False])

    def process(tasks):
        if next(failures):
            raise status.internal("the model broke")
        return [task.inputs["id"] for task in tasks]

    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), process)
    broken = queue.submit({"id": 1}, 1, CALLING_THREAD)
    assert broken.exception().message == "the model broke"
    assert queue.submit({"id": 2}, 1, CALLING_THREAD).result() == 2
    scheduler.stop()


def test_oversized_requests_and_a_full_queue_are_refused_at_once(pool):
    scheduler = SharedBatchScheduler(1)
    gate = threading.Event()
    recorder = Recorder(gate)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=2, max_enqueued_batches=1), recorder)
    with pytest.raises(status.ServingError, match="larger than maximum input batch size 2"):
        queue.submit({"id": "big"}, 3, CALLING_THREAD)
    held = held_slot(queue, recorder, pool)
    waiting = queue.submit({"id": "w"}, 2, CALLING_THREAD)
    with pytest.raises(status.ServingError, match="queue .* is full") as raised:
        queue.submit({"id": "x"}, 1, CALLING_THREAD)
    assert raised.value.http_status() == 503
    gate.set()
    assert held.result(timeout=10) == "held" and waiting.result(timeout=10) == "w"
    scheduler.stop()


def test_stop_answers_queued_requests_unavailable_and_refuses_new_ones(pool):
    scheduler = SharedBatchScheduler(1)
    gate = threading.Event()
    recorder = Recorder(gate)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    held = held_slot(queue, recorder, pool)
    queued = queue.submit({"id": "q"}, 1, CALLING_THREAD)
    scheduler.stop()
    assert queued.exception(timeout=10).code.name == "UNAVAILABLE"
    with pytest.raises(status.ServingError, match="shutting down"):
        queue.submit({"id": "late"}, 1, CALLING_THREAD)
    gate.set()
    assert held.result(timeout=10) == "held"


def test_a_cancelled_request_is_dropped_from_its_batch(pool):
    scheduler = SharedBatchScheduler(1)
    gate = threading.Event()
    recorder = Recorder(gate)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    held_slot(queue, recorder, pool)
    dropped = queue.submit({"id": "dropped"}, 1, CALLING_THREAD)
    kept = queue.submit({"id": "kept"}, 1, CALLING_THREAD)
    assert dropped.cancel()
    gate.set()
    assert kept.result(timeout=10) == "kept"
    assert recorder.batches == [["held"], ["kept"]]
    scheduler.stop()


def test_a_task_is_a_future_callers_can_block_on_call_back_from_or_await(pool):
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    seen = []
    task = queue.submit({"id": "cb"}, 1, pool)
    task.add_done_callback(lambda done: seen.append(done.result()))
    assert task.result(timeout=10) == "cb"
    assert testing.wait_for(lambda: seen == ["cb"], timeout=10)

    async def awaited():
        return await queue.submit({"id": "aw"}, 1, pool)

    assert asyncio.run(awaited()) == "aw"
    assert all(name.startswith("lent") for name in recorder.threads)
    scheduler.stop()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
