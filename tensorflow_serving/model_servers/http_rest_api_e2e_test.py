"""End to end: the built tensorflow_model_server binary, driven over HTTP and gRPC.

Two servers run for the whole module:
- "main": half_plus_two TF1 (versions 1 and 2, labels), TF2, and a string echo
  model, with Prometheus, CORS and batching on;
- "cold": one model whose directory starts empty (readiness flips when a
  version appears), a 1 ms REST timeout, CORS off, the gRPC health service on.
"""

import base64
import concurrent.futures
import json
import os
import sys

import grpc
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.servables.tensorflow.testdata import saved_model_writer
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import json_float, tensor_codec

METRICS_PATH = "/monitoring/prometheus/metrics"


def export_echo_model(base_path: str, version: int) -> None:
    """A string model: in_bytes -> out_bytes (unchanged) and length (bytes per item)."""
    path = os.path.join(base_path, str(version))
    with tf.Graph().as_default(), tf.Session() as session:
        text = tf.placeholder(tf.string, [None], name="text")
        echo = tf.identity(text, name="echo")
        length = tf.strings.length(text)
        saved_model_writer.save_predict_model(
            session, path, {"in_bytes": text}, {"out_bytes": echo, "length": length}
        )


@pytest.fixture(scope="module")
def main_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("main")
    hp.export_half_plus_two_tf1(str(tmp / "hp"), 1)  # y = 0.5x + 2
    hp.export_half_plus_two_tf1(str(tmp / "hp"), 2, b=3.0)  # y = 0.5x + 3
    hp.export_half_plus_two_tf2(str(tmp / "hp2"), 1)
    export_echo_model(str(tmp / "echo"), 1)
    config = tmp / "models.config"
    config.write_text(
        f"""model_config_list {{
          config {{
            name: "hp" base_path: "{tmp / "hp"}" model_platform: "tensorflow"
            model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
            version_labels {{ key: "stable" value: 1 }}
          }}
          config {{ name: "hp2" base_path: "{tmp / "hp2"}" model_platform: "tensorflow" }}
          config {{ name: "echo" base_path: "{tmp / "echo"}" model_platform: "tensorflow" }}
        }}"""
    )
    monitoring = tmp / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    server = RunningServer(
        tmp,
        "main",
        [
            f"--model_config_file={config}",
            f"--monitoring_config_file={monitoring}",
            "--rest_api_enable_cors_support=true",
            "--enable_batching=true",
        ],
    )
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cold_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cold")
    (tmp / "later").mkdir()
    server = RunningServer(
        tmp,
        "cold",
        [
            "--model_name=later",
            f"--model_base_path={tmp / 'later'}",
            "--file_system_poll_wait_seconds=1",
            "--rest_api_timeout_in_ms=1",
            "--enable_grpc_healthcheck_service=true",
        ],
    )
    server.base_path = tmp / "later"
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


# -- Every endpoint and format ----------------------------------------------------


def test_model_status(main_server):
    ok = {"error_code": "OK", "error_message": ""}
    assert main_server.json("GET", "/v1/models/hp") == (
        200,
        {
            "model_version_status": [
                {"version": "2", "state": "AVAILABLE", "status": ok},
                {"version": "1", "state": "AVAILABLE", "status": ok},
            ]
        },
    )
    assert main_server.json("GET", "/v1/models/hp/versions/1") == (
        200,
        {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]},
    )
    assert (
        main_server.json("GET", "/v1/models/hp/labels/stable")[1]["model_version_status"][0][
            "version"
        ]
        == "1"
    )


