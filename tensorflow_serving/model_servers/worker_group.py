"""WorkerGroup: the model state of every worker of a supervisor, answered as one server's.

With --num_server_processes each worker loads the models itself, and a
client's connection reaches one worker at random. So that the control calls
answer the same whichever worker a connection reaches, a worker answers them
for the group:

  - GetModelStatus and REST model status: a version is AVAILABLE only when
    every worker that answers has it AVAILABLE; otherwise the group reports
    the first worker's (by index) state that is not, with its error;
  - readiness (REST /v1/health/ready, the gRPC health service): ready only
    when every worker answers and has an AVAILABLE version of each model;
  - HandleReloadConfigRequest: applied by every worker, one reload of the
    group at a time (a file lock), answered OK once all applied it, or with
    the first error. The config is also kept in the group's directory, and a
    worker that starts later (a restart) serves it instead of its flags'
    (unless --model_config_file is polled: the file stays the truth).

Workers reach each other on private gRPC UNIX sockets in the supervisor's
directory (control_socket). A call between workers carries LOCAL_ONLY
metadata and is answered from the receiving worker's own state.
Thread-safe.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Mapping

import grpc
from google.protobuf import text_format

from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.util import status

# Invocation metadata of a call from one worker to another.
LOCAL_ONLY = ("tfs-py-worker-local", "1")
# A worker's own metrics (ServingMetrics.snapshot), for the group's Prometheus page.
METRICS_SERVICE = "tensorflow_serving_py.WorkerControl"
METRICS_METHOD = f"/{METRICS_SERVICE}/Metrics"
_CONFIG_FILE = "model_config.txt"
_LOCK_FILE = "reload.lock"
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
_START = get_model_status_pb2.ModelVersionStatus.START


def control_socket(directory: str, index: int) -> str:
    """The path of worker `index`'s private gRPC socket."""
    return os.path.join(directory, f"worker-{index}.sock")


def persisted_config(directory: str) -> str | None:
    """The group's last reloaded config file, if a reload happened."""
    path = os.path.join(directory, _CONFIG_FILE)
    return path if os.path.exists(path) else None


def is_local_only(context: grpc.ServicerContext) -> bool:
    """Whether a call came from another worker (answer from this worker's own state)."""
    return LOCAL_ONLY in tuple(context.invocation_metadata() or ())


# A sibling's control socket is local and cheap to retry: reconnect within a
# second of its (re)start, instead of gRPC's default backoff, which grows to
# minutes while a worker starts or restarts and would keep readiness failing.
_CONTROL_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


