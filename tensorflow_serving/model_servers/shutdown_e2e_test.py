"""SIGTERM drains: requests in flight (gRPC and REST) complete successfully, every
gRPC call made after the signal gets UNAVAILABLE (on a new connection or one
opened before it), new REST connections are refused, and the process exits 0.

Requests are made slow by batching with a 2 s batch timeout; the test waits
until the queue-depth gauge shows all of them queued before it signals, so
they are certainly in flight when the signal comes. (SIGKILL of an *exporter* losing
nothing on disk is tested in tensorflow_serving/example/atomic_export_test.py.)
"""

import concurrent.futures
import http.client
import signal
import subprocess
import sys

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

BATCH_TIMEOUT_S = 2.0


@pytest.fixture
def server(tmp_path):
    hp.export_half_plus_two_tf1(str(tmp_path / "hp"), 1)  # y = 0.5x + 2
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true }\n")
    batching = tmp_path / "batching.config"
    batching.write_text(
        "max_batch_size { value: 64 }\n"
        f"batch_timeout_micros {{ value: {int(BATCH_TIMEOUT_S * 1e6)} }}\n"
        "num_batch_threads { value: 1 }\n"
    )
    running = RunningServer(
        tmp_path,
        "shutdown",
        [
            "--model_name=hp",
            f"--model_base_path={tmp_path / 'hp'}",
            "--enable_batching",
            f"--batching_parameters_file={batching}",
            f"--monitoring_config_file={monitoring}",
        ],
    )
    try:
        running.wait_until_serving()
        yield running
    finally:
        running.stop()


def predict_request(x: float) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.array([[x]], np.float32), request.inputs["x"])
    return request


def grpc_predict(port, x):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(predict_request(x), timeout=30).outputs["y"].float_val[0]


def rest_predict(server, x):
    code, document = server.json("POST", "/v1/models/hp:predict", {"instances": [[x]]})
    assert code == 200, document
    return document["predictions"][0][0]


def rest_refuses(server) -> bool:
    """Whether the REST port refuses a new request (the server stops it after gRPC's)."""
    try:
        server.request("GET", "/v1/models/hp")
    except (ConnectionError, http.client.HTTPException):
        return True
    return False


def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_zero(server):
    # Connected before the signal: its later calls reach the server on a live
    # connection, where gRPC core's shutdown would cancel them (CANCELLED).
    connected = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    assert connected.Predict(predict_request(1.0), timeout=30).outputs["y"].float_val[0] == 2.5
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        in_flight = [pool.submit(grpc_predict, server.grpc_port, float(i)) for i in range(4)]
        in_flight += [pool.submit(rest_predict, server, float(i)) for i in range(4, 6)]
        queued = ":tensorflow:serving:batching_session:queue_depth"
        assert testing.wait_for(lambda: server.metric(queued) == 6, timeout=30), (
            f"the six requests never all waited for their batch:\n{server.log_tail()}"
        )
        assert not any(f.done() for f in in_flight)
        server.process.send_signal(signal.SIGTERM)

        # New work is refused while the old drains.
        assert testing.wait_for(lambda: rest_refuses(server), timeout=30), "REST still answers"
        with pytest.raises(grpc.RpcError) as raised:
            grpc_predict(server.grpc_port, 100.0)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        late = [connected.Predict.future(predict_request(7.0), timeout=30) for _ in range(20)]
        codes = [future.exception().code() for future in late]
        assert codes == [grpc.StatusCode.UNAVAILABLE] * 20, codes
        assert not any(f.done() for f in in_flight), "refusals came while the old work drained"

        answers = [f.result(timeout=60) for f in in_flight]
    assert answers == [0.5 * i + 2 for i in range(6)], "every in-flight request succeeded"
    try:
        code = server.process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server still running 60 s after SIGTERM:\n{server.log_tail()}")
    assert code == 0, server.log_tail()
    log = server.log_path.read_text()
    assert "Received SIGTERM: draining in-flight requests" in log
    assert "Server stopped" in log


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
