"""Importing TensorFlow with its import-time log lines filtered, for our programs.

Importing TensorFlow 2.21 writes straight to file descriptor 2, whatever
Python's logging says: absl's "before absl::InitializeLog()" notice and a
oneDNN INFO line, each once per shared library that carries them (so
twice), plus cpu_feature_guard's INFO record. The stock server prints each
once, and only at the level `TF_CPP_MIN_LOG_LEVEL` allows. `import_tensorflow`
gives our programs the same: it imports TensorFlow with fd 2 captured and
writes back the records the level lets through, each message once.

Call before other threads exist (the fd swap would lose their stderr
lines); once TensorFlow is imported it does nothing.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"

_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl's C++ format ("I0000 00:00:1796629858.697588   28994 port.cc:153] ...")
# and TensorFlow's older one ("2024-01-01 00:00:00.000000: I tensorflow/...").
_RECORD = re.compile(
    r"^(?:([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) )"
)
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"


def min_log_level(value: str | None, default: int = 0) -> int:
    """The level TensorFlow's C++ logging uses for `TF_CPP_MIN_LOG_LEVEL=value`.

    Unset or empty is `default` (TensorFlow's own: 0); a value that is not a
    number means 0 to TensorFlow, so it does here.
    """
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        return 0


def visible_lines(text: str, level: int) -> str:
    """The part of captured stderr `text` that TensorFlow's `level` lets through, each
    record once.

    A log record is kept if its severity (I=0, W=1, E=2, F=3) is at least
    `level` (fatal records always) and no earlier record carried the same
    message; lines that do not start a record go with the one before them
    (multi-line messages) or, before any record, are kept. absl's notice is
    kept only at level 0, once.
    """
    kept: list[str] = []
    seen: set[str] = set()
    keep_current = True
    for line in text.splitlines(keepends=True):
        if line.startswith(ABSL_NOTICE):
            keep_current = level <= 0 and line not in seen
            seen.add(line)
        else:
            match = _RECORD.match(line)
            if match:
                severity = _SEVERITY[match.group(1) or match.group(2)]
                message = line[match.end() :]
                keep_current = (
                    severity >= level or severity == _SEVERITY["F"]
                ) and message not in seen
                seen.add(message)
        if keep_current:
            kept.append(line)
    return "".join(kept)


def import_tensorflow(level: int) -> None:
    """Imports tensorflow with fd 2 captured; writes back `visible_lines(captured, level)`.

    If the import raises, everything captured is written back before the
    exception propagates. Does nothing if tensorflow is already imported.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401

            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write(text if failed else visible_lines(text, level))
            sys.stderr.flush()
