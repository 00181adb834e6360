"""One JSON value (a scalar or nested lists) as a tensor of a signature's dtype.

Upstream's rules (json_tensor.cc), which a client relies on:

- The dtype comes from the signature, never from the JSON: `1` feeds a
  float input as 1.0, while `1.5` for an int input is a type error.
  Integers for float inputs must be exact (|n| < 2**24 for float32).
- Nested lists must be dense: the shape is read along the first elements,
  and every list must match it.
- Strings feed DT_STRING as UTF-8; `{"b64": "..."}` feeds it raw bytes.
- Narrow integer types (int8, uint8, int16) are filled as int32 and
  narrowed like a C cast.

Two paths give the same results. The exact walker checks element by element
and words upstream's errors. The fast path makes the array with one
`np.array` call and cheap vectorised checks, and declines (returns None)
whenever it cannot vouch for the walker's answer; then the walker decides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from tensorflow_serving.util import status, tensor_codec
from tensorflow_serving.util.json_value import (
    DBL_MAX,
    DOUBLE_MAX_INT,
    FLOAT_MAX_INT,
    FLT_MAX,
    INT32_RANGE,
    INT64_RANGE,
    UINT32_RANGE,
    UINT64_RANGE,
    decode_base64_object,
    is_lossless,
    lossy_error,
    type_error,
    value_to_string,
)

# numpy holds at most 64 dimensions (TensorFlow 254); deeper lists are refused
# before anything walks them recursively.
MAX_RANK = 64
# Leaves converted per np.array call: a long list is converted in steps, so that
# no single call holds the interpreter for long.
CONVERT_LEAVES = tensor_codec.DECODE_CHUNK

_SMALL_INTS = (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8)
# The integers a JSON value may be for each integer dtype (narrow ones are filled as int32).
_INT_RANGES = {
    **dict.fromkeys(_SMALL_INTS, INT32_RANGE),
    types_pb2.DT_INT64: INT64_RANGE,
    types_pb2.DT_UINT32: UINT32_RANGE,
    types_pb2.DT_UINT64: UINT64_RANGE,
}
# Signature dtypes a JSON value can be converted to (upstream's list).
_SUPPORTED_INPUT_DTYPES = frozenset(
    {
        types_pb2.DT_FLOAT,
        types_pb2.DT_DOUBLE,
        *_SMALL_INTS,
        types_pb2.DT_INT64,
        types_pb2.DT_UINT32,
        types_pb2.DT_UINT64,
        types_pb2.DT_BOOL,
        types_pb2.DT_STRING,
    }
)


def tensor_from_json(value: Any, dtype: int, may_have_bools: bool = True) -> np.ndarray:
    """`value` as a tensor of `dtype` (a DataType); INVALID_ARGUMENT/UNIMPLEMENTED as upstream.

    Always what tensor_from_json_exact returns or raises. `may_have_bools`
    False promises that no JSON true/false hides in `value` (the request body
    has none), which lets numeric inputs take the fast path.
    """
    array = fast_tensor(value, dtype, may_have_bools)
    if array is not None:
        return array
    return tensor_from_json_exact(value, dtype)


def tensor_from_json_exact(value: Any, dtype: int) -> np.ndarray:
    """The exact conversion: upstream's checks and messages, element by element."""
    shape = checked_shape(value)
    leaves: list = []
    collect_leaves(value, shape, dtype, leaves)
    return array_from_leaves(leaves, shape, dtype)


# ---------------------------------------------------------------------------
# The exact walker


