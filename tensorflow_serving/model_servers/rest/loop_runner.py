"""LoopPassRunner: the REST transport's runner for model work started on its event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from tensorflow_serving.util.executors import run_into


class LoopPassRunner(concurrent.futures.Executor):
    """Runs each call on a thread pool, after the event loop has made `passes` more passes.

    The model must never run on the loop, and a batch started while the loop
    is still reading the requests that arrived with it would leave them to
    the next batch: each pass queues what the loop has read first.
    `submit` must be called on the loop's thread; the call's future is
    resolved on the pool thread that ran it.
    """

    def __init__(self, pool: concurrent.futures.Executor, passes: int = 2):
        self._pool = pool
        self._passes = passes

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        loop = asyncio.get_running_loop()
        loop.call_soon(self._after_pass, loop, self._passes - 1, future, fn, args, kwargs)
        return future

    def _after_pass(self, loop, passes_left: int, future, fn, args, kwargs) -> None:
        if passes_left > 0:
            loop.call_soon(self._after_pass, loop, passes_left - 1, future, fn, args, kwargs)
            return
        try:
            self._pool.submit(run_into, future, fn, *args, **kwargs)
        except RuntimeError as error:  # the pool shut down (the server stops)
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The pool belongs to the app, which shuts it down."""
