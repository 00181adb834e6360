"""Inputs for a user's signature, and the gRPC/REST requests that carry them."""

import sys

import numpy as np
import orjson
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import signature_inputs
from tensorflow_serving.util import tensor_codec


def _signature(**inputs) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for alias, (dtype, shape) in inputs.items():
        info = sig.inputs[alias]
        info.name = f"{alias}:0"
        info.dtype = dtype
        if shape is None:
            info.tensor_shape.unknown_rank = True
        else:
            for d in shape:
                info.tensor_shape.dim.add(size=d)
    out = sig.outputs["y"]
    out.name, out.dtype = "y:0", types_pb2.DT_FLOAT
    out.tensor_shape.dim.add(size=-1)
    out.tensor_shape.dim.add(size=10)
    return sig


def test_row_shapes_come_from_the_signature_the_graph_or_the_user():
    sig = _signature(
        a=(types_pb2.DT_FLOAT, [-1, 784]),
        b=(types_pb2.DT_INT64, None),
        c=(types_pb2.DT_FLOAT, None),
    )
    inputs, outputs = signature_inputs.signature_specs(
        sig, {"c": (28, 28)}, lambda name: (-1, 3) if name == "b:0" else None
    )
    assert [(s.alias, s.dtype, s.row_shape) for s in inputs] == [
        ("a", "float32", (784,)),
        ("b", "int64", (3,)),
        ("c", "float32", (28, 28)),
    ]
    assert outputs[0].row_shape == (10,)


def test_an_unknown_row_shape_asks_for_input_shape():
    inputs, _ = signature_inputs.signature_specs(_signature(x=(types_pb2.DT_FLOAT, None)), {})
    with pytest.raises(ValueError, match="--input_shape=x="):
        signature_inputs.make_inputs(inputs, 2)


def test_overrides_must_name_inputs_and_parse():
    assert signature_inputs.parse_shape_overrides(["x=28,28,1", "y="]) == {
        "x": (28, 28, 1),
        "y": (),
    }
    with pytest.raises(ValueError):
        signature_inputs.parse_shape_overrides(["x"])
    with pytest.raises(ValueError, match="not inputs"):
        signature_inputs.signature_specs(_signature(x=(types_pb2.DT_FLOAT, [-1])), {"z": ()})


def test_synthetic_inputs_have_the_batch_dtype_and_kind():
    inputs, _ = signature_inputs.signature_specs(
        _signature(f=(types_pb2.DT_FLOAT, [-1, 50]), i=(types_pb2.DT_INT32, [-1, 2])), {}
    )
    arrays = signature_inputs.make_inputs(inputs, 4, "sparse")
    assert arrays["f"].shape == (4, 50) and arrays["f"].dtype == np.float32
    assert 0 < np.count_nonzero(arrays["f"]) < 4 * 50 * 0.5
    assert arrays["i"].shape == (4, 2) and arrays["i"].dtype == np.int32
    zeros = signature_inputs.make_inputs(inputs, 1, "zeros")
    assert not zeros["f"].any()


def test_rows_from_data_are_cycled_to_the_batch(tmp_path):
    inputs, _ = signature_inputs.signature_specs(_signature(images=(types_pb2.DT_FLOAT, None)), {})
    path = tmp_path / "rows.npz"
    np.savez(path, x=np.arange(6, dtype=np.float64).reshape(2, 3))
    data = signature_inputs.load_input_data(str(path), inputs)  # one array, one input
    arrays = signature_inputs.make_inputs(inputs, 3, data=data)
    np.testing.assert_array_equal(arrays["images"], [[0, 1, 2], [3, 4, 5], [0, 1, 2]])
    assert arrays["images"].dtype == np.float32


def test_grpc_and_rest_requests_carry_the_same_values():
    x = np.random.default_rng(1).random((3, 5)).astype(np.float32)
    raw = signature_inputs.grpc_request("m", "sig", {"x": x})
    request = predict_pb2.PredictRequest.FromString(raw)
    assert request.model_spec.name == "m" and request.model_spec.signature_name == "sig"
    assert request.inputs["x"].tensor_content  # as tf.make_tensor_proto writes it
    np.testing.assert_array_equal(tensor_codec.to_ndarray(request.inputs["x"]), x)
    body = orjson.loads(signature_inputs.rest_body("sig", {"x": x}))
    assert body["signature_name"] == "sig"
    np.testing.assert_array_equal(np.asarray(body["instances"], np.float32), x)
    columnar = orjson.loads(signature_inputs.rest_body("sig", {"x": x, "z": x[:, :1]}, "inputs"))
    assert sorted(columnar["inputs"]) == ["x", "z"]
    rows = orjson.loads(signature_inputs.rest_body("sig", {"x": x, "z": x[:, :1]}))
    assert len(rows["instances"]) == 3 and sorted(rows["instances"][0]) == ["x", "z"]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
