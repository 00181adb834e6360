"""The scheduler answers every request exactly once and respects its batch slots."""

import asyncio
import random
import sys
import threading
import time

import pytest

from tensorflow_serving.batching import shared_batch_scheduler
from tensorflow_serving.batching.shared_batch_scheduler import QueueOptions, SharedBatchScheduler
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import request_deadline, status


class Recorder:
    """A batch function that echoes each task's input and tracks running batches.

    With `gate`, each batch first waits (up to 10 s) until the test sets it.
    """

    def __init__(self, delay=0.002, gate: threading.Event | None = None):
        self.delay = delay
        self.gate = gate
        self.running = 0
        self.max_running = 0
        self.sizes = []
        self._lock = threading.Lock()

    def __call__(self, tasks):
        if self.gate is not None:
            self.gate.wait(10)
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.sizes.append(sum(t.size for t in tasks))
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        return [task.inputs["id"] for task in tasks]


def hammer(queues, threads=24, calls=25):
    errors, wrong = [], []

    def client(worker):
        rng = random.Random(worker)
        for call in range(calls):
            queue = rng.choice(queues)
            token = (worker, call)
            try:
                if queue.submit({"id": token}, rng.randint(1, 3)) != token:
                    wrong.append(token)
            except status.ServingError as error:
                errors.append(error)

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not any(t.is_alive() for t in pool), "a request was never answered"
    return errors, wrong


@pytest.mark.parametrize("slots", [1, 2])
def test_every_request_gets_its_own_answer_across_queues(slots):
    scheduler = SharedBatchScheduler(slots)
    recorders = [Recorder(), Recorder()]
    queues = [scheduler.add_queue(QueueOptions(max_batch_size=8), r) for r in recorders]
    errors, wrong = hammer(queues)
    assert errors == [] and wrong == []
    running_at_once = max(r.max_running for r in recorders)
    assert running_at_once <= slots
    assert max(max(r.sizes) for r in recorders) <= 8
    assert max(max(r.sizes) for r in recorders) > 3, "concurrent requests must share batches"


def test_timeout_waits_for_a_fuller_batch():
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(
        QueueOptions(max_batch_size=4, batch_timeout_micros=200_000), recorder
    )
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(queue.submit({"id": i}, 1)))
        for i in range(4)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(5)
    assert sorted(results) == [0, 1, 2, 3]
    assert recorder.sizes == [4], "four requests inside the timeout make one full batch"
    assert time.monotonic() - started < 1.0


def run_concurrently(queue, ids):
    """Submits each of `ids` from its own thread; returns the threads."""
    threads = [threading.Thread(target=queue.submit, args=({"id": i}, 1)) for i in ids]
    for t in threads:
        t.start()
    return threads


def test_after_a_big_batch_a_leader_waits_while_requests_keep_arriving(monkeypatch):
    monkeypatch.setattr(shared_batch_scheduler, "_GROWTH_WINDOW_SECONDS", 0.5)
    monkeypatch.setattr(shared_batch_scheduler, "_GROWTH_LIMIT_SECONDS", 5.0)
    scheduler = SharedBatchScheduler(1)
    gate = threading.Event()
    recorder = Recorder(delay=0, gate=gate)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    # A lone first request runs at once; four more queue behind it: a big batch next.
    first = run_concurrently(queue, ["a"])
    assert testing.wait_for(lambda: scheduler._active == 1, timeout=10)
    busy = run_concurrently(queue, ["b", "c", "d", "e"])
    assert testing.wait_for(lambda: queue.enqueued_size == 4, timeout=10)
    gate.set()
    for t in first + busy:
        t.join(10)
    assert recorder.sizes == [1, 4]
    # Traffic keeps coming, 50 ms apart: the next leader keeps the batch open.
    trickle = []
    for i in range(3):
        trickle += run_concurrently(queue, [f"t{i}"])
        time.sleep(0.05)
    for t in trickle:
        t.join(10)
    assert recorder.sizes == [1, 4, 3]


