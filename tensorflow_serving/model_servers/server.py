"""Server: builds ServerCore from options, serves gRPC (and REST), shuts down cleanly
(upstream: server.h / server.cc)."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow.core.protobuf import config_pb2

from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.batching.batching_session import BatchingServable, batching_options
from tensorflow_serving.batching.shared_batch_scheduler import SharedBatchScheduler
from tensorflow_serving.core.aspired_versions_manager import ManagerOptions
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.model_servers import metrics as metrics_lib
from tensorflow_serving.model_servers import platform_config_util
from tensorflow_serving.model_servers.data_plane import DataPlane
from tensorflow_serving.model_servers.grpc_status_util import (
    FutureResponses,
    UndecodableRequestInterceptor,
)
from tensorflow_serving.model_servers.inline_grpc_server import InlineGrpcServer, new_grpc_server
from tensorflow_serving.model_servers.model_service_impl import ModelServiceImpl
from tensorflow_serving.model_servers.prediction_service_impl import (
    PREDICT_METHOD,
    PredictionServiceImpl,
)
from tensorflow_serving.model_servers.profiler_service import ProfilerService
from tensorflow_serving.model_servers.rest import server as http_server_lib
from tensorflow_serving.model_servers.rest.app import HttpOptions
from tensorflow_serving.model_servers.server_core import (
    ServerCore,
    ServerCoreOptions,
    single_model_config,
)
from tensorflow_serving.model_servers.server_credentials import server_credentials
from tensorflow_serving.model_servers.server_options import (
    ServerOptions,
    check_start_up_options,
    serves_rest,
)
from tensorflow_serving.model_servers.supervisor import WorkerIdentity
from tensorflow_serving.model_servers.worker_group import (
    METRICS_SERVICE,
    WorkerGroup,
    control_socket,
)
from tensorflow_serving.servables.tensorflow import method_name_check
from tensorflow_serving.servables.tensorflow.bundle_factory_util import model_batching_options
from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.servables.tensorflow.op_libraries import register_op_libraries
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    runs_on_calling_thread_only,
)
from tensorflow_serving.servables.tensorflow.session_bundle_config import SessionBundleConfig
from tensorflow_serving.util import open_files, status

_LOG = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 2**31 - 1  # upstream: SetMaxMessageSize(kint32max)
_MAX_BATCHING_THREADS = 128
# Calls that use no model run (or only read its signatures): on the inline gRPC
# server they have threads of their own, so they are answered under any load.
GRPC_CONTROL_METHODS = (
    "/tensorflow.serving.ModelService/GetModelStatus",
    "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
    "/tensorflow.serving.PredictionService/GetModelMetadata",
    "/grpc.health.v1.Health/Check",
)


def _receive_limit(options: ServerOptions) -> int:
    """gRPC's max_receive_message_length: --max_request_bytes, capped at gRPC's int32 limit."""
    if options.max_request_bytes <= 0:
        return _MAX_MESSAGE_BYTES
    return min(options.max_request_bytes, _MAX_MESSAGE_BYTES)


def rest_max_connections(options: ServerOptions) -> int:
    """--rest_api_max_connections; 0: the share of the open-file limit open_files gives REST."""
    if options.rest_api_max_connections > 0:
        return options.rest_api_max_connections
    return open_files.default_max_connections(open_files.soft_limit())


def http_options(
    options: ServerOptions,
    num_threads: int,
    prometheus_path: str | None,
    reuse_port: bool = False,
) -> HttpOptions:
    """The REST server's options from the flags (times in seconds, the connection cap resolved)."""
    return HttpOptions(
        port=options.rest_api_port,
        host=options.bind_address,
        num_threads=num_threads,
        timeout_in_ms=options.rest_api_timeout_in_ms,
        enable_cors=options.rest_api_enable_cors_support,
        prometheus_path=prometheus_path,
        max_request_bytes=options.max_request_bytes,
        max_decoded_request_bytes=options.max_decoded_request_bytes,
        keep_alive_seconds=options.rest_api_keep_alive_timeout_in_ms / 1000,
        header_timeout_seconds=options.rest_api_header_timeout_in_ms / 1000,
        body_timeout_seconds=options.rest_api_body_timeout_in_ms / 1000,
        max_header_bytes=options.rest_api_max_header_bytes,
        max_connections=rest_max_connections(options),
        reuse_port=reuse_port,
    )


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """'k=v,k2=v2' -> gRPC options; integer values are passed as integers (as upstream)."""
    result: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise status.invalid_argument(
                f"--grpc_channel_arguments: expected key=value, got {item!r}"
            )
        try:
            result.append((key, int(value)))
        except ValueError:
            result.append((key, value))
    return result


