"""Compressed REST bodies, against one built tensorflow_model_server.

A gzip body is inflated before it is decoded, as upstream does; what it
inflates to is bounded by --max_request_bytes while it streams in, so a
10 MB body that would inflate to 10 GB gets 413 and costs the server less
than 20 MB of memory (its peak RSS, reset just before the request, is
compared with its RSS then). An unknown coding gets 415.
"""

import gzip
import json
import sys
import zlib

import pytest

from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer

LIMIT = 12 << 20
MB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("encoding")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)  # y = 0.5x + 2
    running = RunningServer(
        base,
        "encoding",
        ["--model_name=hp", f"--model_base_path={base / 'hp'}", f"--max_request_bytes={LIMIT}"],
    )
    with running.serving():
        yield running


def gzip_bomb(size: int) -> bytes:
    """About `size` bytes of gzip that inflate to about 1,000 times as much (gzip members of 1 MiB of zeros)."""
    member = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    member = member.compress(bytes(MB)) + member.flush()
    return member * (size // len(member))


def memory_kb(pid: int) -> dict[str, int]:
    """The process's VmRSS and VmHWM (peak RSS), in kB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields


def reset_peak_rss(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # VmHWM starts again from VmRSS


def test_a_gzip_body_is_inflated_and_answered(server):
    body = gzip.compress(json.dumps({"instances": [1.0, 2.0]}).encode())
    code, _, raw = server.request(
        "POST", "/v1/models/hp:predict", body, {"Content-Encoding": "gzip"}
    )
    assert code == 200, raw
    assert json.loads(raw) == {"predictions": [2.5, 3.0]}


def test_a_gzip_bomb_gets_413_without_inflating_in_memory(server):
    bomb = gzip_bomb(10 * MB)
    assert 9 * MB < len(bomb) <= LIMIT
    pid = server.process.pid
    reset_peak_rss(pid)
    before = memory_kb(pid)["VmRSS"]
    code, _, raw = server.request(
        "POST", "/v1/models/hp:predict", bomb, {"Content-Encoding": "gzip"}
    )
    peak = memory_kb(pid)["VmHWM"]
    assert code == 413, raw
    assert f"--max_request_bytes={LIMIT}" in json.loads(raw)["error"]
    assert (peak - before) * 1024 < 20 * MB, f"RSS grew by {(peak - before) / 1024:.1f} MB"
    code, _, raw = server.request("POST", "/v1/models/hp:predict", {"instances": [2.0]})
    assert code == 200 and json.loads(raw) == {"predictions": [3.0]}


def test_an_unknown_encoding_gets_415_naming_it(server):
    code, _, raw = server.request(
        "POST", "/v1/models/hp:predict", b'{"instances": [1.0]}', {"Content-Encoding": "zstd"}
    )
    assert code == 415
    assert "'zstd'" in json.loads(raw)["error"]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