def test_growth_wait_ends_at_its_limit_though_requests_keep_coming(monkeypatch):
    monkeypatch.setattr(shared_batch_scheduler, "_GROWTH_WINDOW_SECONDS", 1.0)
    monkeypatch.setattr(shared_batch_scheduler, "_GROWTH_LIMIT_SECONDS", 0.2)
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=64), recorder)
    queue.last_batch_size = 32  # as if the previous batch was big
    answered = {}

    def lead():
        started = time.monotonic()
        queue.submit({"id": "leader"}, 1)
        answered["after"] = time.monotonic() - started

    threads = run_concurrently(queue, [])
    leader = threading.Thread(target=lead)
    leader.start()
    for i in range(20):  # one more request every 50 ms for a second
        time.sleep(0.05)
        threads += run_concurrently(queue, [i])
    for t in [leader, *threads]:
        t.join(10)
    assert answered["after"] < 0.8, "a 1 s growth window must be cut at the 0.2 s limit"


def test_light_traffic_never_waits_for_growth(monkeypatch):
    monkeypatch.setattr(shared_batch_scheduler, "_GROWTH_WINDOW_SECONDS", 5.0)
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)
    started = time.monotonic()
    for i in range(3):
        assert queue.submit({"id": i}, 1) == i
    assert time.monotonic() - started < 2.0
    assert recorder.sizes == [1, 1, 1]


def test_failing_batch_fails_each_of_its_requests_and_the_queue_goes_on():
    scheduler = SharedBatchScheduler(1)
    calls = []

    def flaky(tasks):
        calls.append(len(tasks))
        if len(calls) == 1:
            raise status.invalid_argument("bad batch")
        return [t.inputs["id"] for t in tasks]

    queue = scheduler.add_queue(QueueOptions(max_batch_size=4), flaky)
    with pytest.raises(status.ServingError, match="bad batch"):
        queue.submit({"id": 1}, 1)
    assert queue.submit({"id": 2}, 1) == 2


def test_stopped_scheduler_refuses_work():
    scheduler = SharedBatchScheduler(1)
    queue = scheduler.add_queue(QueueOptions(), Recorder())
    scheduler.stop()
    with pytest.raises(status.ServingError) as raised:
        queue.submit({"id": 1}, 1)
    assert raised.value.http_status() == 503


def test_event_loop_requests_are_batched_and_each_gets_its_own_answer():
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0.01)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)

    async def submit_all():
        futures = [queue.submit_async({"id": i}, 1 + i % 3) for i in range(20)]
        return await asyncio.gather(*futures)

    assert asyncio.run(submit_all()) == list(range(20))
    assert max(recorder.sizes) <= 8
    assert len(recorder.sizes) < 20, "requests queued together must share batches"


def test_loop_batch_waits_while_the_loop_still_adds_requests():
    """One request per loop pass: the batch starts only when the queue is full."""
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=4), recorder)

    async def trickle():
        futures = []
        for i in range(4):
            futures.append(queue.submit_async({"id": i}, 1))
            await asyncio.sleep(0)  # the next request arrives one pass later
        return await asyncio.gather(*futures)

    assert asyncio.run(trickle()) == [0, 1, 2, 3]
    assert recorder.sizes == [4]


def test_loop_batch_starts_when_the_loop_goes_quiet():
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=32), recorder)

    async def lone_request():
        return await asyncio.wait_for(queue.submit_async({"id": "alone"}, 1), 5)

    assert asyncio.run(lone_request()) == "alone"
    assert recorder.sizes == [1]


def test_loop_batch_waits_for_the_rows_of_the_last_batch_to_come_back():
    """Clients of a full batch send again one by one: the next batch is full too, not split."""
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)

    async def two_rounds():
        first = await asyncio.gather(*[queue.submit_async({"id": i}, 1) for i in range(8)])
        futures = []
        for i in range(8):  # the answered clients come back, with gaps of quiet passes
            futures.append(queue.submit_async({"id": 8 + i}, 1))
            await asyncio.sleep(0.0002)
        return first + list(await asyncio.gather(*futures))

    assert asyncio.run(two_rounds()) == list(range(16))
    assert recorder.sizes == [8, 8]


