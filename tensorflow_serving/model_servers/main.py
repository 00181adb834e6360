"""tensorflow_model_server: the stock server's command line, in Python.

Flags keep upstream's names and defaults (tensorflow_serving/model_servers/
main.cc). Flags for hardware and runtimes we do not have (TPU, GPU, XLA,
ALTS) are accepted only at their defaults, and otherwise refused with a
message, so that nobody believes a setting took effect when it did not. An
unknown flag is reported with the usage and ignored, as upstream does, so a
command line written for the stock server starts this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading

# Before numpy's first import: its OpenBLAS reads this only then. Request
# decoding calls numpy on large arrays, and OpenBLAS would split those calls
# over threads that then spin on the server's cores; the model runs in
# TensorFlow's own thread pools. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tensorflow_serving.model_servers import grpc_core_settings  # noqa: E402

# Before anything imports grpc (util.status does): gRPC reads them only then.
grpc_core_settings.choose_server_experiments()

from tensorflow_serving.model_servers import supervisor  # noqa: E402
from tensorflow_serving.model_servers.inline_grpc_server import check_grpc_server  # noqa: E402
from tensorflow_serving.model_servers.server_options import ServerOptions  # noqa: E402
from tensorflow_serving.util import (  # noqa: E402
    cpu_scheduling,
    open_files,
    status,
    tensorflow_import,
)

SERVER_VERSION = "2.21.0-py"

_HELP = {
    "port": "TCP port to listen on for gRPC API. Disabled if port set to zero.",
    "grpc_socket_path": "If non-empty, listen to a UNIX socket for gRPC API on this path.",
    "grpc_channel_arguments": "Comma separated gRPC server arguments, e.g. "
    "grpc.max_connection_age_ms=2000",
    "grpc_max_threads": "Max gRPC server threads to handle gRPC messages.",
    "enable_grpc_healthcheck_service": "Serve grpc.health.v1.Health, SERVING only when every "
    "configured model has an AVAILABLE version.",
    "rest_api_port": "Port for the HTTP/REST API; 0 disables it. Must differ from --port "
    "(if equal, only gRPC is served, with a warning).",
    "rest_api_num_threads": "Number of threads for HTTP/REST API processing.",
    "rest_api_timeout_in_ms": "Timeout for HTTP/REST API calls.",
    "rest_api_enable_cors_support": "Enable CORS headers in responses.",
    "enable_batching": "Enable request batching.",
    "batching_parameters_file": "ASCII BatchingParameters file overriding the defaults.",
    "enable_per_model_batching_parameters": "With --enable_batching: a version directory's "
    "batching_params.pbtxt (BatchingParameters) sets that model's batch sizes and timeouts "
    "instead of --batching_parameters_file (batch threads stay shared); a version without one "
    "is not batched.",
    "allow_version_labels_for_unavailable_models": "Allow labels on versions not yet loaded.",
    "model_config_file": "ASCII ModelServerConfig file of the models to serve "
    "(--model_name/--model_base_path are then ignored).",
    "model_config_file_poll_wait_seconds": "Seconds between polls of --model_config_file; "
    "0 reads it once.",
    "model_name": "Name of the model (ignored with --model_config_file).",
    "model_base_path": "Path to the export, without the version directory.",
    "num_load_threads": "Threads that load servables (0: one, serially).",
    "num_unload_threads": "Threads that unload servables (0: one, serially).",
    "max_num_load_retries": "Retries after a failed load before giving up.",
    "load_retry_interval_micros": "Microseconds between load retries.",
    "file_system_poll_wait_seconds": "Seconds between polls for new versions; 0 polls once.",
    "tensorflow_session_parallelism": "Threads for a TF session (intra and inter); 0: auto.",
    "tensorflow_intra_op_parallelism": "Threads inside one op; 0: auto.",
    "tensorflow_inter_op_parallelism": "Ops run at once; 0: auto.",
    "tensorflow_session_config_file": "ASCII TensorFlow ConfigProto file: the session config "
    "of every model; the *_parallelism flags that are set override its thread counts.",
    "platform_config_file": "ASCII PlatformConfigMap file whose 'tensorflow' entry (a "
    "SavedModelBundleSourceAdapterConfig) gives the SessionBundleConfig: session config, "
    "batching parameters, tags, warmup. The batching, session config, parallelism, tags and "
    "warmup flags are then ignored (with a warning).",
    "saved_model_tags": "Comma-separated tags of the MetaGraphDef to load.",
    "enable_profiler": "Serve TensorFlow's ProfilerService on the gRPC port (profiles of "
    "this process for TensorBoard and profiler_client.trace).",
    "enable_model_warmup": "Replay assets.extra/tf_serving_warmup_requests at load.",
    "num_request_iterations_for_warmup": "Times each warmup request is replayed.",
    "monitoring_config_file": "ASCII MonitoringConfig file (Prometheus endpoint).",
    "ssl_config_file": "ASCII SSLConfig file (server_key, server_cert, custom_ca, "
    "client_verify): serve gRPC on --port over TLS.",
    "enable_serialization_as_tensor_content": "gRPC Predict answers carry each output's "
    "values as raw bytes in tensor_content instead of the typed *_val fields (string outputs "
    "stay in string_val).",
    "enable_signature_method_name_check": "Predict, Classify and Regress check the "
    "signature's method_name (Predict: any of the three). Leave off to serve TF2 "
    "classify/regress signatures, which all say predict.",
    "max_request_bytes": "Not upstream: largest request accepted, in bytes: bigger REST bodies "
    "get 413 without being read, bigger gRPC messages RESOURCE_EXHAUSTED. Receiving a gRPC "
    "message takes about three times its size in memory. 0: no limit of ours (gRPC keeps "
    "upstream's 2 GiB).",
    "max_decoded_request_bytes": "Not upstream: what one request may decode to in memory, in "
    "bytes: a Predict's tensors (elements x element size; 48 per string) or a REST body's "
    "parsed JSON (estimated from its length and its count of values), checked before "
    "decoding; a request over it gets INVALID_ARGUMENT / 400 at once. 0: no limit.",
    "prefer_tflite_model": "Serve a version directory's model.tflite (TensorFlow Lite) instead of "
    "its SavedModel when it has one; without one, the SavedModel is served.",
    "num_tflite_pools": "TensorFlow Lite interpreters per TFLite model (each runs one batch at "
    "a time); 0 means 1. Default: the number of CPUs this process may run on.",
    "num_tflite_interpreters_per_pool": "When above 1, a batch of more than ceil(500 / this) "
    "rows is split into pieces of that many rows that run at once on a TFLite model's "
    "interpreters.",
    "bind_address": "Address the gRPC and REST servers listen on (not upstream; upstream "
    "always uses 0.0.0.0).",
    "load_timeout_seconds": "Not upstream: a model version whose load takes longer than this "
    "many seconds fails with DEADLINE_EXCEEDED (and is retried as any failed load); 0: no limit.",
    "max_concurrent_requests": "Not upstream: gRPC calls running or queued at once; beyond it "
    "new calls get RESOURCE_EXHAUSTED immediately instead of queueing without bound; 0: no cap.",
    "cpu_scheduling_policy": "Not upstream: Linux scheduling policy of the server's threads. "
    "'batch' (SCHED_BATCH): a woken thread does not preempt the running one, so the model "
    "computes in longer stretches (more throughput when model and transport share cores); "
    "'normal': the default policy.",
    "keep_model_warm_micros": "Not upstream: for this many microseconds after each request, "
    "rerun it on an idle-priority thread so the model stays in the CPU caches (faster answers "
    "to sparse traffic, at the price of a busy core meanwhile); needs one TensorFlow thread "
    "per graph run; only for hosts whose cores are otherwise idle between requests; 0: off.",
    "num_server_processes": "Not upstream: worker processes that serve the same gRPC and REST "
    "ports, under this process as their supervisor (it restarts a worker that dies); 0: one "
    "per core this server may use (CPU affinity and cgroup quota); 1: this process serves "
    "alone. Each worker holds its own copy of every model (memory x N); a connection stays "
    "with one worker, so use several connections.",
    "pin_server_processes": "Not upstream: with --num_server_processes above 1, each worker "
    "runs on its own share of the CPUs this server may use (one CPU each when there are as "
    "many workers as CPUs), so that its threads do not pass the interpreter lock between "
    "cores; false: every worker may run on every CPU. No effect with more workers than CPUs.",
    "grpc_server": "Not upstream: 'inline' runs each gRPC handler on the thread that polled "
    "its request (no thread hand-offs per call); 'grpcio' is grpcio's stock thread-pool "
    "server.",
    "rest_api_max_header_bytes": "Not upstream: longest request line plus headers of a REST "
    "request, in bytes; a longer one gets 431 and its connection is closed without reading "
    "the rest. 0: no limit.",
    "rest_api_header_timeout_in_ms": "Not upstream: a REST request's line and headers must "
    "arrive within this many ms (from the connection's start, or from the request's first "
    "byte on a kept-alive connection), else 408 and the connection is closed. 0: no limit.",
    "rest_api_body_timeout_in_ms": "Not upstream: a REST request's body must arrive within "
    "this many ms after its headers, else 408 and the connection is closed. 0: no limit.",
    "rest_api_keep_alive_timeout_in_ms": "Not upstream: an idle REST connection is closed this "
    "many ms after its last answer. 0: kept open.",
    "rest_api_max_connections": "Not upstream: REST connections open at once; a new one beyond "
    "it gets 503 and is closed. 0: three quarters of the open-file limit (which the server "
    "raises to its hard limit at start), leaving at least 256 files to gRPC, model files and "
    "logs.",
}

# Upstream flags that need hardware or runtimes this server does not have:
# accepted at their default value only.
_UNSUPPORTED = {
    "per_process_gpu_memory_fraction": (float, 0.0, "no GPU support"),
    "use_alts_credentials": ("bool", False, "ALTS is Google-internal"),
    "xla_cpu_compilation_enabled": ("bool", False, "no XLA:CPU JIT"),
    "thread_pool_factory_config_file": (str, "", "no custom thread pools"),
    "xla_gpu_compilation_enabled": ("bool", False, "no XLA JIT"),
    "mixed_precision": (str, "", "no mixed precision"),
}

# Upstream flags with nothing to act on here: memory hints, and the TPU
# start-up switch (either value leaves a server without TPUs as it is).
_NO_OPS = {
    "flush_filesystem_caches": ("bool", True),
    "remove_unused_fields_from_bundle_metagraph": ("bool", True),
    "skip_initialize_tpu": ("bool", False),
}


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes"):
        return True
    if lowered in ("0", "false", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add(parser: argparse.ArgumentParser, name: str, kind, default, help_text: str) -> None:
    if kind is bool or kind == "bool":
        parser.add_argument(
            f"--{name}", type=parse_bool, nargs="?", const=True, default=default, help=help_text
        )
    else:
        parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensorflow_model_server",
        description="Serves TensorFlow SavedModels over gRPC and REST.",
        allow_abbrev=False,
    )
    defaults = ServerOptions()
    for field in dataclasses.fields(ServerOptions):
        value = getattr(defaults, field.name)
        help_text = _HELP[field.name]
        if "not upstream" not in help_text.lower():
            help_text += " (Upstream's flag.)"
        _add(parser, field.name, type(value), value, help_text)
    for name, (kind, value, why) in _UNSUPPORTED.items():
        help_text = f"Not supported here ({why}); upstream's flag, default only."
        _add(parser, name, kind, value, help_text)
    for name, (kind, value) in _NO_OPS.items():
        _add(parser, name, kind, value, "Accepted for compatibility (upstream's flag); no effect.")
    parser.add_argument("--version", action="store_true", help="Display version and exit.")
    return parser


def parse_options(
    argv: list[str], report_unknown: bool = True
) -> tuple[ServerOptions, argparse.Namespace]:
    """The options of a command line; exits (status 2, with the usage) on a bad value.

    An argument that is no flag of ours is ignored, as upstream ignores it:
    with `report_unknown`, `unknown argument: ...` and the usage go to stderr.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and report_unknown:
        _report_unknown(parser, unknown)
    for name, (_, default, why) in _UNSUPPORTED.items():
        value = getattr(args, name)
        if value != default:
            parser.error(f"--{name}={_flag_value(value)} is not supported by this server ({why})")
    options = ServerOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ServerOptions)}
    )
    try:
        cpu_scheduling.check_policy(args.cpu_scheduling_policy)
        check_grpc_server(args.grpc_server)
        supervisor.check_num_server_processes(options.num_server_processes)
        if options.num_server_processes == 1:  # a supervisor leaves this to its workers
            from tensorflow_serving.model_servers.server import check_keep_model_warm

            check_keep_model_warm(options)
    except status.ServingError as error:
        parser.error(error.message)
    return options, args


