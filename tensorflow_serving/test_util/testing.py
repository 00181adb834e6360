"""Shared helpers for the project's py_test targets."""

import os
import socket
import sys
import time
from collections.abc import Callable

import pytest

from tensorflow_serving.util import status


def main(test_file: str) -> int:
    """Runs one test file with pytest, writing the JUnit XML Bazel asks for.

    Every *_test.py ends with `sys.exit(testing.main(__file__))`, so a Bazel
    py_test is a plain pytest module and its cases are counted one by one.
    """
    args = [test_file, "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args.append(f"--junitxml={xml}")
    return int(pytest.main(args))


def serving_error(fn: Callable[..., object], *args: object) -> status.ServingError:
    """The ServingError that `fn(*args)` raises; fails the calling test if it raises none."""
    with pytest.raises(status.ServingError) as caught:
        fn(*args)
    return caught.value


def wait_for(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.02) -> bool:
    """Polls `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def child_env() -> dict[str, str]:
    """This environment, with PYTHONPATH set so a child Python imports what this test imports.

    Under Bazel the test's modules come from runfiles that a plain `python`
    child would not see.
    """
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit("testing.py is a library for tests, not a program")