def test_loop_batch_waits_for_returns_only_so_long():
    """Half the clients of the last batch left: the batch starts without them, soon."""
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), recorder)

    async def clients_leave():
        await asyncio.gather(*[queue.submit_async({"id": i}, 1) for i in range(8)])
        started = time.monotonic()
        rest = await asyncio.gather(*[queue.submit_async({"id": 8 + i}, 1) for i in range(4)])
        return rest, time.monotonic() - started

    rest, waited = asyncio.run(clients_leave())
    assert rest == [8, 9, 10, 11]
    assert recorder.sizes == [8, 4]
    assert waited < 1.0


def test_event_loop_and_thread_requests_share_one_queue():
    """A blocked thread and a loop's futures, merged: nobody is left waiting."""
    scheduler = SharedBatchScheduler(1)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=4), Recorder(delay=0.005))
    errors, wrong = [], []

    async def loop_client(worker):
        for call in range(15):
            token = ("loop", worker, call)
            if await queue.submit_async({"id": token}, 1) != token:
                wrong.append(token)

    async def loop_clients():
        await asyncio.gather(*(loop_client(w) for w in range(6)))

    loop_thread = threading.Thread(target=lambda: asyncio.run(loop_clients()))
    loop_thread.start()
    errors, wrong_threads = hammer([queue], threads=6, calls=15)
    loop_thread.join(60)
    assert not loop_thread.is_alive(), "a loop request was never answered"
    assert errors == [] and wrong == [] and wrong_threads == []


def test_event_loop_request_gets_failures_and_full_queue_at_once():
    scheduler = SharedBatchScheduler(1)

    def failing(tasks):
        raise status.invalid_argument("bad batch")

    queue = scheduler.add_queue(QueueOptions(max_batch_size=2, max_enqueued_batches=1), failing)

    async def scenario():
        with pytest.raises(status.ServingError, match="bad batch"):
            await queue.submit_async({"id": 1}, 1)
        with pytest.raises(status.ServingError, match="larger than maximum"):
            queue.submit_async({"id": 2}, 3)

    asyncio.run(scenario())


def test_a_request_from_a_closed_loop_does_not_stall_the_queue():
    """Its loop is gone before its turn: it is dropped and the next request still runs."""
    scheduler = SharedBatchScheduler(1)
    gate = threading.Event()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8), Recorder(delay=0, gate=gate))
    leader = run_concurrently(queue, ["leader"])
    assert testing.wait_for(lambda: scheduler._active == 1, timeout=10)

    loop = asyncio.new_event_loop()

    async def enqueue_only():
        queue.submit_async({"id": "orphan"}, 1)

    loop.run_until_complete(enqueue_only())
    loop.close()
    answered = []
    later = threading.Thread(target=lambda: answered.append(queue.submit({"id": "later"}, 1)))
    later.start()
    assert testing.wait_for(lambda: queue.enqueued_size == 2, timeout=10)
    gate.set()
    for t in [*leader, later]:
        t.join(10)
    assert not later.is_alive(), "the request behind the orphan must still be run"
    assert answered == ["later"]


