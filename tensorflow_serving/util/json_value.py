"""One parsed JSON value, as upstream's conversions judge it and its messages quote it.

The vocabulary the request decoders share (json_body, json_to_tensor,
json_predict_request, json_example): the JSON type names and indented
quotations upstream's error messages use, the errors themselves, the
`{"b64": "..."}` object that carries binary strings, and upstream's check
that a number converts to a float type without loss. A client matches on
these words, so each is written in one place.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np

from tensorflow_serving.util import status, tensor_codec
from tensorflow_serving.util.json_float import format_float

B64_KEY = "b64"

# Largest integers a float32 / float64 holds exactly (upstream's lossless check).
FLOAT_MAX_INT = (1 << 24) - 1
DOUBLE_MAX_INT = (1 << 53) - 1
FLT_MAX = float(np.finfo(np.float32).max)
DBL_MAX = float(np.finfo(np.float64).max)
# Inclusive bounds of the integer types a JSON number may feed.
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)
INT64_RANGE = (-(1 << 63), (1 << 63) - 1)
UINT32_RANGE = (0, (1 << 32) - 1)
UINT64_RANGE = (0, (1 << 64) - 1)

# Longest quotation of a request value in an error message.
MAX_VALUE_TEXT = 4096
_INDENTED = json.JSONEncoder(indent=4, ensure_ascii=False)


def json_type_name(value: Any) -> str:
    """The JSON type of a parsed value, named as upstream's messages name it ("Number", ...)."""
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
    """A JSON value as upstream quotes it in error messages (indented by 4 spaces).

    At most MAX_VALUE_TEXT characters, then "... (truncated)": the value is
    encoded lazily and cut short, so a 100 MB body never becomes a 100 MB
    message. A float is written as upstream writes a float32 when it is one,
    else as a double.
    """
    if isinstance(value, float):
        return format_float(value, np.float32 if _is_float32(value) else np.float64)
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


def _is_float32(value: float) -> bool:
    if not math.isfinite(value):
        return True
    if abs(value) > FLT_MAX:
        return False
    return float(np.float32(value)) == value


def format_error(value: Any, *parts: str) -> status.ServingError:
    """INVALID_ARGUMENT "JSON Value: <value> <parts>": upstream's words for a misshapen value."""
    return status.invalid_argument(f"JSON Value: {value_to_string(value)} {''.join(parts)}")


def type_error(value: Any, dtype: int) -> status.ServingError:
    """INVALID_ARGUMENT: `value` is not of the JSON type a `dtype` (a DataType) takes."""
    return status.invalid_argument(
        f"JSON Value: {value_to_string(value)} Type: {json_type_name(value)} "
        f"is not of expected type: {tensor_codec.dtype_name(dtype)}"
    )


def lossy_error(value: Any, target: str) -> status.ServingError:
    """INVALID_ARGUMENT: number `value` would lose precision as a `target` ("float", "double")."""
    return status.invalid_argument(
        f"Cannot convert JSON value: {value_to_string(value)} to {target} "
        "without loss of precision."
    )


def status_text(error: status.ServingError) -> str:
    """A nested error as TensorFlow's Status::ToString() prints it inside another message."""
    return f"{error.code.name}: {error.message}"


def is_lossless(value: int | float, max_int: int, max_abs: float) -> bool:
    """Upstream's IsLosslessDecimal: whether a JSON number converts to a float type exactly.

    Integers (up to 64 bits) must satisfy |value| <= `max_int`; other numbers
    must be NaN, infinite, or finite within +-`max_abs`.
    """
    if isinstance(value, int) and INT64_RANGE[0] <= value <= UINT64_RANGE[1]:
        return abs(value) <= max_int
    try:
        as_float = float(value)
    except OverflowError:
        return False
    if not math.isfinite(as_float):
        return True
    return -max_abs <= as_float <= max_abs


def is_base64_object(value: Any) -> bool:
    """Whether `value` is {"b64": "<string>"} and nothing else: binary data, not an object."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64_KEY), str)


def decode_base64_object(value: Any) -> bytes:
    """The bytes of a {"b64": "..."} object; INVALID_ARGUMENT in upstream's words otherwise.

    Unpadded base64 is accepted, as upstream's decoder accepts it.
    """
    if not is_base64_object(value):
        raise status.invalid_argument(
            f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data"
        )
    text = value[B64_KEY]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise status.invalid_argument("Unable to base64 decode") from None


__all__ = [
    "B64_KEY",
    "DBL_MAX",
    "DOUBLE_MAX_INT",
    "FLOAT_MAX_INT",
    "FLT_MAX",
    "INT32_RANGE",
    "INT64_RANGE",
    "MAX_VALUE_TEXT",
    "UINT32_RANGE",
    "UINT64_RANGE",
    "decode_base64_object",
    "format_error",
    "is_base64_object",
    "is_lossless",
    "json_type_name",
    "lossy_error",
    "status_text",
    "type_error",
    "value_to_string",
]
