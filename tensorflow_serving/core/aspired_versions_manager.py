"""AspiredVersionsManager: makes the loaded versions follow the aspired ones.

A Source says which versions of a model it wants (`set_aspired_versions`); a
manager thread asks the version policy for the next load or unload and runs
it on the load / unload thread pools; requests find AVAILABLE versions
through an immutable snapshot, so the hot path takes no manager lock.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable

from tensorflow_serving.core.aspired_version_policy import (
    Action,
    AspiredVersionPolicy,
    AvailabilityPreservingPolicy,
    VersionSnapshot,
)
from tensorflow_serving.core.loader import Loader
from tensorflow_serving.core.servable_state import ManagerState, ServableId, ServableState
from tensorflow_serving.core.servable_state_monitor import ServableStateMonitor
from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class ManagerOptions:
    """Upstream's defaults: serial loads, 5 retries a minute apart."""

    num_load_threads: int = 0
    num_unload_threads: int = 0
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    # Not upstream: a load that takes longer fails (0 = no limit).
    load_timeout_seconds: float = 0.0
    # How long an unload waits for requests still using the version.
    unload_drain_seconds: float = 60.0
    # Not upstream: a version whose load failed (every retry) is tried again as
    # soon as its files change (Loader.fingerprint) or, unchanged, this long
    # after it failed, doubling with each failed round up to the max
    # (5 min, 10, 20, 40, then hourly). 0: only when its files change.
    failed_version_backoff_seconds: float = 300.0
    failed_version_max_backoff_seconds: float = 3600.0

    def failed_version_backoff(self, failed_rounds: int) -> float | None:
        """Seconds until a version that failed `failed_rounds` rounds in a row with
        unchanged files is tried again; None: not until they change."""
        if self.failed_version_backoff_seconds <= 0:
            return None
        doubled = self.failed_version_backoff_seconds * 2 ** min(failed_rounds - 1, 32)
        return min(doubled, max(self.failed_version_max_backoff_seconds, 0.0))


class LoadedServable:
    """An AVAILABLE version plus a count of the requests using it right now.

    A request takes it with try_acquire() and gives it back with release().
    Once the manager retires it (on the way to unload), try_acquire() fails,
    so a request that found it just before the unload began cannot start
    using it after the unload saw no users. Thread-safe.
    """

    __slots__ = ("id", "servable", "_in_flight", "_retired", "_lock", "_idle")

    def __init__(self, servable_id: ServableId, servable: object):
        self.id = servable_id
        self.servable = servable
        self._in_flight = 0
        self._retired = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def try_acquire(self) -> bool:
        """Counts a new user in; False (nothing counted) once the version is retired."""
        with self._lock:
            if self._retired:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        """Counts a user out; each successful try_acquire() is matched by one release()."""
        with self._lock:
            self._in_flight -= 1
            if self._retired and self._in_flight == 0:
                self._idle.notify_all()

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def retire_and_drain(self, timeout: float) -> bool:
        """Refuses new users, then waits up to `timeout` s for the current ones; True if none left."""
        with self._idle:
            self._retired = True
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


class _Harness:
    """The manager's record of one version (upstream: LoaderHarness)."""

    def __init__(self, servable_id: ServableId, loader: Loader, failed_rounds: int = 0):
        self.id = servable_id
        self.loader = loader
        self.state = ManagerState.START
        self.is_aspired = True
        self.error: status.ServingError | None = None
        self.loaded: LoadedServable | None = None
        # Load rounds (first try + retries) that failed in a row with these files,
        # and the manager clock's time the last one ended.
        self.failed_rounds = failed_rounds
        self.failed_at = 0.0

    def snapshot(self) -> VersionSnapshot:
        return VersionSnapshot(self.id, self.state, self.is_aspired, self.error is not None)


def _as_serving_error(error: BaseException) -> status.ServingError:
    if isinstance(error, status.ServingError):
        return error
    return status.internal(f"{type(error).__name__}: {error}")


