"""Completion: the one type a request's result travels in, from the batching layer up.

A Completion is settled once, by whichever thread produced the result (a batch
thread, a worker, the caller itself), and read by whoever waits for it, in one
of three ways:

  - block: `result(timeout)` on any thread;
  - call back: `add_done_callback(fn)`; `fn(completion)` runs on the thread
    that settles it, or at once on the caller's thread if it is already done;
  - await: `await completion` on an event loop's thread; the result is handed
    to that loop.

It keeps the method names and state rules of `concurrent.futures.Future`
(pending, running, cancelled, finished; a running one cannot be cancelled;
settling twice raises InvalidStateError), so an executor's callers read it
as they read a Future. It is lighter: one C lock per completion, and the
Event a blocking reader needs is created only when someone blocks, because
every request settles at least one on its way and most are only called back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Generator
from typing import Any

_LOG = logging.getLogger(__name__)

_PENDING = 0
_RUNNING = 1
_CANCELLED = 2
_FINISHED = 3

CancelledError = concurrent.futures.CancelledError
InvalidStateError = concurrent.futures.InvalidStateError


class Completion:
    """A result that arrives later, exactly once. Every method is thread-safe."""

    __slots__ = ("_lock", "_state", "_result", "_error", "_callbacks", "_event")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _PENDING
        self._result: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Completion], Any]] | None = None
        self._event: threading.Event | None = None

    # -- Reading ----------------------------------------------------------

    def done(self) -> bool:
        """True once finished or cancelled."""
        return self._state >= _CANCELLED

    def running(self) -> bool:
        """True between set_running_or_notify_cancel() and the result."""
        return self._state == _RUNNING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self, timeout: float | None = None) -> Any:
        """The result, waiting up to `timeout` seconds (None: as long as it takes).

        Raises the exception it was settled with, CancelledError if it was
        cancelled, TimeoutError if it is not done in time.
        """
        if self._state < _CANCELLED:
            self._wait(timeout)
        if self._state == _CANCELLED:
            raise CancelledError()
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception it was settled with (None for a result); waits as result() does."""
        if self._state < _CANCELLED:
            self._wait(timeout)
        if self._state == _CANCELLED:
            raise CancelledError()
        return self._error

    def add_done_callback(self, fn: Callable[[Completion], Any]) -> None:
        """Calls `fn(self)` once done: on the settling thread, or now if already done.

        An exception `fn` raises is logged, not propagated.
        """
        with self._lock:
            if self._state < _CANCELLED:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        _call_back(fn, self)

    def __await__(self) -> Generator[Any, None, Any]:
        """Awaits the result on the running loop (call on the loop's thread)."""
        if self.done():
            return self.result()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.add_done_callback(lambda _: _hand_to_loop(loop, waiter))
        yield from waiter.__await__()
        return self.result()

    # -- Settling ---------------------------------------------------------

    def set_running_or_notify_cancel(self) -> bool:
        """Marks it running (it can no longer be cancelled); False if it was cancelled.

        Raises InvalidStateError if it is already running or finished.
        """
        with self._lock:
            if self._state == _CANCELLED:
                return False
            if self._state != _PENDING:
                raise InvalidStateError(f"Completion already {_NAMES[self._state]}")
            self._state = _RUNNING
            return True

    def cancel(self) -> bool:
        """Cancels it unless it is running or finished; True if it is (now) cancelled."""
        with self._lock:
            if self._state == _CANCELLED:
                return True
            if self._state != _PENDING:
                return False
            self._state = _CANCELLED
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        _wake_readers(self, callbacks, event)
        return True

    def set_result(self, result: Any) -> None:
        """Finishes it with `result`. Raises InvalidStateError if it is already done."""
        self._finish(result, None)

    def set_exception(self, error: BaseException) -> None:
        """Finishes it with `error`. Raises InvalidStateError if it is already done."""
        self._finish(None, error)

    def _finish(self, result: Any, error: BaseException | None) -> None:
        with self._lock:
            if self._state >= _CANCELLED:
                raise InvalidStateError(f"Completion already {_NAMES[self._state]}")
            self._result, self._error = result, error
            self._state = _FINISHED
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        _wake_readers(self, callbacks, event)

    def _wait(self, timeout: float | None) -> None:
        with self._lock:
            if self._state >= _CANCELLED:
                return
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not event.wait(timeout):
            raise TimeoutError(f"Not done within {timeout} s")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_NAMES[self._state]}>"


_NAMES = {_PENDING: "pending", _RUNNING: "running", _CANCELLED: "cancelled", _FINISHED: "finished"}


def _wake_readers(
    completion: Completion,
    callbacks: list[Callable[[Completion], Any]] | None,
    event: threading.Event | None,
) -> None:
    """Once its state is final (no lock held): wakes blocked readers, runs the callbacks."""
    if event is not None:
        event.set()
    if callbacks is not None:
        for fn in callbacks:
            _call_back(fn, completion)


def _call_back(fn: Callable[[Completion], Any], completion: Completion) -> None:
    try:
        fn(completion)
    except Exception:
        _LOG.exception("A completion's callback %r raised", fn)


def _hand_to_loop(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future) -> None:
    """Wakes `waiter` on its loop (any thread); a closed loop has nobody waiting."""
    try:
        loop.call_soon_threadsafe(_wake, waiter)
    except RuntimeError:
        pass


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():  # not if the awaiting task was cancelled meanwhile
        waiter.set_result(None)
