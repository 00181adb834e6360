"""The tools' percentile: numpy's linear interpolation, None for no values."""

import sys

import numpy as np
import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools.percentiles import percentile


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_matches_numpy_linear_interpolation(q):
    values = sorted([0.3, 1.0, 2.5, 2.5, 7.0, 11.0, 40.0])
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_one_value_is_every_percentile():
    assert percentile([4.0], 0) == percentile([4.0], 99) == 4.0


def test_no_values_have_no_percentile():
    assert percentile([], 50) is None


def test_a_fraction_instead_of_a_percent_is_refused():
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0, 2.0], 150)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
