"""--prefer_tflite_model end to end: TFLite models answer Predict, GetModelMetadata, Classify
and Regress over gRPC and REST, with and without --enable_batching.

The models are converted at test time. Where upstream's own TFLite test models
are on disk (the shared testdata beside the repository), they are served too:
the stock server's test sends them x = 2.0 and expects 3.0.
"""

import os
import sys

import numpy as np
import pytest

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.servables.tensorflow.testdata import export_tflite
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

# Upstream's TFLite test models, where a checkout keeps them beside the repository.
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
STOCK = os.path.join(_SOURCE_ROOT, "..", "shared", "testdata", "tf_serving")
STOCK_MODELS = {
    "stock_no_sigdef": "saved_model_half_plus_two_tflite",
    "stock_sigdef": "saved_model_half_plus_two_tflite_with_sigdef",
}
HALF_PLUS_TWO = ["signature", "no_sigdef", "sigdef"] + [
    name for name, folder in STOCK_MODELS.items() if os.path.isdir(os.path.join(STOCK, folder))
]
VERSIONS = {"no_sigdef": 123, "sigdef": 123, "stock_no_sigdef": 123, "stock_sigdef": 123}


def _models(base) -> dict[str, str]:
    """Model name -> base path, each with one version holding only a model.tflite."""
    made = {
        "signature": export_tflite.half_plus_two_with_signature(),
        "no_sigdef": export_tflite.half_plus_two_without_signature(),
        "sigdef": export_tflite.half_plus_two_with_legacy_signature(),
        "examples": export_tflite.examples_model(),
    }
    paths = {}
    for name, model in made.items():
        export_tflite.export(str(base / name), VERSIONS.get(name, 1), model)
        paths[name] = str(base / name)
    for name, folder in STOCK_MODELS.items():
        if name in HALF_PLUS_TWO:
            paths[name] = os.path.join(STOCK, folder)
    return paths


@pytest.fixture(scope="module", params=["plain", "batching"])
def server(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    entries = "".join(
        f'config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" }}\n'
        for name, path in _models(base).items()
    )
    config = base / "models.config"
    config.write_text(f"model_config_list {{\n{entries}}}\n")
    flags = ["--prefer_tflite_model", f"--model_config_file={config}", "--num_tflite_pools=2"]
    if request.param == "batching":
        flags.append("--enable_batching")
    running = RunningServer(base, request.param, flags)
    with running.serving():
        ready = testing.wait_for(lambda: running.request("GET", "/v1/health/ready")[0] == 200)
        assert ready, running.log_tail()
        yield running


def stub(server):
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel)


@pytest.mark.parametrize("name", HALF_PLUS_TWO)
def test_predict_of_2_gives_3_and_the_version_over_grpc(server, name):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    tensor_codec.to_tensor_proto(np.array([2.0], np.float32), request.inputs["x"])
    response = stub(server).Predict(request, timeout=30)
    np.testing.assert_allclose(tensor_codec.to_ndarray(response.outputs["y"]).ravel(), [3.0])
    assert response.model_spec.version.value == VERSIONS.get(name, 1)
    assert response.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize("name", HALF_PLUS_TWO)
def test_predict_of_2_gives_3_over_rest(server, name):
    code, body = server.json("POST", f"/v1/models/{name}:predict", {"instances": [2.0]})
    assert code == 200, body
    np.testing.assert_allclose(np.ravel(body["predictions"]), [3.0])
    version = VERSIONS.get(name, 1)
    code, body = server.json(
        "POST", f"/v1/models/{name}/versions/{version}:predict", {"inputs": {"x": [[2.0], [4.0]]}}
    )
    assert code == 200, body
    np.testing.assert_allclose(np.ravel(body["outputs"]), [3.0, 4.0])


@pytest.mark.parametrize("name", HALF_PLUS_TWO)
def test_metadata_names_the_signature_over_grpc_and_rest(server, name):
    response = stub(server).GetModelMetadata(
        get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": name}, metadata_field=["signature_def"]
        ),
        timeout=30,
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert list(signature.inputs) == ["x"] and list(signature.outputs) == ["y"]
    code, body = server.json("GET", f"/v1/models/{name}/metadata")
    assert code == 200, body
    rest = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(rest["inputs"]) == {"x"} and rest["method_name"] == "tensorflow/serving/predict"


def _examples(proto):
    first = proto.example_list.examples.add()
    first.features.feature["x"].float_list.value.append(2.0)
    first.features.feature["label"].bytes_list.value.append(b"two")
    proto.example_list.examples.add()  # no features: the model's defaults
    return proto


def test_classify_and_regress_parse_examples_over_grpc(server):
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "examples"
    _examples(classify.input)
    classified = stub(server).Classify(classify, timeout=30)
    labels = [[(c.label, c.score) for c in cl.classes] for cl in classified.result.classifications]
    assert labels == [[("two", 3.0)], [("missing", 2.0)]]
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "examples"
    _examples(regress.input)
    regressed = stub(server).Regress(regress, timeout=30)
    assert [r.value for r in regressed.result.regressions] == [3.0, 2.0]
    assert regressed.model_spec.version.value == 1


def test_classify_and_regress_parse_examples_over_rest(server):
    body = {"examples": [{"x": 2.0, "label": "two"}, {}]}
    code, answer = server.json("POST", "/v1/models/examples:classify", body)
    assert code == 200, answer
    assert answer["results"] == [[["two", 3.0]], [["missing", 2.0]]]
    code, answer = server.json("POST", "/v1/models/examples:regress", body)
    assert code == 200, answer
    assert answer["results"] == [3.0, 2.0]


def test_examples_that_do_not_parse_are_a_client_error(server):
    code, answer = server.json(
        "POST", "/v1/models/examples:predict", {"instances": [{"b64": "//79bm90IGEgcHJvdG8="}]}
    )
    assert code == 400, answer
    assert "parse" in answer["error"]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
