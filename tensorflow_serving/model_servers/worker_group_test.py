"""A WorkerGroup answers for every worker: merged model status, readiness that needs
every worker, and a reload applied by all (first error wins). Other workers are
fake ModelService stubs here; multi_process_e2e_test runs real ones."""

import sys

import grpc
import pytest

from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.model_servers import worker_group
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
LOADING = get_model_status_pb2.ModelVersionStatus.LOADING
END = get_model_status_pb2.ModelVersionStatus.END


def status_of(*versions) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state, *error in versions:
        entry = response.model_version_status.add(version=version, state=state)
        if error:
            entry.status.error_code = 3
            entry.status.error_message = error[0]
    return response


class FakeCore:
    def __init__(self, response, reasons=()):
        self.response = response
        self.reasons = list(reasons)
        self.reloaded = []

    def model_names(self):
        return ("m",)

    def model_status(self, spec):
        return self.response

    def readiness(self):
        return self.reasons

    def reload_config(self, config):
        self.reloaded.append(config)


class RpcError(grpc.RpcError):
    def __init__(self, code, details=""):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeStub:
    """Another worker: answers its status, or fails with `error`; records reloads."""

    def __init__(self, response=None, error=None):
        self.response, self.error = response, error
        self.reloads = []
        self.metadata = []

    def GetModelStatus(self, request, timeout=None, metadata=()):
        self.metadata.append(metadata)
        if self.error is not None:
            raise self.error
        return self.response

    def HandleReloadConfigRequest(self, request, timeout=None, metadata=()):
        self.metadata.append(metadata)
        if self.error is not None:
            raise self.error
        self.reloads.append(request.config)


def group(tmp_path, core, *others):
    siblings = {index + 1: stub for index, stub in enumerate(others)}
    return worker_group.WorkerGroup(core, 0, 1 + len(others), str(tmp_path), siblings=siblings)


def test_a_version_is_available_only_when_every_worker_has_it(tmp_path):
    core = FakeCore(status_of((2, AVAILABLE), (1, AVAILABLE)))
    other = FakeStub(status_of((2, LOADING), (1, AVAILABLE)))
    merged = group(tmp_path, core, other).model_status(model_pb2.ModelSpec(name="m"))
    assert [(v.version, v.state) for v in merged.model_version_status] == [
        (2, LOADING),
        (1, AVAILABLE),
    ]
    assert other.metadata == [(worker_group.LOCAL_ONLY,)]


def test_a_version_a_worker_lacks_is_reported_as_not_started_there(tmp_path):
    core = FakeCore(status_of((3, AVAILABLE)))
    other = FakeStub(error=RpcError(grpc.StatusCode.NOT_FOUND))  # has not seen the model yet
    merged = group(tmp_path, core, other).model_status(model_pb2.ModelSpec(name="m"))
    assert [(v.version, v.state) for v in merged.model_version_status] == [
        (3, get_model_status_pb2.ModelVersionStatus.START)
    ]


def test_the_first_failing_worker_gives_the_state_and_its_error(tmp_path):
    core = FakeCore(status_of((1, AVAILABLE)))
    first = FakeStub(status_of((1, END, "could not load")))
    second = FakeStub(status_of((1, LOADING)))
    merged = group(tmp_path, core, first, second).model_status(model_pb2.ModelSpec(name="m"))
    (entry,) = merged.model_version_status
    assert (entry.state, entry.status.error_message) == (END, "could not load")


def test_a_worker_that_does_not_answer_leaves_the_status_to_the_others_but_not_ready(tmp_path):
    core = FakeCore(status_of((1, AVAILABLE)))
    down = FakeStub(error=RpcError(grpc.StatusCode.UNAVAILABLE))
    made = group(tmp_path, core, down)
    (entry,) = made.model_status(model_pb2.ModelSpec(name="m")).model_version_status
    assert entry.state == AVAILABLE
    assert made.readiness() == ["worker 1 does not answer"]


def test_ready_needs_an_available_version_on_every_worker(tmp_path):
    core = FakeCore(status_of((1, AVAILABLE)))
    assert group(tmp_path, core, FakeStub(status_of((1, AVAILABLE)))).readiness() == []
    loading = group(tmp_path, core, FakeStub(status_of((1, LOADING))))
    assert loading.readiness() == ["model m has no AVAILABLE version on worker 1"]


def test_a_reload_reaches_every_worker_and_is_kept_for_workers_that_start_later(tmp_path):
    core = FakeCore(status_of())
    others = [FakeStub(), FakeStub(error=RpcError(grpc.StatusCode.UNAVAILABLE))]
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path="/models/m")
    group(tmp_path, core, *others).reload_config(config)
    assert core.reloaded == [config] and others[0].reloads == [config]
    kept = worker_group.persisted_config(str(tmp_path))
    assert kept is not None and 'base_path: "/models/m"' in open(kept).read()


def test_a_worker_that_refuses_the_reload_fails_it_with_its_words(tmp_path):
    refusing = FakeStub(error=RpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad base path"))
    with pytest.raises(status.ServingError) as failed:
        group(tmp_path, FakeCore(status_of()), refusing).reload_config(
            model_server_config_pb2.ModelServerConfig()
        )
    assert failed.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.value.message == "worker 1: bad base path"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
