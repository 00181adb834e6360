"""The server's numpy starts no BLAS threads: a large dot product while decoding a
request would otherwise leave OpenBLAS threads spinning on the server's cores."""

import sys

from tensorflow_serving.test_util import testing

# Run in a fresh interpreter: imports the server's entry point, then prints how
# many threads it and one large dot product added to the process (OpenBLAS
# starts its threads when numpy is imported) and the setting it saw.
_PROBE = """
import os
before = len(os.listdir("/proc/self/task"))
import tensorflow_serving.model_servers.main
import numpy
values = numpy.ones(1_000_000)
values.dot(values)
print(len(os.listdir("/proc/self/task")) - before, os.environ.get("OPENBLAS_NUM_THREADS"))
"""


def _threads_added_by_a_dot(user_setting: str | None) -> tuple[int, str]:
    line = testing.probe_fresh_interpreter(_PROBE, "OPENBLAS_NUM_THREADS", user_setting)
    added, setting = line.split()
    return int(added), setting


def test_a_large_dot_product_in_the_server_starts_no_thread():
    assert _threads_added_by_a_dot(None) == (0, "1")


def test_a_users_own_setting_is_kept():
    added, setting = _threads_added_by_a_dot("2")
    assert setting == "2"
    assert added == 1, "OpenBLAS with 2 threads adds one to the caller's"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
