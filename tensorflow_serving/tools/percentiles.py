"""The one percentile the tools report (benchmark, load generator, soak)."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) of an ascending sequence, interpolated linearly.

    Between two neighbouring values it interpolates, as numpy's default
    ("linear") method does; an empty sequence has no percentile (None).
    """
    if not sorted_values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    k = (len(sorted_values) - 1) * q / 100.0
    low = int(k)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (k - low)
