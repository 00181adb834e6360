"""A loaded TensorFlow Lite model behind the Servable protocol (upstream: tflite_session.h).

With `--prefer_tflite_model`, a version directory holding `model.tflite` is
served from that file instead of its SavedModel. The handlers cannot tell:
the model has `signatures` (tflite_signatures), a `meta_graph_def` holding
their SignatureDefs for GetModelMetadata, and `submit`/`run` as a
SavedModelBundle has, so Predict, Classify, Regress, warmup and batching
take their usual paths.

Runs go to a pool of `num_pools` interpreters, one batch per interpreter at
a time; an interpreter's input tensors are resized to each batch's shape
when it differs from the last one. With `interpreters_per_pool` > 1, as
upstream, a batch of more than ceil(500 / interpreters_per_pool) rows is
split into pieces of that many rows that run at once on the pool's
interpreters, and their outputs are joined again.

The runtime is `tf.lite.Interpreter` from the TensorFlow the server already
loads, so the image carries one copy of the TFLite runtime (the choice
against `ai-edge-litert` is in docs/performance).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import math
import os
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from tensorflow_serving.servables.tensorflow import tflite_parse_example, tflite_signatures
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    Aliases,
    Inputs,
    Signature,
    signature_from_def,
)
from tensorflow_serving.servables.tensorflow.tflite_interpreter_pool import InterpreterPool
from tensorflow_serving.util import status
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner

_LOG = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"
# Upstream's kInitialBatchSize: the rows one split piece is carved from.
SPLIT_BASE_ROWS = 500

# TF 2.21 warns on every Interpreter() that it moves to ai-edge-litert; said once in the docs.
warnings.filterwarnings(
    "ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated", category=UserWarning
)


@dataclasses.dataclass(frozen=True)
class TfLiteOptions:
    """--prefer_tflite_model, --num_tflite_pools, --num_tflite_interpreters_per_pool."""

    prefer_tflite_model: bool = False
    num_pools: int = dataclasses.field(default_factory=lambda: len(os.sched_getaffinity(0)))
    interpreters_per_pool: int = 1


def has_tflite_model(export_dir: str) -> bool:
    """Whether the version directory holds a `model.tflite` (upstream: TfLiteModelFound)."""
    return tf.io.gfile.exists(os.path.join(export_dir, MODEL_FILE))


def _new_interpreter(model: bytes) -> tf.lite.Interpreter:
    # One thread each, as upstream: parallelism comes from the pool.
    return tf.lite.Interpreter(model_content=model, num_threads=1)


class _Interpreter:
    """One interpreter of the pool, with the input shapes it is allocated for."""

    def __init__(self, model: bytes):
        self.tflite = _new_interpreter(model)
        self.tflite.allocate_tensors()
        self._shapes = {d["index"]: tuple(d["shape"]) for d in self.tflite.get_input_details()}

    def run(self, feeds: dict[int, np.ndarray], outputs: dict[str, int]) -> dict[str, np.ndarray]:
        """Subgraph 0: resizes what changed, sets the inputs, invokes, copies the outputs."""
        resized = False
        for index, array in feeds.items():
            if self._shapes.get(index) != array.shape:
                self.tflite.resize_tensor_input(index, list(array.shape))
                self._shapes[index] = array.shape
                resized = True
        if resized:
            self.tflite.allocate_tensors()
        for index, array in feeds.items():
            self.tflite.set_tensor(index, array)
        self.tflite.invoke()
        return {alias: self.tflite.get_tensor(index) for alias, index in outputs.items()}

    def run_signature(self, key: str, inputs: Inputs) -> dict[str, np.ndarray]:
        """A signature of another subgraph, through TFLite's own SignatureRunner."""
        return self.tflite.get_signature_runner(key)(**inputs)


def _rows(inputs: Inputs) -> int | None:
    """The rows every input shares, or None (a scalar, or disagreeing first dimensions)."""
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else None


def _as_feed(array: np.ndarray) -> np.ndarray:
    """A request array as TFLite takes it: strings as a numpy bytes array."""
    if array.dtype == object:
        return np.array([bytes(v) for v in array.reshape(-1)], dtype=np.bytes_).reshape(array.shape)
    return array


def _as_output(array: np.ndarray) -> np.ndarray:
    """A TFLite output as the server's codecs take it: strings as an object array of bytes."""
    if array.dtype.kind == "S":
        return array.astype(object)
    return array


