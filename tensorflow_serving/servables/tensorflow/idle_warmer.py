"""Keeps a model's memory in the CPU caches while the server waits for requests.

An IdleWarmer (--keep_model_warm_micros) reruns the most recent graph call,
with the same inputs, on a thread of Linux's SCHED_IDLE policy, for
`window_seconds` after each request.

What it promises:
- note() is cheap and never blocks: any request thread may call it, after a
  graph call that changes no state (graph_side_effects decides which).
- Reruns run on the warmer's own thread only, at SCHED_IDLE. If Linux
  refuses SCHED_IDLE, the warmer logs why and stops warming rather than rerun
  at normal priority.
- A rerun's results are thrown away. A rerun that raises is logged, and that
  call is not rerun again.
- No rerun starts once the window has passed, after forget() of its owner,
  or after stop(). `idle` says when none is running and none can start.
- forget(owner, release) never waits for the warmer: `release` runs once no
  rerun of `owner` can touch what it frees, at once on the caller's thread,
  or on the warmer's thread as soon as the rerun in progress returns.

Why: a model's run reads all of its weights. Run back to back, they stay in
the CPU caches; while a server waits for its next request, other processes
push them out, and the next run reads them from memory. A SCHED_IDLE thread
runs only on a CPU nothing else wants, and any thread that wakes takes the
CPU from it, so reruns use the gaps between requests without delaying one.

Costs and limits: while the window lasts, the warmer keeps one core busy,
and under a CPU quota (a container's cpu.max) that time is charged like any
other. Around each rerun it holds the GIL briefly; on a host whose cores are
all kept busy by other processes, a starved warmer can hold up a request
thread that waits for the GIL. So the flag is for servers whose cores are
otherwise idle between requests (README, "Tuning"); the
measurements are in docs/performance/2026-11-27-keep-model-warm.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

_LOG = logging.getLogger(__name__)


class IdleWarmer:
    """Reruns the latest graph call on an idle-priority thread for `window_seconds`.

    `clock` gives the time the window is measured in (tests pass a fake one).
    """

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self._window = window_seconds
        self._clock = clock
        # (owner, callable, feeds) of the latest call; replaced without a lock
        # on the request path (one reference assignment).
        self._latest: tuple[object, Callable, Sequence] | None = None
        self._last_call = 0.0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running_for: object | None = None  # owner of the rerun in progress
        # What forget() left for the warmer to call once that rerun returns.
        self._release_after_rerun: Callable[[], None] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="idle_warmer", daemon=True)
        self._thread.start()

    def note(self, owner: object, fn: Callable, feeds: Sequence) -> None:
        """Records a call `fn(*feeds)` of `owner` that just ran; cheap, for the hot path."""
        # The time first: a warmer that sees the new call must not find its window passed.
        self._last_call = self._clock()
        self._latest = (owner, fn, feeds)
        if not self._wake.is_set():
            self._wake.set()

    def forget(self, owner: object, release: Callable[[], None]) -> None:
        """Stops rerunning `owner`'s calls, then calls `release` (say, closing its session).

        `release` runs once no rerun of `owner` can touch what it frees: at
        once on the caller's thread when none is in progress, otherwise on the
        warmer's thread as soon as that rerun returns. The caller never waits
        for the warmer, which may be starved at idle priority.
        """
        with self._lock:
            latest = self._latest
            if latest is not None and latest[0] is owner:
                self._latest = None
            if self._running_for is owner:
                self._release_after_rerun = release
                return
        release()

    @property
    def idle(self) -> bool:
        """True when no rerun is in progress and none can start before the next note()."""
        with self._lock:
            return self._latest is None and self._running_for is None

    def stop(self, timeout: float | None = None) -> bool:
        """Ends the warming thread once the rerun in progress (if any) returns.

        Waits up to `timeout` seconds (None: as long as that takes) and says
        whether the thread has ended. Any thread may call it, more than once;
        the thread is asked to end only the first time.
        """
        if not self._stopping:
            self._stopping = True
            self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping:
                return
            # Reasserted at every wake-up: a process-wide policy change
            # (--cpu_scheduling_policy) would otherwise reach this thread too.
            if not _lower_to_idle_priority():
                self._latest = None
                return
            while not self._stopping and self._rerun_latest():
                pass
            self._wake.clear()
            # clear() may have swallowed a wake-up that came during the last
            # rerun: look again at what stop() and note() set before it.
            if self._stopping:
                return
            if self._latest is not None and not self._window_passed():
                self._wake.set()  # a request came while clearing: keep warming

    def _window_passed(self) -> bool:
        return self._clock() - self._last_call > self._window

    def _rerun_latest(self) -> bool:
        """Reruns the latest call once; False when there is nothing (left) to rerun."""
        with self._lock:
            latest = self._latest
            if latest is None:
                return False
            if self._window_passed():
                self._latest = None  # do not keep the last request's inputs alive
                return False
            owner, fn, feeds = latest
            self._running_for = owner
        try:
            fn(*feeds)
        except Exception as error:  # noqa: BLE001 - a warming run must never matter
            _LOG.warning("Stopped keeping a model warm: its rerun failed: %s", error)
            with self._lock:
                if self._latest is latest:
                    self._latest = None
        finally:
            with self._lock:
                self._running_for = None
                release, self._release_after_rerun = self._release_after_rerun, None
            if release is not None:
                _call_release(release)
        return True


def _call_release(release: Callable[[], None]) -> None:
    """Calls what forget() deferred; a failure is logged, the warmer goes on."""
    try:
        release()
    except Exception:  # noqa: BLE001 - one model's clean-up must not stop warming the rest
        _LOG.exception("Releasing a forgotten model after its last rerun failed")


def _lower_to_idle_priority() -> bool:
    """Puts the calling thread under SCHED_IDLE (no privilege needed to lower it).

    Without it a rerun would compete with requests, so the caller stops warming.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as error:
        _LOG.warning("Not keeping models warm: SCHED_IDLE was refused: %s", error)
        return False
    return True
