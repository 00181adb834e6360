"""Executors the request path hands work to (see the Servable protocol).

A servable's `submit` runs or queues a model run and returns a future; where
the run happens is the caller's choice, given as a `concurrent.futures.Executor`:
`CALLING_THREAD` for a caller whose thread may block (a gRPC handler
thread), a thread pool for one that must not (an event loop).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any


def run_into(
    future: concurrent.futures.Future, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """Runs `fn` and settles `future` with its result or exception; nothing if it was cancelled."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as error:
        future.set_exception(error)
    else:
        future.set_result(result)


class CallingThreadExecutor(concurrent.futures.Executor):
    """Runs each submitted call at once, on the thread that submits it.

    `submit` returns only when the call has finished; its future is already
    done (with the result or the exception). Thread-safe: it holds no state.
    """

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        run_into(future, fn, *args, **kwargs)
        return future


CALLING_THREAD = CallingThreadExecutor()
