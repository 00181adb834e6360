"""SharedBatchScheduler: merges requests into batches, with at most
`num_batch_threads` batches running at once across every model
(upstream: shared_batch_scheduler.h).

The threads that run batches are the request threads themselves: a request
that arrives while a batch slot is free becomes the batch's *leader*; it
takes what is queued (its own task included), runs it, hands every caller
its answer, and passes the slot on to the oldest waiting request, if any.
Requests that arrive while every slot is busy just queue, so under load
batches grow exactly as fast as traffic does. Compared with dedicated batch
threads, this saves two thread hand-offs per request, which in Python cost
more than the batching gains at low concurrency.

Callers that must not block (the gRPC server's polling threads) use
`submit_then`: the request is queued with a callback and the call returns,
unless the request gets a free slot, in which case the calling thread leads
as above. A leader whose own task is answered keeps leading while the oldest
waiting request is such a callback request, since no thread of its own could
take the slot. The callbacks of a batch run on the leader's thread, after the
batch, one after another: no thread is woken per request.

Callers on an asyncio event loop (the REST server) have no thread to lend:
`submit_async` enqueues and returns a future at once. When such a task gets
a slot, the loop first finishes what it is reading (the batch may only grow
while the loop still adds to the queue in each pass), then a *runner* thread
of the scheduler runs one batch and passes the slot on. The answers of a
batch go back to each loop in one call, so a request costs no thread
hand-off of its own, only its share of one per batch. Waiting for the loop
to go quiet is what fills batches when the process has one core: a batch
started while requests are still being parsed would run them in the next,
smaller batch instead. Under load, the batch also waits a little for the
rows of the batch answered last to come back (clients that wait for an
answer send their next request when it arrives).

Each (model version, signature, input layout) has its own queue. With a
batch_timeout_micros above 0 a leader waits (up to that long after the
oldest task arrived) for a full batch before running a partial one.

Beyond upstream, and only under load: after a batch over a quarter of
max_batch_size, a thread leader waits while the queue still grows (windows
of _GROWTH_WINDOW_SECONDS, until full, a window adds nothing, or
_GROWTH_LIMIT_SECONDS have passed). On one core
the requests of the batch just answered come back while the next one would
start, so without this wait 32 concurrent gRPC clients settle into two
half-size batches (mean 16 rows). The limit is about the time 32 requests
take to be answered and come back on one core: with 5 ms batches averaged
18-23 rows, with 12 ms 28-31 (the CNN costs 358 us a row at batch 22 and 319
at batch 32). Light traffic never waits.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence

from tensorflow_serving.util import request_deadline, status

_LOG = logging.getLogger(__name__)

# A leader whose previous batch of this queue was big waits while the queue
# still grows, this long at a time (see SharedBatchScheduler._lead), and at
# most _GROWTH_LIMIT_SECONDS in all: steady traffic that trickles in must not
# hold every batch until it is full.
_GROWTH_WINDOW_SECONDS = 0.002
_GROWTH_LIMIT_SECONDS = 0.012

# Loop passes in a row that must add nothing before an async batch starts.
_QUIET_PASSES = 2
# How long an async batch may wait in all, from the loop's first quiet spell,
# for the rows of the batch just answered to come back (see
# SharedBatchScheduler._launch_when_quiet).
_RETURN_WAIT_SECONDS = 0.005


@dataclasses.dataclass(frozen=True)
class QueueOptions:
    """Upstream's defaults for a batching queue."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10


