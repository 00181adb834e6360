"""The load generator against the floor servers: counts, errors, CPU, and its bounds."""

import dataclasses
import json
import shutil
import sys
import urllib.request

import numpy as np
import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import c_load_generators, load_generator, processes, signature_inputs
from tensorflow_serving.tools.load_generator import LoadSpec

SPEC = {
    "model_name": "m",
    "signature": "serving_default",
    "inputs": {"x": "float32"},
    "outputs": {"y": {"dtype": "float32", "row_shape": [3]}},
}


@pytest.fixture(scope="module")
def floors(tmp_path_factory):
    """Both floor servers on free ports: {"grpc": (port, pid), "rest": (port, pid)}."""
    work = tmp_path_factory.mktemp("floors")
    started, ports = {}, {}
    try:
        for protocol in ("grpc", "rest"):
            port = processes.free_port()
            cmd = [
                *processes.python_module("tensorflow_serving.tools.floor_servers"),
                protocol,
                f"--port={port}",
                f"--spec={json.dumps(SPEC)}",
            ]
            log = str(work / f"{protocol}.log")
            started[protocol] = processes.start(cmd, None, log)
            if not processes.wait_for_port(port, 120, started[protocol]):
                pytest.fail(f"{protocol} floor did not start:\n{processes.log_tail(log)}")
            ports[protocol] = (port, started[protocol].pid)
        yield ports
    finally:
        for process in started.values():
            processes.stop(process)


def _spec(protocol, port, batch=2, **kw):
    x = np.ones((batch, 4), np.float32)
    if protocol == "grpc":
        body = signature_inputs.grpc_request("m", "serving_default", {"x": x})
    else:
        body = signature_inputs.rest_body("serving_default", {"x": x})
    kw.setdefault("rest_path", "/v1/models/m:predict")
    return LoadSpec(protocol=protocol, port=port, body=body, batch=batch, **kw)


def test_grpc_counted_run_measures_every_request(floors):
    port, pid = floors["grpc"]
    spec = _spec("grpc", port, concurrency=4, requests=300, duration_s=None, warmup_s=0.2)
    ok, detail, _ = load_generator.send_one(spec)
    assert ok, detail
    result = load_generator.run_load(dataclasses.replace(spec, server_pid=pid))
    assert result.failure is None
    assert result.requests_ok == 300 and result.errors == 0
    assert result.throughput_ips == pytest.approx(2 * result.throughput_rps, rel=0.01)
    lat = result.latency_ms
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result.client_cpu["cores"] > 0 and "saturated" in result.client_cpu
    assert result.server_cpu["us_per_inference"] > 0
    assert result.procs == 2


def test_rest_timed_run(floors):
    port, _ = floors["rest"]
    # The floor has no Prometheus page: no batch count, and the run is whole all the same.
    spec = _spec(
        "rest", port, batch=3, concurrency=3, duration_s=1.0, warmup_s=0.2, procs=1,
        metrics_page=(port, "/monitoring/prometheus/metrics"),
    )  # fmt: skip
    ok, detail, _ = load_generator.send_one(spec)
    assert ok, detail
    result = load_generator.run_load(spec)
    assert result.failure is None and result.errors == 0
    assert result.requests_ok > 0 and result.duration_s == 1.0
    assert result.throughput_ips == pytest.approx(3 * result.throughput_rps, rel=0.01)
    assert result.server_cpu is None  # no server pid given
    assert result.server_batches is None


def test_rest_floor_answers_one_prediction_per_row(floors):
    port, _ = floors["rest"]
    spec = _spec("rest", port, batch=3, concurrency=1)
    check = load_generator.send_one(spec)
    assert check.ok, check.detail
    url = f"http://127.0.0.1:{port}/v1/models/m:predict"
    with urllib.request.urlopen(urllib.request.Request(url, data=spec.body), timeout=10) as answer:
        assert answer.status == 200
        assert json.loads(answer.read()) == {"predictions": [[0.0, 0.0, 0.0]] * 3}


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_a_floor_that_holds_answers_every_request_of_a_concurrent_load(tmp_path, protocol):
    port = processes.free_port()
    cmd = [
        *processes.python_module("tensorflow_serving.tools.floor_servers"),
        protocol,
        f"--port={port}",
        f"--spec={json.dumps(SPEC)}",
        "--hold_micros=2000",
    ]
    log = str(tmp_path / "floor.log")
    server = processes.start(cmd, None, log)
    try:
        assert processes.wait_for_port(port, 120, server), processes.log_tail(log)
        spec = _spec(protocol, port, concurrency=4, requests=80, duration_s=None, warmup_s=0.0)
        check = load_generator.send_one(spec)
        assert check.ok, check.detail
        result = load_generator.run_load(spec)
        assert result.failure is None and result.errors == 0
        assert result.requests_ok == 80
    finally:
        processes.stop(server)


