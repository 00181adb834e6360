"""json_float: the numbers a client reads from our floats are the ones upstream's text holds."""

import sys

import numpy as np
import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_float


@pytest.mark.parametrize(
    "value, text",
    [
        (3.0, "3.0"),  # whole floats keep ".0"
        (2.5, "2.5"),
        (0.1, "0.1"),  # six digits suffice for this float32
        (0.123456789, "0.123456791"),  # else nine, not the shortest repr
        (1234567.0, "1234567.0"),
        (9e6, "9e+06"),
        (1e-5, "1e-05"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_format_float_matches_upstream_text(value, text):
    assert json_float.format_float(value) == text


@pytest.mark.parametrize(
    "value, text",
    [
        (0.1, "0.1"),  # six digits suffice for this double
        (0.1234567890123, "0.12345678901230001"),  # else seventeen
        (1e300, "1e+300"),
        (4.0, "4.0"),
    ],
)
def test_format_float_as_double_matches_upstream_text(value, text):
    assert json_float.format_float(value, np.float64) == text


def test_doubles_are_the_numbers_upstreams_text_reads_as():
    values = np.array([3.0, 0.1, 0.123456789, 1234567.0, 9e6, 1e-5, 1.0000005, 2.5e-40], np.float32)
    doubles = json_float.float32_as_upstream_doubles(values)
    assert doubles.dtype == np.float64 and doubles.shape == values.shape
    assert doubles.tolist() == [float(json_float.format_float(float(v))) for v in values]


def test_large_arrays_use_the_same_digits_as_small_ones():
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(5000) * 10.0 ** rng.integers(-20, 20, 5000)).astype(np.float32)
    values[:4] = [0.0, -0.0, 16777216.0, 32.00390625]
    big = json_float.float32_as_upstream_doubles(values)
    one_by_one = [float(json_float.format_float(float(v))) for v in values]
    assert big.tolist() == one_by_one


def test_conversion_is_element_wise_so_a_slice_converts_like_its_rows_of_the_whole():
    rng = np.random.default_rng(4)
    batch = (rng.standard_normal((32, 10)) * 10.0 ** rng.integers(-8, 8, (32, 10))).astype(
        np.float32
    )
    batch[3, :3] = [np.nan, np.inf, -np.inf]
    whole = json_float.float32_as_upstream_doubles(batch)
    for start, stop in ((0, 1), (3, 4), (5, 9), (0, 32)):
        part = json_float.float32_as_upstream_doubles(batch[start:stop])
        np.testing.assert_array_equal(part, whole[start:stop])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
