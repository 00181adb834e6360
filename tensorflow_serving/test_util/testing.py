"""Shared helpers for the project's py_test targets."""

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

# Tests pick ports the way the benchmark tools do: one definition, in tools/processes.py.
from tensorflow_serving.tools.processes import free_port  # noqa: F401
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


# The repository root: in a Bazel test, the workspace directory of the runfiles.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pinned_version(package: str) -> str:
    """The version requirements.txt pins `package` to (`name==version`).

    Under Bazel the test needs `data = ["//:requirements.txt"]`.
    """
    path = os.path.join(REPO_ROOT, "requirements.txt")
    with open(path) as requirements:
        for line in requirements:
            name, pinned, version = line.split("#")[0].strip().partition("==")
            if pinned and name.strip().lower() == package.lower():
                return version.strip()
    raise AssertionError(f"{package} is not pinned (name==version) in {path}")


def child_env() -> dict[str, str]:
    """This environment, with PYTHONPATH set so a child Python imports what this test imports.

    Under Bazel the test's modules come from runfiles that a plain `python`
    child would not see.
    """
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def probe_fresh_interpreter(code: str, name: str, value: str | None) -> str:
    """Runs `code` in a new Python with environment variable `name` set to `value`
    (None: unset), and returns the last line it printed; a failure fails the test.

    For settings a process reads once, when a library is first imported.
    """
    env = child_env()
    env.pop(name, None)
    if value is not None:
        env[name] = value
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit("testing.py is a library for tests, not a program")
