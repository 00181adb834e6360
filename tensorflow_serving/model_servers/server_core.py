"""ServerCore: the models a server holds, per ModelServerConfig, and the way
requests find them (upstream: server_core.h).

It wires a FileSystemStoragePathSource to an AspiredVersionsManager, realises
a config exactly (models missing from a new config are unloaded), keeps the
version labels and the models' request loggers (logging_config), and
resolves a request's ModelSpec to a servable handle.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.core import request_logger
from tensorflow_serving.core.aspired_version_policy import (
    AspiredVersionPolicy,
    AvailabilityPreservingPolicy,
)
from tensorflow_serving.core.aspired_versions_manager import (
    AspiredVersionsManager,
    LoadedServable,
    ManagerOptions,
)
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.core.servable_state import ManagerState, ServableId
from tensorflow_serving.core.servable_state_monitor import ServableStateMonitor
from tensorflow_serving.servables.tensorflow.saved_model_bundle_source_adapter import (
    BundleOptions,
    SavedModelLoader,
)
from tensorflow_serving.sources.storage_path.file_system_storage_path_source import (
    FileSystemStoragePathSource,
    ServableToMonitor,
)
from tensorflow_serving.util import config_protos, file_io, status

_LOG = logging.getLogger(__name__)

ModelServerConfig = model_server_config_pb2.ModelServerConfig
TENSORFLOW_PLATFORM = "tensorflow"


@dataclasses.dataclass
class ServerCoreOptions:
    model_server_config: ModelServerConfig
    allow_version_labels_for_unavailable_models: bool = False
    file_system_poll_wait_seconds: float = 1.0
    manager: ManagerOptions = dataclasses.field(default_factory=ManagerOptions)
    bundle: BundleOptions = dataclasses.field(default_factory=BundleOptions)
    policy: AspiredVersionPolicy = dataclasses.field(default_factory=AvailabilityPreservingPolicy)
    # --model_config_file and its poll interval (0: read once at start).
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0.0
    # How long start-up and a config reload wait for new models to settle.
    load_wait_seconds: float = 600.0


def single_model_config(name: str, base_path: str) -> ModelServerConfig:
    """The config --model_name / --model_base_path stand for."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def read_model_server_config(path: str) -> ModelServerConfig:
    """Parses an ASCII ModelServerConfig file; INVALID_ARGUMENT names the file."""
    return config_protos.parse_text_file(path, ModelServerConfig)


def validate_config(config: ModelServerConfig) -> None:
    """Rejects what upstream rejects, before anything changes."""
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise status.unimplemented("ModelServer does not yet support custom model config.")
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise status.invalid_argument("A model in the config has an empty name.")
        if model.name in seen:
            raise status.invalid_argument(
                f"Illegal to list model {model.name} multiple times in config list"
            )
        seen.add(model.name)
        if not model.base_path:
            raise status.invalid_argument(f"Model {model.name} has an empty base_path.")
        platform = model.model_platform or TENSORFLOW_PLATFORM
        if platform != TENSORFLOW_PLATFORM:
            raise status.invalid_argument(
                f"Model {model.name} requested unsupported platform {platform}"
            )
        if model.HasField("logging_config"):
            request_logger.validate(model.name, model.logging_config)
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise status.invalid_argument(
                f"Model {model.name}: specific version policy lists no versions"
            )


def _model_spec_text(spec: model_pb2.ModelSpec, version: int | None) -> str:
    if version is None:
        return f"Latest({spec.name})"
    return f"Specific({spec.name}, {version})"


class _ManagedHandle(ServableHandle):
    """A version acquired from the manager; release() gives it back exactly once."""

    __slots__ = ("_loaded", "_released")

    def __init__(self, loaded: LoadedServable):
        super().__init__(loaded.id.name, loaded.id.version, loaded.servable)
        self._loaded = loaded
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._loaded.release()


