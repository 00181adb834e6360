"""ServerOptions: every flag of tensorflow_model_server, with upstream's defaults.

Its own module so that the command line can be parsed, and a supervisor of
several server processes can run, without importing TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os

from tensorflow_serving.util import status


@dataclasses.dataclass
class ServerOptions:
    """Every server flag, with upstream's defaults (see main.py for the help text)."""

    port: int = 8500
    grpc_socket_path: str = ""
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 4 * (os.cpu_count() or 1)
    enable_grpc_healthcheck_service: bool = False
    rest_api_port: int = 0
    rest_api_num_threads: int = 4 * (os.cpu_count() or 1)
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    enable_batching: bool = False
    batching_parameters_file: str = ""
    enable_per_model_batching_parameters: bool = False
    allow_version_labels_for_unavailable_models: bool = False
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    num_load_threads: int = 0
    num_unload_threads: int = 0
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    file_system_poll_wait_seconds: int = 1
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    tensorflow_session_config_file: str = ""
    platform_config_file: str = ""
    saved_model_tags: str = "serve"
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    monitoring_config_file: str = ""
    ssl_config_file: str = ""
    enable_serialization_as_tensor_content: bool = False
    enable_signature_method_name_check: bool = False
    enable_profiler: bool = True
    prefer_tflite_model: bool = False
    # Upstream: the number of CPUs this process may be scheduled on, counted when
    # the options are made (a pinned worker has applied its CPUs by then).
    num_tflite_pools: int = dataclasses.field(default_factory=lambda: len(os.sched_getaffinity(0)))
    num_tflite_interpreters_per_pool: int = 1
    # Not upstream: largest request body (REST) / message (gRPC) accepted; 0: no
    # limit of ours (gRPC then keeps upstream's 2 GiB - 1). 64 MiB because grpcio
    # holds a gRPC message three times over while it hands it to Python (gRPC
    # core's buffer, a bytearray, then bytes), so the default bounds that to
    # about 200 MB of memory per request.
    max_request_bytes: int = 64 * 1024 * 1024
    # Not upstream: what a request's tensors (or a REST body's JSON) may decode
    # to in memory, checked before decoding (0: no limit; see decode_budget.py).
    # Four times --max_request_bytes: a numeric tensor within that is never
    # refused by it, while strings and JSON may expand at most that much.
    max_decoded_request_bytes: int = 256 * 1024 * 1024
    bind_address: str = "0.0.0.0"
    # Not upstream: a version load that takes longer fails (0: no limit).
    load_timeout_seconds: float = 0.0
    # Not upstream: gRPC calls in flight (running or queued) before new ones
    # get RESOURCE_EXHAUSTED at once instead of queueing without bound (0: no cap).
    max_concurrent_requests: int = 1024
    # Not upstream: Linux scheduling policy of every server thread, "batch"
    # (SCHED_BATCH) or "normal" (see util/cpu_scheduling.py).
    cpu_scheduling_policy: str = "batch"
    # Not upstream: "inline" (handlers run on the completion-queue threads, see
    # inline_grpc_server.py) or "grpcio" (grpcio's stock thread-pool server).
    grpc_server: str = "inline"
    # Not upstream: for this long after each request, an idle-priority thread
    # reruns it so the model stays in the CPU caches (0: off; see idle_warmer.py).
    keep_model_warm_micros: int = 0
    # Not upstream: worker processes serving the same ports (0: one per usable
    # core; 1: this process serves; see supervisor.py).
    num_server_processes: int = 1
    # Not upstream: with several workers, each keeps to its own share of the CPUs
    # (see supervisor.worker_cpu_sets).
    pin_server_processes: bool = True
    # Not upstream: what one REST connection may cost (rest/inline_protocol.py);
    # for each, 0: no limit.
    rest_api_max_header_bytes: int = 64 * 1024
    rest_api_header_timeout_in_ms: int = 20000
    rest_api_body_timeout_in_ms: int = 60000
    rest_api_keep_alive_timeout_in_ms: int = 5000
    # Not upstream: REST connections open at once; 0: derived from the
    # open-file limit (server.rest_max_connections).
    rest_api_max_connections: int = 0


def serves_rest(options: ServerOptions) -> bool:
    """Whether REST is served: --rest_api_port is set and differs from --port.

    Upstream does not refuse --rest_api_port equal to --port: it serves gRPC
    alone and logs why (Server logs it here).
    """
    return bool(options.rest_api_port) and options.rest_api_port != options.port


def check_start_up_options(options: ServerOptions, *, is_worker: bool = False) -> None:
    """INVALID_ARGUMENT for the flag combinations upstream's server refuses to start with.

    `is_worker`: this process is a supervisor's worker; its supervisor checked
    the user's command line, and gives some workers no listener of their own.
    """
    if not is_worker and not options.port and not options.grpc_socket_path:
        raise status.invalid_argument(
            "At least one of --port and --grpc_socket_path must be set: with --port=0 and no "
            "--grpc_socket_path the server would listen nowhere"
        )
    if options.platform_config_file:
        return  # upstream then ignores the batching and parallelism flags
    if options.batching_parameters_file and not options.enable_batching:
        raise status.invalid_argument(
            f"--batching_parameters_file={options.batching_parameters_file} is set without "
            "--enable_batching=true"
        )
    for name in ("num_tflite_pools", "num_tflite_interpreters_per_pool"):
        if getattr(options, name) < 0:
            raise status.invalid_argument(
                f"--{name} must not be negative; got {getattr(options, name)}"
            )
    session = options.tensorflow_session_parallelism
    intra = options.tensorflow_intra_op_parallelism
    inter = options.tensorflow_inter_op_parallelism
    if session > 0 and intra > 0 and inter > 0:
        raise status.invalid_argument(
            "Either configure --tensorflow_session_parallelism or "
            "--tensorflow_intra_op_parallelism and --tensorflow_inter_op_parallelism, not all "
            f"three (got {session}, {intra} and {inter})"
        )
