"""TrainingProgress: plain lines off a terminal, one redrawn status line on one."""

import io
import sys

import pytest

from tensorflow_serving.example import training_progress
from tensorflow_serving.example.training_progress import TrainingProgress
from tensorflow_serving.test_util import testing


class Clock:
    """Seconds that move only when the test sets them."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(progress: TrainingProgress, clock: Clock, steps: int, seconds_per_step: float) -> None:
    for step in range(1, steps + 1):
        clock.now += seconds_per_step
        progress(step, 1.0 / step)


def test_off_a_terminal_a_plain_line_every_tenth_and_at_the_end():
    stream, clock = io.StringIO(), Clock()
    with TrainingProgress(1000, stream, is_tty=False, clock=clock) as progress:
        run(progress, clock, 1000, 0.01)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert lines[0] == "step  100/1000  loss 0.0100  100.0 steps/s  0:00:09 left"
    assert lines[-1] == "step 1000/1000  loss 0.0010  100.0 steps/s  took 0:00:10"


def test_a_short_run_off_a_terminal_reports_each_step():
    stream, clock = io.StringIO(), Clock()
    with TrainingProgress(3, stream, is_tty=False, clock=clock) as progress:
        run(progress, clock, 3, 0.5)
    assert [line.split("  ")[0] for line in stream.getvalue().splitlines()] == [
        "step 1/3",
        "step 2/3",
        "step 3/3",
    ]


def test_on_a_terminal_one_line_is_redrawn_at_most_ten_times_a_second():
    stream, clock = io.StringIO(), Clock()
    with TrainingProgress(1000, stream, is_tty=True, clock=clock) as progress:
        run(progress, clock, 1000, 0.001)  # one second in all
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, "one line, ended once"
    draws = text.rstrip("\n").split("\r")[1:]
    assert 10 <= len(draws) <= 12, len(draws)
    assert all(draw.endswith("\x1b[K") for draw in draws), "each draw erases the old tail"
    assert draws[-1] == "step 1000/1000  loss 0.0010  1000.0 steps/s  took 0:00:01\x1b[K"


def test_time_left_follows_the_rate_so_far():
    stream, clock = io.StringIO(), Clock()
    progress = TrainingProgress(100, stream, is_tty=False, clock=clock)
    clock.now += 30.0
    assert progress.status(10, 0.25, clock.now) == (
        "step  10/100  loss 0.2500  0.3 steps/s  0:04:30 left"
    )


def test_durations_are_rounded_to_the_second():
    assert training_progress.format_duration(0.6) == "0:00:01"
    assert training_progress.format_duration(3661) == "1:01:01"
    assert training_progress.format_duration(-1) == "0:00:00"


def test_a_closed_stream_does_not_stop_training():
    stream = io.StringIO()
    progress = TrainingProgress(2, stream, is_tty=False, clock=Clock())
    stream.close()
    progress(2, 0.5)  # no exception


def test_total_steps_must_be_positive():
    with pytest.raises(ValueError, match="total_steps must be positive, got 0"):
        TrainingProgress(0, io.StringIO())


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
