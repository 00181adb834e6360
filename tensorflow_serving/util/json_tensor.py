"""JSON <-> numpy for the REST API, with the stock server's JSON semantics.

Upstream (tensorflow_serving/util/json_tensor.cc, api_rest.md) fixes what a
REST client sees, and a client written against it must not notice a change:

- Input dtypes come from the signature, never from the JSON: `1` feeds a
  float input as 1.0, while `1.5` for an int input is a type error. Integers
  for float inputs must be exact (|n| < 2**24), as upstream checks.
- `NaN`, `Infinity` and `-Infinity` are accepted as bare tokens in requests
  and written as bare tokens in answers (they are not strict JSON).
- Floats are written the way upstream writes them: six significant digits
  when those read back to the same float32, nine otherwise. We hand orjson
  the float64 nearest to that decimal, so a client parses the same number
  from our answer as from the stock server's (the notation may differ, e.g.
  `9000000.0` for `9e+06`; both keep a `.` or an exponent, so a whole float
  never reads back as an integer).
- Binary strings travel as `{"b64": "..."}`; outputs whose name ends in
  `_bytes` are written that way.
- Row format (`instances`) and columnar format (`inputs`), and answers in the
  same format (`predictions` / `outputs`).

Speed: requests are parsed with orjson (the stdlib parser only when the body
holds NaN/Infinity), lists become arrays with one `np.array` call after cheap
vectorised checks, and answers are written by orjson straight from numpy. The
element-by-element walker that reproduces upstream's checks and error
messages runs only when the fast path cannot vouch for the result.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import re
import struct
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2

from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2
from tensorflow_serving.util import status, tensor_codec

SIGNATURE_NAME_KEY = "signature_name"
INSTANCES_KEY = "instances"
INPUTS_KEY = "inputs"
CONTEXT_KEY = "context"
EXAMPLES_KEY = "examples"
PREDICTIONS_KEY = "predictions"
OUTPUTS_KEY = "outputs"
RESULTS_KEY = "results"
ERROR_KEY = "error"
B64_KEY = "b64"
BYTES_SUFFIX = "_bytes"

_NUMPY = orjson.OPT_SERIALIZE_NUMPY

# Largest integers a float32 / float64 holds exactly (upstream's lossless check).
_FLOAT_MAX_INT = (1 << 24) - 1
_DOUBLE_MAX_INT = (1 << 53) - 1
_FLT_MAX = float(np.finfo(np.float32).max)
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT32 = (0, (1 << 32) - 1)
_UINT64 = (0, (1 << 64) - 1)

_F32 = struct.Struct("f")
_POW10 = 10.0 ** np.arange(0, 23)
# Below this many values, formatting one by one beats ~30 numpy calls.
_SMALL_ARRAY = 32
# |fraction - 0.5| below this: too close to a rounding tie to trust doubles.
_TIE_MARGIN = 1e-6
# A small slice of a read-only float32 array up to this size is converted
# through its whole array (see _ConvertedBatch); bounds the work a lone slice
# of a big array could waste.
_BATCH_VALUES = 4096

_SMALL_INTS = (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8)
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


class RequestFormat(enum.Enum):
    """How a predict request laid out its tensors; the answer uses the same layout."""

    ROW = "instances"
    COLUMNAR = "inputs"


# ---------------------------------------------------------------------------
# Parsing and describing JSON values


def loads(body: bytes) -> Any:
    """Parses a request body; NaN / Infinity tokens are allowed, as upstream allows them."""
    if not body:
        raise status.invalid_argument("JSON Parse error: The document is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # orjson is strict JSON; the stdlib parser also takes NaN and +-Infinity.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise status.invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {error.start}"
        ) from None
    try:
        doc = json.loads(text, parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        raise status.invalid_argument(
            f"JSON Parse error: {error.msg} at offset: {error.pos}"
        ) from None
    except RecursionError:
        raise status.invalid_argument("JSON Parse error: document nested too deeply") from None
    if _SURROGATE_ESCAPE.search(body):
        _check_surrogates(doc)
    return doc


# The stdlib parser is the fallback: make it refuse what orjson (and upstream's
# RapidJSON) refuse, so NaN in a body does not open other doors.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise status.invalid_argument(
            f"JSON Parse error: Number too big to be stored in double: {text[:40]}"
        )
    return value


def _parse_int(text: str) -> int | float:
    """Integers beyond 64 bits become doubles, as in orjson and RapidJSON."""
    if len(text) <= 20:
        value = int(text)
        if _INT64[0] <= value <= _UINT64[1]:
            return value
    return _parse_float(text)


def _check_surrogates(doc: Any) -> None:
    """A lone UTF-16 surrogate escape cannot become UTF-8: a parse error, as in orjson."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise status.invalid_argument(
                    "JSON Parse error: The surrogate pair in string is invalid."
                ) from None