class TfLiteSession:
    """A `model.tflite` loaded into a pool of interpreters; the Servable protocol.

    Thread-safe: runs wait for a free interpreter.
    """

    def __init__(self, export_dir: str, model: bytes, options: TfLiteOptions):
        self.export_dir = export_dir
        probe = _new_interpreter(model)  # not allocated: a custom op may be unresolved yet
        self._tflite_signatures = tflite_signatures.read_signatures(model, probe)
        self._parse = None
        runnable = model
        op_index = tflite_parse_example.find_parse_op(model)
        if op_index is not None:
            if any(s.subgraph for s in self._tflite_signatures.values()):
                raise status.unimplemented(
                    "A TfLite model with ParseExampleV2 must keep its signatures in subgraph 0"
                )
            runnable, self._parse = tflite_parse_example.split_off(model, op_index, probe)
        self.meta_graph_def = meta_graph_pb2.MetaGraphDef()
        self.signatures: dict[str, Signature] = {}
        for key, entry in self._tflite_signatures.items():
            self.meta_graph_def.signature_def[key].CopyFrom(entry.signature_def)
            self.signatures[key] = signature_from_def(key, entry.signature_def)
        num_pools = max(1, options.num_pools)
        self._pool = InterpreterPool(lambda: _Interpreter(runnable), num_pools)
        self._split_rows = 0
        self._splitter = None
        if options.interpreters_per_pool > 1:
            self._split_rows = math.ceil(SPLIT_BASE_ROWS / options.interpreters_per_pool)
            self._splitter = concurrent.futures.ThreadPoolExecutor(
                num_pools, thread_name_prefix="tflite-split"
            )

    def signature(self, key: str) -> Signature:
        """The signature named `key`, or FAILED_PRECONDITION as upstream's predictor says."""
        try:
            return self.signatures[key]
        except KeyError:
            raise status.failed_precondition(f'Serving signature key "{key}" not found.') from None

    def submit(
        self, signature: Signature, inputs: Inputs, outputs: Aliases, runner: Runner
    ) -> Completion:
        """The Servable protocol's submit: one run on `runner`, no batching."""
        return runner.submit(self.run, signature, inputs, outputs)

    def run(self, signature: Signature, inputs: Inputs, output_aliases: Aliases) -> Inputs:
        """Runs `signature` on the calling thread (submit's preconditions apply).

        Blocks while every interpreter is busy. Raises ServingError:
        INVALID_ARGUMENT when TFLite refuses the inputs (e.g. a shape its ops
        cannot take), or when tf.Examples do not parse.
        """
        rows = _rows(inputs)
        if self._splitter is not None and rows is not None and rows > self._split_rows:
            return self._run_split(signature, inputs, output_aliases, rows)
        return self._run_once(signature, inputs, output_aliases)

    def _run_split(
        self, signature: Signature, inputs: Inputs, output_aliases: Aliases, rows: int
    ) -> Inputs:
        starts = range(0, rows, self._split_rows)
        pieces = [
            self._splitter.submit(
                self._run_once,
                signature,
                {alias: array[start : start + self._split_rows] for alias, array in inputs.items()},
                output_aliases,
            )
            for start in starts
        ]
        parts = [piece.result() for piece in pieces]
        joined = {}
        for alias in output_aliases:
            values = [part[alias] for part in parts]
            if any(v.ndim == 0 for v in values):
                raise status.failed_precondition(
                    f"Output {alias} of signature {signature.key} has no batch dimension, so a "
                    f"batch of {rows} rows cannot be split over the TfLite interpreters"
                )
            joined[alias] = np.concatenate(values)
        return joined

    def _run_once(self, signature: Signature, inputs: Inputs, output_aliases: Aliases) -> Inputs:
        entry = self._tflite_signatures[signature.key]
        outputs = {alias: entry.outputs[alias] for alias in output_aliases}
        try:
            with self._pool.interpreter() as interpreter:
                if entry.subgraph:
                    feeds = {alias: _as_feed(array) for alias, array in inputs.items()}
                    values = interpreter.run_signature(signature.key, feeds)
                    values = {alias: values[alias] for alias in output_aliases}
                else:
                    values = interpreter.run(self._feeds(entry, inputs), outputs)
        except (RuntimeError, ValueError) as error:
            shapes = {alias: list(array.shape) for alias, array in sorted(inputs.items())}
            raise status.invalid_argument(
                f"TfLite model {self.export_dir} could not run signature {signature.key} on "
                f"inputs of shapes {shapes}: {error}"
            ) from None
        return {alias: _as_output(values[alias]) for alias in output_aliases}

    def _feeds(self, entry, inputs: Inputs) -> dict[int, np.ndarray]:
        feeds = {}
        for alias, array in inputs.items():
            index = entry.inputs[alias]
            if self._parse is not None and index == self._parse.input_index:
                parsed = self._parse.parse(array)
                feeds.update({i: _as_feed(value) for i, value in parsed.items()})
            else:
                feeds[index] = _as_feed(array)
        return feeds

    def close(self) -> None:
        """Frees the interpreters once their runs end; no run starts afterwards."""
        self._pool.close()
        if self._splitter is not None:
            self._splitter.shutdown(wait=False)
        if self._parse is not None:
            self._parse.close()


def load_tflite_session(export_dir: str, options: TfLiteOptions) -> TfLiteSession:
    """Loads `<export_dir>/model.tflite`; a model TFLite cannot build fails with a clear error."""
    path = os.path.join(export_dir, MODEL_FILE)
    _LOG.info("Loading TfLite model from %s", path)
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            model = handle.read()
    except (tf.errors.OpError, OSError) as error:
        raise status.not_found(f"Could not read TfLite model {path}: {error}") from None
    try:
        return TfLiteSession(export_dir, model, options)
    except status.ServingError:
        raise
    except (RuntimeError, ValueError) as error:
        raise status.invalid_argument(f"Cannot load TfLite model {path}: {error}") from None