def check_keep_model_warm(options: ServerOptions) -> None:
    """INVALID_ARGUMENT unless --keep_model_warm_micros can work as promised.

    A rerun must stay on the warmer's idle-priority thread: ops handed to
    TensorFlow's thread pools would run at normal priority and compete with
    requests. So warming needs graphs that run on the calling thread alone.
    """
    micros = options.keep_model_warm_micros
    if micros < 0:
        raise status.invalid_argument(f"--keep_model_warm_micros must be >= 0, got {micros}")
    if micros and not runs_on_calling_thread_only(_session_config(options)):
        raise status.invalid_argument(
            "--keep_model_warm_micros needs every graph run on one thread: set "
            "--tensorflow_intra_op_parallelism=1 and --tensorflow_inter_op_parallelism=1 "
            f"(or pin the server to one CPU; it may use {len(os.sched_getaffinity(0))})"
        )


def idle_warmer(options: ServerOptions) -> IdleWarmer | None:
    """The warmer --keep_model_warm_micros asks for, or None when it is 0."""
    check_keep_model_warm(options)
    if not options.keep_model_warm_micros:
        return None
    return IdleWarmer(options.keep_model_warm_micros / 1e6)


def _session_config(options: ServerOptions) -> config_pb2.ConfigProto:
    """The Session config of every model (platform_config_util: files and flags)."""
    return platform_config_util.session_bundle_config(options).session_config


def server_core_options(
    options: ServerOptions,
    wrap: Callable[[ServableId, object], object] | None = None,
    warmer: IdleWarmer | None = None,
    platform: SessionBundleConfig | None = None,
    metrics: metrics_lib.ServingMetrics | None = None,
) -> ServerCoreOptions:
    """Translates flags into what ServerCore needs; `wrap` decorates each loaded model,
    `warmer` keeps them warm; `platform`: the TensorFlow platform's config (default:
    platform_config_util.session_bundle_config(options)); `metrics` counts SavedModel
    loads and warmups."""
    if not options.model_config_file and not options.model_base_path:
        raise status.invalid_argument(
            "Both server_options.model_base_path and server_options.model_config_file are "
            "empty! Use --model_base_path (with --model_name) or --model_config_file."
        )
    return ServerCoreOptions(
        model_server_config=single_model_config(options.model_name, options.model_base_path),
        allow_version_labels_for_unavailable_models=(
            options.allow_version_labels_for_unavailable_models
        ),
        file_system_poll_wait_seconds=options.file_system_poll_wait_seconds,
        manager=ManagerOptions(
            num_load_threads=options.num_load_threads,
            num_unload_threads=options.num_unload_threads,
            max_num_load_retries=options.max_num_load_retries,
            load_retry_interval_micros=options.load_retry_interval_micros,
            load_timeout_seconds=options.load_timeout_seconds,
        ),
        bundle=platform_config_util.bundle_options(
            platform or platform_config_util.session_bundle_config(options), wrap, warmer, metrics
        ),
        model_config_file=options.model_config_file,
        model_config_file_poll_wait_seconds=options.model_config_file_poll_wait_seconds,
    )


