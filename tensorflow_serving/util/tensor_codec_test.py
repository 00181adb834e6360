"""Our TensorProto codec agrees with TensorFlow's own make_ndarray / make_tensor_proto."""

import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status, tensor_codec

ARRAYS = [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    np.arange(6, dtype=np.float64).reshape(2, 3),
    np.array([[1, -2], [3, 4]], dtype=np.int32),
    np.array([1, 2**40], dtype=np.int64),
    np.array([0, 255], dtype=np.uint8),
    np.array([-3, 7], dtype=np.int8),
    np.array([True, False, True]),
    np.array([0.5, -1.25], dtype=np.float16),
    np.array([b"abc", b"\x00\xff"], dtype=object),
    np.float32(3.5).reshape(()),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_decodes_what_tensorflow_encodes(array):
    proto = tf.make_tensor_proto(array)
    decoded = tensor_codec.to_ndarray(proto)
    np.testing.assert_array_equal(decoded, tf.make_ndarray(proto))
    assert decoded.shape == array.shape


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_tensorflow_decodes_what_we_encode(array):
    proto = tensor_codec.to_tensor_proto(array)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    assert not proto.tensor_content, "answers use typed fields, as the stock server writes"


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_as_tensor_content_numbers_travel_as_bytes_that_tensorflow_reads(array):
    """--enable_serialization_as_tensor_content: raw bytes for numbers, string_val for strings."""
    proto = tensor_codec.to_tensor_proto(array, as_tensor_content=True)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    np.testing.assert_array_equal(tensor_codec.to_ndarray(proto), array)
    typed_values = [field.name for field, _ in proto.ListFields() if field.name.endswith("_val")]
    if array.dtype == object:
        assert not proto.tensor_content and list(proto.string_val) == list(array.ravel())
    else:
        assert proto.tensor_content == array.astype(array.dtype.newbyteorder("<")).tobytes()
        assert typed_values == [], "no value is written twice"


def test_float_outputs_use_float_val_like_the_stock_server():
    proto = tensor_codec.to_tensor_proto(np.array([[0.25, 0.75]], dtype=np.float32))
    assert list(proto.float_val) == [0.25, 0.75]
    assert [d.size for d in proto.tensor_shape.dim] == [1, 2]


@pytest.mark.parametrize(
    "array",
    [
        np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, 3.4e38], dtype=np.float32),
        np.arange(40000, dtype=np.float32).reshape(200, 200) / 3,  # byte length over 2**17
        np.arange(16, dtype=np.float64).reshape(4, 4)[:, ::2],  # not contiguous
        np.zeros((0, 3), dtype=np.float32),
    ],
    ids=["specials", "large", "strided", "empty"],
)
def test_float_fields_are_the_same_message_as_value_by_value(array):
    """Floats are handed to protobuf as packed bytes: same bytes as appending each value."""
    proto = tensor_codec.to_tensor_proto(array)
    expected = tensor_pb2.TensorProto()
    expected.CopyFrom(proto)
    field = "float_val" if array.dtype == np.float32 else "double_val"
    expected.ClearField(field)
    getattr(expected, field).extend(array.ravel().tolist())
    assert proto.SerializeToString() == expected.SerializeToString()
    np.testing.assert_array_equal(tensor_codec.to_ndarray(proto), array)


def test_tensor_content_is_read_without_copying():
    array = np.arange(784, dtype=np.float32).reshape(1, 784)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=array.tobytes())
    proto.tensor_shape.dim.add(size=1)
    proto.tensor_shape.dim.add(size=784)
    np.testing.assert_array_equal(tensor_codec.to_ndarray(proto), array)


def test_single_value_fills_the_shape_as_tensorflow_does():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0])
    proto.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(tensor_codec.to_ndarray(proto), [2.0, 2.0, 2.0])


def test_wrong_value_count_is_a_clear_invalid_argument():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0])
    proto.tensor_shape.dim.add(size=3)
    with pytest.raises(status.ServingError) as raised:
        tensor_codec.to_ndarray(proto)
    assert raised.value.http_status() == 400
    assert "2 values" in raised.value.message and "[3]" in raised.value.message


def test_wrong_content_length_is_a_clear_invalid_argument():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00" * 7)
    proto.tensor_shape.dim.add(size=2)
    with pytest.raises(status.ServingError, match="7 bytes"):
        tensor_codec.to_ndarray(proto)


