"""Runners: where the request path runs work (see the Servable protocol).

A servable's `submit` runs or queues a model run and returns a Completion; where
the run happens is the caller's choice, given as a `Runner`:
`CALLING_THREAD` for a caller whose thread may block (a gRPC handler
thread), `WorkerThreads` (or the REST loop's runner over them) for one that
must not (an event loop).

A Runner is a `concurrent.futures.Executor` whose `submit` returns a
Completion (util/completion.py: read like a Future), and that can also
`execute` a call without one, for work whose outcome nobody waits on (a
batch scheduler lending a thread to run batches): a request then carries
only the completions its callers read.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from tensorflow_serving.util.completion import Completion

_LOG = logging.getLogger(__name__)


def run_into(future: Completion, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Runs `fn` and settles `future` with its result or exception; nothing if it was cancelled."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as error:
        future.set_exception(error)
    else:
        future.set_result(result)


class Runner(concurrent.futures.Executor):
    """An Executor that can also run a call without a future."""

    def execute(self, fn: Callable[..., Any], /, *args: Any) -> None:
        """Runs `fn(*args)` as `submit` would, with no future: its result is dropped.

        Raises RuntimeError when the runner no longer takes work. `fn` should
        not raise: an exception it raises is logged (or, on CALLING_THREAD,
        propagates to the caller).
        """
        raise NotImplementedError


class CallingThreadRunner(Runner):
    """Runs each call at once, on the thread that submits it.

    `submit` returns only when the call has finished; its future is already
    done (with the result or the exception). Thread-safe: it holds no state.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Completion:
        future = Completion()
        run_into(future, fn, *args, **kwargs)
        return future

    def execute(self, fn: Callable[..., Any], /, *args: Any) -> None:
        fn(*args)


CALLING_THREAD = CallingThreadRunner()

# A queued call: (future to settle or None, fn, args, kwargs or None).
_Item = tuple[Completion | None, Callable[..., Any], tuple, dict | None]


class WorkerThreads(Runner):
    """Up to `max_workers` threads that run queued calls in the order they came.

    A thread starts when a call is queued and none is idle, up to
    `max_workers`; each runs `initializer(*initargs)` first. Threads are
    daemons, so a pool that is never shut down does not hold the process
    open. Every method may be called from any thread.
    """

    def __init__(
        self,
        max_workers: int,
        thread_name_prefix: str = "worker",
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
    ):
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._initializer = initializer
        self._initargs = initargs
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        # Threads waiting on the queue with no item promised to them.
        self._idle = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shut_down = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Completion:
        future = Completion()
        self._put((future, fn, args, kwargs))
        return future

    def submit_into(
        self,
        future: Completion,
        fn: Callable[..., Any],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Like `submit`, but settles the caller's `future` (see run_into) instead of a new one."""
        self._put((future, fn, args, kwargs))

    def execute(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._put((None, fn, args, None))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Takes no more work; queued calls still run unless `cancel_futures`
        (their futures are cancelled, calls without one dropped)."""
        with self._lock:
            self._shut_down = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[0] is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.put(item)
            if self._idle:
                self._idle -= 1
                return
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._prefix}_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        if self._initializer is not None:
            self._initializer(*self._initargs)
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            del item
            if future is not None:
                run_into(future, fn, *args, **kwargs)
            else:
                try:
                    fn(*args)
                except BaseException:
                    _LOG.exception("A call run without a future raised")
            del future, fn, args, kwargs
            with self._lock:
                self._idle += 1
