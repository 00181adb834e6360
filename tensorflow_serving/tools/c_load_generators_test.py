"""The C engines offline: gRPC framing, command lines, and reports captured from h2load and wrk.

Runs against servers live in load_generator_test (skipped without the binaries).
"""

import dataclasses
import os
import struct
import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import c_load_generators as engines
from tensorflow_serving.tools.load_generator import GRPC_PREDICT, LoadSpec

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")


def _sample(name: str) -> str:
    with open(os.path.join(TESTDATA, name)) as handle:
        return handle.read()


def _spec(protocol="grpc", concurrency=32, **kw):
    kw = {"rest_path": "/v1/models/m:predict", "duration_s": 5.0, "warmup_s": 2.0, **kw}
    return LoadSpec(protocol=protocol, port=8500, body=b"x", batch=1, concurrency=concurrency, **kw)


def test_grpc_frame_is_flag_then_big_endian_length_then_message():
    assert engines.grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    message = bytes(300)
    framed = engines.grpc_frame(message)
    assert framed[:5] == b"\x00" + struct.pack(">I", 300) == b"\x00\x00\x00\x01\x2c"
    assert framed[5:] == message and len(framed) == 300 + engines.GRPC_FRAME_HEADER


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_h2load_grpc_command_opens_a_connection_per_client_with_one_stream_each():
    cmd = engines.h2load_command(_spec("grpc", concurrency=32), "/tmp/body", "/tmp/requests.log")
    assert cmd[0] == "h2load"
    assert _flag(cmd, "-c") == "32" and _flag(cmd, "-m") == "1"
    assert _flag(cmd, "-t") == "2"  # min(2, concurrency) threads by default
    assert _flag(cmd, "-D") == "5000ms" and _flag(cmd, "--warm-up-time") == "2000ms"
    assert _flag(cmd, "-d") == "/tmp/body" and "--log-file=/tmp/requests.log" in cmd
    headers = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-H"]
    assert headers == ["content-type: application/grpc", "te: trailers"]
    assert "--h1" not in cmd
    assert cmd[-1] == f"http://127.0.0.1:8500{GRPC_PREDICT}"


def test_h2load_rest_command_speaks_http1_with_json():
    cmd = engines.h2load_command(
        _spec("rest", concurrency=1, warmup_s=0.0), "/tmp/body", "/tmp/requests.log"
    )
    assert "--h1" in cmd and "--warm-up-time" not in cmd
    assert _flag(cmd, "-t") == "1" and _flag(cmd, "-c") == "1"  # threads never exceed clients
    assert _flag(cmd, "-H") == "content-type: application/json"
    assert cmd[-1] == "http://127.0.0.1:8500/v1/models/m:predict"


def test_wrk_command_and_script():
    cmd = engines.wrk_command(_spec("rest", concurrency=3, procs=8), "/tmp/post.lua", 5)
    assert cmd[0] == "wrk"
    assert _flag(cmd, "-c") == "3" and _flag(cmd, "-t") == "3"
    assert _flag(cmd, "-d") == "5s" and _flag(cmd, "--timeout") == "10s"
    assert "--latency" in cmd and _flag(cmd, "-s") == "/tmp/post.lua"
    script = engines.wrk_script("/tmp/body.json")
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script
    assert 'io.open("/tmp/body.json", "rb")' in script and "wrk.body = " in script


@pytest.mark.parametrize("seconds, whole", [(0.2, 1), (1.0, 1), (1.5, 2), (5.0, 5)])
def test_wrk_runs_whole_seconds(seconds, whole):
    assert engines.wrk_seconds(seconds) == whole


@pytest.mark.parametrize(
    "text, seconds", [("36us", 36e-6), ("8.54ms", 8.54e-3), ("2.10s", 2.1), ("1.50m", 90.0)]
)
def test_durations_in_the_tools_units(text, seconds):
    assert engines.duration_seconds(text) == pytest.approx(seconds)


# h2load --log-file: start (us since the epoch), HTTP status ('-': the stream failed), us taken.
H2LOAD_LOG = """1796610729099610\t200\t600
1796610729099921\t200\t200
1796610729100028\t-\t9000
1796610729100030\t503\t7000
1796610729100100\t200\t400
"""


def test_h2load_latency_comes_from_its_request_log():
    # Only the answered 2xx requests: 200, 400 and 600 us.
    assert engines.h2load_latency(H2LOAD_LOG) == {
        "p50": 0.4,
        "p90": 0.56,
        "p99": 0.596,
        "mean": 0.4,
        "max": 0.6,
    }
    assert engines.h2load_latency("")["p50"] is None


