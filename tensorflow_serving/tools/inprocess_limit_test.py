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


def test_the_tflite_limit_calls_model_tflite_as_the_server_does(tmp_path):
    """--tflite: the version's model.tflite, its signature's specs, outputs in fetch order."""
    import numpy as np

    from tensorflow_serving.servables.tensorflow.testdata import export_tflite

    version = export_tflite.export(str(tmp_path), 1, export_tflite.half_plus_two_with_signature())
    args = inprocess_limit.build_parser().parse_args(
        ["--model_dir", version, "--tflite", "--result", str(tmp_path / "r.json")]
    )
    loaded = inprocess_limit.load_signature_from(args)
    assert [s.alias for s in loaded.inputs] == ["x"] and [s.alias for s in loaded.outputs] == ["y"]
    (y,) = loaded.fn(np.array([[2.0], [4.0]], np.float32))
    np.testing.assert_allclose(y.ravel(), [3.0, 4.0])
    loaded.session.close()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
