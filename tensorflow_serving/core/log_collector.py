"""LogCollector: writes serialized records to TFRecord files on its own thread, rotated by size.

Upstream's core/log_collector.h names the idea (a sink for request logs,
one per `log_collector_config.filename_prefix`); its open-source binary
ships none. Ours writes TFRecord files, the format of
`assets.extra/tf_serving_warmup_requests`, named
`<filename_prefix>.<pid>-<collector>.<start time>.<sequence>.tfrecord` (the
pid keeps the workers of --num_server_processes apart, the collector number
two models logging under one prefix); a record that would take a file past
`rotate_bytes` starts the next one.

Records are handed over through a bounded queue: `collect()` never blocks
and never fails; when the queue is full the record is dropped and counted
(`dropped`), so a slow disk costs log records, never request latency.
Records are turned into bytes on the writer thread (`encode`), not the
caller's.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

import tensorflow as tf

_LOG = logging.getLogger(__name__)

DEFAULT_ROTATE_BYTES = 64 << 20
DEFAULT_QUEUE_RECORDS = 4096
# TFRecord's framing: length (8 bytes) and two CRCs (4 bytes each).
_RECORD_OVERHEAD = 16
# How long the writer idles before looking at the queue again.
_IDLE_SECONDS = 0.05
# Numbers the collectors of this process, for their file names.
_COLLECTORS = itertools.count()


class LogCollector:
    """One TFRecord file series, written by one daemon thread.

    `encode(item)` turns a collected item into the record's bytes, on the
    writer thread; an item it fails on is logged and skipped. collect() may
    be called from any thread; flush() and close() from any thread but the
    writer's.
    """

    def __init__(
        self,
        filename_prefix: str,
        encode: Callable[[object], bytes] = bytes,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        queue_records: int = DEFAULT_QUEUE_RECORDS,
    ):
        directory = os.path.dirname(filename_prefix)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.filename_prefix = filename_prefix
        self._encode = encode
        self._rotate_bytes = rotate_bytes
        self._capacity = queue_records
        self._queue: collections.deque = collections.deque()
        self._dropped = itertools.count()
        self._dropped_seen = 0
        self.written = 0
        self.files: list[str] = []
        self._writer: tf.io.TFRecordWriter | None = None
        self._file_bytes = 0
        self._started = time.strftime("%Y%m%d-%H%M%S")
        self._number = next(_COLLECTORS)
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"log-collector:{os.path.basename(filename_prefix)}", daemon=True
        )
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full."""
        return self._dropped_seen

    def collect(self, item: object) -> bool:
        """Queues `item` for writing; False (and counted) when the queue is full. Never blocks."""
        if len(self._queue) >= self._capacity:
            self._dropped_seen = next(self._dropped) + 1
            return False
        self._queue.append(item)
        return True

    def flush(self, timeout: float | None = 30) -> bool:
        """Returns once every record queued before the call is on disk (False on timeout)."""
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = 30) -> None:
        """Writes what is queued, closes the file and stops the thread."""
        self._queue.append(None)
        self._wake.set()
        self._thread.join(timeout)

    # -- The writer thread --------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(_IDLE_SECONDS)
            self._wake.clear()
            while self._queue:
                item = self._queue.popleft()
                if item is None:
                    self._close_file()
                    return
                if isinstance(item, threading.Event):
                    if self._writer is not None:
                        self._writer.flush()
                    item.set()
                    continue
                self._write(item)

    def _write(self, item: object) -> None:
        try:
            record = self._encode(item)
            size = len(record) + _RECORD_OVERHEAD
            if self._writer is None or (
                self._file_bytes and self._file_bytes + size > self._rotate_bytes
            ):
                self._open_next_file()
            self._writer.write(record)
        except Exception:  # a bad record or a full disk must not stop the writer
            _LOG.exception("Could not write a request log record to %s", self.filename_prefix)
            return
        self._file_bytes += size
        self.written += 1

    def _open_next_file(self) -> None:
        self._close_file()
        path = (
            f"{self.filename_prefix}.{os.getpid()}-{self._number}.{self._started}."
            f"{len(self.files):05d}.tfrecord"
        )
        self._writer = tf.io.TFRecordWriter(path)
        self._file_bytes = 0
        self.files.append(path)
        _LOG.info("Writing request logs to %s", path)

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