def test_cancelled_loop_request_does_not_disturb_the_others():
    """A request that timed out on the loop is dropped quietly; its batch-mates are answered."""
    scheduler = SharedBatchScheduler(1)
    release = threading.Event()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=4), Recorder(delay=0, gate=release))

    async def scenario():
        first = queue.submit_async({"id": "first"}, 1)
        late = queue.submit_async({"id": "late"}, 1)
        kept = queue.submit_async({"id": "kept"}, 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(late, 0.05)
        release.set()
        return await first, await kept

    assert asyncio.run(scenario()) == ("first", "kept")


class Answers:
    """Collects submit_then callbacks: each task's result or error, and how often."""

    def __init__(self) -> None:
        self.by_token: dict = {}
        self.calls = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()
        self.expected = 0

    def callback(self, token):
        def answered(task):
            with self.lock:
                self.calls += 1
                self.by_token.setdefault(token, []).append(task.error or task.result)
                if self.calls == self.expected:
                    self.all_in.set()

        return answered


def test_callback_requests_share_batches_with_blocked_threads_and_each_is_answered_once():
    scheduler = SharedBatchScheduler(1)
    recorder = Recorder(delay=0.003)
    queue = scheduler.add_queue(QueueOptions(max_batch_size=8, max_enqueued_batches=50), recorder)
    answers = Answers()
    answers.expected = 4 * 20

    def submitter(worker):
        for call in range(20):
            token = ("cb", worker, call)
            queue.submit_then({"id": token}, 1, answers.callback(token))

    threads = [threading.Thread(target=submitter, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    errors, wrong = hammer([queue], threads=4, calls=10)
    for thread in threads:
        thread.join(30)
    assert answers.all_in.wait(30), f"{answers.expected - answers.calls} callbacks never came"
    assert errors == [] and wrong == []
    assert all(results == [token] for token, results in answers.by_token.items())
    assert recorder.max_running == 1
    assert max(recorder.sizes) > 1, "callback requests must share batches"


def test_callback_request_returns_while_another_batch_runs():
    """No thread waits for a callback request: submit_then returns though the slot is busy."""
    scheduler = SharedBatchScheduler(1)
    gate = threading.Event()
    queue = scheduler.add_queue(QueueOptions(max_batch_size=4), Recorder(delay=0, gate=gate))
    blocked = threading.Thread(target=queue.submit, args=({"id": "thread"}, 1))
    blocked.start()
    assert testing.wait_for(lambda: scheduler._active == 1, timeout=10)
    answers = Answers()
    answers.expected = 1
    started = time.monotonic()
    queue.submit_then({"id": "cb"}, 1, answers.callback("cb"))
    assert time.monotonic() - started < 1.0
    assert answers.calls == 0
    gate.set()
    blocked.join(10)
    assert answers.all_in.wait(10)
    assert answers.by_token == {"cb": ["cb"]}


def test_callback_request_gets_failures_expiry_full_queue_and_stop():
    scheduler = SharedBatchScheduler(1)

    def failing(tasks):
        raise status.invalid_argument("bad batch")

    queue = scheduler.add_queue(QueueOptions(max_batch_size=2, max_enqueued_batches=1), failing)
    answers = Answers()
    answers.expected = 1
    queue.submit_then({"id": 1}, 1, answers.callback(1))  # this thread leads: answered now
    assert answers.by_token[1][0].message == "bad batch"
    with pytest.raises(status.ServingError, match="larger than maximum"):
        queue.submit_then({"id": 2}, 3, answers.callback(2))

    # Queued behind a running batch: an expired request is answered, never run.
    gate = threading.Event()
    held = scheduler.add_queue(QueueOptions(max_batch_size=2), Recorder(delay=0, gate=gate))

    def running_alone() -> bool:  # the blocked thread's batch runs; nothing else is queued
        return scheduler._active == 1 and not held.tasks

    blocked = threading.Thread(target=held.submit, args=({"id": "thread"}, 1))
    blocked.start()
    assert testing.wait_for(running_alone, timeout=10)
    with request_deadline.scope(0.0):
        held.submit_then({"id": "late"}, 1, answers.callback("late"))
    held.submit_then({"id": "next"}, 1, answers.callback("next"))
    gate.set()
    blocked.join(10)
    assert testing.wait_for(lambda: "next" in answers.by_token, timeout=10)
    assert answers.by_token["late"][0].code.name == "DEADLINE_EXCEEDED"
    assert answers.by_token["next"] == ["next"]

    # Still queued when the scheduler stops: UNAVAILABLE, not left hanging.
    gate.clear()
    blocked = threading.Thread(target=held.submit, args=({"id": "thread2"}, 1))
    blocked.start()
    assert testing.wait_for(running_alone, timeout=10)
    held.submit_then({"id": "queued"}, 1, answers.callback("queued"))
    scheduler.stop()
    gate.set()
    blocked.join(10)
    assert answers.by_token["queued"][0].code.name == "UNAVAILABLE"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
