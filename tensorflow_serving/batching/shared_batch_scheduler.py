"""SharedBatchScheduler: merges requests into batches, with at most
`num_batch_threads` batches running at once across every queue
(upstream: shared_batch_scheduler.h).

Each queue holds the tasks of one kind (model version, signature, input
layout). `BatchQueue.submit` enqueues a task and returns it: a
Completion (util/completion.py) of the task's share of its batch's result,
which a caller may block on (`result()`), attach a callback to
(`add_done_callback`, run on the thread that ran the batch), or await.

Who runs a batch. A batch runs while holding one of the scheduler's
`num_batch_threads` slots. When a task arrives while a slot is free, the
submitter's `runner` (a util.executors.Runner it passes in) takes the slot and runs
batches until that task is answered: `CALLING_THREAD` runs them on the
submitting thread before `submit` returns, so a lone request pays no thread
hand-off; a thread pool runs them on one of its threads, so an event loop
never blocks. If tasks are still queued when that task is answered, the
scheduler's own thread keeps the slot and runs batches while any are queued.
Requests that arrive while every slot is busy just queue, so under load
batches grow as fast as traffic does.

When a batch starts (upstream's `batch_timeout_micros`). With 0, a slot that
is free takes what is queued at once, up to max_batch_size. With a timeout,
a batch that is not full starts that long after its first task was
enqueued, or as soon as the queue holds a full batch, whichever comes first.
The scheduler never waits beyond that for new requests: batches grow because
requests queue while the model runs. It does wait for requests already
received: given the transport's `Arrivals`, before a batch that is not full
its thread yields the CPU once (`let_arrive`), then the batch starts once no
request is between the transport and the queue (at most
ARRIVAL_WAIT_SECONDS per batch; see arrivals.py). The core is busy with
those requests meanwhile, so the wait costs no idle time.

Time comes from a `Clock` (`MONOTONIC` by default), so tests can drive the
timeouts without sleeping.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.util import request_deadline, status
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner, WorkerThreads

_LOG = logging.getLogger(__name__)

# The longest a batch that is not full waits for requests still being decoded.
ARRIVAL_WAIT_SECONDS = 0.010


class Clock(Protocol):
    """The scheduler's time: `now()` in seconds, and timed waits on its condition."""

    def now(self) -> float: ...

    def wait(self, condition: threading.Condition, seconds: float) -> None:
        """Waits on `condition` (held by the caller) up to `seconds`, or until notified."""


class MonotonicClock:
    """Real time: time.monotonic() and Condition.wait."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, seconds: float) -> None:
        condition.wait(seconds)


MONOTONIC = MonotonicClock()


@dataclasses.dataclass(frozen=True)
class QueueOptions:
    """Upstream's defaults for a batching queue."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10


class BatchTask(Completion):
    """One request's rows in a queue, and the completion of its share of a batch's result.

    Cancelling it before its batch starts drops it from the batch.
    """

    __slots__ = ("inputs", "size", "runner", "enqueued_at", "deadline")

    def __init__(self, inputs: dict, size: int, runner: Runner):
        super().__init__()
        self.inputs = inputs
        self.size = size
        self.runner = runner
        self.enqueued_at = 0.0
        # When the caller stops waiting (request_deadline); an expired task is not run.
        self.deadline: float | None = request_deadline.current()


# Runs a batch of tasks; returns one result per task, or raises for all of them.
ProcessBatch = Callable[[list[BatchTask]], Sequence[object]]