class AspiredVersionsManager:
    """`clock` (seconds, monotonic) times the backoff of failed versions only."""

    def __init__(
        self,
        options: ManagerOptions | None = None,
        policy: AspiredVersionPolicy | None = None,
        monitor: ServableStateMonitor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.options = options or ManagerOptions()
        self._clock = clock
        self.policy = policy or AvailabilityPreservingPolicy()
        self.monitor = monitor or ServableStateMonitor()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = False
        self._harnesses: dict[str, dict[int, _Harness]] = {}
        # name -> {version: LoadedServable}; replaced, never mutated.
        self._serving: dict[str, dict[int, LoadedServable]] = {}
        self._load_pool = concurrent.futures.ThreadPoolExecutor(
            max(1, self.options.num_load_threads), thread_name_prefix="load"
        )
        self._unload_pool = concurrent.futures.ThreadPoolExecutor(
            max(1, self.options.num_unload_threads), thread_name_prefix="unload"
        )
        self._thread = threading.Thread(target=self._run, name="manager", daemon=True)
        self._thread.start()

    # -- Source side ------------------------------------------------------

    def set_aspired_versions(
        self, name: str, versions: Iterable[tuple[ServableId, Loader]]
    ) -> None:
        """The complete list of versions of `name` that should be loaded now."""
        wanted = {sid.version: (sid, loader) for sid, loader in versions}
        with self._lock:
            harnesses = self._harnesses.setdefault(name, {})
            for version, harness in harnesses.items():
                harness.is_aspired = version in wanted
            for version, (sid, loader) in wanted.items():
                harness = harnesses.get(version)
                if harness is None:
                    harnesses[version] = _Harness(sid, loader)
                elif harness.state == ManagerState.END:
                    retry = self._retry(harness, loader)
                    if retry is None:
                        continue
                    harnesses[version] = retry
                else:
                    continue
                self._publish(harnesses[version])
        self._wake.set()

    def _retry(self, ended: _Harness, loader: Loader) -> _Harness | None:
        """A new harness for an ENDed version that is wanted again, or None: not yet.

        One that ended because it was no longer wanted loads again at once. A
        failed one is tried again once its files changed (it may have been
        fixed: its loader's fingerprint differs) or, with the same files,
        after the options' backoff since it failed.
        """
        if ended.error is None:
            return _Harness(ended.id, loader)
        if loader.fingerprint != ended.loader.fingerprint:
            _LOG.info("Loading servable %s again, which failed: its files changed", ended.id)
            return _Harness(ended.id, loader)
        backoff = self.options.failed_version_backoff(ended.failed_rounds)
        if backoff is None or self._clock() - ended.failed_at < backoff:
            return None
        _LOG.info(
            "Loading servable %s again, which failed %d time(s) with these files, after %g s",
            ended.id,
            ended.failed_rounds,
            backoff,
        )
        return _Harness(ended.id, loader, failed_rounds=ended.failed_rounds)

    # -- Request side -----------------------------------------------------

    def serving_versions(self, name: str) -> dict[int, LoadedServable] | None:
        """The AVAILABLE versions of a model, or None when the model is unknown."""
        return self._serving.get(name)

    def available_models(self) -> dict[str, dict[int, LoadedServable]]:
        return self._serving

    # -- Manager thread ---------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                self._manage_once()
            except Exception:  # the manager thread must never die
                _LOG.exception("Manager iteration failed")

    def _manage_once(self) -> None:
        with self._lock:
            for name in list(self._harnesses):
                harnesses = self._harnesses[name]
                self._forget_ended(harnesses)
                if not harnesses:
                    del self._harnesses[name]
                    continue
                action = self.policy.next_action([h.snapshot() for h in harnesses.values()])
                if action is None:
                    continue
                harness = harnesses[action.id.version]
                if action.action == Action.LOAD:
                    self._start_load(harness)
                else:
                    self._start_unload(harness)
                self._wake.set()  # one action per model per pass; look again

    @staticmethod
    def _forget_ended(harnesses: dict[int, _Harness]) -> None:
        for version in [
            v for v, h in harnesses.items() if h.state == ManagerState.END and not h.is_aspired
        ]:
            del harnesses[version]

    def _publish(self, harness: _Harness) -> None:
        self.monitor.publish(ServableState(harness.id, harness.state, harness.error))

    def _set_state(self, harness: _Harness, state: ManagerState) -> None:
        harness.state = state
        self._publish(harness)

    def _update_serving(self, name: str) -> None:
        versions = {
            v: h.loaded
            for v, h in self._harnesses.get(name, {}).items()
            if h.state == ManagerState.AVAILABLE and h.loaded is not None
        }
        serving = dict(self._serving)
        if versions:
            serving[name] = versions
        else:
            serving.pop(name, None)
        self._serving = serving

    # -- Loading ----------------------------------------------------------

    def _start_load(self, harness: _Harness) -> None:
        self._set_state(harness, ManagerState.LOADING)
        self._load_pool.submit(self._load, harness)

    def _attempt_load(self, harness: _Harness) -> object:
        timeout = self.options.load_timeout_seconds
        if timeout <= 0:
            return harness.loader.load()
        result: dict[str, object] = {}
        handover = threading.Lock()  # decides, once, between "taken" and "abandoned"

        def target() -> None:
            try:
                servable = harness.loader.load()
            except BaseException as error:  # handed to the waiting thread
                with handover:
                    result["error"] = error
                return
            with handover:
                if "abandoned" not in result:
                    result["servable"] = servable
                    return
            # The manager gave up on this load: free what it took, nobody will serve it.
            _LOG.warning(
                "Servable %s finished loading after its %g s load timeout; unloading it",
                harness.id,
                timeout,
            )
            try:
                harness.loader.unload(servable)
            except Exception:
                _LOG.exception("Unloading late servable %s failed", harness.id)

        worker = threading.Thread(target=target, name=f"load-{harness.id}", daemon=True)
        worker.start()
        worker.join(timeout)
        with handover:
            if "servable" not in result and "error" not in result:
                result["abandoned"] = True
                raise status.deadline_exceeded(
                    f"Loading servable {harness.id} did not finish within the load timeout of "
                    f"{timeout:g} s (--load_timeout_seconds)"
                )
        if "error" in result:
            raise result["error"]
        return result["servable"]

    def _load(self, harness: _Harness) -> None:
        attempts = 1 + max(0, self.options.max_num_load_retries)
        interval = max(0, self.options.load_retry_interval_micros) / 1e6
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                servable = self._attempt_load(harness)
            except BaseException as error:
                harness.error = _as_serving_error(error)
                _LOG.error(
                    "Loading servable %s failed (attempt %d of %d): %s",
                    harness.id,
                    attempt,
                    attempts,
                    harness.error.message,
                )
                if attempt == attempts:
                    break
                with self._lock:
                    # Still LOADING, but GetModelStatus shows why while it waits to retry.
                    self._publish(harness)
                if not self._wait_to_retry(harness, interval):
                    break
                continue
            with self._lock:
                wanted = harness.is_aspired
                if wanted:
                    harness.error = None
                    harness.loaded = LoadedServable(harness.id, servable)
                    self._set_state(harness, ManagerState.AVAILABLE)
                    self._update_serving(harness.id.name)
            if not wanted:
                self._discard(harness, servable)
                return
            _LOG.info(
                "Successfully loaded servable version %s in %.3f s",
                harness.id,
                time.monotonic() - started,
            )
            self._wake.set()
            return
        with self._lock:
            harness.failed_rounds += 1
            harness.failed_at = self._clock()
            self._set_state(harness, ManagerState.END)
        self._wake.set()

    def _discard(self, harness: _Harness, servable: object) -> None:
        """A load that finished after its version stopped being wanted (e.g. its
        directory was deleted meanwhile): never served, freed at once."""
        _LOG.warning(
            "Servable %s stopped being aspired while it loaded (version directory gone?); "
            "unloading it without serving it",
            harness.id,
        )
        try:
            harness.loader.unload(servable)
        except Exception:
            _LOG.exception("Unloading servable %s failed", harness.id)
        with self._lock:
            harness.error = None
            self._set_state(harness, ManagerState.END)
        self._wake.set()

    def _wait_to_retry(self, harness: _Harness, interval: float) -> bool:
        """Sleeps between attempts; False when the version is no longer wanted."""
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline:
            if self._stopping or not harness.is_aspired:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return harness.is_aspired and not self._stopping

    # -- Unloading --------------------------------------------------------

    def _start_unload(self, harness: _Harness) -> None:
        if harness.state == ManagerState.START:
            self._set_state(harness, ManagerState.END)
            return
        self._set_state(harness, ManagerState.UNLOADING)
        self._update_serving(harness.id.name)
        self._unload_pool.submit(self._unload, harness)

    def _unload(self, harness: _Harness) -> None:
        loaded = harness.loaded
        if loaded is not None:
            if not loaded.retire_and_drain(self.options.unload_drain_seconds):
                _LOG.warning(
                    "Unloading %s with %d requests still using it after %.0f s",
                    harness.id,
                    loaded.in_flight(),
                    self.options.unload_drain_seconds,
                )
            try:
                harness.loader.unload(loaded.servable)
            except Exception:
                _LOG.exception("Unloading servable %s failed", harness.id)
        with self._lock:
            harness.loaded = None
            self._set_state(harness, ManagerState.END)
        _LOG.info("Unloaded servable version %s", harness.id)
        self._wake.set()

    # -- Shutdown ---------------------------------------------------------

    def stop(self) -> None:
        """Unloads everything and stops the threads (used at server exit and in tests)."""
        with self._lock:
            for name in list(self._harnesses):
                for harness in self._harnesses[name].values():
                    harness.is_aspired = False
        self._wake.set()
        # Poll rather than wait on the monitor: its lock is taken under ours.
        deadline = time.monotonic() + 30
        while self._has_live_versions() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._load_pool.shutdown(wait=False, cancel_futures=True)
        self._unload_pool.shutdown(wait=True)

    def _has_live_versions(self) -> bool:
        with self._lock:
            return any(
                h.state not in (ManagerState.END,)
                for harnesses in self._harnesses.values()
                for h in harnesses.values()
            )
