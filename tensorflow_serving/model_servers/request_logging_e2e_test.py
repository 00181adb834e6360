"""Request logging (logging_config), against one built tensorflow_model_server.

A model whose config has `logging_config` at sampling rate 0.5 answers
1,000 REST and 10 gRPC Predict requests; once the server stops, its log
files hold about half of them (450-550 of the REST ones), each a
PredictionLog with the request and its answer. A second model, logging
everything, answers Classify, Regress and MultiInference over gRPC and
:classify and :regress over REST: each is a classify_log, regress_log or
multi_inference_log record. Copied into a new version's
`assets.extra/tf_serving_warmup_requests`, a log file warms that version
with the recorded traffic when it loads.
"""

import http.client
import json
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

REST_REQUESTS = 1000
GRPC_REQUESTS = 10


def read_logs(directory, prefix="hp"):
    files = sorted(directory.glob(f"{prefix}.*.tfrecord"))
    return files, [
        prediction_log_pb2.PredictionLog.FromString(raw)
        for path in files
        for raw in tf.compat.v1.io.tf_record_iterator(str(path))
    ]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Runs the traffic through a server with request logging, stops it; the log directory."""
    base = tmp_path_factory.mktemp("logging")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)  # y = 0.5x + 2
    logs = base / "logs"
    config = base / "models.config"
    config.write_text(
        f"""model_config_list {{ config {{
          name: "hp" base_path: "{base / "hp"}" model_platform: "tensorflow"
          logging_config {{
            log_collector_config {{ type: "tfrecord" filename_prefix: "{logs / "hp"}" }}
            sampling_config {{ sampling_rate: 0.5 }}
          }}
        }} config {{
          name: "all" base_path: "{base / "hp"}" model_platform: "tensorflow"
          logging_config {{
            log_collector_config {{ filename_prefix: "{logs / "all"}" }}
            sampling_config {{ sampling_rate: 1.0 }}
          }}
        }} }}"""
    )
    server = RunningServer(base, "logging", [f"--model_config_file={config}"])
    with server.serving():
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        for i in range(REST_REQUESTS):
            body = json.dumps({"instances": [float(i)]})
            connection.request("POST", "/v1/models/hp:predict", body)
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read()) == {"predictions": [0.5 * i + 2]}
        connection.close()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
        for i in range(GRPC_REQUESTS):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "hp"
            tensor_codec.to_tensor_proto(np.array([[-1.0 - i]], np.float32), request.inputs["x"])
            stub.Predict(request, timeout=30)
        send_examples_requests(server, stub)
    return base, logs


def with_example(message, x: float):
    message.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return message


def send_examples_requests(server, stub) -> None:
    """One of each examples API to model "all", with x = 1, 2, ... in turn."""
    classify = with_example(classification_pb2.ClassificationRequest(), 1.0)
    classify.model_spec.name, classify.model_spec.signature_name = "all", "classify_x_to_y"
    stub.Classify(classify, timeout=30)
    regress = with_example(regression_pb2.RegressionRequest(), 2.0)
    regress.model_spec.name, regress.model_spec.signature_name = "all", "regress_x_to_y"
    stub.Regress(regress, timeout=30)
    multi = with_example(inference_pb2.MultiInferenceRequest(), 3.0)
    for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y", "regress")):
        task = multi.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name, task.model_spec.signature_name = "all", signature
    stub.MultiInference(multi, timeout=30)
    for x, api in ((4.0, "classify"), (5.0, "regress")):
        body = {"signature_name": f"{api}_x_to_y", "examples": [{"x": x}]}
        code, _, raw = server.request("POST", f"/v1/models/all/versions/1:{api}", body)
        assert code == 200, raw


def test_about_half_the_requests_are_logged_as_prediction_logs(logged):
    _, logs = logged
    files, records = read_logs(logs)
    assert files
    rest = [
        r
        for r in records
        if tensor_codec.to_ndarray(r.predict_log.request.inputs["x"]).ravel()[0] >= 0
    ]
    assert 450 <= len(rest) <= 550, len(rest)
    assert len(records) - len(rest) <= GRPC_REQUESTS
    for record in records:
        request, response = record.predict_log.request, record.predict_log.response
        assert request.model_spec.name == "hp" and request.model_spec.version.value == 1
        assert request.model_spec.signature_name == "serving_default"
        x = tensor_codec.to_ndarray(request.inputs["x"])
        y = tensor_codec.to_ndarray(response.outputs["y"])
        np.testing.assert_allclose(y, 0.5 * x + 2)


def test_classify_regress_and_multi_inference_are_logged_with_request_and_response(logged):
    _, logs = logged
    _, records = read_logs(logs, "all")
    by_x = {}
    for record in records:
        kind = record.WhichOneof("log_type")
        entry = getattr(record, kind)
        (example,) = entry.request.input.example_list.examples
        by_x[example.features.feature["x"].float_list.value[0]] = (kind, record, entry)
    assert sorted(by_x) == [1.0, 2.0, 3.0, 4.0, 5.0], "each request logged once"
    expected = {
        1.0: ("classify_log", "classify_x_to_y", "grpc"),
        2.0: ("regress_log", "regress_x_to_y", "grpc"),
        3.0: ("multi_inference_log", "classify_x_to_y", "grpc"),
        4.0: ("classify_log", "classify_x_to_y", "rest"),
        5.0: ("regress_log", "regress_x_to_y", "rest"),
    }
    for x, (kind, signature, transport) in expected.items():
        logged_kind, record, entry = by_x[x]
        assert logged_kind == kind, (x, logged_kind)
        spec = record.log_metadata.model_spec
        assert (spec.name, spec.version.value, spec.signature_name) == ("all", 1, signature)
        assert record.log_metadata.sampling_config.sampling_rate == 1.0
        y = 0.5 * x + 2
        if kind == "classify_log":
            assert entry.response.result.classifications[0].classes[0].score == y
        elif kind == "regress_log":
            assert entry.response.result.regressions[0].value == y
        else:
            results = entry.response.results
            assert results[0].classification_result.classifications[0].classes[0].score == y
            assert results[1].regression_result.regressions[0].value == y
            assert [t.model_spec.signature_name for t in entry.request.tasks] == [
                "classify_x_to_y",
                "regress_x_to_y",
            ]
        if kind != "multi_inference_log":
            assert entry.request.model_spec.name == "all", transport
            assert entry.response.model_spec.version.value == 1, transport
    rest_regress = by_x[5.0][2]
    assert rest_regress.request.model_spec.version.value == 1, "the version the URL named"
    assert rest_regress.request.model_spec.signature_name == "regress_x_to_y"


def test_a_log_file_warms_a_new_version(logged, tmp_path):
    base, logs = logged
    files, _ = read_logs(logs)
    hp.export_half_plus_two_tf1(str(tmp_path / "hp"), 2)
    extra = tmp_path / "hp" / "2" / "assets.extra"
    extra.mkdir()
    shutil.copy(files[0], extra / "tf_serving_warmup_requests")
    server = RunningServer(
        tmp_path, "warmed", ["--model_name=hp", f"--model_base_path={tmp_path / 'hp'}"]
    )
    with server.serving():
        code, _, raw = server.request("POST", "/v1/models/hp:predict", {"instances": [2.0]})
        assert code == 200 and json.loads(raw) == {"predictions": [3.0]}
    assert "Number of warmup records read:" in server.log_path.read_text()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
