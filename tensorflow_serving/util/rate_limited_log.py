"""RateLimitedLog: at most one log line per kind of event per interval.

A client can cause some failures at will (a request line that is no HTTP, a
connection dropped with answers pending, a request that trips a bug): logged
once per request, they would let it flood the log. Each kind named here
costs at most one line per `interval`, and that line says how many more of
its kind were left out since the last one.

`RateLimitingFilter` applies the same limit to the records of a library's
logger (uvicorn's) whose messages name client-side failures, and drops their
tracebacks: a client's behaviour is not the server's fault.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

DEFAULT_INTERVAL_SECONDS = 60.0


class RateLimitedLog:
    """Logs through `logger`, each kind at most once per `interval` seconds. Thread-safe.

    Kinds are names chosen by the server's code, never text from a request,
    so there are few of them and the memory they take is bounded.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (clock time its last line was written, events left out since)
        self._kinds: dict[str, tuple[float, int]] = {}

    def allow(self, kind: str) -> int | None:
        """None if `kind` was let through less than `interval` ago (this one is
        counted as left out); else the number left out since, and the clock restarts."""
        now = self._clock()
        with self._lock:
            last = self._kinds.get(kind)
            if last is not None and now - last[0] < self._interval:
                self._kinds[kind] = (last[0], last[1] + 1)
                return None
            self._kinds[kind] = (now, 0)
            return 0 if last is None else last[1]

    def log(self, kind: str, level: int, message: str, *args, **kwargs) -> bool:
        """Logs `message % args` (kwargs as Logger.log's) unless `kind` is over its
        limit; returns whether it did."""
        left_out = self.allow(kind)
        if left_out is None:
            return False
        self._logger.log(level, message + _left_out_note(left_out), *args, **kwargs)
        return True


class RateLimitingFilter(logging.Filter):
    """Limits the records whose message starts with one of `prefixes` with `limit`,
    one kind per prefix, and drops their traceback; other records pass unchanged."""

    def __init__(self, prefixes: Iterable[str], limit: RateLimitedLog):
        super().__init__()
        self._prefixes = tuple(prefixes)
        self._limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        kind = next((p for p in self._prefixes if record.msg.startswith(p)), None)
        if kind is None:
            return True
        left_out = self._limit.allow(kind)
        if left_out is None:
            return False
        record.exc_info = None
        record.exc_text = None
        record.msg = record.msg.rstrip() + _left_out_note(left_out)
        return True


def _left_out_note(left_out: int) -> str:
    if not left_out:
        return ""
    return f" ({left_out} more like it since the last such line, not logged)"