class _ReadinessHealth:
    """Keeps the standard gRPC health service in step with model readiness."""

    # The short names are the ones upstream registers; the full names are ours.
    SERVICES = (
        "",
        "ModelService",
        "PredictionService",
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
    )

    def __init__(self, core: ServerCore):
        self._core = core
        self.servicer = health.HealthServicer()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> None:
        self._update()
        self._thread.start()

    def _update(self) -> None:
        ready = not self._core.readiness()
        state = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in self.SERVICES:
            self.servicer.set(service, state)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._update()

    def stop(self) -> None:
        self._stop.set()
        self.servicer.enter_graceful_shutdown()


class _MonitoredServerCore(ServerCore):
    """A ServerCore whose state changes reach the metrics from the very first load."""

    def __init__(self, options: ServerCoreOptions):
        super().__init__(options)
        self.monitor.add_listener(metrics_lib.default().on_servable_state)


class Server:
    """The model server of one process: ServerCore, gRPC and REST.

    `worker`: this process is one of a supervisor's workers (supervisor.py):
    it listens with SO_REUSEPORT beside the others, on a private control
    socket too, and answers control calls for the group (WorkerGroup).
    """

    def __init__(self, worker: WorkerIdentity | None = None) -> None:
        self._worker = worker
        self._reuse_port = worker is not None
        self._group: WorkerGroup | None = None
        self.core: ServerCore | None = None
        self.grpc_server: InlineGrpcServer | grpc.Server | None = None
        self.grpc_port: int | None = None
        self.http_server: http_server_lib.HttpServer | None = None
        self.http_port: int | None = None
        self.metrics = metrics_lib.default()
        self._prometheus_path: str | None = None
        self._health: _ReadinessHealth | None = None
        self.batch_scheduler: SharedBatchScheduler | None = None
        # gRPC requests on their way to a batching queue (inline gRPC server only).
        self._arrivals: Arrivals | None = None
        self._batch_threads_wanted = 0
        # Called with the (padded) size of every batch run.
        self.on_batch: Callable[[int], None] | None = None
        self._terminated = threading.Event()
        self._grpc_credentials: grpc.ServerCredentials | None = None
        self._warmer: IdleWarmer | None = None

    def build_and_start(self, options: ServerOptions) -> None:
        """Loads the models, then starts listening; raises ServingError on bad options."""
        check_start_up_options(options, is_worker=self._worker is not None)
        platform = self._platform_config(options)
        channel_args = parse_channel_arguments(options.grpc_channel_arguments)
        self._grpc_credentials = server_credentials(options.ssl_config_file)
        if options.monitoring_config_file:
            self._prometheus_path = metrics_lib.prometheus_path(
                metrics_lib.read_monitoring_config(options.monitoring_config_file)
            )
        if self.on_batch is None:
            self.on_batch = self.metrics.observe_batch
        self._warmer = idle_warmer(options)
        register_op_libraries()  # before the first model loads, as upstream links them in
        self.core = _MonitoredServerCore.create(
            server_core_options(
                options,
                self._batching_wrapper(platform, options),
                self._warmer,
                platform,
                self.metrics,
            )
        )
        self.metrics.attach_core(self.core)
        if self._worker is not None:
            self._group = WorkerGroup(
                self.core, self._worker.index, self._worker.count, self._worker.directory
            )
            self.metrics.attach_group(self._group.other_metrics)
        if self.batch_scheduler is not None:
            self.metrics.attach_batching(self.batch_scheduler.enqueued)
        # TF's objects make Python's full collections slow; loaded models are
        # long-lived, so take them out of the collector's view.
        gc.collect()
        gc.freeze()
        self._start_grpc(options, channel_args)
        self._start_http(options)

    @staticmethod
    def _platform_config(options: ServerOptions) -> SessionBundleConfig:
        """The TensorFlow platform's config; sets the process's method-name check."""
        platform = platform_config_util.session_bundle_config(options)
        overridden = platform_config_util.overridden_flags(options)
        if overridden:
            _LOG.warning(
                "--platform_config_file=%s sets what these flags would: ignored %s",
                options.platform_config_file,
                " ".join(overridden),
            )
        if options.enable_per_model_batching_parameters and not options.enable_batching:
            _LOG.warning("--enable_per_model_batching_parameters has no effect without batching")
        method_name_check.set_enabled(options.enable_signature_method_name_check)
        return platform

    def _batching_wrapper(self, platform: SessionBundleConfig, options: ServerOptions):
        """With batching parameters: one scheduler shared by every model version.

        With per-model parameters, each version batches as its directory's
        batching_params.pbtxt says, or not at all without one.
        """
        if not platform.HasField("batching_parameters"):
            return None
        batching = batching_options(platform.batching_parameters)
        per_model = platform.enable_per_model_batching_params
        self._batch_threads_wanted = min(2 * batching.queue.max_batch_size, _MAX_BATCHING_THREADS)
        if options.grpc_server == "inline":
            self._arrivals = Arrivals()
        self.batch_scheduler = SharedBatchScheduler(
            batching.num_batch_threads, arrivals=self._arrivals
        )
        if per_model:
            _LOG.info("Batching enabled: per-model parameters; batch threads %s", batching)
        else:
            _LOG.info("Batching enabled: %s", batching)

        def wrap(servable_id: ServableId, bundle):
            model = model_batching_options(bundle.export_dir, batching, per_model)
            if model is None:
                _LOG.info("%s is served without batching (no per-model parameters)", servable_id)
                return bundle
            return BatchingServable(
                bundle, self.batch_scheduler, model, self.on_batch, servable_id.name
            )

        return wrap

    def _grpc_workers(self, options: ServerOptions) -> int:
        """--grpc_max_threads, raised to 2 x max_batch_size (at most 128) when batching.

        With --grpc_server=grpcio a request waits on its thread while its batch
        forms, so a batch can never be larger than the number of handler
        threads; upstream's batching guide asks for twice the batch size in
        client threads for the same reason. The inline server's batched
        Predict holds no thread, but Classify, Regress and MultiInference still
        do. --rest_api_num_threads is raised the same way (see _start_http).
        """
        workers = max(1, options.grpc_max_threads)
        if self._batch_threads_wanted > workers:
            _LOG.info(
                "Batching: %d gRPC handler threads (--grpc_max_threads=%d is too few to fill "
                "batches)",
                self._batch_threads_wanted,
                workers,
            )
            workers = self._batch_threads_wanted
        return workers

    def _start_grpc(self, options: ServerOptions, channel_args) -> None:
        if not options.port and not options.grpc_socket_path and self._worker is None:
            return
        plane = DataPlane(
            self.core, metrics_lib.GRPC, metrics=self.metrics, arrivals=self._arrivals
        )
        predictions = PredictionServiceImpl(
            plane,
            options.max_decoded_request_bytes,
            options.enable_serialization_as_tensor_content,
        )
        self.grpc_server = new_grpc_server(
            options.grpc_server,
            num_threads=self._grpc_workers(options),
            control_methods=GRPC_CONTROL_METHODS,
            options=[
                ("grpc.max_receive_message_length", _receive_limit(options)),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                *channel_args,
            ],
            interceptors=self._grpc_interceptors(options, predictions),
            maximum_concurrent_rpcs=options.max_concurrent_requests or None,
            arrivals=self._arrivals,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            predictions, self.grpc_server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServiceImpl(self.core, self._group), self.grpc_server
        )
        if options.enable_profiler:
            self.grpc_server.add_generic_rpc_handlers((ProfilerService().generic_handler(),))
        if options.enable_grpc_healthcheck_service:
            self._health = _ReadinessHealth(self._group or self.core)
            health_pb2_grpc.add_HealthServicer_to_server(self._health.servicer, self.grpc_server)
            self._health.start()
        if options.port:
            address = f"{options.bind_address}:{options.port}"
            try:
                self.grpc_port = self._add_tcp_port(address)
            except RuntimeError:
                self.grpc_port = 0
            if not self.grpc_port:
                raise status.unavailable(f"Failed to listen for gRPC on {address} (port in use?)")
            _LOG.info("Running gRPC ModelServer at %s ...", address)
        if options.grpc_socket_path:
            self.grpc_server.add_insecure_port(f"unix:{options.grpc_socket_path}")
            _LOG.info("Running gRPC ModelServer at UNIX socket %s ...", options.grpc_socket_path)
        if self._worker is not None:
            self.grpc_server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        METRICS_SERVICE,
                        {
                            "Metrics": grpc.unary_unary_rpc_method_handler(
                                lambda request, context: self.metrics.snapshot()
                            )
                        },
                    ),
                )
            )
            path = control_socket(self._worker.directory, self._worker.index)
            self.grpc_server.add_insecure_port(f"unix:{path}")
        self.grpc_server.start()

    @staticmethod
    def _grpc_interceptors(
        options: ServerOptions, predictions: PredictionServiceImpl
    ) -> list[grpc.ServerInterceptor]:
        """Undecodable requests as INVALID_ARGUMENT, Predict messages parsed within the
        decode budget; on grpcio, Future answers awaited."""
        decoders = {PREDICT_METHOD: predictions.decode_predict_request}
        interceptors: list[grpc.ServerInterceptor] = [UndecodableRequestInterceptor(decoders)]
        if options.grpc_server == "grpcio":
            interceptors.append(FutureResponses())
        return interceptors

    def _add_tcp_port(self, address: str) -> int:
        """The gRPC TCP port: TLS with --ssl_config_file (the Unix socket stays local)."""
        if self._grpc_credentials is None:
            return self.grpc_server.add_insecure_port(address)
        port = self.grpc_server.add_secure_port(address, self._grpc_credentials)
        _LOG.info("gRPC on %s uses TLS (--ssl_config_file)", address)
        return port

    def _start_http(self, options: ServerOptions) -> None:
        """REST API, Prometheus page and health checks on --rest_api_port (0: off).

        --rest_api_port equal to --port leaves REST off with a warning, as upstream.
        """
        if not serves_rest(options):
            if options.rest_api_port:
                _LOG.warning(
                    "--rest_api_port=%d is the same as --port: HTTP/REST API not exported; "
                    "give it a port of its own",
                    options.rest_api_port,
                )
            if self._prometheus_path:
                _LOG.warning(
                    "Prometheus metrics are enabled but not exported: they are served on "
                    "the HTTP/REST port and REST is off"
                )
            return
        num_threads = max(options.rest_api_num_threads, self._batch_threads_wanted)
        rest = http_options(options, num_threads, self._prometheus_path, self._reuse_port)
        self.http_server = http_server_lib.create_and_start(
            self.core, rest, self.metrics, control=self._group
        )
        self.http_port = self.http_server.port
        _LOG.info("Exporting HTTP/REST API at:localhost:%d ...", self.http_port)
        _LOG.info(
            "REST connections: at most %d open (open-file limit %d)",
            rest.max_connections,
            open_files.soft_limit(),
        )

    def wait_for_termination(self) -> None:
        self._terminated.wait()

    def stop(self, grace_seconds: float = 30.0, process_exits: bool = False) -> None:
        """Stops accepting work, lets in-flight requests finish, unloads models.

        `process_exits`: the process ends right after. The inline gRPC server
        is then drained, not shut down: it refuses every later call with
        UNAVAILABLE until the exit closes its connections, where gRPC core's
        shutdown would cancel some of them (see inline_grpc_server).
        """
        # Both transports refuse new work first, then drain side by side: gRPC's
        # stop() returns at once, so it must not wait behind the HTTP drain.
        grpc_stopped = None
        if self.grpc_server is not None:
            if process_exits and isinstance(self.grpc_server, InlineGrpcServer):
                grpc_stopped = self.grpc_server.drain(grace_seconds)
            else:
                grpc_stopped = self.grpc_server.stop(grace_seconds)
        if self._health is not None:
            self._health.stop()
        if self.http_server is not None:
            self.http_server.stop(timeout=grace_seconds)
        if grpc_stopped is not None:
            grpc_stopped.wait()
        if self.core is not None:
            self.core.stop()
        if self._warmer is not None:
            self._warmer.stop()
        if self.batch_scheduler is not None:
            self.batch_scheduler.stop()
        self._terminated.set()