def loads_object(body: bytes) -> dict:
    """A request body must be one JSON object."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    return doc


def json_type_name(value: Any) -> str:
    """The JSON type of a parsed value, named as upstream's messages name it."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def value_to_string(value: Any) -> str:
    """A JSON value as upstream quotes it in error messages (indented, 4 spaces)."""
    if isinstance(value, float):
        return format_float(value, np.float32 if _is_float32(value) else np.float64)
    # Lazily encoded and cut short: a 100 MB body must not become a 100 MB message.
    parts: list[str] = []
    size = 0
    try:
        for chunk in _INDENTED.iterencode(value):
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_VALUE_TEXT:
                break
    except TypeError:
        return repr(value)[:MAX_VALUE_TEXT]  # not a parsed JSON value
    except (ValueError, RecursionError):
        size = MAX_VALUE_TEXT + 1  # too deep: show the start only
    text = "".join(parts)
    if size > MAX_VALUE_TEXT:
        return f"{text[:MAX_VALUE_TEXT]}... (truncated)"
    return text


# Longest quotation of a request value in an error message.
MAX_VALUE_TEXT = 4096
_INDENTED = json.JSONEncoder(indent=4, ensure_ascii=False)


def _is_float32(value: float) -> bool:
    if not math.isfinite(value):
        return True
    if abs(value) > _FLT_MAX:
        return False
    return float(np.float32(value)) == value


def _format_error(doc: Any, *parts: str) -> status.ServingError:
    return status.invalid_argument(f"JSON Value: {value_to_string(doc)} {''.join(parts)}")


def _type_error(value: Any, dtype: int) -> status.ServingError:
    return status.invalid_argument(
        f"JSON Value: {value_to_string(value)} Type: {json_type_name(value)} "
        f"is not of expected type: {tensor_codec.dtype_name(dtype)}"
    )


def _lossy_error(value: Any, target: str) -> status.ServingError:
    return status.invalid_argument(
        f"Cannot convert JSON value: {value_to_string(value)} to {target} "
        "without loss of precision."
    )


def _status_text(error: status.ServingError) -> str:
    """A nested error as TensorFlow's Status::ToString() prints it."""
    return f"{error.code.name}: {error.message}"


def is_base64_object(value: Any) -> bool:
    """{"b64": "<string>"} and nothing else."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64_KEY), str)


def _decode_base64_object(value: Any) -> bytes:
    if not is_base64_object(value):
        raise status.invalid_argument(
            f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data"
        )
    text = value[B64_KEY]
    try:
        # Upstream's decoder takes unpadded input too.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise status.invalid_argument("Unable to base64 decode") from None


def signature_name(doc: dict) -> str:
    """The optional "signature_name"; "" means the default signature."""
    name = doc.get(SIGNATURE_NAME_KEY, "")
    if not isinstance(name, str):
        raise _format_error(
            doc, "not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


# ---------------------------------------------------------------------------
# JSON value -> tensor


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lossless(value: int | float, max_int: int, max_abs: float) -> bool:
    """Upstream's IsLosslessDecimal: exact integers, finite doubles in range."""
    if isinstance(value, int) and _INT64[0] <= value <= _UINT64[1]:
        return abs(value) <= max_int
    try:
        as_float = float(value)
    except OverflowError:
        return False
    if not math.isfinite(as_float):
        return True
    return -max_abs <= as_float <= max_abs


def _int_in(value: Any, bounds: tuple[int, int]) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    )