class ServerCore:
    def __init__(self, options: ServerCoreOptions):
        self.options = options
        self.monitor = ServableStateMonitor()
        self.manager = AspiredVersionsManager(options.manager, options.policy, self.monitor)
        self.source = FileSystemStoragePathSource(
            self._on_aspired_versions, options.file_system_poll_wait_seconds
        )
        self._config = ModelServerConfig()
        self._model_names: tuple[str, ...] = ()
        self._labels: dict[str, dict[str, int]] = {}
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._config_thread: threading.Thread | None = None
        self._config_file_text: str | None = None
        self.request_logger = request_logger.ServerRequestLogger()

    # -- Start-up and config ----------------------------------------------

    @classmethod
    def create(cls, options: ServerCoreOptions) -> ServerCore:
        """Builds the core, loads the initial config and waits for its models."""
        core = cls(options)
        config = options.model_server_config
        if options.model_config_file:
            config = read_model_server_config(options.model_config_file)
            core._config_file_text = _read_text(options.model_config_file)
        core.reload_config(config)
        core.source.start()
        if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:
            core._config_thread = threading.Thread(
                target=core._poll_config_file, name="config-poll", daemon=True
            )
            core._config_thread.start()
        return core

    def config(self) -> ModelServerConfig:
        return self._config

    def model_names(self) -> tuple[str, ...]:
        """The configured model names; the same tuple until the config changes."""
        return self._model_names

    def reload_config(self, config: ModelServerConfig) -> None:
        """Realises `config` exactly; raises (keeping the old config) when it is invalid."""
        if config.WhichOneof("config") is None:
            # As upstream: an empty config (e.g. a config file caught half-written, or
            # emptied) changes nothing; `model_config_list {}` unloads every model.
            _LOG.info("Taking no action for empty config.")
            return
        validate_config(config)
        with self._reload_lock:
            models = list(config.model_config_list.config)
            _LOG.info("Adding/updating models: %s", ", ".join(m.name for m in models) or "(none)")
            self.source.update_config(
                [ServableToMonitor(m.name, m.base_path, m.model_version_policy) for m in models]
            )
            self._wait_for_models([m.name for m in models])
            old_labels = self._labels
            self._config = config
            self._model_names = tuple(m.name for m in models)
            self._labels = {m.name: dict(m.version_labels) for m in models}
            self.request_logger.update(models)
            try:
                self._check_labels(models)
            except status.ServingError:
                self._labels = {m.name: old_labels.get(m.name, {}) for m in models}
                raise

    def _check_labels(self, models) -> None:
        if self.options.allow_version_labels_for_unavailable_models:
            return
        for model in models:
            available = self.manager.serving_versions(model.name) or {}
            for label, version in model.version_labels.items():
                if version not in available:
                    raise status.failed_precondition(
                        f"Request to assign label to version {version} of model {model.name}, "
                        f"which is not currently available for inference (label: {label})"
                    )

    def _wait_for_models(self, names: list[str]) -> None:
        """Waits until each model's aspired versions have settled (loaded or failed)."""

        def settled() -> bool:
            for name in names:
                states = self.monitor.versions(name)
                if any(
                    s.state in (ManagerState.START, ManagerState.LOADING) for s in states.values()
                ):
                    return False
            return True

        if not self.monitor.wait_until(settled, timeout=self.options.load_wait_seconds):
            _LOG.warning("Models still loading after %.0f s", self.options.load_wait_seconds)

    def _poll_config_file(self) -> None:
        path = self.options.model_config_file
        while not self._stop.wait(self.options.model_config_file_poll_wait_seconds):
            text = _read_text(path)
            if text is None or text == self._config_file_text:
                continue
            self._config_file_text = text
            try:
                self.reload_config(read_model_server_config(path))
                _LOG.info("Reloaded model config from %s", path)
            except status.ServingError as error:
                _LOG.error("Rejected new model config %s (keeping the old): %s", path, error)
            except Exception:  # the poll thread must outlive any bad file
                _LOG.exception("Rejected new model config %s (keeping the old)", path)

    def _on_aspired_versions(self, name: str, versions: list[tuple[ServableId, str]]) -> None:
        loaders = [
            (sid, SavedModelLoader(sid, path, self.options.bundle)) for sid, path in versions
        ]
        self.manager.set_aspired_versions(name, loaders)

    # -- Requests ---------------------------------------------------------

    def servable_handle(self, spec: model_pb2.ModelSpec) -> ServableHandle:
        """Resolves name + version / label / latest to an AVAILABLE version, acquired.

        The caller must release() the handle (or use it as a context
        manager). A version whose unload has begun is never handed out: the
        lookup is repeated on the manager's newer list, and NOT_FOUND is
        raised if no version matches. Any thread may call it.
        """
        version = self._requested_version(spec)
        for _ in range(2):
            versions = self.manager.serving_versions(spec.name)
            if not versions:
                break
            loaded = versions.get(version) if version is not None else versions[max(versions)]
            if loaded is None:
                break
            if loaded.try_acquire():
                return _ManagedHandle(loaded)
        raise status.not_found(f"Servable not found for request: {_model_spec_text(spec, version)}")

    def _requested_version(self, spec: model_pb2.ModelSpec) -> int | None:
        """The version a ModelSpec names, its label resolved; None: the latest."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return spec.version.value
        if choice == "version_label":
            version = self._labels.get(spec.name, {}).get(spec.version_label)
            if version is None:
                raise status.invalid_argument(
                    f"Unrecognized servable version label: {spec.version_label}"
                )
            return version
        return None

    def model_status(
        self, spec: model_pb2.ModelSpec
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Every known version's state with its error, as GetModelStatus answers."""
        if not spec.name:
            raise status.invalid_argument("Missing model name in request.")
        states = self.monitor.versions(spec.name)
        wanted = self._requested_version(spec)
        if not states:
            raise status.not_found(f"Could not find any versions of model {spec.name}")
        if wanted is not None:
            if wanted not in states:
                raise status.not_found(f"Could not find version {wanted} of model {spec.name}")
            states = {wanted: states[wanted]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in sorted(states, reverse=True):
            state = states[version]
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = int(state.state)
            if state.error is not None:
                entry.status.error_code = state.error.code.value[0]
                entry.status.error_message = state.error.message
        return response

    def readiness(self) -> list[str]:
        """Why the server is not ready: each configured model without an AVAILABLE version."""
        reasons = []
        for name in self.model_names():
            if not self.manager.serving_versions(name):
                states = self.monitor.versions(name)
                detail = (
                    ", ".join(
                        f"version {v} {s.state.name}" + (f" ({s.error.message})" if s.error else "")
                        for v, s in sorted(states.items())
                    )
                    or "no versions found"
                )
                reasons.append(f"model {name} has no AVAILABLE version: {detail}")
        return reasons

    def stop(self) -> None:
        self._stop.set()
        self.source.stop()
        self.manager.stop()
        self.request_logger.close()  # what was sampled is written before the process ends


def _read_text(path: str) -> str | None:
    try:
        return file_io.read_text(path, errors="replace")
    except OSError:
        return None


__all__ = [
    "ServerCore",
    "ServerCoreOptions",
    "read_model_server_config",
    "single_model_config",
    "validate_config",
]
