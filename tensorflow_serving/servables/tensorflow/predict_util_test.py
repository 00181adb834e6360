"""Predict checks requests the way upstream does and answers with typed fields."""

import sys

import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.servables.tensorflow import predict_util
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status, tensor_codec
from tensorflow_serving.util.executors import CALLING_THREAD

X = np.array([[1.0], [2.0]], np.float32)


def predict(handle, signature_name, inputs, output_filter=()):
    """submit_predict on the calling thread, waiting for the outputs."""
    signature, outputs = predict_util.submit_predict(
        handle, signature_name, inputs, output_filter, CALLING_THREAD
    )
    return signature, outputs.result()


def test_default_signature_and_all_outputs(model):
    signature, out = predict(model, "", {"x": X})
    assert signature.key == "serving_default"
    np.testing.assert_allclose(out["y"].ravel(), [2.5, 3.0])


def test_missing_and_extra_inputs_are_named(model):
    with pytest.raises(status.ServingError) as raised:
        predict(model, "", {"z": X})
    assert raised.value.http_status() == 400
    assert "Send extra: {z}. Missing but required: {x}." in raised.value.message


def test_wrong_dtype_is_invalid_argument(model):
    with pytest.raises(status.ServingError, match="to be float but double is provided"):
        predict(model, "", {"x": X.astype(np.float64)})


def test_output_filter(model):
    with pytest.raises(status.ServingError, match="output tensor alias not found"):
        predict(model, "", {"x": X}, ["nope"])
    with pytest.raises(status.ServingError, match="duplicate output tensor alias"):
        predict(model, "", {"x": X}, ["y", "y"])


def test_predict_response_fills_model_spec_and_float_val(model):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(X, request.inputs["x"])
    signature, outputs = predict(model, "", predict_util.decode_inputs(request))
    response = predict_util.predict_response(model, signature, outputs)
    assert response.model_spec.name == "hp"
    assert response.model_spec.version.value == model.version
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs["y"].float_val) == [2.5, 3.0]


def _tensors(**protos) -> dict:
    request = predict_pb2.PredictRequest()
    for alias, proto in protos.items():
        request.inputs[alias].CopyFrom(proto)
    return request.inputs


@pytest.mark.parametrize(
    "inputs, budget, words",
    [
        ({"z": tensor_codec.to_tensor_proto(X)}, 0, "Send extra: {z}. Missing but required: {x}."),
        (
            {"x": tensor_codec.to_tensor_proto(np.array([b"a", b"b"], dtype=object))},
            0,
            "Expects arg[0] to be float but string is provided",
        ),
        (
            {"x": tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a", b"b"])},
            0,
            "Tensor has 2 values in string_val but its shape [] holds 1",
        ),
        (
            {"x": tensor_codec.to_tensor_proto(np.ones([1000, 1], np.float32))},
            3999,
            "Input tensor x of shape [1000, 1] and dtype float takes 4000 bytes once decoded",
        ),
    ],
)
def test_tensors_are_checked_against_the_signature_and_budget_before_decoding(
    model, inputs, budget, words
):
    signature = model.servable.signature(predict_util.DEFAULT_SIGNATURE)
    error = testing.serving_error(
        predict_util.check_input_tensors, signature, _tensors(**inputs), "hp", budget
    )
    assert error.code.name == "INVALID_ARGUMENT"
    assert words in error.message


def test_tensors_within_the_budget_pass(model):
    signature = model.servable.signature(predict_util.DEFAULT_SIGNATURE)
    inputs = _tensors(x=tensor_codec.to_tensor_proto(np.ones([1000, 1], np.float32)))
    predict_util.check_input_tensors(signature, inputs, "hp", 4000)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
