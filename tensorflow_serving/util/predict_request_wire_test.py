"""predict_request_wire parses what protobuf parses, or refuses before parsing.

The thresholds are lowered (every message walked, pieces of a few bytes), so
small messages exercise the walk and the splitting of fields and runs.
"""

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import predict_request_wire, proto_wire, tensor_codec

_T = types_pb2
DTYPES = [
    _T.DT_FLOAT,
    _T.DT_DOUBLE,
    _T.DT_INT32,
    _T.DT_INT8,
    _T.DT_UINT16,
    _T.DT_INT64,
    _T.DT_UINT32,
    _T.DT_UINT64,
    _T.DT_BOOL,
    _T.DT_HALF,
    _T.DT_STRING,
]


@pytest.fixture(autouse=True)
def walk_everything(monkeypatch):
    monkeypatch.setattr(predict_request_wire, "DIRECT_PARSE_BYTES", 0)
    monkeypatch.setattr(predict_request_wire, "PIECE_BYTES", 7)


def parse(data: bytes, max_decoded_bytes: int = 0) -> predict_pb2.PredictRequest:
    return predict_request_wire.parse(data, max_decoded_bytes)


@st.composite
def tensors(draw) -> tensor_pb2.TensorProto:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    array = np.asarray(
        draw(
            st.lists(
                st.integers(0, 300), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
            )
        )
    ).reshape(shape)
    if dtype == _T.DT_STRING:
        array = np.array([b"v" * int(v % 5) for v in array.ravel()], dtype=object).reshape(shape)
    else:
        array = array.astype(tensor_codec.numpy_dtype(dtype))
    proto = tensor_codec.to_tensor_proto(array)
    if dtype != _T.DT_STRING and draw(st.booleans()):
        proto.tensor_content = array.tobytes()
        proto.ClearField(tensor_codec.value_field(dtype))
    elif array.size and draw(st.booleans()):  # a fill: one value for the whole shape
        values = getattr(proto, tensor_codec.value_field(dtype))
        del values[1:]
    return proto


@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    st.dictionaries(st.text(max_size=3), tensors(), max_size=3),
    st.lists(st.text(max_size=4), max_size=3),
    st.text(max_size=5),
)
def test_a_walked_request_is_the_message_protobuf_parses(inputs, output_filter, name):
    request = predict_pb2.PredictRequest(output_filter=output_filter)
    request.model_spec.name = name
    for alias, tensor in inputs.items():
        request.inputs[alias].CopyFrom(tensor)
    data = request.SerializeToString()
    assert parse(data, 1 << 30) == predict_pb2.PredictRequest.FromString(data)


def entry(alias: bytes, *values: bytes) -> bytes:
    """An `inputs` map entry holding one or more TensorProto occurrences."""
    body = proto_wire.tag(1, 2) + proto_wire.varint(len(alias)) + alias
    for value in values:
        body += proto_wire.tag(2, 2) + proto_wire.varint(len(value)) + value
    return proto_wire.tag(2, 2) + proto_wire.varint(len(body)) + body


def header(dtype: int, dims: list[int]) -> bytes:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto.SerializeToString()


def unpacked_floats(values: list[float]) -> bytes:
    return b"".join(proto_wire.tag(5, proto_wire.FIXED32) + np.float32(v).tobytes() for v in values)


def test_unpacked_values_split_occurrences_and_repeated_keys_parse_as_protobuf_does():
    data = (
        entry(b"x", header(_T.DT_FLOAT, [3]) + unpacked_floats([1, 2]), unpacked_floats([3]))
        + entry(b"y", header(_T.DT_INT8, [1]))
        + entry(
            b"y",
            header(_T.DT_INT64, [2])
            + tensor_pb2.TensorProto(int64_val=[7, 300]).SerializeToString(),
        )
    )
    parsed = parse(data)
    assert parsed == predict_pb2.PredictRequest.FromString(data)
    assert list(parsed.inputs["x"].float_val) == [1, 2, 3]
    assert list(parsed.inputs["y"].int64_val) == [7, 300]


def strings(count: int) -> bytes:
    return tensor_pb2.TensorProto(string_val=[b""] * count).SerializeToString()


@pytest.mark.parametrize(
    "data, words",
    [
        (entry(b"x", header(_T.DT_STRING, [1000]) + strings(1)), "takes 48000 bytes once decoded"),
        (
            entry(b"x", header(_T.DT_STRING, [2]) + strings(10**5)),
            "more than 2 values in string_val",
        ),
        (
            entry(b"x", header(_T.DT_FLOAT, [3]) + unpacked_floats([1, 2, 3, 4])),
            "more than 3 values in float_val",
        ),
        (
            entry(
                b"x",
                header(_T.DT_INT64, [3]),
                tensor_pb2.TensorProto(int64_val=[1] * 9).SerializeToString(),
            ),
            "more than 3 values in int64_val",
        ),
        (
            entry(b"x", header(_T.DT_FLOAT, [2]) + strings(2)),
            "Input tensor x of dtype float carries values in string_val; its values go in float_val",
        ),
        (
            entry(b"x", header(_T.DT_FLOAT, [2]) + unpacked_floats([1]) + header(_T.DT_FLOAT, [])),
            "its dtype and shape must come before its values",
        ),
        (
            entry(b"x", unpacked_floats([1]) + header(_T.DT_FLOAT, [1])),
            "Unsupported tensor dtype: DT_INVALID",
        ),
        (entry(b"x", header(999, [1]) + strings(1)), "Unsupported tensor dtype: 999"),
        (entry(b"x", header(_T.DT_FLOAT, [-1])), "negative dimension"),
        (entry(b"x", header(_T.DT_FLOAT, [1] * 65)), "at most 64 are supported"),
        (entry(b"\xff", header(_T.DT_FLOAT, [1])), "an inputs key is not valid UTF-8"),
        (entry(b"x", header(_T.DT_FLOAT, [1]))[:-1], "not a valid PredictRequest"),
    ],
)
def test_a_request_past_its_budget_or_its_shape_is_refused_before_parsing(data, words):
    error = testing.serving_error(parse, data, 10_000)
    assert error.code.name == "INVALID_ARGUMENT"
    assert words in error.message


def test_the_walk_bounds_fields_per_request_entry_and_shape(monkeypatch):
    filters = predict_pb2.PredictRequest(output_filter=["a"] * 5).SerializeToString()
    monkeypatch.setattr(predict_request_wire, "MAX_REQUEST_FIELDS", 4)
    assert "more than 4 fields" in testing.serving_error(parse, filters).message
    key = proto_wire.tag(1, 2) + b"\x01x"
    crowded = proto_wire.tag(2, 2) + proto_wire.varint(3 * 17) + key * 17
    assert "more than 16 fields" in testing.serving_error(parse, crowded).message
    monkeypatch.setattr(predict_request_wire, "MAX_SHAPE_BYTES", 8)
    wide = entry(b"x", header(_T.DT_FLOAT, [1, 2, 3, 4]))
    assert "its shape takes more than 8 bytes" in testing.serving_error(parse, wide).message


def test_a_small_message_is_parsed_whole(monkeypatch):
    monkeypatch.setattr(predict_request_wire, "DIRECT_PARSE_BYTES", 1 << 20)
    data = entry(b"x", header(_T.DT_STRING, [1]) + strings(5))  # the walk would refuse it
    assert len(parse(data, 1).inputs["x"].string_val) == 5


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
