"""BatchingServable: a loaded model whose signature runs are merged into batches
(upstream: batching_session.h).

It wraps a SavedModelBundle and offers the same Servable protocol, so handlers
do not know batching exists. Requests of one signature with the same outputs and the
same per-row input shapes share a queue; a batch concatenates their inputs
along dimension 0, optionally pads rows to a common length and the batch to an
allowed size, runs once, and hands each caller its slice of every output.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from tensorflow_serving.batching import large_batch_splitting
from tensorflow_serving.batching.batch_outputs import BatchOutputs, OutputRows
from tensorflow_serving.batching.shared_batch_scheduler import (
    BatchQueue,
    BatchTask,
    QueueOptions,
    SharedBatchScheduler,
)
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    Aliases,
    Inputs,
    SavedModelBundle,
    Signature,
)
from tensorflow_serving.util import config_protos, status
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """One model's batching. `queue.max_batch_size` is the largest batch that runs."""

    queue: QueueOptions = QueueOptions()
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    # Upstream's enable_large_batch_splitting: the largest request accepted
    # (upstream's max_batch_size), split into batches of queue.max_batch_size
    # (upstream's max_execution_batch_size) when larger; 0: splitting off.
    max_input_batch_size: int = 0


def batching_options(params) -> BatchingOptions:
    """BatchingParameters -> options, upstream defaults for unset fields, with its checks.

    With enable_large_batch_splitting, batches run at most
    max_execution_batch_size rows (default: max_batch_size), and requests of up
    to max_batch_size rows are accepted and split.
    """
    defaults = BatchingOptions()
    max_batch_size = _value(params, "max_batch_size", defaults.queue.max_batch_size)
    splitting = params.HasField("enable_large_batch_splitting") and (
        params.enable_large_batch_splitting.value
    )
    execution_size = _value(params, "max_execution_batch_size", max_batch_size)
    if splitting and not 1 <= execution_size <= max_batch_size:
        raise status.invalid_argument(
            "When enable_large_batch_splitting is true, max_execution_batch_size must be "
            f"positive and at most max_batch_size; got {execution_size} and {max_batch_size}"
        )
    queue = QueueOptions(
        max_batch_size=execution_size if splitting else max_batch_size,
        batch_timeout_micros=_value(
            params, "batch_timeout_micros", defaults.queue.batch_timeout_micros
        ),
        max_enqueued_batches=_value(
            params, "max_enqueued_batches", defaults.queue.max_enqueued_batches
        ),
    )
    allowed = tuple(params.allowed_batch_sizes)
    options = BatchingOptions(
        queue=queue,
        num_batch_threads=_value(params, "num_batch_threads", defaults.num_batch_threads),
        allowed_batch_sizes=allowed,
        pad_variable_length_inputs=params.pad_variable_length_inputs,
        max_input_batch_size=max_batch_size if splitting else 0,
    )
    _validate(options)
    return options


def _value(params, field: str, default: int) -> int:
    return getattr(params, field).value if params.HasField(field) else default


def _validate(options: BatchingOptions) -> None:
    queue = options.queue
    for name in ("max_batch_size", "max_enqueued_batches"):
        if getattr(queue, name) < 1:
            raise status.invalid_argument(f"{name} must be positive; was {getattr(queue, name)}")
    if queue.batch_timeout_micros < 0:
        raise status.invalid_argument(
            f"batch_timeout_micros must be non-negative; was {queue.batch_timeout_micros}"
        )
    if options.num_batch_threads < 1:
        raise status.invalid_argument(
            f"num_batch_threads must be positive; was {options.num_batch_threads}"
        )
    allowed = options.allowed_batch_sizes
    if allowed:
        if any(b <= a for a, b in zip(allowed, allowed[1:], strict=False)) or allowed[0] < 1:
            raise status.invalid_argument(
                f"allowed_batch_sizes entries must be monotonically increasing; got {list(allowed)}"
            )
        if allowed[-1] != queue.max_batch_size:
            limit = (
                "max_execution_batch_size when enable_large_batch_splitting is True"
                if options.max_input_batch_size
                else "max_batch_size when enable_large_batch_splitting is False"
            )
            raise status.invalid_argument(
                f"Final entry in allowed_batch_sizes must equal {limit}; got {allowed[-1]} vs "
                f"{queue.max_batch_size}"
            )


def read_batching_parameters(path: str) -> BatchingOptions:
    """--batching_parameters_file (empty: upstream's defaults)."""
    params = config_protos.BatchingParameters()
    if path:
        params = config_protos.parse_text_file(path, config_protos.BatchingParameters)
    return batching_options(params)


def _batch_size(inputs: dict[str, np.ndarray]) -> int | None:
    """Rows of a request; None when it cannot be batched (a scalar, or disagreeing rows)."""
    if len(inputs) == 1:  # the common request, without building a set
        (array,) = inputs.values()
        return (array.shape[0] or None) if array.ndim else None
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    if len(sizes) != 1:
        return None
    (size,) = sizes
    return size if size else None