def dense_shape(value: Any) -> list[int]:
    """The shape a nested list claims, read along its first elements (as upstream)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def checked_shape(value: Any, outer: int = 0) -> list[int]:
    """dense_shape, refusing lists nested deeper than a tensor can be (`outer`: batch dims)."""
    shape = dense_shape(value)
    if len(shape) + outer > MAX_RANK:
        raise status.invalid_argument(
            f"JSON list nested {len(shape) + outer} levels deep: a tensor has at most "
            f"{MAX_RANK} dimensions"
        )
    return shape


def collect_leaves(value: Any, shape: list[int], dtype: int, out: list) -> None:
    """Checks nested lists `value` against `shape`; appends its leaves, as `dtype` values, to `out`.

    Raises upstream's error for the first leaf at the wrong level, list of
    the wrong size, or scalar `dtype` does not take.
    """
    _walk(value, 0, shape, dtype, out)


def _walk(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise status.invalid_argument(
                f"JSON Value: {value_to_string(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != types_pb2.DT_STRING:
                raise type_error(value, dtype)
            out.append(decode_base64_object(value))
        else:
            out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise status.invalid_argument(
            f"Encountered list at unexpected level: {level} expected < {rank}"
        )
    if len(value) != shape[level]:
        raise status.invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _walk(item, level + 1, shape, dtype, out)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_in(value: Any, bounds: tuple[int, int]) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    )


def _leaf(value: Any, dtype: int) -> Any:
    """One JSON scalar as a value of `dtype`, or upstream's error."""
    if dtype == types_pb2.DT_FLOAT:
        if not _is_number(value):
            raise type_error(value, dtype)
        if not is_lossless(value, FLOAT_MAX_INT, FLT_MAX):
            raise lossy_error(value, "float")
        return float(value)
    if dtype == types_pb2.DT_DOUBLE:
        if not _is_number(value):
            raise type_error(value, dtype)
        try:
            as_float = float(value)
        except OverflowError:
            raise lossy_error(value, "double") from None
        if not is_lossless(value, DOUBLE_MAX_INT, DBL_MAX):
            raise lossy_error(value, "double")
        return as_float
    bounds = _INT_RANGES.get(dtype)
    if bounds is not None:
        if not _int_in(value, bounds):
            raise type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise type_error(value, dtype)
        return value.encode("utf-8")
    raise status.unimplemented(
        f"Conversion of JSON Value: {value_to_string(value)} to type: "
        f"{tensor_codec.dtype_name(dtype)}"
    )


def array_from_leaves(leaves: list, shape: list[int], dtype: int) -> np.ndarray:
    """The tensor of `dtype` and `shape` holding `leaves` (as collect_leaves made them).

    Narrow integers are stored as int32 and narrowed like a C cast (wrapping),
    as upstream does; a long list is converted in steps (tensor_codec).
    """
    return tensor_codec.values_to_array(leaves, dtype).reshape(shape)


# ---------------------------------------------------------------------------
# The fast path


def fast_tensor(value: Any, dtype: int, may_have_bools: bool) -> np.ndarray | None:
    """`value` as a tensor of `dtype` made in bulk, or None when the exact walker must decide.

    A tensor returned here is always the one tensor_from_json_exact would
    return; None promises nothing either way.
    """
    if dtype == types_pb2.DT_STRING:
        return _fast_strings(value)
    return _fast_numeric(value, dtype, may_have_bools)


def _fast_strings(value: Any) -> np.ndarray | None:
    """A scalar or flat list of plain strings (the common case for string inputs)."""
    if isinstance(value, str):
        return np.array(value.encode("utf-8"), dtype=object)
    if not isinstance(value, list) or not all(type(v) is str for v in value):
        return None
    flat = np.empty(len(value), dtype=object)
    flat[:] = [v.encode("utf-8") for v in value]
    return flat


