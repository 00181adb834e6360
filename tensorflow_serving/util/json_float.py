"""Floats as upstream's REST API writes them (json_tensor.cc's WriteDecimal).

Upstream prints a float32 with six significant digits when those read back
to the same float32, else with nine, and appends ".0" to a whole number.
Our answers are written by orjson from float64 arrays, so rather than
printing text we hand orjson, for each float32, the float64 nearest to
upstream's decimal: its shortest repr is that decimal, and a client parses
the same number from our answer as from the stock server's. (The notation
may differ, e.g. `9000000.0` for `9e+06`; both keep a `.` or an exponent,
so a whole float never reads back as an integer.)
"""

from __future__ import annotations

import math
import struct

import numpy as np

_F32 = struct.Struct("f")
_POW10 = 10.0 ** np.arange(0, 23)
# Up to this many values, formatting one by one beats ~30 numpy calls.
_SMALL_ARRAY = 32
# |fraction - 0.5| below this: too close to a rounding tie to trust doubles.
_TIE_MARGIN = 1e-6


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
    """`value` as upstream's text writes it, read as a `dtype` (np.float32 or np.float64).

    Float32: six significant digits if they read back to the same float32,
    else nine. Float64: six, else seventeen. NaN and infinities are the bare
    tokens `NaN`, `Infinity`, `-Infinity`. Used where we write text ourselves:
    error messages that quote a request's value, and tests.
    """
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
    """float32 values -> the float64 array a client reads from the stock server's text.

    Returns a new C-contiguous float64 array of `array`'s shape; NaN and
    infinities stay as they are. Element-wise: the result for a slice of an
    array is the same slice of the result for the whole array, which lets a
    batch be converted once for all of its requests (json_response).

    Small arrays go value by value; large ones through vectorised arithmetic
    that is exact where it claims to be (scaling by an exact power of ten,
    10**k with k <= 22, then dividing back is correctly rounded) and hands
    the rest (near-ties, tiny or huge magnitudes) to the per-value formatting.
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


__all__ = ["float32_as_upstream_doubles", "format_float"]
