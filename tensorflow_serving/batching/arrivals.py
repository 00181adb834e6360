"""Arrivals: requests a transport has taken in and not yet handed to a batching queue.

A batch thread that becomes free with batch_timeout_micros 0 takes what is
queued. On a server whose request handling shares one interpreter, a
request the transport has already received may still be decoding on another
thread when that happens; the batch would start without it, and on a busy
core the next batches stay as small (each starts while the next requests are
still being read). So before it starts a batch that is not full, the
scheduler waits (`wait_handed_over`) until every request the transport is
handling has reached its queue, or a short limit passes. The core is not
idle meanwhile: the threads it waits for are the ones handling requests.

The transport calls `begin()` when it takes a request in and `end()` when
its handler has returned; the batching queue calls `handed_over()` on the
handler's thread when the request is queued, which ends its arrival early
(a handler that goes on to lead a batch is no longer arriving). Thread-safe.

A request can also be in the server's hands before `begin()`: gRPC has
received it on a thread that now waits for the interpreter lock, or for the
CPU the batch thread is using. No count shows those, so before a batch that
is not full the scheduler calls `let_arrive()` once: the batch thread
yields its CPU and the interpreter lock, the waiting threads `begin()`, and
the batch then waits for them as above.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tensorflow_serving.batching.shared_batch_scheduler import Clock


class _Monotonic:
    def now(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, seconds: float) -> None:
        condition.wait(seconds)


class Arrivals:
    """Counts requests between their arrival and their hand-over to a queue."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or _Monotonic()
        self._count = 0
        self._waiting = 0
        # Counting takes the lock itself; waits use the condition on it.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._local = threading.local()

    def begin(self) -> None:
        """A request was taken in; its hand-over follows on the thread that calls `handing()`."""
        with self._lock:
            self._count += 1

    def handing(self) -> None:
        """The calling thread now handles the request begun last for it (before its handler)."""
        self._local.pending = True

    def handed_over(self) -> None:
        """The calling thread's request reached a queue (or failed): it no longer arrives.

        Idempotent; a thread with no request in hand does nothing.
        """
        if not getattr(self._local, "pending", False):
            return
        self._local.pending = False
        self._release()

    def end(self) -> None:
        """The handler returned: ends the arrival unless handed_over() did already."""
        self.handed_over()

    def abandon(self) -> None:
        """A request begun but never handled (refused, or the call ended first)."""
        self._release()

    def let_arrive(self) -> None:
        """Yields the calling thread's CPU (and the interpreter lock) once, so threads that
        hold a received request can count it in. Call with no lock held; returns at once
        when no other thread is ready to run."""
        os.sched_yield()

    def wait_handed_over(self, seconds: float) -> None:
        """Returns once no request is arriving, or after `seconds`. Any thread."""
        with self._cond:
            if not self._count:
                return
            until = self._clock.now() + seconds
            self._waiting += 1
            try:
                while self._count:
                    left = until - self._clock.now()
                    if left <= 0:
                        return
                    self._clock.wait(self._cond, left)
            finally:
                self._waiting -= 1

    def waiting(self) -> int:
        """Threads in wait_handed_over (for tests)."""
        return self._waiting

    def arriving(self) -> int:
        """Requests taken in and not yet handed over."""
        return self._count

    def _release(self) -> None:
        with self._lock:
            self._count -= 1
            if not self._count and self._waiting:
                self._cond.notify_all()