def _leaf(value: Any, dtype: int) -> Any:
    """One JSON scalar as a value of `dtype`, or upstream's error."""
    if dtype == types_pb2.DT_FLOAT:
        if not _is_number(value):
            raise _type_error(value, dtype)
        if not _lossless(value, _FLOAT_MAX_INT, _FLT_MAX):
            raise _lossy_error(value, "float")
        return float(value)
    if dtype == types_pb2.DT_DOUBLE:
        if not _is_number(value):
            raise _type_error(value, dtype)
        try:
            as_float = float(value)
        except OverflowError:
            raise _lossy_error(value, "double") from None
        if not _lossless(value, _DOUBLE_MAX_INT, float(np.finfo(np.float64).max)):
            raise _lossy_error(value, "double")
        return as_float
    if dtype in _SMALL_INTS:
        if not _int_in(value, _INT32):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_INT64:
        if not _int_in(value, _INT64):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_UINT32:
        if not _int_in(value, _UINT32):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_UINT64:
        if not _int_in(value, _UINT64):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    raise status.unimplemented(
        f"Conversion of JSON Value: {value_to_string(value)} to type: "
        f"{tensor_codec.dtype_name(dtype)}"
    )


def dense_shape(value: Any) -> list[int]:
    """The shape a nested list claims, read along its first elements (as upstream)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


# numpy holds at most 64 dimensions (TensorFlow 254); deeper lists are refused
# before anything walks them recursively.
MAX_RANK = 64


def _checked_shape(value: Any, outer: int = 0) -> list[int]:
    """dense_shape, refusing lists nested deeper than a tensor can be (`outer`: batch dims)."""
    shape = dense_shape(value)
    if len(shape) + outer > MAX_RANK:
        raise status.invalid_argument(
            f"JSON list nested {len(shape) + outer} levels deep: a tensor has at most "
            f"{MAX_RANK} dimensions"
        )
    return shape


def _walk(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    """Checks a nested list against `shape` and collects its leaves, as upstream does."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise status.invalid_argument(
                f"JSON Value: {value_to_string(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != types_pb2.DT_STRING:
                raise _type_error(value, dtype)
            out.append(_decode_base64_object(value))
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


def _array_from_leaves(leaves: list, shape: list[int], dtype: int) -> np.ndarray:
    if dtype == types_pb2.DT_STRING:
        flat = np.empty(len(leaves), dtype=object)
        flat[:] = leaves
        return flat.reshape(shape)
    if dtype in _SMALL_INTS:
        # Upstream stores these as int32 and narrows like a C cast (wrapping).
        return (
            np.array(leaves, dtype=np.int32).astype(tensor_codec.numpy_dtype(dtype)).reshape(shape)
        )
    return np.array(leaves, dtype=tensor_codec.numpy_dtype(dtype)).reshape(shape)


def tensor_from_json_exact(value: Any, dtype: int) -> np.ndarray:
    """The slow, exact conversion: upstream's checks and messages, element by element."""
    shape = _checked_shape(value)
    leaves: list = []
    _walk(value, 0, shape, dtype, leaves)
    return _array_from_leaves(leaves, shape, dtype)


def _fast_numeric(value: Any, dtype: int, may_have_bools: bool) -> np.ndarray | None:
    """One np.array call plus range checks; None when the exact walker must decide.

    A result returned here is always what the walker would return. Python
    bools hide inside numeric arrays (True becomes 1), so any numeric input
    whose request body mentions true/false goes to the walker.
    """
    if dtype not in _SUPPORTED_INPUT_DTYPES or dtype == types_pb2.DT_STRING:
        return None
    if may_have_bools and dtype != types_pb2.DT_BOOL:
        return None
    try:
        array = np.array(value)
    except (ValueError, TypeError, OverflowError):
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
        if low < _INT32[0] or high > _INT32[1]:
            return None
        return array.astype(np.int32).astype(target)
    if dtype == types_pb2.DT_INT64:
        return array.astype(target)
    if dtype in (types_pb2.DT_UINT32, types_pb2.DT_UINT64):
        if low < 0 or (dtype == types_pb2.DT_UINT32 and high > _UINT32[1]):
            return None
        return array.astype(target)
    return None


