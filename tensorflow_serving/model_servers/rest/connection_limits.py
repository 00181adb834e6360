"""What a REST connection may cost: one deadline timer per connection, and the connection cap.

The HTTP protocol (inline_protocol.py) keeps, for each connection, the
deadline of the phase it is in (receiving headers, receiving a body, idle
between requests) in a `Deadline`, and asks the server's `ConnectionCap`
whether a new connection fits. Neither touches sockets or uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tensorflow_serving.util.rate_limited_log import RateLimitedLog

_LOG = logging.getLogger(__name__)


class Deadline:
    """A connection's current deadline, with at most one timer armed for it.

    The deadline moves at every phase of every request; rather than
    cancelling and arming a timer each time, the armed timer is kept while
    the deadline moves later (when it fires early it re-arms for the
    deadline then current), and replaced only when the deadline moves
    earlier than it. A connection that answers request after request so
    costs about one timer per shortest timeout, not several per request.
    `on_expiry` is called once the current deadline has passed. Use on the
    loop's thread only.
    """

    __slots__ = ("_loop", "_on_expiry", "_when", "_timer", "_timer_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]):
        self._loop = loop
        self._on_expiry = on_expiry
        self._when: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0

    def after(self, seconds: float) -> None:
        """The deadline is `seconds` from now; 0 or less: no deadline."""
        self.set(self._loop.time() + seconds if seconds > 0 else None)

    def set(self, when: float | None) -> None:
        """The deadline is `when` (the loop's time()), or none."""
        self._when = when
        if when is None or (self._timer is not None and self._timer_when <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._arm(when)

    def cancel(self) -> None:
        """No deadline and no timer (the connection is closed)."""
        self._when = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, when: float) -> None:
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        when = self._when
        if when is None:
            return
        if self._loop.time() >= when:
            self._when = None
            self._on_expiry()
        else:
            self._arm(when)


class ConnectionCap:
    """The most REST connections open at once, and a warning while new ones are refused.

    The warning names the cap; through `log` (a RateLimitedLog) it costs at
    most a line per interval, which says how many refusals it left out, so
    a flood of connections cannot flood the log.
    """

    def __init__(self, limit: int, log: RateLimitedLog | None = None):
        self.limit = limit
        self._log = log or RateLimitedLog(_LOG)

    def admits(self, open_connections: int) -> bool:
        """Whether `open_connections` (the new one included) fit; 0 as the limit: no cap."""
        if not self.limit or open_connections <= self.limit:
            return True
        self._log.log(
            "rest_connection_cap",
            logging.WARNING,
            "%d REST connections are open, the cap (--rest_api_max_connections): a new one got 503",
            self.limit,
        )
        return False