class Task:
    """One request's rows, waiting for its slice of a batch's result."""

    __slots__ = (
        "inputs",
        "size",
        "result",
        "error",
        "enqueued_at",
        "deadline",
        "done",
        "holds_slot",
        "future",
        "callback",
        "_wake",
    )

    def __init__(
        self,
        inputs: dict,
        size: int,
        future: asyncio.Future | None = None,
        callback: Callable[[Task], None] | None = None,
    ):
        self.inputs = inputs
        self.size = size
        self.result = None
        self.error: BaseException | None = None
        self.enqueued_at = 0.0
        # When the caller stops waiting (request_deadline); an expired task is not run.
        self.deadline: float | None = request_deadline.current()
        self.done = False
        self.holds_slot = False  # this request's thread (or a runner for it) runs batches now
        # Set for submit_async: resolved on its loop; no thread waits on _wake.
        self.future = future
        # Set for submit_then: called with the answered task; no thread waits on _wake.
        self.callback = callback
        self._wake = None
        if future is None and callback is None:
            self._wake = threading.Lock()
            self._wake.acquire()


# Runs a batch of tasks; returns one result per task, or raises for all of them.
ProcessBatch = Callable[[list[Task]], Sequence[object]]


class BatchQueue:
    """Tasks of one kind, batched together."""

    def __init__(
        self, scheduler: SharedBatchScheduler, options: QueueOptions, process: ProcessBatch
    ):
        self._scheduler = scheduler
        self.options = options
        self.process = process
        self.tasks: collections.deque[Task] = collections.deque()
        self.enqueued_size = 0
        self.capacity = options.max_batch_size * options.max_enqueued_batches
        self.filling_leaders = 0  # leaders waiting for a fuller batch
        self.last_batch_size = 0
        self.answered_rows = 0  # rows of the batch answered last
        self.arrived_since_answer = 0  # rows enqueued since then

    def submit(self, inputs: dict, size: int) -> object:
        """Runs `inputs` (`size` rows) as part of a batch; blocks until its result is ready."""
        self._check_size(size)
        return self._scheduler._submit(self, Task(inputs, size))

    def submit_async(self, inputs: dict, size: int) -> asyncio.Future:
        """Like submit, from a running event loop: the result comes as a future of that loop.

        Raises at once (queue full, too large, shutting down) as submit does.
        """
        self._check_size(size)
        future = asyncio.get_running_loop().create_future()
        self._scheduler._submit_async(self, Task(inputs, size, future))
        return future

    def submit_then(self, inputs: dict, size: int, callback: Callable[[Task], None]) -> None:
        """Like submit, but returns once queued: `callback(task)` gets the answer.

        The callback runs on whichever thread ran the batch (or on this one,
        if it ends up leading); it must not block. Raises at once as submit does.
        """
        self._check_size(size)
        self._scheduler._submit_then(self, Task(inputs, size, callback=callback))

    def _check_size(self, size: int) -> None:
        if size > self.options.max_batch_size:
            raise status.invalid_argument(
                f"Task size {size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}"
            )

    def pop_batch(self) -> list[Task]:
        batch: list[Task] = []
        size = 0
        limit = self.options.max_batch_size
        now = time.monotonic()
        while self.tasks and size + self.tasks[0].size <= limit:
            task = self.tasks.popleft()
            if task.deadline is not None and task.deadline <= now:
                self.enqueued_size -= task.size
                self._scheduler._expire(task)  # its client stopped waiting: do not run it
                continue
            size += task.size
            batch.append(task)
        self.enqueued_size -= size
        self.last_batch_size = size
        return batch

    def full(self) -> bool:
        return self.enqueued_size >= self.options.max_batch_size

    def _may_wait_after(self, rows: int) -> bool:
        """Whether a batch that is not full yet may wait for more, after one of `rows` rows.

        Only under load, after a batch over a quarter of max_batch_size:
        light traffic never waits.
        """
        return rows * 4 > self.options.max_batch_size and not self.full()

    def still_filling(self, seen: int | None) -> bool:
        """Under load, whether a thread leader should wait one more growth window.

        Only while the last window (or the time since this leader took the
        slot: seen is None) added requests.
        """
        if not self._may_wait_after(self.last_batch_size):
            return False
        return seen is None or self.enqueued_size > seen

    def awaits_returns(self) -> bool:
        """Under load, whether rows of the batch answered last have yet to come back.

        Clients that wait for their answer send their next request when it
        arrives, so about as many rows as that batch had follow it.
        """
        if not self._may_wait_after(self.answered_rows):
            return False
        return self.arrived_since_answer < self.answered_rows

    def fill_deadline(self) -> float | None:
        """When a partial batch must run; None: run now (full, or no timeout)."""
        timeout = self.options.batch_timeout_micros
        if timeout <= 0 or self.enqueued_size >= self.options.max_batch_size:
            return None
        return self.tasks[0].enqueued_at + timeout / 1e6


