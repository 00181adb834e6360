"""Overload and deadlines, end to end on the built binary.

The server batches with a 1 s batch timeout, so every request waits about a
second in the batching queue: slow enough to fill the bounded queues on
purpose. The tests wait on the queue-depth gauge of the Prometheus page to
know what waits in the queue. Overload must get a refusal
(RESOURCE_EXHAUSTED / UNAVAILABLE / 503) while the admitted requests are
still queued, and those still succeed; a request whose client stopped
waiting (gRPC deadline, --rest_api_timeout_in_ms) must not be run by the
model: the batch-size histogram shows which rows reached it.
"""

import concurrent.futures
import json
import sys

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

METRICS_PATH = "/metrics"
MAX_CONCURRENT = 3
REST_TIMEOUT_MS = 400
BATCH_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("overload")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)  # y = 0.5x + 2
    batching = base / "batching.config"
    # Room for 4 rows: one batch, no second one queued behind it.
    batching.write_text(
        "max_batch_size { value: 4 }\n"
        f"batch_timeout_micros {{ value: {int(BATCH_TIMEOUT_S * 1e6)} }}\n"
        "max_enqueued_batches { value: 1 }\n"
        "num_batch_threads { value: 1 }\n"
    )
    monitoring = base / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    running = RunningServer(
        base,
        "overload",
        [
            "--model_name=hp",
            f"--model_base_path={base / 'hp'}",
            "--enable_batching",
            f"--batching_parameters_file={batching}",
            f"--monitoring_config_file={monitoring}",
            f"--max_concurrent_requests={MAX_CONCURRENT}",
            f"--rest_api_timeout_in_ms={REST_TIMEOUT_MS}",
        ],
    )
    with running.serving():
        yield running


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(16) as executor:
        yield executor


def request(rows):
    proto = predict_pb2.PredictRequest()
    proto.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(
        np.arange(rows, dtype=np.float32).reshape(rows, 1), proto.inputs["x"]
    )
    return proto


def stub(server):
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel)


def predict(server, rows, timeout=30):
    response = stub(server).Predict(request(rows), timeout=timeout)
    return list(response.outputs["y"].float_val)


def expected(rows):
    return [0.5 * i + 2 for i in range(rows)]


def refusal(call):
    """The gRPC error `call` ends with: (code, details)."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


def metric(server, name: str, **labels: str) -> float:
    return server.metric(f":tensorflow:serving:{name}", METRICS_PATH, **labels)


def batches(server):
    """(batches run, rows run) so far, from the batch-size histogram."""
    return (
        metric(server, "batching_session:batch_size_count"),
        metric(server, "batching_session:batch_size_sum"),
    )


def wait_until_queued(server, rows: int) -> None:
    """Waits until `rows` rows wait in the batching queue (its queue-depth gauge)."""
    assert testing.wait_for(
        lambda: metric(server, "batching_session:queue_depth") == rows, timeout=30
    ), f"never {rows} rows in the batching queue:\n{server.log_tail()}"


def rest_predict(server, rows):
    body = {"instances": [[float(i)] for i in range(rows)]}
    code, _, raw = server.request("POST", "/v1/models/hp:predict", body)
    return code, json.loads(raw)


def test_excess_grpc_calls_are_refused_at_once_while_admitted_ones_succeed(server, pool):
    admitted = [pool.submit(predict, server, 1) for _ in range(MAX_CONCURRENT)]
    wait_until_queued(server, MAX_CONCURRENT)
    for _ in range(5):
        code, details = refusal(lambda: predict(server, 1))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert not any(f.done() for f in admitted), "refused at once, not after the queue moved"
    for future in admitted:
        assert future.result(timeout=30) == expected(1)
    assert predict(server, 2) == expected(2), "capacity is back once they finished"


def test_full_batching_queue_answers_unavailable_and_503_at_once(server, pool):
    queued = pool.submit(predict, server, 3)  # 3 of the 4 rows the queue holds
    wait_until_queued(server, 3)
    code, details = refusal(lambda: predict(server, 3))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "queue" in details and "full" in details
    status_code, document = rest_predict(server, 3)
    assert status_code == 503, document
    assert "full" in document["error"]
    assert not queued.done(), "refused at once, not after the queued batch ran"
    assert queued.result(timeout=30) == expected(3), "the queued request still succeeds"


def test_grpc_deadline_passing_in_the_batching_queue_is_not_run(server, pool):
    runs_before, rows_before = batches(server)
    late_before = metric(server, "request_count", status="DEADLINE_EXCEEDED")
    impatient = pool.submit(predict, server, 1, 0.3)
    wait_until_queued(server, 1)
    patient = pool.submit(predict, server, 2)
    with pytest.raises(grpc.RpcError) as raised:
        impatient.result(timeout=30)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert patient.result(timeout=30) == expected(2)
    runs, rows = batches(server)
    assert (runs - runs_before, rows - rows_before) == (1, 2), (
        "one batch ran, with only the patient request's 2 rows"
    )
    assert metric(server, "request_count", status="DEADLINE_EXCEEDED") == late_before + 1, (
        "the server saw it time out"
    )


def test_rest_timeout_is_504_and_the_request_is_not_run(server):
    runs_before, rows_before = batches(server)
    code, document = rest_predict(server, 1)
    assert code == 504, document
    assert f"--rest_api_timeout_in_ms={REST_TIMEOUT_MS}" in document["error"]
    assert batches(server) == (runs_before, rows_before), "answered before its batch could run"
    # One batch thread runs the batches in order: once a later request is
    # answered, the timed-out one has been run or dropped for good.
    assert predict(server, 1) == expected(1)
    runs, rows = batches(server)
    assert (runs - runs_before, rows - rows_before) == (1, 1), "only the later request ran"
    status_code, document = server.json("GET", "/v1/models/hp")
    assert status_code == 200, "fast requests still answer within the timeout"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