def test_http_errors_are_counted_by_status(floors):
    port, _ = floors["rest"]
    spec = _spec(
        "rest", port, rest_path="/v1/models/m:nothing", concurrency=2, requests=20,
        duration_s=None, warmup_s=0.0,
    )  # fmt: skip
    ok, detail, _ = load_generator.send_one(spec)
    assert not ok and detail.startswith("HTTP 404")
    result = load_generator.run_load(spec)
    assert result.requests_ok == 0 and result.errors == 20
    assert result.error_kinds == {"http:404": 20}


def test_grpc_errors_are_counted_by_code(floors):
    port, _ = floors["grpc"]
    spec = LoadSpec(
        protocol="grpc", port=port, body=b"\xff\xff not a proto", batch=1, concurrency=1,
        requests=5, duration_s=None, warmup_s=0.0,
    )  # fmt: skip
    result = load_generator.run_load(spec)
    assert result.requests_ok == 0 and result.errors == 5
    assert list(result.error_kinds) == ["grpc:INTERNAL"]


def _skip_without(binary):
    if shutil.which(binary) is None:
        package = c_load_generators.DEBIAN_PACKAGES[binary]
        pytest.skip(f"{binary} is not installed (Debian package {package}; tools/setup.sh)")


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_h2load_engine(floors, protocol):
    _skip_without("h2load")
    port, pid = floors[protocol]
    spec = _spec(protocol, port, concurrency=3, duration_s=1.0, warmup_s=0.3, server_pid=pid)
    check = load_generator.send_one(spec)
    assert check.ok, check.detail
    result = c_load_generators.run_load(spec, "h2load", check.answer_bytes)
    assert result.failure is None, result.failure
    assert result.errors == 0 and result.requests_ok > 0, result.error_kinds
    assert result.engine == "h2load" and result.connections == 3 and result.procs == 2
    assert result.throughput_ips == pytest.approx(2 * result.throughput_rps, rel=0.01)
    lat = result.latency_ms
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert (result.engine_note is not None) == (protocol == "grpc")  # grpc-status not read
    assert result.server_cpu["cores"] > 0 and result.client_cpu["cores"] > 0


def test_h2load_counts_grpc_calls_that_failed_in_their_trailers(floors):
    _skip_without("h2load")
    port, _ = floors["grpc"]
    good = load_generator.send_one(_spec("grpc", port, concurrency=1))
    spec = LoadSpec(
        protocol="grpc", port=port, body=b"\xff\xff not a proto", batch=1, concurrency=2,
        duration_s=1.0, warmup_s=0.0,
    )  # fmt: skip
    result = c_load_generators.run_load(spec, "h2load", good.answer_bytes)
    assert result.requests_ok == 0 and result.errors > 0
    assert list(result.error_kinds) == ["grpc:no-message"]


def test_wrk_engine(floors):
    _skip_without("wrk")
    port, pid = floors["rest"]
    spec = _spec("rest", port, concurrency=3, duration_s=1.0, warmup_s=0.0, server_pid=pid)
    result = c_load_generators.run_load(spec, "wrk")
    assert result.failure is None, result.failure
    assert result.errors == 0 and result.requests_ok > 0, result.error_kinds
    assert result.engine == "wrk" and result.connections == 3
    lat = result.latency_ms
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result.server_cpu["cores"] > 0 and result.client_cpu["cores"] > 0
    assert result.engine_note is None


@pytest.mark.parametrize(
    "change",
    [
        {"host": "10.1.2.3"},
        {"duration_s": 1000.0},
        {"warmup_s": 100.0},
        {"concurrency": 0},
        {"concurrency": 10_000},
        {"requests": 0, "duration_s": None},
        {"protocol": "http"},
    ],
)
def test_out_of_bounds_loads_are_refused(change):
    spec = LoadSpec(protocol="grpc", port=1, body=b"", batch=1, concurrency=1)
    with pytest.raises(ValueError):
        dataclasses.replace(spec, **change).validate()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
