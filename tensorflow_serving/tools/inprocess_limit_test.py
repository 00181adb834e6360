"""The in-process limit's timing loop: what it times, and what it leaves out."""

import sys
import time

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import inprocess_limit


def busy_call(seconds):
    def call():
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            pass

    return call


def test_back_to_back_calls_give_throughput_over_wall_time():
    result = inprocess_limit.timed_runs(busy_call(0.001), 1, 0.3, 0.05, batch=4)
    assert 0.9 <= result["p50_ms"] < 3.0
    # About 1,000 calls/s of 4 rows each (loose: a shared test machine is noisy).
    assert 1000 < result["inferences_per_s"] < 4400


def test_idle_gaps_are_slept_but_not_counted():
    """A 5 ms sleep before each 1 ms call: fewer calls, same per-call time and rate."""
    gapped = inprocess_limit.timed_runs(
        busy_call(0.001), 1, 0.3, 0.05, batch=1, idle_gap_seconds=0.005
    )
    runs = gapped["runs_inferences_per_s"]
    assert len(runs) == 1
    assert 0.9 <= gapped["p50_ms"] < 3.0
    # Calls over their own time (~1,000/s), not over the gaps (~170/s of wall time).
    assert gapped["inferences_per_s"] > 400


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
