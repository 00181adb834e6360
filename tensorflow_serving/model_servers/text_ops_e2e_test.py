"""End to end: a SavedModel using TF Text's tokenizers loads and answers over gRPC and REST.

The model (testdata/export_text_model.py) runs WhitespaceTokenizer and
FastWordpieceTokenizer ops, which only load in a process that registered TF
Text's ops; the server does so at start, as the stock binary links them in.
It is served from one --model_config_file, with --prefer_tflite_model, beside
half_plus_two (a SavedModel) and a TensorFlow Lite model (a version holding
only model.tflite, which only the TFLite runtime can serve); all three
answer over gRPC and REST.
"""

import os
import sys

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.servables.tensorflow.testdata import export_tflite
from tensorflow_serving.servables.tensorflow.testdata.export_text_model import export_text_model
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

CONFIG = """
model_config_list {
  config { name: "text" base_path: "%(base)s/text" model_platform: "tensorflow" }
  config { name: "hp" base_path: "%(base)s/hp" model_platform: "tensorflow" }
  config { name: "lite" base_path: "%(base)s/lite" model_platform: "tensorflow" }
}
"""
SENTENCES = ["serving the models", "tensorflow"]
# VOCAB ids: serv=2 ##ing=3 the=1 model=4 ##s=5 | tensor=6 ##flow=7; padding -1.
WORDPIECE_IDS = [[2, 3, 1, 4, 5], [6, 7, -1, -1, -1]]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    export_text_model(str(base / "text" / "1"))
    hp.export_half_plus_two_tf2(str(base / "hp"), 1)
    lite = export_tflite.export(str(base / "lite"), 2, export_tflite.half_plus_two_with_signature())
    assert os.listdir(lite) == ["model.tflite"], "no SavedModel for TensorFlow to fall back on"
    config = base / "models.config"
    config.write_text(CONFIG % {"base": base})
    flags = [f"--model_config_file={config}", "--prefer_tflite_model"]
    running = RunningServer(base, "text", flags)
    with running.serving():
        yield running


def test_text_model_answers_grpc_predict(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "text"
    tensor_codec.to_tensor_proto(
        np.array([s.encode() for s in SENTENCES], dtype=object), request.inputs["text"]
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    response = stub.Predict(request, timeout=30)
    outputs = {k: tensor_codec.to_ndarray(v) for k, v in response.outputs.items()}
    assert outputs["token_count"].tolist() == [3, 1]
    assert outputs["tokens"].tolist() == [
        [b"serving", b"the", b"models"],
        [b"tensorflow", b"", b""],
    ]
    assert outputs["wordpiece_ids"].tolist() == WORDPIECE_IDS
    assert response.model_spec.version.value == 1


def test_text_model_answers_rest_predict(server):
    code, body = server.json("POST", "/v1/models/text:predict", {"instances": SENTENCES})
    assert code == 200, body
    first, second = body["predictions"]
    assert first == {
        "tokens": ["serving", "the", "models"],
        "token_count": 3,
        "wordpiece_ids": WORDPIECE_IDS[0],
    }
    assert second["wordpiece_ids"] == WORDPIECE_IDS[1]


def test_other_models_serve_beside_it(server):
    code, body = server.json("POST", "/v1/models/hp:predict", {"instances": [1.0, 2.0]})
    assert (code, body) == (200, {"predictions": [2.5, 3.0]})


def test_the_tflite_model_answers_grpc_predict_beside_it(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lite"
    tensor_codec.to_tensor_proto(np.array([[1.0], [2.0]], np.float32), request.inputs["x"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    response = stub.Predict(request, timeout=30)
    assert tensor_codec.to_ndarray(response.outputs["y"]).tolist() == [[2.5], [3.0]]
    assert response.model_spec.version.value == 2


def test_the_tflite_model_answers_rest_predict_beside_it(server):
    code, body = server.json("POST", "/v1/models/lite:predict", {"instances": [[1.0], [2.0]]})
    assert (code, body) == (200, {"predictions": [[2.5], [3.0]]})
    code, body = server.json("GET", "/v1/models/lite")
    assert code == 200 and body["model_version_status"][0]["state"] == "AVAILABLE", body


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