def _flag_value(value: object) -> str:
    """A flag's value as a command line spells it (booleans as true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _report_unknown(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """Names each ignored argument, then the usage, on stderr."""
    for argument in unknown:
        print(f"unknown argument: {argument}", file=sys.stderr)
    parser.print_usage(sys.stderr)


class _StopSignal:
    """Catches SIGTERM/SIGINT from start-up on, so a stop during loading is clean too."""

    def __init__(self) -> None:
        self.name = ""
        self._arrived = threading.Event()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        self.name = signal.Signals(signum).name
        self._arrived.set()

    def wait(self) -> str:
        while not self._arrived.wait(timeout=1.0):
            pass
        return self.name


def _shut_down(server, grace_seconds: float) -> int:
    """Drains and stops the server; exits hard if that does not finish in time.

    The exit is os._exit: every request has been answered or refused by then,
    and no lingering library thread may keep a stopped server alive.
    """
    log = logging.getLogger(__name__)
    stopper = threading.Thread(
        target=server.stop, args=(grace_seconds,), kwargs={"process_exits": True}, daemon=True
    )
    stopper.start()
    stopper.join(grace_seconds + _STOP_SLACK_SECONDS)
    code = 0
    if stopper.is_alive():
        log.error("Shutdown did not finish within %.0f s; exiting anyway", grace_seconds)
        code = 1
    else:
        log.info("Server stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


_GRACE_SECONDS = 30.0
_STOP_SLACK_SECONDS = 60.0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    supervisor.keep_to_worker_cpus()  # before TensorFlow and gRPC start their threads
    # Then, still before any thread starts: TensorFlow's import-time lines once each, at
    # the level TF_CPP_MIN_LOG_LEVEL sets, as the stock server prints them.
    level = tensorflow_import.min_log_level(os.environ.get(tensorflow_import.LEVEL_VARIABLE))
    tensorflow_import.import_tensorflow(level)
    worker = supervisor.worker_identity()
    # A worker's command line is its supervisor's, which reported what it ignores.
    options, args = parse_options(argv, report_unknown=worker is None)
    if args.version:
        import tensorflow as tf

        print(f"TensorFlow ModelServer: {SERVER_VERSION}\nTensorFlow Library: {tf.__version__}")
        return 0
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d: %(levelname).1s "
        + (f"[{worker}] " if worker else "")
        + "%(name)s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    # TensorFlow, imported before this, gave its logger a handler of its own:
    # each of its records would print twice, once in its format and once in ours.
    logging.getLogger("tensorflow").handlers.clear()
    open_files.raise_to_hard_limit()  # a supervisor's workers inherit the raised limit
    if options.num_server_processes != 1:
        return supervisor.Supervisor(options, argv).run()
    return _serve(options, worker)


def _with_group_config(options: ServerOptions, worker: supervisor.WorkerIdentity) -> ServerOptions:
    """A worker starting after a config reload serves the group's config, not its flags'.

    Unless --model_config_file is polled: the file then stays the truth.
    """
    from tensorflow_serving.model_servers.worker_group import persisted_config

    path = persisted_config(worker.directory)
    if path is None or options.model_config_file_poll_wait_seconds > 0:
        return options
    logging.getLogger(__name__).info("Serving the group's reloaded config %s", path)
    return dataclasses.replace(options, model_config_file=path)


def _serve(options: ServerOptions, worker: supervisor.WorkerIdentity | None) -> int:
    """Serves in this process until SIGTERM/SIGINT (a supervisor's worker shares its ports)."""
    from tensorflow_serving.model_servers.server import Server

    changed = cpu_scheduling.apply_to_process(options.cpu_scheduling_policy)
    logging.getLogger(__name__).info(
        "CPU scheduling policy %s for %d threads", options.cpu_scheduling_policy, changed
    )
    stop_signal = _StopSignal()
    if worker is not None:
        options = _with_group_config(options, worker)
    server = Server(worker)
    try:
        server.build_and_start(options)
    except status.ServingError as error:
        message = f"{error.code.name}: {error.message}"
        if worker is None:
            print(f"Failed to start server. Error: {message}", file=sys.stderr)
        supervisor.report_started(error=message)
        server.stop(grace_seconds=0)
        return 1
    supervisor.report_started()
    name = stop_signal.wait()
    logging.getLogger(__name__).info("Received %s: draining in-flight requests", name)
    os._exit(_shut_down(server, _GRACE_SECONDS))


if __name__ == "__main__":
    sys.exit(main())
