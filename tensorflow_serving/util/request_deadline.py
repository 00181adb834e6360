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

import contextvars
import time

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


class at:  # noqa: N801 - a context manager, named like one made with contextlib
    """Runs the block with an absolute monotonic deadline (None: none).

    A class rather than a contextlib generator: both transports enter it once
    per request, and a generator-based context manager costs more per entry.
    """

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: float | None):
        self._deadline = deadline

    def __enter__(self) -> float | None:
        self._token = _DEADLINE.set(self._deadline)
        return self._deadline

    def __exit__(self, *exc_info) -> None:
        _DEADLINE.reset(self._token)


def after(seconds_remaining: float | None) -> float | None:
    """The monotonic deadline `seconds_remaining` from now; None for none (or centuries)."""
    if seconds_remaining is None or seconds_remaining >= _NO_DEADLINE_SECONDS:
        return None
    return time.monotonic() + max(0.0, seconds_remaining)


def scope(seconds_remaining: float | None) -> at:
    """Runs the block with a deadline `seconds_remaining` from now (None: none)."""
    return at(after(seconds_remaining))
