"""The TensorFlow platform's SessionBundleConfig: from the flags, or whole from
--platform_config_file (upstream: the platform config part of server.cc, and
platform_config_util.cc).

Why one config for both: upstream builds a SessionBundleConfig from the flags
unless a platform config file gives one, and everything after that (session
options, tags, warmup, batching) reads only the config; so the two ways of
configuring a server cannot drift apart here either.

From the flags: --enable_batching with --batching_parameters_file (or
upstream's defaults) and --enable_per_model_batching_parameters; the session
config from --tensorflow_session_config_file (else our default), with the
parallelism flags that are set applied on top; --saved_model_tags;
--enable_model_warmup and --num_request_iterations_for_warmup. With
--platform_config_file, the file's `tensorflow` entry replaces all of those,
as upstream's does (OVERRIDDEN_FLAGS names them).
"""

from __future__ import annotations

from tensorflow.core.protobuf import config_pb2

from tensorflow_serving.config import platform_config_pb2
from tensorflow_serving.model_servers.server_options import ServerOptions
from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.servables.tensorflow.saved_model_bundle import session_config
from tensorflow_serving.servables.tensorflow.saved_model_bundle_source_adapter import (
    BundleOptions,
)
from tensorflow_serving.servables.tensorflow.session_bundle_config import (
    SOURCE_ADAPTER_TYPE_URL,
    SavedModelBundleSourceAdapterConfig,
    SessionBundleConfig,
)
from tensorflow_serving.servables.tensorflow.tflite_session import TfLiteOptions
from tensorflow_serving.util import config_protos, status

TENSORFLOW_PLATFORM = "tensorflow"
# Upstream names the shared batching thread pool so when no batching file does.
DEFAULT_BATCH_THREAD_POOL = "model_server_batch_threads"
DEFAULT_TAGS = ("serve",)

# Flags whose settings a --platform_config_file replaces (upstream ignores them then).
OVERRIDDEN_FLAGS = (
    "enable_batching",
    "batching_parameters_file",
    "enable_per_model_batching_parameters",
    "tensorflow_session_config_file",
    "tensorflow_session_parallelism",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "saved_model_tags",
    "enable_model_warmup",
    "num_request_iterations_for_warmup",
)

# SessionBundleConfig fields that would change how models run in ways this
# server does not implement: refused unless at their defaults.
_UNSUPPORTED_FIELDS = {
    "session_target": "only the in-process TensorFlow runtime is used",
    "session_run_load_threadpool_index": "no separate load thread pool",
    "experimental_fixed_input_tensors": "no fixed input tensors",
    "wrap_session_with_no_threading_params": "no session wrappers",
}


def session_bundle_config(options: ServerOptions) -> SessionBundleConfig:
    """The TensorFlow platform's config: --platform_config_file's, else the flags'.

    Raises ServingError (INVALID_ARGUMENT) naming the file and the problem
    when a file cannot be read, does not parse, or asks for what this server
    does not support. Reads the files on every call; no thread concerns.
    """
    if options.platform_config_file:
        return read_platform_config_file(options.platform_config_file)
    return config_from_flags(options)


def config_from_flags(options: ServerOptions) -> SessionBundleConfig:
    """What upstream's server builds from its flags when there is no platform config file."""
    config = SessionBundleConfig()
    if options.enable_batching:
        if options.batching_parameters_file:
            config.batching_parameters.CopyFrom(
                config_protos.parse_text_file(
                    options.batching_parameters_file, config_protos.BatchingParameters
                )
            )
        else:
            config.batching_parameters.thread_pool_name.value = DEFAULT_BATCH_THREAD_POOL
        config.enable_per_model_batching_params = options.enable_per_model_batching_parameters
    if options.tensorflow_session_config_file:
        config.session_config.CopyFrom(
            config_protos.parse_text_file(
                options.tensorflow_session_config_file, config_pb2.ConfigProto
            )
        )
    else:
        config.session_config.CopyFrom(session_config())
    apply_parallelism_flags(config.session_config, options)
    config.saved_model_tags.extend(
        tag.strip() for tag in options.saved_model_tags.split(",") if tag.strip()
    )
    config.enable_model_warmup = options.enable_model_warmup
    config.prefer_tflite_model = options.prefer_tflite_model
    config.num_tflite_pools = options.num_tflite_pools
    config.num_tflite_interpreters_per_pool = options.num_tflite_interpreters_per_pool
    if options.num_request_iterations_for_warmup > 0:
        config.model_warmup_options.num_request_iterations.value = (
            options.num_request_iterations_for_warmup
        )
    return config


