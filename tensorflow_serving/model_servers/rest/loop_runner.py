"""LoopPassRunner: the REST transport's runner for model work started on its event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner, WorkerThreads

_LOG = logging.getLogger(__name__)


class LoopPassRunner(Runner):
    """Runs each call on worker threads, after the event loop has made `passes` more passes.

    The model must never run on the loop, and a batch started while the loop
    is still reading the requests that arrived with it would leave them to
    the next batch: each pass queues what the loop has read first.
    `submit` and `execute` must be called on the loop's thread; a call's
    completion is settled on the worker thread that ran it.
    """

    def __init__(self, pool: WorkerThreads, passes: int = 2):
        self._pool = pool
        self._passes = passes

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Completion:
        future = Completion()
        self._later(future, fn, args, kwargs)
        return future

    def execute(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._later(None, fn, args, None)

    def _later(self, future, fn, args, kwargs) -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(self._after_pass, loop, self._passes - 1, future, fn, args, kwargs)

    def _after_pass(self, loop, passes_left: int, future, fn, args, kwargs) -> None:
        if passes_left > 0:
            loop.call_soon(self._after_pass, loop, passes_left - 1, future, fn, args, kwargs)
            return
        try:
            if future is None:
                self._pool.execute(fn, *args)
            else:
                self._pool.submit_into(future, fn, *args, **kwargs)
        except RuntimeError as error:  # the pool shut down (the server stops)
            if future is None:
                _LOG.warning("A call was dropped: the REST worker threads have stopped")
            elif future.set_running_or_notify_cancel():
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The pool belongs to the app, which shuts it down."""
