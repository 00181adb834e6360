"""Training progress for the chapter's programs: step, loss, rate and time left.

On a terminal one status line is redrawn in place (at most ten times a
second, and at the last step); elsewhere (a pipe, a log file, CI) a plain
line is written every tenth of the run, so a log stays short and readable.

    with TrainingProgress(total_steps=1000) as progress:
        classifier_graph.train(sess, model, data, 1000, 50, progress=progress)

Training loops call the object with `(step, loss)` after each step; it
never raises for a stream that went away (a closed pipe must not stop a
training run).

Threads: call it from the training thread only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

# What a training loop calls after each (1-based) step with that step's loss.
StepReport = Callable[[int, float], None]

REDRAW_SECONDS = 0.1
PLAIN_REPORTS = 10
_ERASE_TO_END = "\x1b[K"


def format_duration(seconds: float) -> str:
    """`h:mm:ss` for a number of seconds, rounded to the second (negative: 0)."""
    whole = round(max(seconds, 0.0))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class TrainingProgress:
    """Reports a training run of `total_steps` steps on `stream` (default stdout).

    `is_tty` (default: `stream.isatty()`) picks the in-place status line or
    plain lines; `clock` gives seconds (monotonic) for the rate and time left.
    """

    def __init__(
        self,
        total_steps: int,
        stream: TextIO | None = None,
        *,
        is_tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self._total = total_steps
        self._stream = stream if stream is not None else sys.stdout
        self._tty = self._stream.isatty() if is_tty is None else is_tty
        self._clock = clock
        self._start = clock()
        self._last_draw: float | None = None
        self._plain_every = max(1, total_steps // PLAIN_REPORTS)
        self._drawn = False

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, step: int, loss: float) -> None:
        """Reports `step` (1-based) and its `loss`, if it is time to."""
        now = self._clock()
        last = step >= self._total
        if self._tty:
            due = self._last_draw is None or now - self._last_draw >= REDRAW_SECONDS
            if due or last:
                self._last_draw = now
                self._write(f"\r{self.status(step, loss, now)}{_ERASE_TO_END}")
                self._drawn = True
        elif last or step % self._plain_every == 0:
            self._write(self.status(step, loss, now) + "\n")

    def status(self, step: int, loss: float, now: float) -> str:
        """One report: `step 300/1000  loss 0.4123  512.0 steps/s  0:00:02 left`."""
        elapsed = now - self._start
        rate = step / elapsed if elapsed > 0 else 0.0
        width = len(str(self._total))
        parts = [f"step {step:>{width}}/{self._total}", f"loss {loss:.4f}"]
        if rate > 0:
            parts.append(f"{rate:.1f} steps/s")
            if step < self._total:
                parts.append(f"{format_duration((self._total - step) / rate)} left")
            else:
                parts.append(f"took {format_duration(elapsed)}")
        return "  ".join(parts)

    def close(self) -> None:
        """Ends the in-place status line with a newline (nothing to do for plain lines)."""
        if self._tty and self._drawn:
            self._write("\n")
            self._drawn = False

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass
