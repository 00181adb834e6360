"""SharedBatchScheduler: one pool of batch threads serving many batch queues
(upstream: shared_batch_scheduler.h).

Each (model version, signature, input layout) has its own queue; the threads
take the queue whose oldest task has waited longest once it holds a full
batch or its timeout passed. With the default timeout of 0 a free thread
takes whatever is queued at once: under load, requests pile up while the
previous batch runs, so batches grow exactly as fast as traffic does.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class QueueOptions:
    """Upstream's defaults for a batching queue."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10


class Task:
    """One request's rows, waiting for its slice of a batch's result."""

    __slots__ = ("inputs", "size", "result", "error", "enqueued_at", "finished", "_done")

    def __init__(self, inputs: dict, size: int):
        self.inputs = inputs
        self.size = size
        self.result = None
        self.error: BaseException | None = None
        self.enqueued_at = 0.0
        self.finished = False
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, result=None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.finished = True
        self._done.release()

    def wait(self):
        self._done.acquire()
        if self.error is not None:
            raise self.error
        return self.result


class BatchQueue:
    """Tasks of one kind; only the scheduler's threads take batches from it."""

    def __init__(
        self,
        scheduler: SharedBatchScheduler,
        options: QueueOptions,
        process_batch: Callable[[list[Task]], None],
    ):
        self._scheduler = scheduler
        self.options = options
        self.process_batch = process_batch
        self.tasks: collections.deque[Task] = collections.deque()
        self.enqueued_size = 0
        self._capacity = options.max_batch_size * options.max_enqueued_batches

    def schedule(self, task: Task) -> None:
        """Enqueues a task; raises at once when it is too big or the queue is full."""
        if task.size > self.options.max_batch_size:
            raise status.invalid_argument(
                f"Task size {task.size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}"
            )
        self._scheduler._enqueue(self, task)

    def ready_at(self, now: float) -> float | None:
        """When this queue will have a batch to run (<= now: ready); None when empty."""
        if not self.tasks:
            return None
        if self.enqueued_size >= self.options.max_batch_size:
            return now
        return self.tasks[0].enqueued_at + self.options.batch_timeout_micros / 1e6

    def pop_batch(self) -> list[Task]:
        batch: list[Task] = []
        size = 0
        limit = self.options.max_batch_size
        while self.tasks and size + self.tasks[0].size <= limit:
            task = self.tasks.popleft()
            size += task.size
            batch.append(task)
        self.enqueued_size -= size
        return batch


class SharedBatchScheduler:
    def __init__(self, num_batch_threads: int):
        if num_batch_threads < 1:
            raise status.invalid_argument(
                f"num_batch_threads must be >= 1, got {num_batch_threads}"
            )
        self._cond = threading.Condition()
        self._queues: list[BatchQueue] = []
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"batch-{i}", daemon=True)
            for i in range(num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def add_queue(
        self, options: QueueOptions, process_batch: Callable[[list[Task]], None]
    ) -> BatchQueue:
        queue = BatchQueue(self, options, process_batch)
        with self._cond:
            self._queues.append(queue)
        return queue

    def remove_queue(self, queue: BatchQueue) -> None:
        """Stops taking work for a queue; tasks still in it are refused."""
        with self._cond:
            if queue in self._queues:
                self._queues.remove(queue)
            leftover = list(queue.tasks)
            queue.tasks.clear()
            queue.enqueued_size = 0
        for task in leftover:
            task.finish(error=status.unavailable("The servable was unloaded before its batch ran"))

    def enqueued(self) -> int:
        """Rows waiting in all queues (for the queue-depth metric)."""
        with self._cond:
            return sum(q.enqueued_size for q in self._queues)

    def _enqueue(self, queue: BatchQueue, task: Task) -> None:
        with self._cond:
            if queue.enqueued_size + task.size > queue._capacity:
                raise status.unavailable(
                    "The batch scheduling queue to which this task was submitted is full"
                )
            task.enqueued_at = time.monotonic()
            queue.tasks.append(task)
            queue.enqueued_size += task.size
            self._cond.notify()

    def _next_batch(self) -> tuple[BatchQueue, list[Task]] | None:
        """Waits for the queue whose batch is due first; None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                best, best_at = None, None
                for queue in self._queues:
                    at = queue.ready_at(now)
                    if at is not None and (best_at is None or at < best_at):
                        best, best_at = queue, at
                if best is not None and best_at <= now:
                    return best, best.pop_batch()
                self._cond.wait(None if best_at is None else best_at - now)
            return None

    def _run(self) -> None:
        while True:
            picked = self._next_batch()
            if picked is None:
                return
            queue, batch = picked
            try:
                queue.process_batch(batch)
            except BaseException as error:  # never lose a waiting caller
                _LOG.exception("Batch processing failed")
                for task in batch:
                    if not task.finished:
                        task.finish(error=error)

    def stop(self) -> None:
        """Stops the threads; tasks still queued are answered UNAVAILABLE, never left waiting."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            queues = list(self._queues)
        for thread in self._threads:
            thread.join(timeout=5)
        for queue in queues:
            self.remove_queue(queue)