class BatchQueue:
    """Tasks of one kind, batched together. Created by SharedBatchScheduler.add_queue."""

    def __init__(
        self, scheduler: SharedBatchScheduler, options: QueueOptions, process: ProcessBatch
    ):
        self._scheduler = scheduler
        self.options = options
        self.process = process
        self.tasks: list[BatchTask] = []
        self.enqueued_size = 0
        self.capacity = options.max_batch_size * options.max_enqueued_batches
        self.filling_leaders = 0  # leaders waiting for a full batch or the timeout

    def submit(self, inputs: dict, size: int, runner: Runner) -> BatchTask:
        """Queues `inputs` (`size` rows) for a batch; returns the task, a future of its result.

        Raises ServingError at once when the task is larger than a batch, the
        queue is full, or the scheduler stops. If a batch slot is free,
        `runner` runs batches until this task is answered (see the module
        docstring). Any thread may call it.
        """
        if size > self.options.max_batch_size:
            raise status.invalid_argument(
                f"Task size {size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}"
            )
        task = BatchTask(inputs, size, runner)
        self._scheduler._submit(self, task)
        return task

    def pop_batch(self) -> tuple[list[BatchTask], list[BatchTask]]:
        """(the next batch, tasks dropped as expired or cancelled); scheduler lock held.

        Deadlines are request_deadline's, in time.monotonic().
        """
        now = time.monotonic()
        batch: list[BatchTask] = []
        dropped: list[BatchTask] = []
        size = 0
        limit = self.options.max_batch_size
        taken = 0
        for task in self.tasks:
            if size + task.size > limit:
                break
            taken += 1
            if (task.deadline is not None and task.deadline <= now) or task.cancelled():
                dropped.append(task)
                continue
            size += task.size
            batch.append(task)
        del self.tasks[:taken]
        self.enqueued_size -= size + sum(task.size for task in dropped)
        return batch, dropped

    def full(self) -> bool:
        return self.enqueued_size >= self.options.max_batch_size

    def fill_deadline(self) -> float | None:
        """When a partial batch must run; None: run now (full, or no timeout)."""
        timeout = self.options.batch_timeout_micros
        if timeout <= 0 or self.full():
            return None
        return self.tasks[0].enqueued_at + timeout / 1e6


