"""Import first in each chapter program: TensorFlow then starts without its log noise.

Importing TensorFlow prints absl's "before absl::InitializeLog()" notice, a
oneDNN INFO line (once per shared library that carries it, so twice) and,
later, more INFO lines and Python deprecation warnings for the TF1 APIs the
chapter teaches. A reader of the chapter should see the program's own lines.
So importing this module, before anything imports tensorflow:

- imports tensorflow with `TF_CPP_MIN_LOG_LEVEL=1` (TensorFlow's INFO off,
  its warnings and errors kept) unless the user set it, in which case their
  level stands;
- imports tensorflow with file descriptor 2 captured, then writes back only
  the records at or above that level: the import-time lines that TensorFlow
  prints regardless of its own setting obey it too (a failed import writes
  back everything, for the diagnosis);
- drops TensorFlow's "X is deprecated" warnings and Python's
  DeprecationWarnings (unless `-W`/`PYTHONWARNINGS` asked for warnings).

`--verbose` on the command line (see `add_verbose_flag`) turns all of that
off and shows this project's own INFO logs too. If tensorflow is already
imported the module does nothing. A process that imports a chapter module
before tensorflow (a test, say) gets the same quiet import; the variable is
not left set, so the processes it starts (a server) log as they would.

Threads: runs at import time, on the importing thread, before other threads
exist; the fd swap would lose other threads' stderr lines otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import MutableMapping, Sequence

from tensorflow_serving.util import tensorflow_import

VERBOSE_FLAG = "--verbose"
LEVEL_VARIABLE = tensorflow_import.LEVEL_VARIABLE
# INFO hidden; TensorFlow's warnings, errors and fatal messages still show.
QUIET_LEVEL = 1


def verbose_requested(argv: Sequence[str]) -> bool:
    """Whether `--verbose` is among the program's arguments (before a `--`)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == VERBOSE_FLAG:
            return True
    return False


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """Declares `--verbose` on a program's parser, so --help lists it and argparse accepts it.

    The flag is acted on at import (see module doc); declaring it here keeps
    one help text for every chapter program.
    """
    parser.add_argument(
        VERBOSE_FLAG,
        action="store_true",
        help="(not upstream) show TensorFlow's start-up INFO logs, deprecation warnings and "
        f"this program's INFO logs; without it, {LEVEL_VARIABLE} (default {QUIET_LEVEL} here) "
        "decides what TensorFlow prints",
    )


def min_log_level(value: str | None) -> int:
    """The level TensorFlow's C++ logging uses for `TF_CPP_MIN_LOG_LEVEL=value`; unset or
    empty is QUIET_LEVEL here (TensorFlow's own default is 0)."""
    return tensorflow_import.min_log_level(value, QUIET_LEVEL)


visible_lines = tensorflow_import.visible_lines
import_tensorflow = tensorflow_import.import_tensorflow


class _DropDeprecations(logging.Filter):
    """Drops TensorFlow's "X is deprecated and will be removed" records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.module != "deprecation"


def quiet_python_warnings() -> None:
    """TensorFlow's deprecation records and Python's DeprecationWarnings off.

    Warnings options given with `-W` or PYTHONWARNINGS win: then only
    TensorFlow's logger is filtered.
    """
    logging.getLogger("tensorflow").addFilter(_DropDeprecations())
    if not sys.warnoptions:
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)


def show_own_info_logs() -> None:
    """This project's INFO logs to stderr (for --verbose); TensorFlow's logger is left alone."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname).1s %(name)s] %(message)s"))
    # "__main__": the program's own module, when run as a script.
    for name in ("tensorflow_serving", "__main__"):
        own = logging.getLogger(name)
        own.addHandler(handler)
        own.setLevel(logging.INFO)


def start(argv: Sequence[str], environ: MutableMapping[str, str]) -> None:
    """Applies the policy of the module doc for a program run with `argv` (without argv[0]).

    A `TF_CPP_MIN_LOG_LEVEL` set here is removed again once tensorflow is
    imported (TensorFlow has read it by then), so processes this one starts,
    such as a server a test runs, log as they would have.
    """
    if "tensorflow" in sys.modules:
        return
    if verbose_requested(argv):
        show_own_info_logs()
        return
    user_value = environ.get(LEVEL_VARIABLE)
    level = min_log_level(user_value)
    if user_value is None or not user_value.strip():
        environ[LEVEL_VARIABLE] = str(level)
    try:
        import_tensorflow(level)
    finally:
        if user_value is None:
            environ.pop(LEVEL_VARIABLE, None)
        else:
            environ[LEVEL_VARIABLE] = user_value
    quiet_python_warnings()


start(sys.argv[1:], os.environ)
