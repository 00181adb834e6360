"""The outputs of one batch run, and the rows of them that each task of the batch gets.

A batch merges the inputs of several tasks (requests) into one run, so every
output of the run holds the rows of all its tasks, one task after another
(upstream's BatchingSession splits them among the tasks: SplitOutputTensors
in batching_session.cc). Here each task gets an OutputRows: its rows of
every output, as a read-only mapping that still knows the whole batch.

Why: an encoder whose work is element by element (the REST writer's float
formatting, say) can then do that work once for the whole batch, keep the
result with the batch (BatchOutputs.memo), and cut each task's rows out of
it, instead of paying its per-call cost again for every task. The result
lives exactly as long as the batch's answers need it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import TypeVar

import numpy as np

_T = TypeVar("_T")


class BatchOutputs:
    """One batch run's outputs, shared read-only by the row slices of its tasks.

    `outputs` maps each output alias to an array whose first dimension is
    the batch's row count, `rows`. The arrays are made read-only on
    construction: every task's slice is a view into them, so none may write
    into another's rows, and what memo() computed from them cannot go stale.
    The caller hands the arrays over and must not write to them (or to a
    writable base they view) afterwards.

    Thread-safe: slices of one batch are typically encoded on different
    threads at once.
    """

    __slots__ = ("outputs", "rows", "_memo")

    def __init__(self, outputs: Mapping[str, np.ndarray]) -> None:
        """Takes over `outputs`; raises ValueError unless all share one first dimension.

        An empty mapping is allowed (a run that fetched no outputs): it has
        0 rows, and every slice of it is an empty mapping.
        """
        self.outputs: dict[str, np.ndarray] = dict(outputs)
        firsts = {alias: array.shape[0] if array.ndim else None for alias, array in outputs.items()}
        if len(set(firsts.values())) > 1 or None in firsts.values():
            shapes = {alias: list(array.shape) for alias, array in self.outputs.items()}
            raise ValueError(f"batch outputs must share their first dimension: {shapes}")
        self.rows: int = next(iter(firsts.values()), 0)
        for array in self.outputs.values():
            array.flags.writeable = False
        self._memo: dict[Hashable, object] = {}

    def slice(self, start: int, stop: int) -> OutputRows:
        """Rows start:stop of every output: what the task that owns those rows gets.

        Requires 0 <= start <= stop <= rows (any range when there are no
        outputs); raises ValueError otherwise. Cheap: no array is copied.
        """
        if not 0 <= start <= stop or (self.outputs and stop > self.rows):
            raise ValueError(f"rows {start}:{stop} are not within a batch of {self.rows} rows")
        return OutputRows(self, start, stop)

    def memo(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """compute()'s result, computed once for this batch and kept under `key`.

        For work an encoder does once for the whole batch and then slices for
        each task. `key` must name both the encoder and what was computed
        (e.g. a module-private token and the output alias), since encoders
        share the batch. `compute` must not depend on which slice asks.
        Thread-safe: threads that race on a new key may each call compute(),
        but all of them get the one result that was kept. If compute()
        raises, nothing is kept and the exception propagates.
        """
        try:
            return self._memo[key]  # type: ignore[return-value]
        except KeyError:
            return self._memo.setdefault(key, compute())  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"BatchOutputs(rows={self.rows}, outputs={sorted(self.outputs)})"


class OutputRows(Mapping[str, np.ndarray]):
    """Rows start:stop of every output of one batch: what one task of the batch gets.

    A read-only Mapping from output alias to `batch.outputs[alias][start:stop]`
    (a fresh view on each lookup, never a copy), iterating in the batch's
    alias order. Code that only reads a mapping of outputs needs no change;
    an encoder that checks for OutputRows can reuse work done once for the
    whole batch (see BatchOutputs.memo). Made by BatchOutputs.slice.
    """

    __slots__ = ("batch", "start", "stop")

    def __init__(self, batch: BatchOutputs, start: int, stop: int) -> None:
        self.batch = batch
        self.start = start
        self.stop = stop

    def __getitem__(self, alias: str) -> np.ndarray:
        return self.batch.outputs[alias][self.start : self.stop]

    def __iter__(self) -> Iterator[str]:
        return iter(self.batch.outputs)

    def __len__(self) -> int:
        return len(self.batch.outputs)

    def __contains__(self, alias: object) -> bool:
        return alias in self.batch.outputs

    def __repr__(self) -> str:
        return f"OutputRows({self.start}:{self.stop} of {self.batch!r})"


__all__ = ["BatchOutputs", "OutputRows"]
