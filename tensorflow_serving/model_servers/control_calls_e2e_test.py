"""Control calls are answered while every prediction worker is busy, on both transports.

Served: "gate", a model whose default signature blocks each run until the
test lets it through: a run first counts itself in ("entered"), then waits
for a token in a queue. The "release" signature adds tokens and "entered"
reads the count; both return at once. The server has 2 gRPC threads and
2 REST workers, so two blocked predictions hold every worker of a transport.

Each test blocks one transport's workers with predictions, waits (through the
other transport) until both are inside the model, then asks the blocked
transport for model status, metadata, health and (gRPC) a config reload; each
must be answered while both predictions are still blocked. The other
transport then releases them. Nothing is timed: a control call stuck behind
the predictions would never be answered before the release, and the test
would fail at its call's deadline.
"""

import concurrent.futures
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.servables.tensorflow.testdata import saved_model_writer
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

MODEL = "gate"
WORKERS = 2
# A control call that waits for the blocked predictions fails at this deadline.
CALL_SECONDS = 60


def export_gate_model(path: str) -> None:
    """serving_default blocks until released; "release" and "entered" do not."""
    with tf.Graph().as_default(), tf.Session() as session:
        gate = tf.FIFOQueue(1 << 20, tf.int32, shapes=[], shared_name="gate")
        entered = tf.FIFOQueue(1 << 20, tf.int32, shapes=[], shared_name="entered")
        x = tf.placeholder(tf.float32, [None], name="x")
        with tf.control_dependencies([entered.enqueue(1)]):
            token = gate.dequeue()
        y = tf.identity(x * 2 + tf.cast(token, tf.float32) * 0, name="y")
        n = tf.placeholder(tf.int32, [], name="n")
        with tf.control_dependencies([gate.enqueue_many(tf.zeros([n], tf.int32))]):
            released = tf.identity(n, name="released")
        probe = tf.placeholder(tf.float32, [None], name="probe")
        count = tf.identity(entered.size() + tf.size(probe) * 0, name="count")
        saved_model_writer.save_predict_signatures(
            session,
            path,
            {
                "serving_default": ({"x": x}, {"y": y}),
                "release": ({"n": n}, {"released": released}),
                "entered": ({"probe": probe}, {"count": count}),
            },
        )


def model_config(base) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = MODEL
    model.base_path = str(base / MODEL)
    model.model_platform = "tensorflow"
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    export_gate_model(str(base / MODEL / "1"))
    config = base / "models.config"
    config.write_text(str(model_config(base)))
    running = RunningServer(
        base,
        "control_calls",
        [
            f"--model_config_file={config}",
            f"--grpc_max_threads={WORKERS}",
            f"--rest_api_num_threads={WORKERS}",
            "--enable_grpc_healthcheck_service=true",
        ],
    )
    running.base = base
    try:
        running.wait_until_serving()
        yield running
    finally:
        running.stop()


def predict_request(signature: str, alias: str, value: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    tensor_codec.to_tensor_proto(value, request.inputs[alias])
    return request


def grpc_entered(server) -> int:
    request = predict_request("entered", "probe", np.zeros([1], np.float32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    return stub.Predict(request, timeout=CALL_SECONDS).outputs["count"].int_val[0]


def rest_entered(server) -> int:
    body = {"signature_name": "entered", "inputs": [0.0]}
    code, answer = server.json("POST", f"/v1/models/{MODEL}:predict", body)
    assert code == 200, answer
    return answer["outputs"]


def grpc_release(server, count: int) -> None:
    request = predict_request("release", "n", np.array(count, np.int32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    stub.Predict(request, timeout=CALL_SECONDS)


def rest_release(server, count: int) -> None:
    body = {"signature_name": "release", "inputs": count}
    assert server.json("POST", f"/v1/models/{MODEL}:predict", body)[0] == 200


def assert_grpc_control_calls_answer(server) -> None:
    """Status, metadata, health and a reload of the same config, over gRPC."""
    models = model_service_pb2_grpc.ModelServiceStub(server.channel)
    status = models.GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}),
        timeout=CALL_SECONDS,
    )
    assert [entry.state for entry in status.model_version_status] == [
        get_model_status_pb2.ModelVersionStatus.AVAILABLE
    ]
    metadata = prediction_service_pb2_grpc.PredictionServiceStub(server.channel).GetModelMetadata(
        get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": MODEL}, metadata_field=["signature_def"]
        ),
        timeout=CALL_SECONDS,
    )
    assert metadata.model_spec.version.value == 1
    health = health_pb2_grpc.HealthStub(server.channel).Check(
        health_pb2.HealthCheckRequest(), timeout=CALL_SECONDS
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reload = model_management_pb2.ReloadConfigRequest(config=model_config(server.base))
    answer = models.HandleReloadConfigRequest(reload, timeout=CALL_SECONDS)
    assert answer.status.error_code == 0


def assert_rest_control_calls_answer(server) -> None:
    """Status, metadata and both health checks, over REST."""
    code, status = server.json("GET", f"/v1/models/{MODEL}")
    assert code == 200, status
    assert [entry["state"] for entry in status["model_version_status"]] == ["AVAILABLE"]
    code, metadata = server.json("GET", f"/v1/models/{MODEL}/metadata")
    assert code == 200, metadata
    assert metadata["model_spec"]["version"] == "1"
    assert server.request("GET", "/v1/health/live")[0] == 200
    assert server.request("GET", "/v1/health/ready")[0] == 200


def answered_while_blocked(block, entered, control, release) -> list:
    """Starts WORKERS blocked calls (`block()` returns their futures), runs `control` once
    `entered()` counts them inside the model, checks that they are still waiting, then
    `release`s them; returns their futures."""
    before = entered()
    blocked = block()
    try:
        assert testing.wait_for(lambda: entered() == before + WORKERS, timeout=60)
        control()
        assert not any(call.done() for call in blocked)
    finally:
        release(WORKERS)
    return blocked


def test_grpc_control_calls_are_answered_while_every_grpc_thread_runs_the_model(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    requests = [predict_request("", "x", np.array([float(i)], np.float32)) for i in range(WORKERS)]
    blocked = answered_while_blocked(
        lambda: [stub.Predict.future(request, timeout=CALL_SECONDS) for request in requests],
        lambda: rest_entered(server),
        lambda: assert_grpc_control_calls_answer(server),
        lambda count: rest_release(server, count),
    )
    assert [list(call.result().outputs["y"].float_val) for call in blocked] == [[0.0], [2.0]]


def test_rest_control_calls_are_answered_while_every_rest_worker_runs_the_model(server):
    path, body = f"/v1/models/{MODEL}:predict", {"instances": [1.0]}
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as clients:
        blocked = answered_while_blocked(
            lambda: [clients.submit(server.json, "POST", path, body) for _ in range(WORKERS)],
            lambda: grpc_entered(server),
            lambda: assert_rest_control_calls_answer(server),
            lambda count: grpc_release(server, count),
        )
        assert [call.result() for call in blocked] == [(200, {"predictions": [2.0]})] * WORKERS


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
