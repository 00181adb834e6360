"""json_to_tensor: a JSON value becomes a tensor of the signature's dtype, by upstream's rules."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_to_tensor, status

FLOAT = types_pb2.DT_FLOAT
DOUBLE = types_pb2.DT_DOUBLE
INT32 = types_pb2.DT_INT32
INT8 = types_pb2.DT_INT8
INT64 = types_pb2.DT_INT64
UINT32 = types_pb2.DT_UINT32
BOOL = types_pb2.DT_BOOL
STRING = types_pb2.DT_STRING
HALF = types_pb2.DT_HALF


def error_of(fn, *args) -> status.ServingError:
    with pytest.raises(status.ServingError) as caught:
        fn(*args)
    return caught.value


def test_the_signature_dtype_decides_not_the_json():
    assert json_to_tensor.tensor_from_json([1, 2.5], FLOAT).dtype == np.float32
    assert json_to_tensor.tensor_from_json([[1, 2]], DOUBLE).tolist() == [[1.0, 2.0]]
    strings = json_to_tensor.tensor_from_json(["a", {"b64": "aGk="}], STRING)
    assert strings.tolist() == [b"a", b"hi"]


def test_narrow_ints_wrap_like_upstreams_cast():
    tensor = json_to_tensor.tensor_from_json([300, -1], INT8)
    assert tensor.dtype == np.int8 and tensor.tolist() == [44, -1]


def test_doubles_take_exact_big_integers_only():
    assert json_to_tensor.tensor_from_json([9007199254740991], DOUBLE).tolist() == [
        9007199254740991.0
    ]
    error = error_of(json_to_tensor.tensor_from_json, [9007199254740993], DOUBLE)
    assert "to double without loss of precision" in error.message


@pytest.mark.parametrize(
    "value, dtype, expected",
    [
        ([[1, 2], [3]], FLOAT, "Encountered list at unexpected size: 1 at level: 1"),
        ([[1, 2], 3], FLOAT, "found at incorrect level: 2"),
        ([1, [2]], FLOAT, "Encountered list at unexpected level: 1 expected < 1"),
        ([1.5], INT32, "Type: Number is not of expected type: int32"),
        ([True, 1], INT32, "Type: True is not of expected type: int32"),
        ([16777217], FLOAT, "to float without loss of precision"),
        ([-1], UINT32, "is not of expected type: uint32"),
        ([1.0], HALF, "Conversion of JSON Value: 1.0 to type: half"),
        ([[[[1]]]] * 2, STRING, "JSON Value: 1 Type: Number is not of expected type: string"),
    ],
)
def test_bad_values_fail_with_upstreams_message(value, dtype, expected):
    error = error_of(json_to_tensor.tensor_from_json, value, dtype)
    assert expected in error.message
    assert error.code.name == ("UNIMPLEMENTED" if dtype == HALF else "INVALID_ARGUMENT")


def test_lists_nested_deeper_than_a_tensor_can_be_are_refused_before_walking():
    value: list = [1.0]
    for _ in range(json_to_tensor.MAX_RANK):
        value = [value]
    error = error_of(json_to_tensor.tensor_from_json, value, FLOAT)
    assert f"nested {json_to_tensor.MAX_RANK + 1} levels deep" in error.message


def test_dense_tensor_takes_only_float_dtypes():
    values = np.array([[1.0, 2.5]])
    assert json_to_tensor.dense_tensor(values, FLOAT).dtype == np.float32
    assert json_to_tensor.dense_tensor(values, INT32) is None
    assert not json_to_tensor.takes_dense(STRING)


# -- The fast path never disagrees with the exact walker ------------------------

_leaves = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
_nested = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(
    value=_nested,
    dtype=st.sampled_from([FLOAT, DOUBLE, INT32, INT8, INT64, UINT32, BOOL, STRING]),
)
def test_fast_path_agrees_with_exact_conversion(value, dtype):
    def run(fn):
        try:
            array = fn()
            return ("ok", array.dtype, array.shape, array.tolist())
        except status.ServingError as error:
            return ("error", error.code)

    fast = run(lambda: json_to_tensor.tensor_from_json(value, dtype, may_have_bools=True))
    exact = run(lambda: json_to_tensor.tensor_from_json_exact(value, dtype))
    if fast[0] == "ok" and exact[0] == "ok" and dtype in (FLOAT, DOUBLE):
        assert fast[:3] == exact[:3]
        np.testing.assert_array_equal(np.array(fast[3]), np.array(exact[3]))
    else:
        assert fast == exact


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