def test_metadata(main_server):
    code, answer = main_server.json("GET", "/v1/models/hp2/metadata")
    assert code == 200
    assert answer["model_spec"] == {"name": "hp2", "signature_name": "", "version": "1"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"


def test_predict_row_and_columnar(main_server):
    assert main_server.json("POST", "/v1/models/hp:predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200,
        {"predictions": [3.5, 4.0, 5.5]},
    )
    assert main_server.json(
        "POST", "/v1/models/hp/versions/1:predict", {"inputs": {"x": [[1.0], [2.0]]}}
    ) == (200, {"outputs": [[2.5], [3.0]]})
    assert main_server.json(
        "POST", "/v1/models/hp/labels/stable:predict", {"instances": [[1.0]]}
    ) == (200, {"predictions": [[2.5]]})
    assert main_server.json(
        "POST", "/v1/models/hp2:predict", {"signature_name": "serving_default", "inputs": [4.0]}
    ) == (200, {"outputs": [4.0]})


def test_whole_floats_keep_their_point_and_nan_passes_through(main_server):
    code, _, raw = main_server.request(
        "POST", "/v1/models/hp:predict", b'{"instances": [2.0, NaN, Infinity]}'
    )
    assert code == 200
    assert raw.replace(b" ", b"") == b'{"predictions":[4.0,NaN,Infinity]}'


def test_b64_round_trip_and_several_outputs(main_server):
    blobs = [b"\x00\xffbinary", b"text"]
    encoded = [base64.b64encode(b).decode() for b in blobs]
    code, answer = main_server.json(
        "POST", "/v1/models/echo:predict", {"instances": [{"b64": e} for e in encoded]}
    )
    assert code == 200
    assert answer == {
        "predictions": [
            {"length": 8, "out_bytes": {"b64": encoded[0]}},
            {"length": 4, "out_bytes": {"b64": encoded[1]}},
        ]
    }
    code, answer = main_server.json(
        "POST", "/v1/models/echo:predict", {"inputs": {"in_bytes": [{"b64": encoded[1]}]}}
    )
    assert (code, answer) == (200, {"outputs": {"length": [4], "out_bytes": [{"b64": encoded[1]}]}})


def test_classify_and_regress(main_server):
    examples = {"examples": [{"x": 20.0}, {"x": 10.0}]}
    assert main_server.json(
        "POST",
        "/v1/models/hp/versions/1:classify",
        {"signature_name": "classify_x_to_y", **examples},
    ) == (200, {"results": [[["", 12.0]], [["", 7.0]]]})
    assert main_server.json(
        "POST", "/v1/models/hp/versions/1:regress", {"signature_name": "regress_x_to_y", **examples}
    ) == (200, {"results": [12.0, 7.0]})


# -- Each error code ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body, code, message",
    [
        ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404, "Servable not found"),
        ("POST", "/v1/models/hp/versions/7:predict", {"instances": [1.0]}, 404, "Specific(hp, 7)"),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("POST", "/v1/models/hp:predict", {"instances": ["x"]}, 400, "not of expected type"),
        ("POST", "/v1/models/hp:predict", {"instances": [1], "inputs": [1]}, 400, "only one of"),
        (
            "POST",
            "/v1/models/hp:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        ("POST", "/v1/models/hp:predict", b"{oops", 400, "JSON Parse error"),
        ("GET", "/v1/nothing", None, 400, "Malformed request: GET /v1/nothing"),
        ("GET", "/elsewhere", None, 404, "Not found"),
    ],
)
def test_errors(main_server, method, path, body, code, message):
    got, headers, raw = main_server.request(method, path, body)
    assert got == code
    assert headers["content-type"] == "application/json"
    assert message in json.loads(raw)["error"]


# -- CORS -----------------------------------------------------------------------------


def test_cors_headers_when_enabled(main_server):
    code, headers, _ = main_server.request(
        "OPTIONS",
        "/v1/models/hp:predict",
        headers={"Origin": "http://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert code == 200
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "POST, GET"
    assert headers["access-control-allow-headers"] == "Content-Type"
    _, headers, _ = main_server.request("POST", "/v1/models/hp:predict", {"instances": [1.0]})
    assert headers["access-control-allow-origin"] == "*"


def test_no_cors_headers_when_disabled(cold_server):
    _, headers, _ = cold_server.request("GET", "/v1/models/later")
    assert not [h for h in headers if h.startswith("access-control-")]
    code, _, _ = cold_server.request(
        "OPTIONS", "/v1/models/later:predict", headers={"Origin": "http://example.com"}
    )
    assert code == 400


# -- Readiness ------------------------------------------------------------------------


def grpc_health(server) -> int:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status


def wait_ready(server, timeout=120):
    if not testing.wait_for(lambda: server.request("GET", "/v1/health/ready")[0] == 200, timeout):
        pytest.fail(f"never ready:\n{server.log_tail()}")


def test_readiness_flips_from_503_to_200_when_a_version_loads(cold_server):
    if any(cold_server.base_path.iterdir()):
        pytest.skip("the model was already exported by another test")
    code, body = cold_server.json("GET", "/v1/health/ready")
    assert code == 503
    assert "model later has no AVAILABLE version" in body["error"]
    assert grpc_health(cold_server) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert cold_server.json("GET", "/v1/health/live")[0] == 200
    hp.export_half_plus_two_tf1(str(cold_server.base_path), 1)
    wait_ready(cold_server)
    assert cold_server.json("GET", "/v1/health/ready") == (200, {"status": "ready"})
    assert testing.wait_for(
        lambda: grpc_health(cold_server) == health_pb2.HealthCheckResponse.SERVING, timeout=10
    ), "gRPC health stayed NOT_SERVING"


def test_timeout_is_504(cold_server):
    if not any(cold_server.base_path.iterdir()):
        hp.export_half_plus_two_tf1(str(cold_server.base_path), 1)
    wait_ready(cold_server)
    body = json.dumps({"instances": [float(i) for i in range(200_000)]}).encode()
    code, _, raw = cold_server.request("POST", "/v1/models/later:predict", body)
    assert code == 504
    assert "rest_api_timeout_in_ms=1" in json.loads(raw)["error"]


# -- Prometheus ------------------------------------------------------------------------


def scrape(server) -> dict:
    code, headers, raw = server.request("GET", METRICS_PATH)
    assert code == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def request_count(samples, **labels) -> float:
    total = 0.0
    for (name, sample_labels), number in samples.items():
        if (
            name == ":tensorflow:serving:request_count_total"
            and labels.items() <= dict(sample_labels).items()
        ):
            total += number
    return total


def grpc_predict_request(values, version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    if version is not None:
        request.model_spec.version.value = version
    tensor_codec.to_tensor_proto(np.array(values, np.float32), request.inputs["x"])
    return request


def test_counters_move_by_exactly_the_requests_sent(main_server):
    before = scrape(main_server)
    for _ in range(5):
        assert main_server.request("POST", "/v1/models/hp:predict", {"instances": [1.0]})[0] == 200
    for _ in range(2):
        assert (
            main_server.request("POST", "/v1/models/hp:predict", {"instances": ["bad"]})[0] == 400
        )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(main_server.channel)
    for _ in range(3):
        stub.Predict(grpc_predict_request([[1.0]]), timeout=10)
    after = scrape(main_server)

    def moved(**labels):
        return request_count(after, model_name="hp", **labels) - request_count(
            before, model_name="hp", **labels
        )

    def grpc_counted() -> bool:
        # A gRPC answer is sent before its call is counted: the count may lag the
        # client by microseconds, never by a request.
        nonlocal after
        after = scrape(main_server)
        return moved(API="Predict", entrypoint="GRPC", status="OK", version="2") >= 3

    assert testing.wait_for(grpc_counted, timeout=10)

    assert moved(API="predict", entrypoint="REST", status="OK", version="2") == 5
    assert moved(API="predict", entrypoint="REST", status="INVALID_ARGUMENT") == 2
    assert moved(API="Predict", entrypoint="GRPC", status="OK", version="2") == 3
    latency_count = sum(
        value
        for (name, labels), value in after.items()
        if name == ":tensorflow:serving:request_latency_count"
        and dict(labels).get("entrypoint") == "GRPC"
    )
    assert latency_count >= 3
    # Each successful predict ran as one batch (one request at a time).
    batches = ":tensorflow:serving:batching_session:batch_size_count"
    assert after[(batches, frozenset())] - before[(batches, frozenset())] == 8
    assert (":tensorflow:serving:batching_session:queue_depth", frozenset()) in after
    loaded = after[(":tensorflow:serving:loaded_versions", frozenset({("model_name", "hp")}))]
    assert loaded == 2
    load_ok = after[
        (
            ":tensorflow:serving:load_attempt_count_total",
            frozenset({("model_name", "hp"), ("status", "OK")}),
        )
    ]
    assert load_ok == 2


def test_concurrent_rest_and_grpc_predicts_share_batches_and_get_their_own_rows(main_server):
    """Requests of different sizes from both transports at once: merged, then split right."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(main_server.channel)
    batches = ":tensorflow:serving:batching_session:batch_size_count"
    rows = ":tensorflow:serving:batching_session:batch_size_sum"
    before = scrape(main_server)

    def call(i):
        values = [float(i * 10 + k) for k in range(1 + i % 3)]
        if i % 2:
            answer = stub.Predict(grpc_predict_request([[v] for v in values], 1), timeout=30)
            got = tensor_codec.to_ndarray(answer.outputs["y"]).ravel().tolist()
        else:
            code, answer = main_server.json(
                "POST", "/v1/models/hp/versions/1:predict", {"instances": values}
            )
            assert code == 200, answer
            got = answer["predictions"]
        return got, [0.5 * v + 2 for v in values]

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        for got, want in pool.map(call, range(96)):
            assert got == want
    after = scrape(main_server)
    ran = after[(batches, frozenset())] - before[(batches, frozenset())]
    merged = after[(rows, frozenset())] - before[(rows, frozenset())]
    assert merged == sum(1 + i % 3 for i in range(96))
    assert ran < 96, "concurrent requests must have shared batches"


# -- gRPC and REST agree ----------------------------------------------------------------


def test_grpc_and_rest_give_the_same_answers(main_server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(main_server.channel)
    values = [[0.1], [1.0 / 3.0], [123456.789], [-7.25]]
    for version in (1, 2):
        via_grpc = stub.Predict(grpc_predict_request(values, version), timeout=10)
        grpc_y = tensor_codec.to_ndarray(via_grpc.outputs["y"])
        code, answer = main_server.json(
            "POST", f"/v1/models/hp/versions/{version}:predict", {"instances": values}
        )
        assert code == 200
        rest_y = np.array(answer["predictions"], np.float32)
        np.testing.assert_array_equal(rest_y, grpc_y)
        # And the REST text carries upstream's digits of those float32s.
        assert answer["predictions"] == json_float.float32_as_upstream_doubles(grpc_y).tolist()

    example = {"x": 3.0}
    classification = classification_pb2.ClassificationRequest()
    classification.model_spec.name = "hp"
    classification.model_spec.signature_name = "classify_x_to_y"
    classification.input.example_list.examples.add().features.feature["x"].float_list.value.append(
        3.0
    )
    via_grpc = stub.Classify(classification, timeout=10)
    code, answer = main_server.json(
        "POST",
        "/v1/models/hp:classify",
        {"signature_name": "classify_x_to_y", "examples": [example]},
    )
    assert answer["results"][0][0][1] == via_grpc.result.classifications[0].classes[0].score

    regression = regression_pb2.RegressionRequest()
    regression.model_spec.name = "hp"
    regression.model_spec.signature_name = "regress_x_to_y"
    regression.input.CopyFrom(classification.input)
    via_grpc = stub.Regress(regression, timeout=10)
    code, answer = main_server.json(
        "POST", "/v1/models/hp:regress", {"signature_name": "regress_x_to_y", "examples": [example]}
    )
    assert answer["results"] == [via_grpc.result.regressions[0].value]

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "hp"
    via_grpc = model_service_pb2_grpc.ModelServiceStub(main_server.channel).GetModelStatus(
        status_request, timeout=10
    )
    code, answer = main_server.json("GET", "/v1/models/hp")
    assert [(s["version"], s["state"]) for s in answer["model_version_status"]] == [
        (str(s.version), get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
        for s in via_grpc.model_version_status
    ]

    bad = grpc_predict_request([[1.0]])
    bad.inputs["x"].CopyFrom(tensor_codec.to_tensor_proto(np.array([b"a"], dtype=object)))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(bad, timeout=10)
    missing = grpc_predict_request([[1.0]])
    missing.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as not_found:
        stub.Predict(missing, timeout=10)
    code, answer = main_server.json("POST", "/v1/models/nope:predict", {"instances": [[1.0]]})
    assert code == 404 and answer["error"] == not_found.value.details()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def family_total(samples, name, **labels) -> float:
    return sum(
        number
        for (sample_name, sample_labels), number in samples.items()
        if sample_name == name and labels.items() <= dict(sample_labels).items()
    )


def test_upstreams_runtime_example_batching_and_load_metrics(main_server):
    before = scrape(main_server)
    assert main_server.json("POST", "/v1/models/hp:predict", {"instances": [1.0, 2.0]})[0] == 200
    examples = {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}]}
    assert main_server.json("POST", "/v1/models/hp/versions/1:regress", examples)[0] == 200
    after = scrape(main_server)

    def moved(name, **labels):
        return family_total(after, name, **labels) - family_total(before, name, **labels)

    runtime = ":tensorflow:serving:runtime_latency_count"
    assert moved(runtime, model_name="hp", API="Predict", runtime="TF1") == 1
    assert moved(runtime, model_name="hp", API="Regress", runtime="TF1") == 1
    assert moved(":tensorflow:serving:request_example_count_total", model="hp") == 2
    assert moved(":tensorflow:serving:request_example_counts_count", model="hp") == 1
    batch = dict(model_name="hp", op_name="batching_session")
    # Both requests were batched, of 2 rows each.
    assert moved(":tensorflow:serving:batching:input_batch_size_sum", **batch) == 4
    assert moved(":tensorflow:serving:batching:processed_batch_size_count", **batch) == 2
    assert moved(":tensorflow:serving:batching_session:queuing_latency_count", model_name="hp") == 2
    loads = ":tensorflow:cc:saved_model:load_attempt_count_total"
    assert family_total(after, loads, status="success") >= 4  # hp 1 and 2, hp2, echo
    stages = ":tensorflow:cc:saved_model:load_latency_by_stage_count"
    assert family_total(after, stages, stage="restore_graph") >= 4
    assert family_total(after, stages, stage="init_graph") >= 4


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
