"""Request logging (logging_config), against one built tensorflow_model_server.

A model whose config has `logging_config` at sampling rate 0.5 answers
1,000 REST and 10 gRPC Predict requests; once the server stops, its log
files hold about half of them (450-550 of the REST ones), each a
PredictionLog with the request and its answer. Copied into a new version's
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

from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

REST_REQUESTS = 1000
GRPC_REQUESTS = 10


def read_logs(directory):
    files = sorted(directory.glob("hp.*.tfrecord"))
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
    return base, logs


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
