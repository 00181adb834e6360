"""hostile_bench and its clients: the bomb is the request it claims to be, attackers
stay on loopback, idle sockets see the server's close, and the summary judges
each check against its limit."""

import multiprocessing
import socket
import sys
import threading

import pytest

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import hostile_bench, hostile_clients


def test_string_bomb_is_a_predict_request_of_empty_strings_for_a_float_input():
    request = predict_pb2.PredictRequest.FromString(
        hostile_clients.string_bomb("hp", "x", 300, hostile_clients.DT_FLOAT)
    )
    assert request.model_spec.name == "hp"
    tensor = request.inputs["x"]
    assert tensor.dtype == hostile_clients.DT_FLOAT
    assert [d.size for d in tensor.tensor_shape.dim] == [300, 1]
    assert list(tensor.string_val) == [b""] * 300
    # Two bytes on the wire per entry, and a few more for the longer lengths.
    extra = len(hostile_clients.string_bomb("hp", "x", 1000)) - len(
        hostile_clients.string_bomb("hp", "x", 0)
    )
    assert 2000 <= extra <= 2010


def test_attackers_refuse_hosts_off_loopback():
    stop = threading.Event()
    with pytest.raises(ValueError, match="loopback"):
        hostile_clients.header_flood("192.0.2.1", 80, 1 << 20, 0, stop, None)
    with pytest.raises(ValueError, match="loopback"):
        hostile_clients.idle_connections("192.0.2.1", 80, 1, stop, None)


def test_header_flood_counts_the_refusals_of_a_server_that_answers_431():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        stop = threading.Event()

        def server():
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
                stop.set()  # one attempt, then the attacker stops

        thread = threading.Thread(target=server)
        thread.start()
        reports = multiprocessing.get_context("spawn").Queue()
        hostile_clients.header_flood("127.0.0.1", port, 8 << 20, 0, stop, reports)
        thread.join(10)
        kind, attempts, refused, _ = reports.get(timeout=10)
    assert (kind, attempts, refused) == ("header", 1, 1)


def test_idle_connections_report_the_ones_the_server_closed():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        stop = threading.Event()
        reports = multiprocessing.get_context("spawn").Queue()
        attacker = threading.Thread(
            target=hostile_clients.idle_connections, args=("127.0.0.1", port, 3, stop, reports)
        )
        attacker.start()
        assert reports.get(timeout=10)[:3] == ("idle-held", 3, 0)
        accepted = [listener.accept()[0] for _ in range(3)]
        accepted[0].close()  # the server closes one: it is not reopened
        stop.set()
        attacker.join(10)
        assert reports.get(timeout=10) == ("idle-closed", 2)
        assert hostile_bench.established(port) >= 0
        for connection in accepted[1:]:
            connection.close()


def _load(p99: float, failed: int = 0) -> dict:
    return {"p99_ms": p99, "failed": failed}


def test_summary_holds_a_check_only_when_every_round_is_within_its_limit():
    report = {
        "bomb_bytes": 120_000_000,
        "checks": {
            "header/rest": [
                {"quiet": _load(10), "attacked": _load(15), "ratio": 1.5},
                {"quiet": _load(10), "attacked": _load(25), "ratio": 2.5},
            ],
            "idle/grpc": [{"quiet": _load(10), "attacked": _load(12, failed=1), "ratio": 1.2}],
            "bomb": [
                {
                    "code": "INVALID_ARGUMENT",
                    "seconds": 0.3,
                    "rss_growth_mb": 150.0,
                    "serving_after": True,
                }
            ],
            "control": [
                {
                    "alone": {"p99_ms": 2.0, "failed": 0},
                    "loaded": {"p99_ms": 49.0, "failed": 0},
                }
            ],
        },
    }
    lines = hostile_bench.summary_lines(report)
    verdicts = {line.split()[0]: line.rsplit(": ", 1)[1] for line in lines}
    assert verdicts == {
        "header/rest": "NOT MET",  # one round past 2x
        "idle/grpc": "NOT MET",  # a failed request
        "bomb": "HELD",
        "control": "HELD",
    }
    assert "1.50 (min 1.50" not in lines[0] and "2.00 (min 1.50, max 2.50)" in lines[0]


@pytest.mark.parametrize(
    "code, verdict",
    [
        ("INVALID_ARGUMENT", "HELD"),
        ("RESOURCE_EXHAUSTED", "HELD"),
        ("OK", "NOT MET"),
        ("INTERNAL", "NOT MET"),
    ],
)
def test_the_bomb_holds_only_when_refused_as_the_clients_fault_or_too_large(code, verdict):
    bomb = {"code": code, "seconds": 0.1, "rss_growth_mb": 3.0, "serving_after": True}
    lines = hostile_bench.summary_lines({"bomb_bytes": 1, "checks": {"bomb": [bomb]}})
    assert lines[0].rsplit(": ", 1)[1] == verdict


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