def apply_parallelism_flags(config: config_pb2.ConfigProto, options: ServerOptions) -> None:
    """Sets the thread counts the parallelism flags ask for on `config`.

    As upstream: --tensorflow_intra_op_parallelism / --tensorflow_inter_op_
    parallelism when either is set, else --tensorflow_session_parallelism for
    both. A flag left at 0 keeps the session config file's value (0 without
    a file: TensorFlow's choice), so a file's thread counts hold unless a flag
    overrides them.
    """
    intra = options.tensorflow_intra_op_parallelism
    inter = options.tensorflow_inter_op_parallelism
    if intra > 0 or inter > 0:
        if intra > 0:
            config.intra_op_parallelism_threads = intra
        if inter > 0:
            config.inter_op_parallelism_threads = inter
    elif options.tensorflow_session_parallelism > 0:
        config.intra_op_parallelism_threads = options.tensorflow_session_parallelism
        config.inter_op_parallelism_threads = options.tensorflow_session_parallelism


def read_platform_config_file(path: str) -> SessionBundleConfig:
    """The SessionBundleConfig inside a PlatformConfigMap file's `tensorflow` entry.

    The entry's source_adapter_config must be an Any holding upstream's
    tensorflow.serving.SavedModelBundleSourceAdapterConfig (its
    legacy_config is the SessionBundleConfig). Other platforms are refused:
    this server serves TensorFlow SavedModels only.
    """
    platforms = config_protos.parse_text_file(path, platform_config_pb2.PlatformConfigMap)
    others = sorted(name for name in platforms.platform_configs if name != TENSORFLOW_PLATFORM)
    if others:
        raise status.invalid_argument(
            f"--platform_config_file {path}: platform(s) {others} are not served here; only "
            f"'{TENSORFLOW_PLATFORM}' is"
        )
    if TENSORFLOW_PLATFORM not in platforms.platform_configs:
        raise status.invalid_argument(
            f"--platform_config_file {path} has no '{TENSORFLOW_PLATFORM}' entry in "
            "platform_configs"
        )
    packed = platforms.platform_configs[TENSORFLOW_PLATFORM].source_adapter_config
    adapter = SavedModelBundleSourceAdapterConfig()
    if packed.type_url != SOURCE_ADAPTER_TYPE_URL or not _unpack(packed, adapter):
        raise status.invalid_argument(
            f"--platform_config_file {path}: the '{TENSORFLOW_PLATFORM}' source_adapter_config "
            f"must hold a {SOURCE_ADAPTER_TYPE_URL}; got type_url '{packed.type_url}'"
        )
    check_supported(adapter.legacy_config, path)
    return adapter.legacy_config


def _unpack(packed, message) -> bool:
    try:
        return packed.Unpack(message)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError differs between backends
        return False


def check_supported(config: SessionBundleConfig, path: str) -> None:
    """INVALID_ARGUMENT for a field set that this server would silently not honour."""
    is_set = {field.name for field, _ in config.ListFields()}  # non-default values only
    for field, why in _UNSUPPORTED_FIELDS.items():
        if field in is_set:
            raise status.invalid_argument(
                f"--platform_config_file {path}: SessionBundleConfig.{field} is not supported by "
                f"this server ({why})"
            )


def overridden_flags(options: ServerOptions) -> list[str]:
    """The flags set away from their defaults that --platform_config_file makes moot."""
    if not options.platform_config_file:
        return []
    defaults = ServerOptions()
    return [
        f"--{name}={getattr(options, name)}"
        for name in OVERRIDDEN_FLAGS
        if getattr(options, name) != getattr(defaults, name)
    ]


def bundle_options(
    config: SessionBundleConfig,
    wrap=None,
    warmer: IdleWarmer | None = None,
    metrics=None,
) -> BundleOptions:
    """How each version is loaded under `config` (`wrap` and `warmer` as BundleOptions';
    `metrics`, a ServingMetrics, counts SavedModel loads and warmups).

    Without tags, upstream's default `serve`; warmup replays each request
    model_warmup_options.num_request_iterations times (default 1).
    """
    iterations = config.model_warmup_options.num_request_iterations
    return BundleOptions(
        tags=tuple(config.saved_model_tags) or DEFAULT_TAGS,
        config=config.session_config,
        enable_model_warmup=config.enable_model_warmup,
        warmup_iterations=iterations.value
        if config.model_warmup_options.HasField("num_request_iterations")
        else 1,
        wrap=wrap,
        warmer=warmer,
        on_saved_model_load=None if metrics is None else metrics.record_saved_model_load,
        on_warmup=None if metrics is None else metrics.record_warmup,
        tflite=tflite_options(config),
    )


def tflite_options(config: SessionBundleConfig) -> TfLiteOptions:
    """The TFLite fields, as upstream reads them (the deprecated num_tflite_interpreters
    stands in for num_tflite_pools when that is 0)."""
    pools = config.num_tflite_pools or config.num_tflite_interpreters
    return TfLiteOptions(
        prefer_tflite_model=config.prefer_tflite_model,
        num_pools=pools,
        interpreters_per_pool=config.num_tflite_interpreters_per_pool,
    )
