"""Keeps the soak benchmark from rotting: a few seconds of it, and its verdict logic."""

import argparse
import re
import subprocess
import sys

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import processes, soak


def test_short_soak_serves_swaps_and_passes(tmp_path):
    run = subprocess.run(
        [
            *processes.python_module("tensorflow_serving.tools.soak"),
            "--duration_seconds=4",
            "--concurrency=4",
            "--swap_every_seconds=1",
            "--malformed_fraction=0.2",
            f"--workdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=processes.child_env(),
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    served = int(re.search(r"requests served: (\d+)", out).group(1))
    assert served > 20, out
    assert re.search(r"failed well-formed requests: 0 of \d+", out), out
    malformed = re.search(r"malformed requests: (\d+), not answered with a client error: 0", out)
    assert malformed and int(malformed.group(1)) > 0, out
    distinct = int(re.search(r"\((\d+) distinct\)", out).group(1))
    assert distinct >= 2, f"versions swapped under load:\n{out}"
    assert re.search(r"p99 [\d.]+ ms", out), out
    peak = int(re.search(r"server peak RSS: (\d+) MiB", out).group(1))
    assert peak > 50, out
    assert "server exit code after SIGTERM: 0" in out


def test_an_answer_no_exported_version_gives_is_a_failure():
    assert soak._plausible(2.0, 4.0, frozenset({3})) == 3  # 0.5 * 2 + 3
    assert soak._plausible(2.0, 4.0, frozenset({1, 2})) is None
    assert soak._plausible(2.0, 4.25, frozenset({3})) is None


def test_report_fails_the_run_on_any_failed_well_formed_request(tmp_path, capsys):
    args = argparse.Namespace(
        concurrency=2, swap_every_seconds=5.0, malformed_fraction=0.01, server_arg=[]
    )
    run = soak.Soak(args, str(tmp_path))
    good = soak.Tally(well_formed=10, latencies=[0.001] * 10, versions={1})
    bad = soak.Tally(well_formed=10, latencies=[0.001] * 10)
    bad.fail("gRPC UNAVAILABLE: gone")
    rss = soak.RssWatch(0)
    assert run._report(([good, soak.Tally()], 1.0), rss, 0, "log") == 0
    assert run._report(([good, bad], 1.0), rss, 0, "log") == 1
    out = capsys.readouterr().out
    assert "failed well-formed requests: 1 of 20" in out and "soak: FAILED" in out
    assert run._report(([good], 1.0), rss, 1, "log") == 1, "a non-zero exit code fails it"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