def _floating(array: np.ndarray, dtype: int) -> np.ndarray | None:
    """Numbers (int64 or float64) as a DT_FLOAT/DT_DOUBLE tensor; None: the walker judges.

    Floats are fine up to FLT_MAX, integers only up to what the type holds
    exactly; numbers that mixed both became float64, so the walker judges
    big values. (min/max rather than abs: no temporary array, and a NaN
    compares False.)
    """
    limit = _FLOAT_MAX_INT if dtype == types_pb2.DT_FLOAT else _DOUBLE_MAX_INT
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


def _fast_tensor(value: Any, dtype: int, may_have_bools: bool) -> np.ndarray | None:
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


def tensor_from_json(value: Any, dtype: int, may_have_bools: bool = True) -> np.ndarray:
    """A JSON value (scalar or nested list) as a tensor of the signature's dtype."""
    array = _fast_tensor(value, dtype, may_have_bools)
    if array is not None:
        return array
    return tensor_from_json_exact(value, dtype)


# ---------------------------------------------------------------------------
# Predict requests


def _rows_exact(instances: list, dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Upstream's per-instance processing, in its order, with its messages."""
    first = instances[0]
    if not isinstance(first, dict) and len(dtypes) > 1:
        raise status.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = isinstance(first, dict) and not is_base64_object(first)
    input_names = set(dtypes)
    leaves: dict[str, list] = {name: [] for name in dtypes}
    shapes: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}

    def add_item(item: Any, name: str) -> None:
        if name not in dtypes:
            raise status.invalid_argument(f"JSON object: does not have named input: {name}")
        shape = _checked_shape(item, outer=1)
        values: list = []
        _walk(item, 0, shape, dtypes[name], values)
        if name not in sizes:
            sizes[name] = len(values)
            shapes[name] = shape
        elif sizes[name] != len(values):
            raise status.invalid_argument(
                f"Expecting tensor size: {sizes[name]} but got: {len(values)}"
            )
        elif shapes[name] != shape:
            raise status.invalid_argument(
                f"Expecting shape {_shape_text(shapes[name])} but got: {_shape_text(shape)}"
            )
        leaves[name].extend(values)

    for index, element in enumerate(instances):
        element_is_object = isinstance(element, dict) and not is_base64_object(element)
        if objects:
            if not element_is_object:
                raise status.invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, item in element.items():
                try:
                    add_item(item, name)
                except status.ServingError as error:
                    raise status.invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {_status_text(error)}"
                    ) from None
            if set(element) != input_names:
                raise status.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{value_to_string(element)} keys must be equal to: "
                    f"{','.join(sorted(input_names))}"
                )
        else:
            if element_is_object:
                raise status.invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            # Upstream takes the (first) input's name; a missing input then
            # fails the signature check, with the gRPC message.
            name = min(dtypes)
            try:
                add_item(element, name)
            except status.ServingError as error:
                raise status.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {_status_text(error)}"
                ) from None
    count = len(instances)
    return {
        name: _array_from_leaves(leaves[name], [count, *shapes[name]], dtypes[name])
        for name in shapes
    }


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _rows_fast(
    instances: list, dtypes: Mapping[str, int], may_have_bools: bool
) -> dict[str, np.ndarray] | None:
    first = instances[0]
    if isinstance(first, dict) and not is_base64_object(first):
        names = set(dtypes)
        for element in instances:
            if type(element) is not dict or element.keys() != names:
                return None
        columns = {name: [element[name] for element in instances] for name in dtypes}
    elif len(dtypes) == 1:
        columns = {next(iter(dtypes)): instances}
    else:
        return None
    result = {}
    for name, column in columns.items():
        array = _fast_tensor(column, dtypes[name], may_have_bools)
        if array is None or array.ndim == 0 or array.shape[0] != len(instances):
            return None
        result[name] = array
    return result


def _columns(value: Any, dtypes: Mapping[str, int], may_have_bools: bool) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or is_base64_object(value):
        if len(dtypes) > 1:
            raise status.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        ((name, dtype),) = dtypes.items()
        return {name: tensor_from_json(value, dtype, may_have_bools)}
    result = {}
    for name in sorted(dtypes):
        if name not in value:
            raise status.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        result[name] = tensor_from_json(value[name], dtypes[name], may_have_bools)
    return result