class SharedBatchScheduler:
    """Batch slots shared by every queue added to it. Thread-safe."""

    def __init__(
        self, num_batch_threads: int, clock: Clock = MONOTONIC, arrivals: Arrivals | None = None
    ):
        if num_batch_threads < 1:
            raise status.invalid_argument(
                f"num_batch_threads must be >= 1, got {num_batch_threads}"
            )
        self._slots = num_batch_threads
        self._active = 0
        self._clock = clock
        self._arrivals = arrivals
        # Short critical sections take the lock itself; waits use the condition on it.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queues: list[BatchQueue] = []
        self._stopping = False
        # Keeps a slot whose lent thread is done while tasks are still queued.
        self._own_threads = WorkerThreads(num_batch_threads, thread_name_prefix="batch")

    def add_queue(self, options: QueueOptions, process: ProcessBatch) -> BatchQueue:
        queue = BatchQueue(self, options, process)
        with self._lock:
            self._queues.append(queue)
        return queue

    def remove_queue(self, queue: BatchQueue) -> None:
        """Stops a queue; tasks still in it are answered UNAVAILABLE."""
        with self._lock:
            if queue in self._queues:
                self._queues.remove(queue)
            leftover, queue.tasks = queue.tasks, []
            queue.enqueued_size = 0
        _fail(leftover, status.unavailable("The servable was unloaded before its batch ran"))

    def enqueued(self) -> int:
        """Rows waiting in all queues (for the queue-depth metric)."""
        with self._lock:
            return sum(q.enqueued_size for q in self._queues)

    def stop(self) -> None:
        """Refuses new work and answers every queued task UNAVAILABLE."""
        with self._lock:
            self._stopping = True
            queues = list(self._queues)
            self._cond.notify_all()
        for queue in queues:
            self.remove_queue(queue)
        self._own_threads.shutdown(wait=False)

    # -- Submitting --------------------------------------------------------

    def _submit(self, queue: BatchQueue, task: BatchTask) -> None:
        """Admits `task` or raises; lends its runner a free slot if there is one."""
        with self._lock:
            if self._stopping or queue not in self._queues:
                raise status.unavailable("The batch scheduler is shutting down")
            if queue.enqueued_size + task.size > queue.capacity:
                raise status.unavailable(
                    "The batch scheduling queue to which this task was submitted is full"
                )
            task.enqueued_at = self._clock.now()
            queue.tasks.append(task)
            queue.enqueued_size += task.size
            lead = self._active < self._slots
            if lead:
                self._active += 1
            elif queue.filling_leaders and queue.full():
                self._cond.notify_all()
        if lead:
            self._start_leader(task.runner, task)

    def _start_leader(self, runner: Runner, own: BatchTask | None) -> None:
        """Has `runner` run `_lead` holding the slot just taken; frees it if the runner refuses."""
        try:
            runner.execute(self._lead, own)
        except RuntimeError:  # the runner was shut down: nobody will lead on it
            with self._lock:
                self._active -= 1
            if own is not None:
                _LOG.warning("A batch runner refused work; its task waits for another slot")

    # -- Holding a slot ----------------------------------------------------

    def _lead(self, own: BatchTask | None) -> None:
        """Runs batches holding one slot, then passes the slot on.

        A lent thread (`own` set) leads until `own` is answered or no longer
        queued; the scheduler's own thread (`own` None) while anything is
        queued. The oldest queued task's queue goes first. Before a batch that
        is not full, it lets requests the transport holds arrive once and
        waits while they are arriving (see `Arrivals`), at most
        ARRIVAL_WAIT_SECONDS per batch.
        """
        arrivals_until: float | None = None
        let_arrive = self._arrivals is not None
        while True:
            with self._lock:
                if self._stopping or (own is not None and own.done()):
                    break
                queue = self._oldest_queue()
                if queue is None:
                    break
                now = self._clock.now()
                deadline = queue.fill_deadline()
                if deadline is not None and now < deadline:
                    self._wait_to_fill(queue, deadline - now)
                    continue
                partial = not queue.full()
                wait_for_arrivals = (
                    self._arrivals is not None and self._arrivals.arriving() > 0 and partial
                )
                if wait_for_arrivals:
                    if arrivals_until is None:
                        arrivals_until = now + ARRIVAL_WAIT_SECONDS
                    wait_for_arrivals = now < arrivals_until
                letting_arrive = let_arrive and partial and not wait_for_arrivals
                if not wait_for_arrivals and not letting_arrive:
                    batch, dropped = queue.pop_batch()
            if letting_arrive:
                let_arrive = False
                self._arrivals.let_arrive()
                continue
            if wait_for_arrivals:
                self._arrivals.wait_handed_over(arrivals_until - now)
                continue
            arrivals_until = None
            let_arrive = self._arrivals is not None
            _expire(dropped, now)
            if batch:
                self._run(queue, batch)
        self._pass_slot_on()

    def _oldest_queue(self) -> BatchQueue | None:
        """The queue whose first task is the oldest; None when all are empty (lock held)."""
        oldest: BatchQueue | None = None
        for queue in self._queues:
            if queue.tasks and (
                oldest is None or queue.tasks[0].enqueued_at < oldest.tasks[0].enqueued_at
            ):
                oldest = queue
        return oldest

    def _wait_to_fill(self, queue: BatchQueue, seconds: float) -> None:
        """Waits (lock held) up to `seconds` for `queue` to grow; a full queue wakes it early."""
        queue.filling_leaders += 1
        self._clock.wait(self._cond, seconds)
        queue.filling_leaders -= 1

    def _pass_slot_on(self) -> None:
        """After leading: the scheduler's own thread takes the slot if work remains, else frees it."""
        with self._lock:
            work_left = not self._stopping and self._oldest_queue() is not None
            if not work_left:
                self._active -= 1
                return
        self._start_leader(self._own_threads, None)

    def _run(self, queue: BatchQueue, batch: list[BatchTask]) -> None:
        """Runs one batch (no lock held) and answers each task; their callbacks run here."""
        batch = [task for task in batch if task.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            results = queue.process(batch)
        except BaseException as error:  # every caller gets the error, none waits forever
            if not isinstance(error, status.ServingError):
                _LOG.exception("Batch processing failed")
            _fail(batch, error)
            return
        for task, result in zip(batch, results, strict=True):
            task.set_result(result)


def _fail(tasks: list[BatchTask], error: BaseException) -> None:
    for task in tasks:
        if task.running() or task.set_running_or_notify_cancel():
            task.set_exception(error)


def _expire(tasks: list[BatchTask], now: float) -> None:
    """Answers tasks whose client stopped waiting while they were queued."""
    for task in tasks:
        if task.set_running_or_notify_cancel():
            waited = now - task.enqueued_at
            task.set_exception(
                status.deadline_exceeded(
                    f"Deadline exceeded after {waited:.3f} s in the batching queue; not run"
                )
            )