class WorkerGroup:
    """The control surface of ServerCore (model_status, reload_config, readiness) for a group.

    `core` is this worker's ServerCore; `index` and `count` place it in the
    group; `directory` is the supervisor's. `timeout` bounds each call to
    another worker.
    """

    def __init__(
        self,
        core,
        index: int,
        count: int,
        directory: str,
        timeout: float = 10.0,
        siblings: Mapping[int, model_service_pb2_grpc.ModelServiceStub] | None = None,
        metrics_of: Mapping[int, Callable[..., bytes]] | None = None,
    ):
        self._core = core
        self._index = index
        self._directory = directory
        self._timeout = timeout
        channels = {
            other: grpc.insecure_channel(
                f"unix:{control_socket(directory, other)}", options=_CONTROL_CHANNEL_OPTIONS
            )
            for other in range(count)
            if other != index and (siblings is None or metrics_of is None)
        }
        if siblings is None:
            siblings = {
                other: model_service_pb2_grpc.ModelServiceStub(channel)
                for other, channel in channels.items()
            }
        if metrics_of is None:
            metrics_of = {
                other: channel.unary_unary(METRICS_METHOD) for other, channel in channels.items()
            }
        self._siblings = dict(siblings)
        self._metrics_of = dict(metrics_of)

    def model_names(self) -> tuple[str, ...]:
        return self._core.model_names()

    def model_status(
        self, spec: model_pb2.ModelSpec
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """This worker's answer (its errors raise as they would alone), merged with the others'."""
        own = self._core.model_status(spec)
        answers = [(self._index, own)]
        for other, response in self._sibling_statuses(spec).items():
            if response is not None:
                answers.append((other, response))
        return _merged(sorted(answers, key=lambda pair: pair[0]))

    def readiness(self) -> list[str]:
        """Why the group is not ready: this worker's reasons, then each other worker's."""
        reasons = list(self._core.readiness())
        for name in self._core.model_names():
            spec = model_pb2.ModelSpec(name=name)
            for other, response in self._sibling_statuses(spec).items():
                if response is None:
                    reasons.append(f"worker {other} does not answer")
                elif not any(v.state == _AVAILABLE for v in response.model_version_status):
                    reasons.append(f"model {name} has no AVAILABLE version on worker {other}")
        return sorted(set(reasons), key=reasons.index)

    def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Every worker applies `config`; raises the first error (this worker's first)."""
        with open(os.path.join(self._directory, _LOCK_FILE), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._persist(config)
            self._core.reload_config(config)
            request = model_management_pb2.ReloadConfigRequest(config=config)
            for other, stub in sorted(self._siblings.items()):
                try:
                    stub.HandleReloadConfigRequest(request, timeout=None, metadata=(LOCAL_ONLY,))
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.UNAVAILABLE:
                        continue  # not serving now; it reads the persisted config at start
                    raise status.ServingError(
                        error.code(), f"worker {other}: {error.details()}"
                    ) from None

    def other_metrics(self) -> list[bytes]:
        """The snapshots of the other workers that answer (for ServingMetrics.attach_group)."""
        snapshots = []
        for _, method in sorted(self._metrics_of.items()):
            try:
                snapshots.append(method(b"", timeout=self._timeout, metadata=(LOCAL_ONLY,)))
            except grpc.RpcError:
                continue  # not serving now: its counts are gone with it
        return snapshots

    def _persist(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        path = os.path.join(self._directory, _CONFIG_FILE)
        temporary = path + ".tmp"
        with open(temporary, "w") as file:
            file.write(text_format.MessageToString(config))
        os.replace(temporary, path)

    def _sibling_statuses(
        self, spec: model_pb2.ModelSpec
    ) -> dict[int, get_model_status_pb2.GetModelStatusResponse | None]:
        """Each other worker's status of `spec`; None for a worker that does not answer.

        A worker that does not know the model (NOT_FOUND) answers no versions.
        """
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
        answers: dict[int, get_model_status_pb2.GetModelStatusResponse | None] = {}
        for other, stub in sorted(self._siblings.items()):
            try:
                answers[other] = stub.GetModelStatus(
                    request, timeout=self._timeout, metadata=(LOCAL_ONLY,)
                )
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    answers[other] = get_model_status_pb2.GetModelStatusResponse()
                else:
                    answers[other] = None
        return answers


def _merged(
    answers: list[tuple[int, get_model_status_pb2.GetModelStatusResponse]],
) -> get_model_status_pb2.GetModelStatusResponse:
    """One status for the group: AVAILABLE only if available on all; else the first other."""
    by_version: dict[int, list] = {}
    for _, response in answers:
        for entry in response.model_version_status:
            by_version.setdefault(entry.version, [])
    for version, entries in by_version.items():
        for _, response in answers:
            found = [e for e in response.model_version_status if e.version == version]
            if found:
                entries.append(found[0])
            else:
                entries.append(
                    get_model_status_pb2.ModelVersionStatus(version=version, state=_START)
                )
    merged = get_model_status_pb2.GetModelStatusResponse()
    for version in sorted(by_version, reverse=True):
        entries = by_version[version]
        chosen = next((e for e in entries if e.state != _AVAILABLE), entries[0])
        merged.model_version_status.add().CopyFrom(chosen)
    return merged
