"""json_to_tensor: a JSON value becomes a tensor of the signature's dtype, by upstream's rules."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework.types_pb2 import (
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    DT_INT8,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT32,
)

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_to_tensor, status, tensor_codec


def test_the_signature_dtype_decides_not_the_json():
    assert json_to_tensor.tensor_from_json([1, 2.5], DT_FLOAT).dtype == np.float32
    assert json_to_tensor.tensor_from_json([[1, 2]], DT_DOUBLE).tolist() == [[1.0, 2.0]]
    strings = json_to_tensor.tensor_from_json(["a", {"b64": "aGk="}], DT_STRING)
    assert strings.tolist() == [b"a", b"hi"]


def test_narrow_ints_wrap_like_upstreams_cast():
    tensor = json_to_tensor.tensor_from_json([300, -1], DT_INT8)
    assert tensor.dtype == np.int8 and tensor.tolist() == [44, -1]


def test_doubles_take_exact_big_integers_only():
    assert json_to_tensor.tensor_from_json([9007199254740991], DT_DOUBLE).tolist() == [
        9007199254740991.0
    ]
    error = testing.serving_error(json_to_tensor.tensor_from_json, [9007199254740993], DT_DOUBLE)
    assert "to double without loss of precision" in error.message


@pytest.mark.parametrize(
    "value, dtype, expected",
    [
        ([[1, 2], [3]], DT_FLOAT, "Encountered list at unexpected size: 1 at level: 1"),
        ([[1, 2], 3], DT_FLOAT, "found at incorrect level: 2"),
        ([1, [2]], DT_FLOAT, "Encountered list at unexpected level: 1 expected < 1"),
        ([1.5], DT_INT32, "Type: Number is not of expected type: int32"),
        ([True, 1], DT_INT32, "Type: True is not of expected type: int32"),
        ([16777217], DT_FLOAT, "to float without loss of precision"),
        ([-1], DT_UINT32, "is not of expected type: uint32"),
        ([1.0], DT_HALF, "Conversion of JSON Value: 1.0 to type: half"),
        ([[[[1]]]] * 2, DT_STRING, "JSON Value: 1 Type: Number is not of expected type: string"),
    ],
)
def test_bad_values_fail_with_upstreams_message(value, dtype, expected):
    error = testing.serving_error(json_to_tensor.tensor_from_json, value, dtype)
    assert expected in error.message
    assert error.code.name == ("UNIMPLEMENTED" if dtype == DT_HALF else "INVALID_ARGUMENT")


def test_lists_nested_deeper_than_a_tensor_can_be_are_refused_before_walking():
    value: list = [1.0]
    for _ in range(json_to_tensor.MAX_RANK):
        value = [value]
    error = testing.serving_error(json_to_tensor.tensor_from_json, value, DT_FLOAT)
    assert f"nested {json_to_tensor.MAX_RANK + 1} levels deep" in error.message


def test_dense_tensor_takes_only_float_dtypes():
    values = np.array([[1.0, 2.5]])
    assert json_to_tensor.dense_tensor(values, DT_FLOAT).dtype == np.float32
    assert json_to_tensor.dense_tensor(values, DT_INT32) is None
    assert not json_to_tensor.takes_dense(DT_STRING)


# -- The fast path never disagrees with the exact walker ------------------------


def _outcome(convert, values=np.ndarray.tolist) -> tuple:
    """What `convert()` made (dtype, shape, `values` of the array) or the code it raised."""
    try:
        array = convert()
        return ("ok", array.dtype, array.shape, values(array))
    except status.ServingError as error:
        return ("error", error.code)


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
    dtype=st.sampled_from(
        [DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT8, DT_INT64, DT_UINT32, DT_BOOL, DT_STRING]
    ),
)
def test_fast_path_agrees_with_exact_conversion(value, dtype):
    fast = _outcome(lambda: json_to_tensor.tensor_from_json(value, dtype, may_have_bools=True))
    exact = _outcome(lambda: json_to_tensor.tensor_from_json_exact(value, dtype))
    if fast[0] == "ok" and exact[0] == "ok" and dtype in (DT_FLOAT, DT_DOUBLE):
        assert fast[:3] == exact[:3]
        np.testing.assert_array_equal(np.array(fast[3]), np.array(exact[3]))
    else:
        assert fast == exact


_numbers = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@settings(max_examples=400, deadline=None)
@given(
    value=st.lists(st.one_of(_numbers, st.lists(_numbers, max_size=3)), max_size=9),
    dtype=st.sampled_from([DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT8, DT_INT64, DT_UINT32]),
)
def test_conversion_in_steps_agrees_with_the_exact_walker(value, dtype):
    """Steps of two leaves: a list is cut where its steps' dtypes or shapes differ."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_to_tensor, "CONVERT_LEAVES", 2)
        patch.setattr(tensor_codec, "DECODE_CHUNK", 2)
        fast = _outcome(
            lambda: json_to_tensor.tensor_from_json(value, dtype, may_have_bools=False),
            np.ndarray.tobytes,
        )
        exact = _outcome(
            lambda: json_to_tensor.tensor_from_json_exact(value, dtype), np.ndarray.tobytes
        )
    assert fast == exact


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