def test_unsupported_dtype_is_rejected():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE)
    with pytest.raises(status.ServingError, match="DT_RESOURCE"):
        tensor_codec.to_ndarray(proto)


# -- Hostile TensorProtos: INVALID_ARGUMENT, never an allocation the request did not pay for


def _proto(dtype, dims, **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize(
    "proto,words",
    [
        (_proto(types_pb2.DT_FLOAT, [1] * 65, float_val=[1.0]), "65 dimensions; at most 64"),
        (_proto(types_pb2.DT_FLOAT, [2**40]), "filling more than"),
        (_proto(types_pb2.DT_STRING, [2**40], string_val=[b"a"]), "filling more than"),
        (_proto(types_pb2.DT_FLOAT, [2**62, 2**62, 4], tensor_content=b"1234"), "too large"),
        (_proto(types_pb2.DT_FLOAT, [0, 2**62, 2**62]), "too large"),
        (_proto(types_pb2.DT_FLOAT, [2**61, 4], tensor_content=b"12345678"), "too large"),
        (_proto(types_pb2.DT_FLOAT, [3], float_val=[1.0, 2.0]), "2 values in float_val"),
        (_proto(types_pb2.DT_DOUBLE, [2], tensor_content=b"1234"), "4 bytes does not match"),
        (_proto(types_pb2.DT_FLOAT, [-1]), "negative dimension"),
        (_proto(999, [1]), "Unsupported tensor dtype: 999"),
        (_proto(types_pb2.DT_RESOURCE, [1]), "Unsupported tensor dtype: DT_RESOURCE"),
    ],
)
def test_hostile_protos_are_invalid_argument(proto, words):
    with pytest.raises(status.ServingError) as caught:
        tensor_codec.to_ndarray(proto)
    assert caught.value.code.name == "INVALID_ARGUMENT"
    assert words in caught.value.message


def test_fill_up_to_the_limit_is_still_served():
    proto = _proto(types_pb2.DT_INT8, [tensor_codec.MAX_FILL_ELEMENTS], int_val=[7])
    array = tensor_codec.to_ndarray(proto)
    assert array.shape == (tensor_codec.MAX_FILL_ELEMENTS,) and array[-1] == 7


@pytest.mark.parametrize(
    "dtype,field,values,expected",
    [
        (types_pb2.DT_INT8, "int_val", [1000, -129], [-24, 127]),
        (types_pb2.DT_UINT8, "int_val", [-1, 256], [255, 0]),
        (types_pb2.DT_INT16, "int_val", [70000, -40000], [4464, 25536]),
        (types_pb2.DT_UINT16, "int_val", [-1, 65536], [65535, 0]),
        (types_pb2.DT_HALF, "half_val", [0x13C00, -1], [0x3C00, 0xFFFF]),  # 1.0, NaN
    ],
)
def test_out_of_range_narrow_values_wrap_like_a_c_cast(dtype, field, values, expected):
    # TensorFlow's C++ Tensor::FromProto static_casts; tf.make_ndarray raises OverflowError.
    array = tensor_codec.to_ndarray(_proto(dtype, [2], **{field: values}))
    assert array.dtype == tensor_codec.numpy_dtype(dtype)
    bits = array.view(np.uint16) if dtype == types_pb2.DT_HALF else array
    assert bits.tolist() == expected


def test_values_in_a_field_the_dtype_does_not_read_are_refused():
    # TensorFlow would ignore them (and feed zeros): a client's mistake, said as such.
    proto = _proto(types_pb2.DT_FLOAT, [2], int_val=[1, 2])
    error = testing.serving_error(tensor_codec.to_ndarray, proto)
    assert (
        error.message
        == "Tensor of dtype float carries values in int_val; its values go in float_val"
    )


@pytest.mark.parametrize(
    "array",
    [
        np.arange(7, dtype=np.float32),
        np.arange(7, dtype=np.int64).reshape(7, 1),
        np.array([1000, -129, 5, 6, 7], dtype=np.int32).astype(np.int8),
        np.arange(5, dtype=np.float16),
        np.array([True, False, True]),
        np.array([b"a", b"", b"c", b"dd", b"e"], dtype=object),
    ],
    ids=lambda array: str(array.dtype),
)
def test_a_field_decoded_in_steps_is_the_same_array(array, monkeypatch):
    monkeypatch.setattr(tensor_codec, "DECODE_CHUNK", 2)
    decoded = tensor_codec.to_ndarray(tensor_codec.to_tensor_proto(array))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    assert decoded.tolist() == array.tolist()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
