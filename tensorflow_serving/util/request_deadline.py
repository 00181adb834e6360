"""The deadline of the request the current thread works on.

A transport knows when a client stops waiting (gRPC: the call's deadline;
REST: --rest_api_timeout_in_ms); the work queues deeper down (the batching
queue) do not see the transport. The transport sets the deadline here around
the work, and a queue stamps it on what it enqueues, so work whose client is
already gone is answered DEADLINE_EXCEEDED instead of being run.

A context variable rather than an argument: handlers, predict_util and the
servables keep their transport-free signatures.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

# time.monotonic() value after which nobody waits for the answer; None: no deadline.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "request_deadline", default=None
)

# A gRPC call without a deadline reports a remaining time of centuries.
_NO_DEADLINE_SECONDS = 1e7


def current() -> float | None:
    """The monotonic deadline of the current request, or None."""
    return _DEADLINE.get()


def expired(now: float | None = None) -> bool:
    deadline = _DEADLINE.get()
    if deadline is None:
        return False
    return (time.monotonic() if now is None else now) >= deadline


@contextlib.contextmanager
def scope(seconds_remaining: float | None) -> Iterator[float | None]:
    """Runs the block with a deadline `seconds_remaining` from now (None: none)."""
    if seconds_remaining is None or seconds_remaining >= _NO_DEADLINE_SECONDS:
        deadline = None
    else:
        deadline = time.monotonic() + max(0.0, seconds_remaining)
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


@contextlib.contextmanager
def at(deadline: float | None) -> Iterator[float | None]:
    """Runs the block with an absolute monotonic deadline (None: none)."""
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)
