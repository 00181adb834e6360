"""Predict checks requests the way upstream does and answers with typed fields."""

import sys

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.servables.tensorflow import predict_util
from tensorflow_serving.util import status, tensor_codec, testing

X = np.array([[1.0], [2.0]], np.float32)


def test_default_signature_and_all_outputs(model):
    signature, out = predict_util.predict(model, "", {"x": X})
    assert signature.key == "serving_default"
    np.testing.assert_allclose(out["y"].ravel(), [2.5, 3.0])


def test_missing_and_extra_inputs_are_named(model):
    with pytest.raises(status.ServingError) as raised:
        predict_util.predict(model, "", {"z": X})
    assert raised.value.http_status() == 400
    assert "Send extra: {z}. Missing but required: {x}." in raised.value.message


def test_wrong_dtype_is_invalid_argument(model):
    with pytest.raises(status.ServingError, match="to be float but double is provided"):
        predict_util.predict(model, "", {"x": X.astype(np.float64)})


def test_output_filter(model):
    with pytest.raises(status.ServingError, match="output tensor alias not found"):
        predict_util.predict(model, "", {"x": X}, ["nope"])
    with pytest.raises(status.ServingError, match="duplicate output tensor alias"):
        predict_util.predict(model, "", {"x": X}, ["y", "y"])


def test_run_predict_fills_model_spec_and_float_val(model):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(X, request.inputs["x"])
    response = predict_util.run_predict(model, request)
    assert response.model_spec.name == "hp"
    assert response.model_spec.version.value == model.version
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs["y"].float_val) == [2.5, 3.0]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