def _pad_rows(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pads every dimension after the first up to `shape` (zeros / empty strings)."""
    if array.shape[1:] == shape:
        return array
    widths = [(0, 0)] + [
        (0, want - have) for have, want in zip(array.shape[1:], shape, strict=True)
    ]
    fill = b"" if array.dtype == object else 0
    return np.pad(array, widths, constant_values=fill)


class BatchingServable:
    """A SavedModelBundle behind a batch scheduler; the same Servable protocol as the bundle.

    Thread-safe. `on_batch(rows, model_name, request_rows, queued_seconds)`
    is called with each batch's padded size, the model's name, each
    request's rows and how long each waited, just before the batch runs, on
    the thread that runs it (for the metrics).
    """

    def __init__(
        self,
        bundle: SavedModelBundle,
        scheduler: SharedBatchScheduler,
        options: BatchingOptions,
        on_batch: Callable[[int, str, tuple, tuple], None] | None = None,
        model_name: str = "",
    ):
        self._bundle = bundle
        self._scheduler = scheduler
        self._options = options
        self._on_batch = on_batch
        self._model_name = model_name
        self._queues: dict[tuple, BatchQueue] = {}
        self._lock = threading.Lock()
        self.signatures = bundle.signatures
        self.meta_graph_def = bundle.meta_graph_def
        self.export_dir = bundle.export_dir

    def signature(self, key: str) -> Signature:
        return self._bundle.signature(key)

    def submit(
        self, signature: Signature, inputs: Inputs, outputs: Aliases, runner: Runner
    ) -> Completion:
        """The Servable protocol's submit: the run joins a batch of its kind.

        Inputs that cannot be batched (a scalar, or inputs that disagree on
        their number of rows) run alone on `runner`. Raises at once when the
        queue is full or the request is larger than max_batch_size. With
        large batch splitting, a request larger than a batch is split across
        batches and its outputs joined (large_batch_splitting.py).
        """
        size = _batch_size(inputs)
        if size is None:
            return self._bundle.submit(signature, inputs, outputs, runner)
        queue = self._queue_for(signature, inputs, outputs)
        if size > queue.options.max_batch_size and self._options.max_input_batch_size:
            return self._submit_split(queue, inputs, size, runner)
        return queue.submit(inputs, size, runner)

    def _submit_split(
        self, queue: BatchQueue, inputs: Inputs, size: int, runner: Runner
    ) -> Completion:
        limit = self._options.max_input_batch_size
        if size > limit:
            raise status.invalid_argument(
                f"Task size {size} is larger than maximum input batch size {limit}"
            )
        return large_batch_splitting.submit_split(queue, inputs, size, runner)

    def _queue_for(self, signature, inputs, output_aliases):
        if self._options.pad_variable_length_inputs:
            layout = tuple((a, inputs[a].ndim, inputs[a].dtype.str) for a in signature.input_order)
        else:
            layout = tuple(
                (a, inputs[a].shape[1:], inputs[a].dtype.str) for a in signature.input_order
            )
        key = (signature.key, output_aliases, layout)
        queue = self._queues.get(key)
        if queue is None:
            with self._lock:
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._scheduler.add_queue(
                        self._options.queue,
                        lambda tasks: self._process(signature, output_aliases, tasks),
                    )
                    self._queues[key] = queue
        return queue

    def _padded_size(self, rows: int) -> int:
        for allowed in self._options.allowed_batch_sizes:
            if allowed >= rows:
                return allowed
        return rows

    def _merge(
        self, signature: Signature, tasks: list[BatchTask]
    ) -> tuple[dict[str, np.ndarray], int]:
        rows = sum(task.size for task in tasks)
        padded = self._padded_size(rows)
        merged = {}
        for alias in signature.input_order:
            parts = [task.inputs[alias] for task in tasks]
            if self._options.pad_variable_length_inputs:
                ndim = parts[0].ndim
                shape = tuple(max(p.shape[d] for p in parts) for d in range(1, ndim))
                parts = [_pad_rows(p, shape) for p in parts]
            if padded > rows:
                # Upstream pads with copies of the first row; the extra rows are dropped.
                parts.append(np.repeat(parts[0][:1], padded - rows, axis=0))
            merged[alias] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return merged, padded

    def _process(
        self, signature: Signature, output_aliases: tuple[str, ...], tasks: list[BatchTask]
    ) -> list[OutputRows]:
        """Runs one merged batch; each task gets its rows of every output (read-only views)."""
        merged, padded = self._merge(signature, tasks)
        if self._on_batch is not None:
            now = time.monotonic()  # the scheduler's clock (MonotonicClock)
            self._on_batch(
                padded,
                self._model_name,
                tuple(task.size for task in tasks),
                tuple(now - task.enqueued_at for task in tasks),
            )
        outputs = self._bundle.run(signature, merged, output_aliases)
        for alias, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != padded:
                raise status.failed_precondition(
                    f"Batched output {alias} has shape {list(value.shape)}: its first "
                    f"dimension must be the batch size {padded} for batching to split it"
                )
        batch = BatchOutputs(outputs)
        results = []
        offset = 0
        for task in tasks:
            end = offset + task.size
            results.append(batch.slice(offset, end))
            offset = end
        return results

    def close(self) -> None:
        with self._lock:
            queues = list(self._queues.values())
            self._queues.clear()
        for queue in queues:
            self._scheduler.remove_queue(queue)
        self._bundle.close()
