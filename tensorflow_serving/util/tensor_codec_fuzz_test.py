"""Fuzzes the TensorProto decoder (atheris): arbitrary bytes parsed as a TensorProto.

What `one_input` holds for every input that parses as a TensorProto:
- `tensor_codec.to_ndarray` returns an array or raises ServingError, nothing else;
- a returned array has the proto's dtype and shape;
- it survives a round trip through `to_tensor_proto` unchanged (bit for bit, but
  for NaN payloads).
Fills are capped lower than in the server (MAX_FILL_ELEMENTS) so each input
stays cheap; the cap's logic is the same. Runs FUZZ_SECONDS (default 25).
"""

import sys

import numpy as np
from google.protobuf import message
from tensorflow.core.framework import tensor_pb2, types_pb2

from tensorflow_serving.test_util import fuzzing, testing

FUZZ_FILL_ELEMENTS = 1 << 16


def _proto(dtype, dims, **fields) -> bytes:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto.SerializeToString()


_T = types_pb2
SEEDS = [
    _proto(_T.DT_FLOAT, [2, 2], tensor_content=np.arange(4, dtype=np.float32).tobytes()),
    _proto(_T.DT_FLOAT, [3], float_val=[1.5]),
    _proto(_T.DT_DOUBLE, [2], double_val=[1.0, float("nan")]),
    _proto(_T.DT_INT32, [2], int_val=[-1, 2**31 - 1]),
    _proto(_T.DT_INT8, [2], int_val=[1000, -129]),
    _proto(_T.DT_UINT16, [1], int_val=[-1]),
    _proto(_T.DT_INT64, [1, 1], int64_val=[-(2**63)]),
    _proto(_T.DT_UINT32, [1], uint32_val=[2**32 - 1]),
    _proto(_T.DT_UINT64, [1], uint64_val=[2**64 - 1]),
    _proto(_T.DT_BOOL, [2], bool_val=[True, False]),
    _proto(_T.DT_HALF, [2], half_val=[0x3C00, 0x7E00]),
    _proto(_T.DT_STRING, [2], string_val=[b"a", b"\xff"]),
    _proto(_T.DT_STRING, [0, 3]),
    _proto(_T.DT_FLOAT, [-1]),
    _proto(999, [1]),
]


def _bits(array: np.ndarray):
    if array.size == 0:
        return None  # (tolist() of a (2**43, 0) array would build 2**43 lists)
    if array.dtype.kind == "f":  # NaN payloads may change (signalling NaNs get quieted)
        nan = np.isnan(array)
        return nan.tolist(), np.where(nan, 0, array).tobytes()
    if array.dtype == object:
        return array.tolist()
    if array.dtype == np.bool_:
        return (array.view(np.uint8) != 0).tolist()  # TensorFlow reads any non-zero byte as true
    return array.tobytes()


def one_input(data: bytes) -> None:
    from tensorflow_serving.util import status, tensor_codec

    proto = tensor_pb2.TensorProto()
    try:
        proto.ParseFromString(data)
    except message.DecodeError:
        return  # not a TensorProto: gRPC answers INVALID_ARGUMENT before our code runs
    try:
        array = tensor_codec.to_ndarray(proto)
    except status.ServingError:
        return
    assert array.dtype == tensor_codec.numpy_dtype(proto.dtype), (array.dtype, proto.dtype)
    assert list(array.shape) == [d.size for d in proto.tensor_shape.dim], array.shape
    again = tensor_codec.to_ndarray(tensor_codec.to_tensor_proto(array))
    assert again.dtype == array.dtype and again.shape == array.shape
    assert _bits(again) == _bits(array), (array, again)


def _cheap_fills() -> None:
    from tensorflow_serving.util import tensor_codec

    tensor_codec.MAX_FILL_ELEMENTS = FUZZ_FILL_ELEMENTS


def test_fuzz_tensor_proto_decoder(tmp_path, record_property):
    fuzzing.assert_finds_nothing(__file__, tmp_path, SEEDS, record_property=record_property)


def test_seeds_pass_the_checks():
    for seed in SEEDS:
        one_input(seed)


if __name__ == "__main__":
    if fuzzing.is_child():
        fuzzing.fuzz(one_input, ("tensorflow_serving.util.tensor_codec",), setup=_cheap_fills)
    sys.exit(testing.main(__file__))