def test_h2load_grpc_report():
    report = engines.parse_h2load(_sample("h2load_grpc_ok.txt"), H2LOAD_LOG)
    assert report.requests_ok == 29105 and report.errors == 0 and report.error_kinds == {}
    assert report.seconds == pytest.approx(2.0, rel=1e-3)  # the main duration, not the warm-up
    assert report.latency_ms["p50"] == 0.4
    assert report.data_bytes == 3115924


def test_h2load_rest_reports_failed_statuses_by_family():
    report = engines.parse_h2load(_sample("h2load_rest_501.txt"), "")
    assert report.requests_ok == 0 and report.errors == 1656
    assert report.error_kinds == {"http:5xx": 1656}
    assert report.latency_ms["p50"] is None  # nothing succeeded

    ok = engines.parse_h2load(_sample("h2load_rest_ok.txt"), "")
    assert ok.requests_ok == 39162 and ok.errors == 0


def test_grpc_answers_without_a_message_are_errors():
    # Every call failed in its trailers: HTTP 200 and no DATA, which h2load calls success.
    report = engines.parse_h2load(_sample("h2load_grpc_internal.txt"), "")
    assert report.requests_ok == 2280 and report.errors == 0 and report.data_bytes == 0
    engines.count_messageless_answers(report, answer_bytes=102, in_flight=2)
    assert report.requests_ok == 0 and report.errors == 2280
    assert report.error_kinds == {"grpc:no-message": 2280}


def test_grpc_answers_with_their_message_stay_ok():
    # 29105 answers of 102 bytes framed (107) and a few straddling the warm-up's end.
    report = engines.parse_h2load(_sample("h2load_grpc_ok.txt"), "")
    engines.count_messageless_answers(report, answer_bytes=102, in_flight=4)
    assert report.requests_ok == 29105 and report.errors == 0
    # Without the checked answer's size nothing is inferred.
    engines.count_messageless_answers(report, answer_bytes=0, in_flight=4)
    assert report.requests_ok == 29105


def test_wrk_report():
    report = engines.parse_wrk(_sample("wrk_rest_ok.txt"))
    assert report.requests_ok == 36430 and report.errors == 0
    assert report.seconds == pytest.approx(2.1)
    assert report.latency_ms == {
        "p50": 0.198,
        "p90": 0.434,
        "p99": 95.95,
        "mean": 2.74,
        "max": 141.97,
    }


def test_wrk_errors():
    statuses = engines.parse_wrk(_sample("wrk_rest_501.txt"))
    assert statuses.requests_ok == 0 and statuses.errors == 1763
    assert statuses.error_kinds == {"http:4xx/5xx": 1763}
    sockets = engines.parse_wrk(_sample("wrk_read_errors.txt"))
    assert sockets.requests_ok == 0 and sockets.error_kinds == {"socket read": 11148}
    assert sockets.latency_ms["p50"] is None  # wrk prints zeros when nothing was answered


def test_output_without_a_report_is_an_error():
    refused = "connect to 127.0.0.1 port 1 failed: Connection refused\n"
    with pytest.raises(ValueError, match="in its output"):
        engines.parse_h2load(refused, "")
    with pytest.raises(ValueError, match="in its output"):
        engines.parse_wrk(refused)


def test_engines_by_protocol_takes_the_first_that_speaks_it():
    assert engines.engines_by_protocol("wrk,h2load", ["grpc", "rest"]) == {
        "grpc": "h2load",
        "rest": "wrk",
    }
    assert engines.engines_by_protocol("h2load", ["rest"]) == {"rest": "h2load"}
    assert engines.engines_by_protocol("python", ["grpc"]) == {"grpc": "python"}
    with pytest.raises(ValueError, match="none speaks grpc"):
        engines.engines_by_protocol("wrk", ["grpc", "rest"])
    with pytest.raises(ValueError, match="choose from"):
        engines.engines_by_protocol("ab", ["rest"])


def test_a_missing_binary_names_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ValueError, match="nghttp2-client"):
        engines.require_binaries(["python", "h2load"])
    engines.require_binaries(["python"])


@pytest.mark.parametrize("change", [{"requests": 10, "duration_s": None}, {"protocol": "grpc"}])
def test_runs_an_engine_cannot_do_are_refused(change):
    spec = dataclasses.replace(_spec("rest"), **change)
    with pytest.raises(ValueError):
        engines.run_load(spec, "wrk")


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
