"""--keep_model_warm_micros end to end: answers are unchanged, one idle-priority
thread keeps the model warm, and versions swap under load without a lost request."""

import os
import sys

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import cpu_scheduling, tensor_codec


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    hp.export_half_plus_two_tf2(str(base / "tf2"), 1)
    running = RunningServer(
        base,
        "warm",
        [
            "--model_name=hp",
            f"--model_base_path={base / 'tf2'}",
            "--file_system_poll_wait_seconds=1",
            "--tensorflow_intra_op_parallelism=1",
            "--tensorflow_inter_op_parallelism=1",
            "--keep_model_warm_micros=60000000",
            "--enable_batching",
        ],
        rest=False,
    )
    running.base = base
    running.wait_until_serving()
    yield running
    assert running.stop() == 0, "SIGTERM must end the server with exit code 0"


def predict(server, values):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.asarray(values, np.float32), request.inputs["x"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    return stub.Predict(request, timeout=30)


def idle_threads(server) -> list[int]:
    policies = cpu_scheduling.thread_policies(server.process.pid)
    return [tid for tid, policy in policies.items() if policy == os.SCHED_IDLE]


def test_answers_are_unchanged_and_one_idle_thread_keeps_the_model_warm(server):
    response = predict(server, [[1.0], [4.0]])
    np.testing.assert_allclose(tensor_codec.to_ndarray(response.outputs["y"]).ravel(), [2.5, 4.0])
    assert testing.wait_for(lambda: len(idle_threads(server)) == 1, timeout=30), (
        "no SCHED_IDLE warming thread"
    )
    busy = cpu_scheduling.thread_policies(server.process.pid)
    assert sum(policy == os.SCHED_BATCH for policy in busy.values()) > 5


def test_a_new_version_replaces_a_warm_one_without_losing_a_request(server):
    versions, failures = server.swap_under_load(
        lambda: predict(server, [[1.0]]).model_spec.version.value,
        lambda: hp.export_half_plus_two_tf2(str(server.base / "tf2"), 2),
        new=2,
        clients=4,
        model="hp",
    )
    assert failures == []
    assert 2 in versions
    assert "Unloaded servable version {name: hp version: 1}" in server.log_path.read_text()
    assert predict(server, [[1.0]]).model_spec.version.value == 2


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
