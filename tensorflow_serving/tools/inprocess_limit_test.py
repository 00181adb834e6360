"""The in-process limit's timing loop: what it times, and what it leaves out.

The loop runs on a fake clock: every call takes exactly 1 ms of it and every
idle gap 5 ms, so the numbers it reports are exact, whatever the machine does.
"""

import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import inprocess_limit

CALL_SECONDS = 0.001


class FakeClock:
    """Time that moves only when a call runs or the loop sleeps."""

    def __init__(self):
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += CALL_SECONDS

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def timed(clock: FakeClock, **kw) -> dict:
    return inprocess_limit.timed_runs(
        clock.call, 1, 0.3, 0.05, clock=clock, sleep=clock.sleep, **kw
    )


def test_back_to_back_calls_give_throughput_over_wall_time():
    clock = FakeClock()
    result = timed(clock, batch=4)
    assert result["p50_ms"] == pytest.approx(1.0)
    assert result["p99_ms"] == pytest.approx(1.0)
    # 1,000 calls/s of 4 rows each.
    assert result["inferences_per_s"] == pytest.approx(4000, rel=0.01)
    assert clock.slept == 0


def test_idle_gaps_are_slept_but_not_counted():
    """A 5 ms sleep before each 1 ms call: fewer calls, same per-call time and rate."""
    clock = FakeClock()
    gapped = timed(clock, batch=1, idle_gap_seconds=0.005)
    assert len(gapped["runs_inferences_per_s"]) == 1
    assert gapped["p50_ms"] == pytest.approx(1.0)
    # Calls over their own time (1,000/s), not over the gaps (about 170/s of wall time).
    assert gapped["inferences_per_s"] == pytest.approx(1000, rel=0.01)
    # Five sixths of the 0.3 s run were gaps.
    assert clock.slept == pytest.approx(0.25, abs=0.01)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