def _fast_numeric(value: Any, dtype: int, may_have_bools: bool) -> np.ndarray | None:
    """One np.array call plus range checks; None when the exact walker must decide.

    Python bools hide inside numeric arrays (True becomes 1), so any numeric
    input whose request body mentions true/false goes to the walker.
    """
    if dtype not in _SUPPORTED_INPUT_DTYPES or dtype == types_pb2.DT_STRING:
        return None
    if may_have_bools and dtype != types_pb2.DT_BOOL:
        return None
    try:
        array = _numpy_array(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if array is None:
        return None
    kind = array.dtype.kind
    target = tensor_codec.numpy_dtype(dtype)
    if dtype == types_pb2.DT_BOOL:
        return array if kind == "b" else None
    if kind not in "iuf":
        return None
    if array.size == 0:
        return np.zeros(array.shape, dtype=target)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        return None if kind == "u" else _floating(array, dtype)
    if kind != "i":
        return None  # a float or an int beyond int64 somewhere: walker's message
    low, high = int(array.min()), int(array.max())
    if dtype in _SMALL_INTS:
        if low < INT32_RANGE[0] or high > INT32_RANGE[1]:
            return None
        return array.astype(np.int32).astype(target)
    if dtype == types_pb2.DT_INT64:
        return array.astype(target)
    if dtype in (types_pb2.DT_UINT32, types_pb2.DT_UINT64):
        if low < 0 or (dtype == types_pb2.DT_UINT32 and high > UINT32_RANGE[1]):
            return None
        return array.astype(target)
    return None


def _numpy_array(value: Any) -> np.ndarray | None:
    """np.array(value), made in steps of about CONVERT_LEAVES leaves when `value` is a
    long list; None when the steps' dtypes disagree in a way np.array would settle
    otherwise than float64 (the exact walker then decides). Raises as np.array does."""
    if not isinstance(value, list) or not value:
        return np.array(value)
    rows = max(1, CONVERT_LEAVES // max(1, math.prod(dense_shape(value[0]))))
    if len(value) <= rows:
        return np.array(value)
    parts = [np.array(value[start : start + rows]) for start in range(0, len(value), rows)]
    if any(part.shape[1:] != parts[0].shape[1:] for part in parts):
        raise ValueError("the list is not dense")  # as np.array says of ragged lists
    dtypes = {part.dtype for part in parts}
    if len(dtypes) == 1:
        dtype = parts[0].dtype
    elif {d.kind for d in dtypes} <= {"i", "f"}:
        dtype = np.dtype(np.float64)  # ints and floats: np.array makes float64 of them
    else:
        return None
    array = np.empty((len(value), *parts[0].shape[1:]), dtype=dtype)
    for index, part in enumerate(parts):
        array[index * rows : index * rows + len(part)] = part
    return array


def _floating(array: np.ndarray, dtype: int) -> np.ndarray | None:
    """Numbers (int64 or float64) as a DT_FLOAT/DT_DOUBLE tensor; None: the walker judges.

    Floats are fine up to FLT_MAX, integers only up to what the type holds
    exactly; numbers that mixed both became float64, so the walker judges
    big values. (min/max rather than abs: no temporary array, and a NaN
    compares False.)
    """
    limit = FLOAT_MAX_INT if dtype == types_pb2.DT_FLOAT else DOUBLE_MAX_INT
    if not _surely_within(array, limit) and not (-limit <= array.min() and array.max() <= limit):
        return None
    return array.astype(tensor_codec.numpy_dtype(dtype))


def _surely_within(array: np.ndarray, limit: int) -> bool:
    """True only if no |value| exceeds `limit`: one reduction instead of min and max.

    A float64 array's sum of squares bounds each square from above (the
    terms are not negative, and rounding keeps a sum at least as big as its
    biggest term); the 0.999 margin covers rounding near the bound. NaN and
    overflow compare False, and False only means "check exactly".
    """
    if array.dtype != np.float64 or not array.flags.c_contiguous:
        return False
    flat = array.reshape(-1)
    with np.errstate(over="ignore"):  # an overflow is inf, which compares False
        return bool(flat.dot(flat) <= (limit * 0.999) ** 2)


def takes_dense(dtype: int) -> bool:
    """Whether dense_tensor can make a tensor of `dtype` (else it always declines)."""
    return dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE)


def dense_tensor(values: np.ndarray, dtype: int) -> np.ndarray | None:
    """A dense body's doubles (json_dense) as a tensor of `dtype`, as the fast path makes it.

    None when the general decoder must judge: a dtype other than
    DT_FLOAT/DT_DOUBLE (whole numbers and fractions are no longer told
    apart here), or values the range check leaves to the walker.
    """
    if not takes_dense(dtype):
        return None
    return _floating(values, dtype)


__all__ = [
    "MAX_RANK",
    "array_from_leaves",
    "checked_shape",
    "collect_leaves",
    "dense_shape",
    "dense_tensor",
    "fast_tensor",
    "takes_dense",
    "tensor_from_json",
    "tensor_from_json_exact",
]
