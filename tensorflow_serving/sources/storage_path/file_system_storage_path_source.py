"""FileSystemStoragePathSource: polls each model's base path for version directories.

A version is a sub-directory whose name is all digits (`00000123` is 123).
A base path may be on any file system TensorFlow knows (`gs://`, `ram://`,
...: util/file_io.py).
Each poll turns what is on disk, filtered by the model's version policy, into
the complete aspired-version list for the manager. A base path that is missing
or unreadable is logged and polled again; the model keeps what it serves. An
entry of the base path that cannot be examined (a digit-named symlink loop, a
link into a directory the server may not search) is skipped and logged once,
when it is first seen so; the other versions are seen as usual.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable

from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs_pb2
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.util import file_io

_LOG = logging.getLogger(__name__)

ServableVersionPolicy = fs_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


@dataclasses.dataclass(frozen=True)
class ServableToMonitor:
    """One model the source watches: its name, base path and version policy."""

    name: str
    base_path: str
    version_policy: ServableVersionPolicy = dataclasses.field(default_factory=ServableVersionPolicy)


# name, [(id, version path)] -> None
AspiredVersionsCallback = Callable[[str, list[tuple[ServableId, str]]], None]


def list_versions(base_path: str, unreadable: dict[str, OSError] | None = None) -> dict[int, str]:
    """Version number -> directory, for every all-digit sub-directory.

    An all-digit entry whose type cannot be read is left out, and put in
    `unreadable` (path -> error) when given. Raises OSError only when the
    base path itself cannot be listed.
    """
    versions: dict[int, str] = {}
    for name, path, error in file_io.subdirectories(base_path, str.isdigit):
        if error is not None:
            if unreadable is not None:
                unreadable[path] = error
            continue
        version = int(name)
        # Two spellings of one number (1 and 001): keep one, stably.
        if version not in versions or name < os.path.basename(versions[version]):
            versions[version] = path
    return versions


def select_versions(policy: ServableVersionPolicy, versions: dict[int, str]) -> dict[int, str]:
    """Applies a model's version policy (default: the latest one) to what is on disk."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return dict(versions)
    if kind == "specific":
        wanted = set(policy.specific.versions)
        return {v: p for v, p in versions.items() if v in wanted}
    count = policy.latest.num_versions if kind == "latest" else 1
    count = max(1, count)
    newest = sorted(versions, reverse=True)[:count]
    return {v: versions[v] for v in newest}


class FileSystemStoragePathSource:
    def __init__(self, callback: AspiredVersionsCallback, poll_wait_seconds: float = 1.0):
        self._callback = callback
        self._poll_wait_seconds = poll_wait_seconds
        self._servables: dict[str, ServableToMonitor] = {}
        # Per servable, the entries that could not be read at its last poll (already logged).
        self._unreadable: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update_config(self, servables: list[ServableToMonitor]) -> None:
        """Watches exactly these models; a dropped model gets an empty aspired list."""
        with self._lock:
            dropped = set(self._servables) - {s.name for s in servables}
            self._servables = {s.name: s for s in servables}
            for name in dropped:
                self._unreadable.pop(name, None)
        for name in sorted(dropped):
            self._callback(name, [])
        self.poll_once()

    def poll_once(self) -> None:
        with self._lock:
            servables = list(self._servables.values())
        for servable in servables:
            self._poll_servable(servable)

    def _poll_servable(self, servable: ServableToMonitor) -> None:
        unreadable: dict[str, OSError] = {}
        try:
            on_disk = list_versions(servable.base_path, unreadable)
        except OSError as error:
            _LOG.warning(
                "File system storage path source: cannot list base path %s of servable %s "
                "(%s); will retry on the next poll",
                servable.base_path,
                servable.name,
                error.strerror or error,
            )
            return
        self._note_unreadable(servable.name, unreadable)
        if not on_disk:
            _LOG.warning(
                "No versions of servable %s found under base path %s",
                servable.name,
                servable.base_path,
            )
        chosen = select_versions(servable.version_policy, on_disk)
        self._callback(
            servable.name,
            [(ServableId(servable.name, v), path) for v, path in sorted(chosen.items())],
        )

    def _note_unreadable(self, name: str, unreadable: dict[str, OSError]) -> None:
        """Logs the entries that became unreadable since the last poll of `name`.

        One that stays unreadable is not logged again; one that was fixed (or
        removed) is forgotten, so that it is logged if it breaks again.
        """
        with self._lock:
            before = self._unreadable.get(name, set())
            self._unreadable[name] = set(unreadable)
        for path in sorted(set(unreadable) - before):
            error = unreadable[path]
            _LOG.warning(
                "File system storage path source: skipping %s of servable %s, which cannot "
                "be read (%s); the other versions are polled as usual",
                path,
                name,
                error.strerror or error,
            )

    def start(self) -> None:
        """Polls every poll_wait_seconds; 0 (upstream) means only the first poll."""
        if self._poll_wait_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="fs-source", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:
                _LOG.exception("File system poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
