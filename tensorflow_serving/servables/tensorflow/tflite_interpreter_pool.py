"""A pool of TensorFlow Lite interpreters of one model (upstream: tflite_interpreter_pool.h).

A TFLite interpreter holds its tensors in itself, so it runs one batch at a
time; a model serves as many batches at once as its pool has interpreters
(`--num_tflite_pools`). A run takes an interpreter, waits while none is
free, and gives it back when done.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)

T = TypeVar("T")


class InterpreterPool(Generic[T]):
    """`size` interpreters made by `make()`, lent one run at a time. Thread-safe.

    An interpreter whose run raised is replaced by a new one: a failed
    resize or invoke may leave its tensors in any state, and the next
    request must not inherit it.
    """

    def __init__(self, make: Callable[[], T], size: int):
        if size < 1:
            raise status.invalid_argument(f"An interpreter pool needs at least 1; got {size}")
        self._make = make
        self._free = [make() for _ in range(size)]
        self.size = size
        self._ready = threading.Condition()
        self._closed = False
        self._waiting = 0

    def waiting(self) -> int:
        """Runs waiting for a free interpreter now."""
        with self._ready:
            return self._waiting

    @contextlib.contextmanager
    def interpreter(self) -> Iterator[T]:
        """Lends a free interpreter for the `with` block; blocks while all are busy."""
        with self._ready:
            while not self._free:
                if self._closed:
                    raise status.unavailable("The TfLite model was unloaded")
                self._waiting += 1
                try:
                    self._ready.wait()
                finally:
                    self._waiting -= 1
            if self._closed:
                raise status.unavailable("The TfLite model was unloaded")
            lent = self._free.pop()
        try:
            yield lent
        except BaseException:
            lent = self._replacement(lent)
            raise
        finally:
            with self._ready:
                self._free.append(lent)
                self._ready.notify()

    def _replacement(self, broken: T) -> T:
        try:
            return self._make()
        except Exception:  # the model loaded before, so this is unexpected
            _LOG.exception("Could not make a new TfLite interpreter; reusing the old one")
            return broken

    def close(self) -> None:
        """No run starts afterwards; runs in progress finish."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