class SharedBatchScheduler:
    def __init__(self, num_batch_threads: int):
        if num_batch_threads < 1:
            raise status.invalid_argument(
                f"num_batch_threads must be >= 1, got {num_batch_threads}"
            )
        self._slots = num_batch_threads
        self._active = 0
        self._cond = threading.Condition(threading.Lock())
        self._queues: list[BatchQueue] = []
        self._stopping = False
        self._waiting_on_cond = 0
        # Leads batches for submit_async tasks (never more than the slots).
        self._runners = concurrent.futures.ThreadPoolExecutor(
            max_workers=num_batch_threads, thread_name_prefix="batch"
        )

    def add_queue(self, options: QueueOptions, process: ProcessBatch) -> BatchQueue:
        queue = BatchQueue(self, options, process)
        with self._cond:
            self._queues.append(queue)
        return queue

    def remove_queue(self, queue: BatchQueue) -> None:
        """Stops a queue; tasks still in it are answered UNAVAILABLE."""
        error = status.unavailable("The servable was unloaded before its batch ran")
        with self._cond:
            if queue in self._queues:
                self._queues.remove(queue)
            leftover = list(queue.tasks)
            queue.tasks.clear()
            queue.enqueued_size = 0
            for task in leftover:
                self._finish(task, None, error)

    def enqueued(self) -> int:
        """Rows waiting in all queues (for the queue-depth metric)."""
        with self._cond:
            return sum(q.enqueued_size for q in self._queues)

    # -- The request's thread ---------------------------------------------

    def _enqueue(self, queue: BatchQueue, task: Task) -> None:
        """Admits `task` or raises; gives it a free slot if there is one (lock held)."""
        if self._stopping or queue not in self._queues:
            raise status.unavailable("The batch scheduler is shutting down")
        if queue.enqueued_size + task.size > queue.capacity:
            raise status.unavailable(
                "The batch scheduling queue to which this task was submitted is full"
            )
        task.enqueued_at = time.monotonic()
        queue.tasks.append(task)
        queue.enqueued_size += task.size
        queue.arrived_since_answer += task.size
        if self._active < self._slots:
            self._active += 1
            task.holds_slot = True
        elif queue.filling_leaders and queue.full():
            self._cond.notify_all()

    def _submit_async(self, queue: BatchQueue, task: Task) -> None:
        with self._cond:
            self._enqueue(queue, task)
        if task.holds_slot:
            task.future.get_loop().call_soon(self._launch_when_quiet, queue, queue.enqueued_size)

    def _launch_when_quiet(
        self, queue: BatchQueue, seen: int, quiet: int = 0, quiet_since: float | None = None
    ) -> None:
        """On the loop, holding a slot: starts a runner once the loop stops adding.

        Each pass of the loop reads the requests that have arrived; a request
        takes a pass or two from its bytes to the queue. So the batch waits
        while the queue grew (and is not full), until two passes in a row
        added nothing. Under load it then also waits (up to
        _RETURN_WAIT_SECONDS from the first quiet spell, the loop passing
        meanwhile) while rows of the batch answered last have not come
        back: otherwise, on one core, 32 clients can settle into two
        half-size batches, each started while the other's clients were
        still sending (at times 10-30% of the batches held 16 rows or fewer).
        """
        size = queue.enqueued_size
        quiet = quiet + 1 if size == seen else 0
        wait = size < queue.options.max_batch_size and quiet < _QUIET_PASSES
        if not wait and queue.awaits_returns():
            now = time.monotonic()
            if quiet_since is None:
                quiet_since = now
            wait = now - quiet_since < _RETURN_WAIT_SECONDS
        if wait:
            asyncio.get_running_loop().call_soon(
                self._launch_when_quiet, queue, size, quiet, quiet_since
            )
            return
        try:
            self._runners.submit(self._run_one, queue)
        except RuntimeError:  # stop() ran meanwhile and answered what was queued
            with self._cond:
                self._active -= 1

    def _submit_then(self, queue: BatchQueue, task: Task) -> None:
        with self._cond:
            self._enqueue(queue, task)
        if task.holds_slot:
            self._lead(queue, task)

    def _submit(self, queue: BatchQueue, task: Task) -> object:
        with self._cond:
            self._enqueue(queue, task)
        if not task.holds_slot:
            task._wake.acquire()  # until done, or until handed a batch slot
        if task.holds_slot:
            self._lead(queue, task)
        if task.error is not None:
            raise task.error
        return task.result

    def _lead(self, queue: BatchQueue, task: Task) -> None:
        """Runs batches of `queue` until this request's own task is answered."""
        seen = None  # queue size when this leader last looked, while waiting for growth
        growth_until = None  # when that wait ends however the queue grows
        while True:
            with self._cond:
                if task.done or not queue.tasks:
                    # Done, or our task is in a batch another leader runs: the
                    # slot moves on. A request without a thread (submit_then) is
                    # led by this thread.
                    successor = self._pass_slot_on()
                    if successor is not None:
                        queue, task = successor
                        seen = growth_until = None
                        continue
                    if task.callback is None:
                        self._waiting_on_cond += 1
                        while not task.done:
                            self._cond.wait()
                        self._waiting_on_cond -= 1
                    return
                deadline = queue.fill_deadline()
                if deadline is not None and time.monotonic() < deadline:
                    self._wait_to_fill(queue, deadline - time.monotonic())
                    continue
                if deadline is None and queue.still_filling(seen):
                    now = time.monotonic()
                    if growth_until is None:
                        growth_until = now + _GROWTH_LIMIT_SECONDS
                    if now < growth_until:
                        seen = queue.enqueued_size
                        self._wait_to_fill(queue, min(_GROWTH_WINDOW_SECONDS, growth_until - now))
                        continue
                seen = growth_until = None
                batch = queue.pop_batch()
            if batch:  # empty when every task taken had expired
                self._run(queue, batch)

    def _wait_to_fill(self, queue: BatchQueue, seconds: float) -> None:
        """Waits (lock held) up to `seconds` for `queue` to grow; a full queue wakes it early."""
        queue.filling_leaders += 1
        self._cond.wait(seconds)
        queue.filling_leaders -= 1

    def _run_one(self, queue: BatchQueue) -> None:
        """A runner's slot: one batch of `queue` (after its timeout), then the slot moves on."""
        batch: list[Task] = []
        with self._cond:
            while queue.tasks and not self._stopping:
                deadline = queue.fill_deadline()
                if deadline is None or time.monotonic() >= deadline:
                    batch = queue.pop_batch()
                    break
                self._wait_to_fill(queue, deadline - time.monotonic())
        if batch:
            self._run(queue, batch)
        with self._cond:
            successor = self._pass_slot_on()
        if successor is not None:
            self._lead(*successor)

    def _run(self, queue: BatchQueue, batch: list[Task]) -> None:
        try:
            results = queue.process(batch)
            error = None
        except BaseException as raised:  # every caller gets the error, none waits forever
            if not isinstance(raised, status.ServingError):
                _LOG.exception("Batch processing failed")
            results, error = [None] * len(batch), raised
        replies: dict[asyncio.AbstractEventLoop, list[Task]] = {}
        with self._cond:
            queue.answered_rows = sum(task.size for task in batch)
            queue.arrived_since_answer = 0
            for task, result in zip(batch, results, strict=True):
                self._finish(task, result, error, replies)
            if self._waiting_on_cond:
                self._cond.notify_all()
        _reply_to_loops(replies)
        for task in batch:
            if task.callback is not None:
                _call_back(task)

    def _finish(self, task: Task, result, error, replies=None) -> None:
        """Answers a task (scheduler lock held); wakes it unless its thread is a leader.

        An async task's answer goes to its loop: collected in `replies` (one
        call per loop for a whole batch), or sent at once without it.
        """
        if task.done:
            return
        task.result, task.error, task.done = result, error, True
        if task.future is not None:
            if replies is None:
                _reply_to_loops({task.future.get_loop(): [task]})
            else:
                replies.setdefault(task.future.get_loop(), []).append(task)
        elif task.callback is not None:
            if replies is None:  # not a batch's answer: expired or unloaded
                _call_back(task)
        elif not task.holds_slot:
            task._wake.release()

    def _expire(self, task: Task) -> None:
        """Answers a task whose deadline passed while it was queued (lock held)."""
        waited = time.monotonic() - task.enqueued_at
        self._finish(
            task,
            None,
            status.deadline_exceeded(
                f"Deadline exceeded after {waited:.3f} s in the batching queue; not run"
            ),
        )
        if self._waiting_on_cond:
            self._cond.notify_all()

    def _pass_slot_on(self) -> tuple[BatchQueue, Task] | None:
        """Gives this leader's slot to the oldest waiting request, or frees it (lock held).

        A waiting thread is woken to lead; for an async request a runner starts;
        a submit_then request has no thread, so it is returned: the caller leads
        for it.
        """
        oldest, oldest_queue = None, None
        for queue in self._queues:
            if queue.tasks and not queue.tasks[0].holds_slot:
                head = queue.tasks[0]
                if oldest is None or head.enqueued_at < oldest.enqueued_at:
                    oldest, oldest_queue = head, queue
        if oldest is None or self._stopping:
            self._active -= 1
            return None
        oldest.holds_slot = True
        if oldest.callback is not None:
            return oldest_queue, oldest  # no thread of its own: the caller leads for it
        if oldest.future is None:
            oldest._wake.release()
            return None
        try:
            oldest.future.get_loop().call_soon_threadsafe(self._launch_when_quiet, oldest_queue, -1)
        except RuntimeError:  # its loop is closed: nobody waits for this task any more
            oldest_queue.tasks.popleft()
            oldest_queue.enqueued_size -= oldest.size
            oldest.done = True
            return self._pass_slot_on()  # to the next waiting request, if any
        return None

    def stop(self) -> None:
        """Refuses new work and answers every queued task UNAVAILABLE."""
        with self._cond:
            self._stopping = True
            queues = list(self._queues)
        for queue in queues:
            self.remove_queue(queue)
        self._runners.shutdown(wait=False)


def _call_back(task: Task) -> None:
    try:
        task.callback(task)
    except Exception:
        _LOG.exception("A batched request's callback failed")


def _reply_to_loops(replies: dict[asyncio.AbstractEventLoop, list[Task]]) -> None:
    """Hands answered async tasks back to their loops: one thread-safe call per loop."""
    for loop, tasks in replies.items():
        try:
            loop.call_soon_threadsafe(_resolve, tasks)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for these answers any more


def _resolve(tasks: list[Task]) -> None:
    """On the task's loop: settles each future that is still wanted."""
    for task in tasks:
        if task.future.done():
            continue  # cancelled: its request timed out
        if task.error is not None:
            task.future.set_exception(task.error)
        else:
            task.future.set_result(task.result)
