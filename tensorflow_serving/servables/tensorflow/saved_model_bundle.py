"""A loaded SavedModel: one TF graph + session, its signatures, and a way to run one.

Both export styles load the same way: TF1 v1-builder exports and TF2
`tf.saved_model.save` exports each carry a MetaGraphDef with SignatureDefs,
which a graph-mode Session restores, just as the C++ server does. Running a
signature goes through a cached Session callable per (signature, outputs):
no graph work per request, the GIL is released while TF runs, and, like a C++
Session, it accepts e.g. a [2] tensor for an input declared [-1, 1].

When the session's inter-op pool would have a single thread, the callables
run the graph on the calling thread instead (RunOptions.inter_op_thread_pool
= -1): one thread executes the ops either way, so no parallelism is lost, and
each run saves the hand-off to the pool thread and back (measured in
docs/performance/2026-11-27-model-run-on-calling-thread.md). With more
inter-op threads the pool is kept, so graphs with parallel branches still
run them in parallel.

With an IdleWarmer (--keep_model_warm_micros), each call that changes no
state (graph_side_effects) is handed to the warmer after it ran, so that it
can rerun it while the server is idle.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.saved_model import loader_impl  # its load(), in timed steps

from tensorflow_serving.servables.tensorflow.graph_side_effects import first_side_effect
from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.util import file_io, status, tensor_codec
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner

# A signature run's input arrays by alias, and the output aliases to fetch.
Inputs = dict[str, np.ndarray]
Aliases = tuple[str, ...]

_LOG = logging.getLogger(__name__)

# RunOptions.inter_op_thread_pool value that runs the graph on the caller's thread.
_CALLER_THREAD = -1

# Signature keys that describe the export itself rather than a serving API.
_INTERNAL_SIGNATURES = frozenset({"__saved_model_init_op", "__saved_model_train_op"})


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: its alias, graph tensor, dtype, shape."""

    alias: str
    tensor_name: str
    dtype: int
    shape: tuple[int, ...] | None  # None: unknown rank; -1: unknown dimension


@dataclasses.dataclass(frozen=True)
class Signature:
    """A SignatureDef, pre-digested once at load time for the hot path."""

    key: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    input_order: tuple[str, ...]  # sorted aliases: the order feeds are passed in
    output_order: tuple[str, ...]  # sorted aliases: what a request without a filter fetches


