"""LoopTimeouts: one timer bounds every REST request of an event loop."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Protocol


class Pending(Protocol):
    """A request the timeouts watch: `answered` once it has its answer."""

    answered: bool

    def time_out(self) -> None:
        """Answers the request 504 (called on the loop, at most once, while not answered)."""


# _LoopTimeouts drops the answered requests queued behind an unanswered one
# once its queue is this long (and then each time the queue doubles).
COMPACT_LENGTH = 4096


class LoopTimeouts:
    """--rest_api_timeout_in_ms for the requests of one event loop, with one timer.

    Every request gets the same timeout, so deadlines fall in arrival order:
    one timer, armed for the oldest unanswered request, serves them all
    (instead of a timer armed and cancelled per request). Use on the loop's
    thread only. Answered requests leave the
    head of the queue as new ones arrive; behind one request that hangs,
    they pile up, so the queue drops them all whenever it has doubled in
    length since it last did (at least COMPACT_LENGTH entries): memory
    stays within about twice the requests in flight.
    """

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._queue: collections.deque[tuple[float, Pending]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._compact_at = COMPACT_LENGTH

    def add(self, pending: Pending) -> float:
        """Starts `pending`'s clock (on the loop); returns its time.monotonic() deadline."""
        deadline = time.monotonic() + self._timeout
        queue = self._queue
        while queue and queue[0][1].answered:
            queue.popleft()
        if len(queue) >= self._compact_at:
            queue = self._queue = collections.deque(e for e in queue if not e[1].answered)
            self._compact_at = max(COMPACT_LENGTH, 2 * len(queue))
        queue.append((deadline, pending))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expire)
        return deadline

    def _expire(self) -> None:
        """Times out what is due, then sleeps until the next unanswered deadline."""
        self._timer = None
        queue = self._queue
        now = time.monotonic()
        while queue:
            deadline, pending = queue[0]
            if pending.answered:
                queue.popleft()
            elif deadline <= now:
                queue.popleft()
                pending.time_out()
            else:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(deadline - now, self._expire)
                return
