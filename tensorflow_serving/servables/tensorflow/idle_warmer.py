"""Keeps the model's memory in the CPU caches while the server waits for requests.

Why: a model's run reads all of its weights (12.8 MB for the chapter's CNN).
Run back to back, they stay in the shared L3 cache; but when a server waits
even a millisecond for the next request, other processes (the client, the
neighbours of a cloud VM) push them out, and the next run reads them from
DRAM. On the 2-core benchmark machine a batch-1 run took 0.6-0.9 ms back to
back and 1.4-1.7 ms after a 1 ms pause, which is most of the distance
between a one-client server and its ceiling.

An IdleWarmer (--keep_model_warm_micros) reruns the most recent graph call,
with the same inputs, on a thread of Linux's SCHED_IDLE policy, for a window
after each request. SCHED_IDLE threads run only on a CPU that would
otherwise be idle, and any other thread that wakes takes the CPU from them at
once, so warming uses the gaps between requests and never delays one. The
price is CPU time: while the window lasts, the warmer keeps one core busy,
and under a cgroup CPU quota that time is charged like any other.
Its results are thrown away, so only calls that cannot change any state are
rerun (see graph_side_effects).

The one way a request can wait for the warmer: between reruns, and around
TensorFlow's own call, the warmer runs Python and so holds the GIL. If other
processes keep every core busy, a SCHED_IDLE thread preempted there may not
run again for a long time, and a request thread needs that GIL (with two
busy loops on this 2-core machine, a normal thread waited a median 383 ms
and up to 1.4 s for the GIL of an idle-priority Python loop; a server
with the warmer, 50 requests/s and two busy loops beside it had a request
wait over a second in 2 of 10 runs of 15 s). On the
benchmark machine the server's core is otherwise idle and the warmer's Python
is a few percent of each rerun, so it never showed; on a host whose cores
are kept busy the flag should stay off (README). For the same reason
unloading does not wait for a rerun to end: a model that is unloaded hands
the closing of its session to the warmer when a rerun of it is in progress
(forget), rather than block the unloading thread on a starved one.

Tried and dropped: pausing the warmer after a rerun that waited long for a
CPU the server's own threads did not use. The stall comes before any rerun
can tell, and in all 9 such runs a request still waited 0.4-1.7 s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

_LOG = logging.getLogger(__name__)


class IdleWarmer:
    """Reruns the latest graph call on an idle-priority thread for `window_seconds`."""

    def __init__(self, window_seconds: float):
        self._window = window_seconds
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
        self._latest = (owner, fn, feeds)
        self._last_call = time.monotonic()
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

    def stop(self) -> None:
        """Ends the warming thread (after a rerun in progress)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

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
        return time.monotonic() - self._last_call > self._window

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