def _tensor_spec(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = None
    if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
        shape = tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(alias=alias, tensor_name=info.name, dtype=info.dtype, shape=shape)


def signature_from_def(key: str, sig: meta_graph_pb2.SignatureDef) -> Signature:
    """A SignatureDef digested for the hot path (aliases sorted once)."""
    inputs = {alias: _tensor_spec(alias, info) for alias, info in sig.inputs.items()}
    outputs = {alias: _tensor_spec(alias, info) for alias, info in sig.outputs.items()}
    return Signature(
        key=key,
        method_name=sig.method_name,
        inputs=inputs,
        outputs=outputs,
        input_order=tuple(sorted(inputs)),
        output_order=tuple(sorted(outputs)),
    )


def session_config(intra_op_threads: int = 0, inter_op_threads: int = 0) -> config_pb2.ConfigProto:
    """A Session config with upstream's meaning of 0: let TensorFlow choose."""
    return config_pb2.ConfigProto(
        intra_op_parallelism_threads=intra_op_threads,
        inter_op_parallelism_threads=inter_op_threads,
        allow_soft_placement=True,
    )


_TF_ERROR_CODES = {
    tf.errors.InvalidArgumentError: status.invalid_argument,
    tf.errors.NotFoundError: status.not_found,
    tf.errors.FailedPreconditionError: status.failed_precondition,
    tf.errors.DeadlineExceededError: status.deadline_exceeded,
    tf.errors.ResourceExhaustedError: status.resource_exhausted,
    tf.errors.UnavailableError: status.unavailable,
    tf.errors.OutOfRangeError: status.invalid_argument,
    tf.errors.UnimplementedError: status.unimplemented,
}


# A run error's message is cut to this many characters: TensorFlow may quote a
# whole input in it (e.g. a string it could not convert), and the client has it.
MAX_MESSAGE_CHARS = 1000


def _short(message: str) -> str:
    """The first part of a TF error message, without the node trace, at most MAX_MESSAGE_CHARS."""
    message = message.split("\n\t [[")[0].strip()
    if len(message) > MAX_MESSAGE_CHARS:
        return f"{message[:MAX_MESSAGE_CHARS]}... (truncated)"
    return message


def _serving_error(error: tf.errors.OpError) -> status.ServingError:
    """Maps a TF run error to the same canonical code the C++ server returns."""
    make = _TF_ERROR_CODES.get(type(error), status.internal)
    return make(_short(error.message))


def _undecodable_message_error(error: UnicodeDecodeError) -> status.ServingError:
    """A run error whose message quoted bytes that are not UTF-8: INVALID_ARGUMENT.

    TensorFlow's op errors quote the offending input (StringToNumber: "could
    not correctly convert string: ..."); when those bytes are not UTF-8, the
    message cannot become a Python str and the run raises UnicodeDecodeError
    instead of the OpError, so its code is lost. The bytes came from the
    request, so the request is at fault; the message keeps them escaped.
    """
    raw = error.object
    message = bytes(raw).decode("utf-8", "backslashreplace") if raw else str(error)
    return status.invalid_argument(_short(message))


def _pool_threads(configured: int, env_name: str) -> int:
    """Threads of a TF pool configured as `configured`, 0 meaning TensorFlow's choice:
    the variable `env_name` if set, otherwise one thread per CPU this process
    may run on (so a server pinned to one core gets one)."""
    threads = configured or int(os.environ.get(env_name) or 0)
    return threads or len(os.sched_getaffinity(0))


def runs_ops_one_at_a_time(config: config_pb2.ConfigProto) -> bool:
    """Whether a Session with `config` would get an inter-op pool of one thread.

    Sessions with explicitly configured pools are left alone.
    """
    if config.session_inter_op_thread_pool:
        return False
    return _pool_threads(config.inter_op_parallelism_threads, "TF_NUM_INTEROP_THREADS") == 1


def runs_on_calling_thread_only(config: config_pb2.ConfigProto) -> bool:
    """Whether a graph call runs entirely on the thread that makes it: one op at a
    time on the caller, and each op's work undivided (one intra-op thread)."""
    return (
        runs_ops_one_at_a_time(config)
        and _pool_threads(config.intra_op_parallelism_threads, "TF_NUM_INTRAOP_THREADS") == 1
    )


def callable_options(
    feeds: list[str], fetches: list[str], config: config_pb2.ConfigProto
) -> config_pb2.CallableOptions:
    """How the server calls a graph: feeds and fetches by tensor name, on the
    caller's thread when a Session with `config` runs ops one at a time."""
    options = config_pb2.CallableOptions(feed=feeds, fetch=fetches)
    if runs_ops_one_at_a_time(config):
        options.run_options.inter_op_thread_pool = _CALLER_THREAD
    return options


class SavedModelBundle:
    """A SavedModel loaded into its own graph and session."""

    def __init__(
        self,
        export_dir: str,
        tags: tuple[str, ...] = ("serve",),
        config: config_pb2.ConfigProto | None = None,
        warmer: IdleWarmer | None = None,
    ):
        self.export_dir = export_dir
        self._warmer = warmer
        self._graph = tf.Graph()
        self._config = config or session_config()
        self._session = tf.compat.v1.Session(graph=self._graph, config=self._config)
        try:
            self.meta_graph_def, self.load_stages = self._load(export_dir, list(tags))
        except Exception:
            self._session.close()
            raise
        self.signatures: dict[str, Signature] = {
            key: signature_from_def(key, sig)
            for key, sig in self.meta_graph_def.signature_def.items()
            if key not in _INTERNAL_SIGNATURES
        }
        # (signature key, output aliases) -> (callable, whether the warmer may rerun it)
        self._callables: dict[tuple[str, tuple[str, ...]], tuple[object, bool]] = {}
        self._callables_lock = threading.Lock()

    def _load(self, export_dir: str, tags: list[str]) -> tuple[meta_graph_pb2.MetaGraphDef, dict]:
        """tf.compat.v1.saved_model.loader.load's steps, timed as upstream's loader times them.

        Returns the MetaGraphDef and the seconds of each stage upstream's
        `load_latency_by_stage` names: restore_graph (read the graph, restore
        the variables) and init_graph (run the init op).
        """
        started = time.perf_counter()
        loader = loader_impl.SavedModelLoader(export_dir)
        with self._graph.as_default():
            saver, _ = loader.load_graph(self._graph, tags)
            loader.restore_variables(self._session, saver)
            restored = time.perf_counter()
            loader.run_init_ops(self._session, tags)
        stages = {"restore_graph": restored - started, "init_graph": time.perf_counter() - restored}
        return loader.get_meta_graph_def_from_tags(tags), stages

    def signature(self, key: str) -> Signature:
        """The signature named `key`, or FAILED_PRECONDITION as upstream's predictor says."""
        try:
            return self.signatures[key]
        except KeyError:
            raise status.failed_precondition(f'Serving signature key "{key}" not found.') from None

    def _callable(self, signature: Signature, output_aliases: tuple[str, ...]):
        cache_key = (signature.key, output_aliases)
        entry = self._callables.get(cache_key)
        if entry is None:
            with self._callables_lock:
                entry = self._callables.get(cache_key)
                if entry is None:
                    feeds = [signature.inputs[a].tensor_name for a in signature.input_order]
                    fetches = [signature.outputs[a].tensor_name for a in output_aliases]
                    fn = self._session._make_callable_from_options(
                        callable_options(feeds, fetches, self._config)
                    )
                    entry = (fn, self._may_rerun(signature.key, feeds, fetches))
                    self._callables[cache_key] = entry
        return entry

    def _may_rerun(self, key: str, feeds: list[str], fetches: list[str]) -> bool:
        """Whether the warmer may rerun this call: only if it changes no state."""
        if self._warmer is None:
            return False
        effect = first_side_effect(self.meta_graph_def.graph_def, feeds, fetches)
        if effect is not None:
            _LOG.info(
                "Signature %s of %s is not kept warm: it runs %s", key, self.export_dir, effect
            )
        return effect is None

    def submit(
        self, signature: Signature, inputs: Inputs, outputs: Aliases, runner: Runner
    ) -> Completion:
        """The Servable protocol's submit: one run on `runner`, no batching."""
        return runner.submit(self.run, signature, inputs, outputs)

    def run(
        self,
        signature: Signature,
        inputs: dict[str, np.ndarray],
        output_aliases: tuple[str, ...],
    ) -> dict[str, np.ndarray]:
        """Runs `signature` on the calling thread (submit's preconditions apply).

        Raises ServingError: a TF error with the C++ server's code (shape
        errors are INVALID_ARGUMENT), and INVALID_ARGUMENT for an error
        message TensorFlow could not decode (it quoted non-UTF-8 input bytes).
        For the batching layer, which merges requests before it runs them.
        """
        fn, may_rerun = self._callable(signature, output_aliases)
        feeds = [inputs[alias] for alias in signature.input_order]
        try:
            results = fn(*feeds)
        except tf.errors.OpError as error:
            raise _serving_error(error) from None
        except UnicodeDecodeError as error:
            raise _undecodable_message_error(error) from None
        if may_rerun:
            self._warmer.note(self, fn, feeds)
        return {
            alias: _as_array(value) for alias, value in zip(output_aliases, results, strict=True)
        }

    def close(self) -> None:
        """Closes the session; with a warmer, once no rerun of this model is in progress."""
        if self._warmer is not None:
            self._warmer.forget(self, self._session.close)
        else:
            self._session.close()


def _as_array(value) -> np.ndarray:
    """A fetched tensor as numpy: the session hands a scalar string back as bare bytes."""
    if isinstance(value, np.ndarray):
        return value
    return np.array(value, dtype=object if isinstance(value, bytes) else None)


def load_saved_model_bundle(
    export_dir: str,
    tags: tuple[str, ...] = ("serve",),
    config: config_pb2.ConfigProto | None = None,
    warmer: IdleWarmer | None = None,
) -> SavedModelBundle:
    """Loads a SavedModel, with a clear error for a missing or empty directory."""
    if not file_io.isdir(export_dir):
        raise status.not_found(f"SavedModel directory not found: {export_dir}")
    has_pb = any(
        file_io.exists(file_io.join(export_dir, name))
        for name in ("saved_model.pb", "saved_model.pbtxt")
    )
    if not has_pb:
        raise status.not_found(
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{export_dir}"
        )
    _LOG.info("Loading SavedModel from %s with tags {%s}", export_dir, ",".join(tags))
    try:
        return SavedModelBundle(export_dir, tags, config, warmer)
    except status.ServingError:
        raise
    except tf.errors.OpError as error:
        raise _serving_error(error) from None
    except (RuntimeError, ValueError, OSError) as error:
        raise status.failed_precondition(
            f"Failed to load SavedModel from {export_dir}: {error}"
        ) from None


def feed_dtype_check(signature: Signature, inputs: dict[str, np.ndarray]) -> None:
    """Rejects an input whose dtype differs from the signature's, as a C++ Session does."""
    for index, alias in enumerate(signature.input_order):
        want = signature.inputs[alias].dtype
        got = tensor_codec.data_type_of(inputs[alias])
        if want != got:
            raise dtype_mismatch(index, want, got)


def dtype_mismatch(index: int, want: int, got: int) -> status.ServingError:
    """A C++ Session's words for feed `index` of DataType `got` where `want` is expected."""
    return status.invalid_argument(
        f"Expects arg[{index}] to be {tensor_codec.dtype_name(want)} but "
        f"{tensor_codec.dtype_name(got)} is provided"
    )
