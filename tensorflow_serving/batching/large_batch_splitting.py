"""Large batch splitting: a request with more rows than one batch may run is cut
into pieces that join batches of their own, and its answer is put back together
(upstream: BatchingParameters.enable_large_batch_splitting with
max_execution_batch_size, split_input_task_func in batching_session.cc).

Why: a client may send more rows than the model should run at once; with
splitting on it gets one answer, the same as if the model had run them all,
instead of a refusal.

Each piece is an ordinary task of the batching queue, so the scheduler needs
no notion of splitting: its contract (a task is at most one batch) holds. The
pieces are cut as views along dimension 0 (no copy); the answer concatenates
each output's pieces in row order.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from tensorflow_serving.batching.shared_batch_scheduler import BatchQueue
from tensorflow_serving.util.completion import CancelledError, Completion, InvalidStateError
from tensorflow_serving.util.executors import Runner


def split_rows(inputs: Mapping[str, np.ndarray], rows: int, piece_rows: int) -> list[dict]:
    """`inputs` (each with `rows` rows) cut into consecutive pieces of at most `piece_rows` rows.

    Requires rows >= 1 and piece_rows >= 1. Every piece is a dict of views
    into the caller's arrays, in row order.
    """
    return [
        {alias: array[start : start + piece_rows] for alias, array in inputs.items()}
        for start in range(0, rows, piece_rows)
    ]


def submit_split(
    queue: BatchQueue, inputs: Mapping[str, np.ndarray], rows: int, runner: Runner
) -> Completion:
    """Queues `inputs` as pieces of at most the queue's batch size; a Completion of the joined outputs.

    Raises as BatchQueue.submit does (e.g. the queue is full) when a piece
    cannot be queued; pieces already queued are then cancelled, so a refused
    request leaves nothing behind to run. Any thread may call it.
    """
    piece_rows = queue.options.max_batch_size
    tasks: list[Completion] = []
    try:
        for piece in split_rows(inputs, rows, piece_rows):
            tasks.append(queue.submit(piece, _rows_of(piece), runner))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return JoinedOutputs(tasks)


def _rows_of(piece: Mapping[str, np.ndarray]) -> int:
    return next(iter(piece.values())).shape[0]


class JoinedOutputs(Completion):
    """The outputs of a split request: each alias's pieces concatenated in order.

    Done when every piece is: with the joined outputs (a dict of arrays), or
    with the first piece's error (the other pieces are then cancelled, where
    their batch has not started). Cancelling it cancels the pieces not yet
    running. Thread-safe: pieces finish on whichever batch threads ran them.
    """

    __slots__ = ("_parts", "_left", "_parts_lock")

    def __init__(self, parts: Sequence[Completion]) -> None:
        super().__init__()
        self._parts = list(parts)
        self._left = len(self._parts)
        self._parts_lock = threading.Lock()
        self.add_done_callback(self._cancel_parts_if_cancelled)
        for part in self._parts:
            part.add_done_callback(self._part_done)

    def _part_done(self, part: Completion) -> None:
        error = None if part.cancelled() else part.exception()
        with self._parts_lock:
            self._left -= 1
            last = self._left == 0
        if self.done():
            return
        if part.cancelled() or error is not None:
            self._settle_error(error or CancelledError())
        elif last:
            self._settle_joined()

    def _settle_error(self, error: BaseException) -> None:
        try:
            self.set_exception(error)
        except InvalidStateError:  # another piece settled it first
            return
        for other in self._parts:
            other.cancel()

    def _settle_joined(self) -> None:
        results = [part.result() for part in self._parts]
        joined = {alias: np.concatenate([r[alias] for r in results]) for alias in results[0]}
        try:
            self.set_result(joined)
        except InvalidStateError:  # cancelled meanwhile
            pass

    def _cancel_parts_if_cancelled(self, joined: Completion) -> None:
        if joined.cancelled():
            for part in self._parts:
                part.cancel()