def predict_inputs_from_json(
    doc: dict, dtypes: Mapping[str, int], body: bytes | None = None
) -> tuple[dict[str, np.ndarray], RequestFormat]:
    """The tensors of a predict request, typed by the signature's input dtypes.

    `dtypes` maps each input alias of the signature to its DataType; `body`
    (the raw request) lets the fast path skip bool detection when the text
    has no true/false at all.
    """
    may_have_bools = body is None or b"true" in body or b"false" in body
    has_instances = INSTANCES_KEY in doc
    has_inputs = INPUTS_KEY in doc
    if has_instances and has_inputs:
        raise _format_error(
            doc,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if has_instances:
        instances = doc[INSTANCES_KEY]
        if not isinstance(instances, list):
            raise _format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise _format_error(doc, "No values in 'instances' array")
        tensors = _rows_fast(instances, dtypes, may_have_bools)
        if tensors is None:
            tensors = _rows_exact(instances, dtypes)
        return tensors, RequestFormat.ROW
    if has_inputs:
        return _columns(doc[INPUTS_KEY], dtypes, may_have_bools), RequestFormat.COLUMNAR
    raise status.invalid_argument("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------
# Tensor -> JSON


def _float32_text(value: float) -> str:
    """Upstream's WriteDecimal for a float32 value: %g, else %.9g; '.0' for whole numbers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    if np.float32(float(text)) != np.float32(value):
        text = f"{value:.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def format_float(value: float, dtype: type = np.float32) -> str:
    """One float as upstream writes it (used for messages and tests)."""
    if dtype is np.float32:
        return _float32_text(float(np.float32(value)))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    if float(text) != value:
        text = f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _float32_shown(value: float) -> float:
    """One float32 (as a Python float): the double nearest to upstream's decimal."""
    if value != value or value == 0 or math.isinf(value):
        return value
    six = float(f"{value:.6g}")
    try:
        if _F32.unpack(_F32.pack(six))[0] == value:
            return six
    except OverflowError:
        pass
    return float(f"{value:.9g}")


def float32_as_upstream_doubles(array: np.ndarray) -> np.ndarray:
    """float32 values -> the float64 a client reads from the stock server's text.

    Upstream prints six significant digits if they read back as the same
    float32, else nine; this returns the double nearest to that decimal, whose
    shortest repr (what orjson writes) is that decimal. Small arrays go value
    by value; large ones through vectorised arithmetic that is exact where it
    claims to be (scaling by an exact power of ten, 10**k with k <= 22, then
    dividing back is correctly rounded) and hands the rest (near-ties, tiny or
    huge magnitudes) to the per-value formatting.
    """
    shape = np.shape(array)
    x = np.asarray(array, dtype=np.float32).reshape(-1)
    if x.size <= _SMALL_ARRAY:
        return np.array([_float32_shown(v) for v in x.tolist()], dtype=np.float64).reshape(shape)
    x = x.astype(np.float64)
    x32 = x.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log10(np.abs(x)))
        regular = np.isfinite(exponent)  # not 0, NaN or +-Inf
        places = np.where(regular, 5 - exponent, 0).astype(np.int64)
        in_range = (places >= 0) & (places <= 19)  # 10**(places + 3) stays exact
        places = np.where(in_range, places, 0)
        power6 = _POW10[places]
        power9 = _POW10[places + 3]
        scaled6 = x * power6
        digits6 = np.rint(scaled6)
        six = digits6 / power6
        six_ok = six.astype(np.float32) == x32
        scaled9 = x * power9
        nine = np.rint(scaled9) / power9
        result = np.where(six_ok, six, nine)
        unsure = ~in_range
        unsure |= np.abs(np.abs(scaled6 - np.trunc(scaled6)) - 0.5) < _TIE_MARGIN
        unsure |= ~six_ok & (np.abs(np.abs(scaled9 - np.trunc(scaled9)) - 0.5) < _TIE_MARGIN)
        magnitude = np.abs(digits6)
        unsure |= (magnitude < 1e5) | (magnitude > 1e6)  # a wrong decimal exponent
        unsure &= regular
    if not regular.all():
        result[~regular] = x[~regular]
    if unsure.any():
        for i in np.nonzero(unsure)[0].tolist():
            result[i] = _float32_shown(float(x[i]))
    return result.reshape(shape)


class _Converted:
    """One batch output, converted: what its row slices need."""

    __slots__ = ("base", "shape", "address", "doubles", "finite", "_rows")

    def __init__(self, base: np.ndarray):
        self.base = weakref.ref(base)  # the read-only float32 batch output
        self.shape = base.shape
        self.address = base.ctypes.data  # where its data starts
        self.doubles = float32_as_upstream_doubles(base).reshape(-1)  # upstream's, flat
        self.finite = bool(np.isfinite(base).all())  # no NaN or infinity anywhere
        self._rows: list[bytes] | None = None

    def rows(self) -> list[bytes] | None:
        """The JSON of each row (without its brackets) of a 2-D batch.

        Written by orjson once for the whole batch, so each answer's text is
        a join of its rows: `[[a,b],[c,d]]` is cut at its "],[" marks (numbers
        hold none). None if the batch is not 2-D, or has NaN or infinity
        (the stdlib writer spells those).
        """
        rows = self._rows
        if rows is None:
            if not self.finite or len(self.shape) != 2:
                return None
            text = orjson.dumps(self.doubles.reshape(self.shape), option=_NUMPY)
            rows = self._rows = text[2:-2].split(b"],[")
        return rows


class _ConvertedBatch:
    """The last float32 batch output converted whole, for its row slices.

    With batching, each answer's outputs are row slices of one batched
    output (made read-only by the batching layer), and the REST answers of a
    batch are written one after another. Converting a [1, 10] slice value by
    value costs ~16 us hot; converting the whole [32, 10] batch once with
    numpy costs ~45 us. So the first slice of a batch converts the batch and
    the rest slice the result (8 us per answer hot; 5-13 us less event-loop
    CPU per request in situ at 32 clients). The batch's NaN/infinity check is
    made once too: on tiny slices, numpy's per-call cost is all there is,
    and in situ it cost 7-11 us per answer. For the common answer, one
    output whose slice is whole rows of a 2-D batch, the batch's JSON is
    written once too, and each answer joins its rows (json_rows). The
    conversion is element-wise, so a slice of the converted array is
    exactly the slice's own conversion; only read-only arrays qualify, so
    the cached conversion cannot go stale. A weak reference keeps a freed
    array's id from matching a new one; a race between threads only repeats
    the work.
    """

    def __init__(self):
        self._last: _Converted | None = None

    def _converted(self, view: np.ndarray) -> _Converted | None:
        """The conversion of `view`'s batch, if `view` is a small slice of one."""
        base = view.base
        if (
            not isinstance(base, np.ndarray)
            or base.flags.writeable
            or view.dtype != np.float32
            or base.dtype != np.float32
            or not view.size <= _SMALL_ARRAY < base.size <= _BATCH_VALUES
            or not (view.flags.c_contiguous and base.flags.c_contiguous)
        ):
            return None
        last = self._last
        if last is None or last.base() is not base:
            last = self._last = _Converted(base)
        return last

    def slice_of(self, view: np.ndarray) -> np.ndarray | None:
        """`view`'s upstream doubles, or None if it is not a small slice of a batch."""
        last = self._converted(view)
        if last is None:
            return None
        start = (view.ctypes.data - last.address) // view.itemsize
        return last.doubles[start : start + view.size].reshape(view.shape)

    def json_rows(self, view: np.ndarray) -> bytes | None:
        """`view` as JSON (as orjson writes its upstream doubles), if it is whole rows of a batch.

        Only for a 2-D slice of a 2-D batch with no NaN or infinity; None otherwise.
        """
        if not isinstance(view, np.ndarray) or view.ndim != 2 or not view.shape[1]:
            return None
        last = self._converted(view)
        if last is None or last.shape[1:] != view.shape[1:]:
            return None
        rows = last.rows()
        if rows is None:
            return None
        start, partial = divmod((view.ctypes.data - last.address) // view.itemsize, view.shape[1])
        if partial:  # e.g. a reshaped flat slice: not the batch's rows
            return None
        return b"[[" + b"],[".join(rows[start : start + view.shape[0]]) + b"]]"

    def is_finite(self, array: np.ndarray) -> bool:
        """Whether `array` holds no NaN or infinity (at once for a slice of a finite batch)."""
        last = self._last
        if (
            last is not None
            and last.finite
            and array.base is not None
            and array.base is last.base()
        ):
            return True
        return bool(np.isfinite(array).all())


_CONVERTED_BATCH = _ConvertedBatch()
_ROW_ANSWER = b'{"%s":' % PREDICTIONS_KEY.encode()
_COLUMNAR_ANSWER = b'{"%s":' % OUTPUTS_KEY.encode()


def _jsonable(name: str, array: np.ndarray) -> Any:
    """An output tensor in a form orjson writes as upstream would."""
    kind = array.dtype.kind
    if array.dtype in (np.float32, np.float16):
        converted = _CONVERTED_BATCH.slice_of(array)
        array = float32_as_upstream_doubles(array) if converted is None else converted
    elif kind == "O" or kind in "SU":
        as_bytes = name.endswith(BYTES_SUFFIX)
        flat = [
            _string_value(v, as_bytes) for v in (array.reshape(-1).tolist() if array.size else [])
        ]
        holder = np.empty(len(flat), dtype=object)
        holder[:] = flat
        return holder.reshape(array.shape).tolist() if array.ndim else holder[0]
    if array.ndim == 0:
        return array[()]
    return np.ascontiguousarray(array)


def _string_value(value: Any, as_bytes: bool) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if as_bytes:
        return {B64_KEY: base64.b64encode(raw).decode("ascii")}
    return raw.decode("utf-8", "replace")


def _has_non_finite(arrays: list[np.ndarray]) -> bool:
    for array in arrays:
        if array.dtype.kind == "f" and array.size and not _CONVERTED_BATCH.is_finite(array):
            return True
    return False


def _to_plain(value: Any) -> Any:
    """numpy leaves -> Python lists/floats, for the stdlib writer."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def dumps(document: Any, non_finite: bool = False) -> bytes:
    """orjson, or the stdlib writer when NaN/Infinity must appear as bare tokens."""
    if not non_finite:
        return orjson.dumps(document, option=_NUMPY)
    return json.dumps(_to_plain(document), allow_nan=True, ensure_ascii=False).encode("utf-8")


def predict_response_json(outputs: Mapping[str, np.ndarray], fmt: RequestFormat) -> bytes:
    """The body of a predict answer: {"predictions": ...} or {"outputs": ...}."""
    if not outputs:
        raise status.invalid_argument("Cannot convert empty tensor map to JSON")
    if len(outputs) == 1:
        (array,) = outputs.values()
        rows = _CONVERTED_BATCH.json_rows(array)
        if rows is not None:  # the common answer: rows of a batch, written once for all
            return (_ROW_ANSWER if fmt is RequestFormat.ROW else _COLUMNAR_ANSWER) + rows + b"}"
    names = sorted(outputs)
    non_finite = _has_non_finite([outputs[n] for n in names])
    if fmt is RequestFormat.ROW:
        batch = -1
        for name in names:
            array = outputs[name]
            if array.ndim == 0:
                raise status.invalid_argument(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and array.shape[0] != batch:
                raise status.invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                    f"expecting: {batch}"
                )
            batch = array.shape[0]
        values = {name: _jsonable(name, outputs[name]) for name in names}
        if len(names) == 1:
            document = {PREDICTIONS_KEY: values[names[0]]}
        else:
            document = {
                PREDICTIONS_KEY: [{name: values[name][i] for name in names} for i in range(batch)]
            }
        return dumps(document, non_finite)
    values = {name: _jsonable(name, outputs[name]) for name in names}
    if len(names) == 1:
        return dumps({OUTPUTS_KEY: values[names[0]]}, non_finite)
    return dumps({OUTPUTS_KEY: values}, non_finite)


def classification_response_json(result: classification_pb2.ClassificationResult) -> bytes:
    """{"results": [[[label, score], ...], ...]}, one list per example."""
    if not result.classifications:
        raise status.invalid_argument("Cannot convert empty ClassificationResults to JSON")
    labels = [[c.label for c in cl.classes] for cl in result.classifications]
    scores = [[c.score for c in cl.classes] for cl in result.classifications]
    flat = np.array([s for row in scores for s in row], dtype=np.float32)
    non_finite = flat.size > 0 and not np.isfinite(flat).all()
    shown = float32_as_upstream_doubles(flat).tolist()
    rows, offset = [], 0
    for row_labels in labels:
        rows.append([[label, shown[offset + i]] for i, label in enumerate(row_labels)])
        offset += len(row_labels)
    return dumps({RESULTS_KEY: rows}, non_finite)


def regression_response_json(result: regression_pb2.RegressionResult) -> bytes:
    """{"results": [value, ...]}, one value per example."""
    if not result.regressions:
        raise status.invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = np.array([r.value for r in result.regressions], dtype=np.float32)
    non_finite = not np.isfinite(values).all()
    return dumps({RESULTS_KEY: float32_as_upstream_doubles(values).tolist()}, non_finite)


def error_json(message: str) -> bytes:
    try:
        return orjson.dumps({ERROR_KEY: message})
    except orjson.JSONEncodeError:  # e.g. a lone surrogate: escape it rather than fail
        return json.dumps({ERROR_KEY: message}).encode("ascii")


# ---------------------------------------------------------------------------
# Classify / Regress requests (tf.Examples)

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}


def _add_to_feature(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    def require(kind: str) -> None:
        current = feature.WhichOneof("kind")
        if current is not None and current != kind:
            raise status.invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[current]}"
            )

    if value is None or isinstance(value, list):
        raise status.invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type_name(value)}"
        )
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        if not is_base64_object(value):
            raise status.invalid_argument(
                f"Feature: {name} has element with unexpected JSON type: Object"
            )
        require("bytes_list")
        feature.bytes_list.value.append(_decode_base64_object(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, int) and _INT64[0] <= value <= _UINT64[1]:
        require("int64_list")
        if value > _INT64[1]:
            raise status.invalid_argument(
                f"Feature: {name} has uint64 element. Only int64 is supported."
            )
        feature.int64_list.value.append(value)
    else:
        require("float_list")
        if not _lossless(value, _FLOAT_MAX_INT, _FLT_MAX):
            raise _lossy_error(value, "float")
        feature.float_list.value.append(float(value))


def _fill_example(value: Any, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise status.invalid_argument(
            f"Example must be JSON object but got JSON {json_type_name(value)}"
        )
    features = example.features.feature
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else (content,):
            _add_to_feature(item, name, feature)
        features[name].CopyFrom(feature)


def input_from_json(doc: dict) -> input_pb2.Input:
    """The tf.Examples (and context) of a classify or regress request."""
    result = input_pb2.Input()
    has_context = CONTEXT_KEY in doc
    if has_context:
        _fill_example(doc[CONTEXT_KEY], result.example_list_with_context.context)
    if EXAMPLES_KEY not in doc:
        raise _format_error(
            doc, "When method is classify, key 'examples' is expected and was not found"
        )
    examples = doc[EXAMPLES_KEY]
    if not isinstance(examples, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(doc, "'examples' value is an empty array")
    target = (
        result.example_list_with_context.examples if has_context else result.example_list.examples
    )
    for value in examples:
        _fill_example(value, target.add())
    return result


def signature_input_dtypes(signature) -> dict[str, int]:
    """alias -> DataType of a loaded Signature's inputs (computed per request, cheap)."""
    return {alias: spec.dtype for alias, spec in signature.inputs.items()}


__all__ = [
    "RequestFormat",
    "classification_response_json",
    "dense_shape",
    "dense_tensor",
    "error_json",
    "float32_as_upstream_doubles",
    "format_float",
    "input_from_json",
    "loads",
    "loads_object",
    "predict_inputs_from_json",
    "predict_response_json",
    "regression_response_json",
    "signature_input_dtypes",
    "signature_name",
    "tensor_from_json",
    "tensor_from_json_exact",
]
