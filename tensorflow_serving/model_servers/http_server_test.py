"""The HTTP server around the REST handler: headers, limits, the metrics page, lifecycle."""

import asyncio
import http.client
import json
import socket
import sys
import threading
import time

import pytest

from tensorflow_serving.model_servers import http_server, metrics
from tensorflow_serving.model_servers.http_rest_api_handler import (
    HttpRestApiHandler,
    RestResponse,
)
from tensorflow_serving.util import status, testing


class FakeCore:
    """Enough of ServerCore for the health checks."""

    def __init__(self):
        self.reasons: list[str] = []

    def readiness(self):
        return list(self.reasons)


class ScriptedHandler(HttpRestApiHandler):
    """Answers every API call itself; `gate` holds requests until the test opens it."""

    def __init__(self):
        super().__init__(FakeCore())
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)

    def handle(self, route, body):
        self.entered.release()
        self.gate.wait(10)
        answer = {"model": route.model_name, "api": route.api, "bytes": len(body)}
        return RestResponse(200, json.dumps(answer).encode(), version="1")

    async def predict_async(self, route, body, executor):
        """Small :predict bodies come here (on the loop); the gate still holds them."""
        return await asyncio.get_running_loop().run_in_executor(executor, self.handle, route, body)


@pytest.fixture
def serve():
    servers = []

    def start(**kw):
        handler = ScriptedHandler()
        serving_metrics = metrics.ServingMetrics(process=False)
        options = http_server.HttpOptions(port=0, host="127.0.0.1", **kw)
        server = http_server.HttpServer(
            http_server.RestApiApp(handler, options, serving_metrics), options
        )
        server.start()
        servers.append(server)
        return server, handler, serving_metrics

    yield start
    for server in servers:
        server.stop(timeout=5)


def request(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_api_requests_reach_the_handler_as_json(serve):
    server, _, _ = serve()
    code, headers, body = request(server, "POST", "/v1/models/m:predict", b'{"instances": [1]}')
    assert code == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"model": "m", "api": "predict", "bytes": 18}


def test_unknown_paths_are_not_found_and_bad_methods_malformed(serve):
    server, _, _ = serve()
    code, _, body = request(server, "GET", "/index.html")
    assert code == 404 and json.loads(body) == {"error": "Not found: GET /index.html"}
    code, _, body = request(server, "DELETE", "/v1/models/m")
    assert code == 400 and json.loads(body) == {"error": "Malformed request: DELETE /v1/models/m"}


def test_no_cors_headers_unless_enabled(serve):
    server, _, _ = serve()
    _, headers, _ = request(server, "GET", "/v1/models/m")
    assert not any(h.startswith("access-control") for h in headers)
    code, _, _ = request(server, "OPTIONS", "/v1/models/m:predict", headers={"Origin": "http://x"})
    assert code == 400


def test_cors_headers_and_preflight_when_enabled(serve):
    server, _, _ = serve(enable_cors=True)
    for method, path in (("GET", "/v1/models/m"), ("OPTIONS", "/v1/models/m:predict")):
        code, headers, _ = request(server, method, path, headers={"Origin": "http://x"})
        assert code == 200
        assert headers["access-control-allow-origin"] == "*"
        assert headers["access-control-allow-methods"] == "POST, GET"
        assert headers["access-control-allow-headers"] == "Content-Type"
    code, headers, _ = request(server, "POST", "/v1/models/nope/versions/x:predict")
    assert code == 400 and headers["access-control-allow-origin"] == "*"


def test_slow_requests_time_out_with_504(serve):
    server, handler, serving_metrics = serve(timeout_in_ms=200)
    handler.gate.clear()
    try:
        code, _, body = request(server, "POST", "/v1/models/m:predict", b"{}")
    finally:
        handler.gate.set()
    assert code == 504
    assert "--rest_api_timeout_in_ms=200" in json.loads(body)["error"]
    page = serving_metrics.render().decode()
    assert 'status="DEADLINE_EXCEEDED"' in page


def test_each_request_times_out_on_its_own_clock_on_the_loop_and_on_workers(serve):
    server, handler, _ = serve(timeout_in_ms=300)
    answers = {}

    def timed(name, path):
        started = time.monotonic()
        code, _, _ = request(server, "POST", path, b"{}")
        answers[name] = (code, time.monotonic() - started)

    handler.gate.clear()
    try:
        first = threading.Thread(target=timed, args=("predict", "/v1/models/m:predict"))
        first.start()
        time.sleep(0.15)
        # :classify runs on a worker thread, not the event loop; the same clock applies.
        second = threading.Thread(target=timed, args=("classify", "/v1/models/m:classify"))
        second.start()
        first.join(10)
        second.join(10)
    finally:
        handler.gate.set()
    for name in ("predict", "classify"):
        code, elapsed = answers[name]
        assert code == 504, name
        assert 0.28 <= elapsed < 5, (name, elapsed)
    assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200


def test_overload_answers_503_instead_of_queueing(serve):
    server, handler, _ = serve(num_threads=1, max_pending=1)
    handler.gate.clear()
    first = threading.Thread(target=request, args=(server, "POST", "/v1/models/m:predict", b"{}"))
    first.start()
    try:
        assert handler.entered.acquire(timeout=10)  # the only slot is taken
        code, _, body = request(server, "POST", "/v1/models/m:predict", b"{}")
        assert code == 503
        assert "overloaded" in json.loads(body)["error"]
    finally:
        handler.gate.set()
        first.join(10)
    assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200


def test_health_checks_do_not_wait_for_busy_workers(serve):
    server, handler, _ = serve(num_threads=1)
    handler.gate.clear()
    busy = threading.Thread(target=request, args=(server, "POST", "/v1/models/m:predict", b"{}"))
    busy.start()
    try:
        assert handler.entered.acquire(timeout=10)
        assert request(server, "GET", "/v1/health/live")[0] == 200
        code, _, body = request(server, "GET", "/v1/health/ready")
        assert (code, json.loads(body)) == (200, {"status": "ready"})
        handler._core.reasons = ["model m has no AVAILABLE version: version 1 LOADING"]
        code, _, body = request(server, "GET", "/v1/health/ready")
        assert code == 503
        assert json.loads(body)["reasons"] == handler._core.reasons
    finally:
        handler.gate.set()
        busy.join(10)


def test_prometheus_page_only_when_configured(serve):
    server, _, _ = serve()
    assert request(server, "GET", "/monitoring/prometheus/metrics")[0] == 404
    server, _, _ = serve(prometheus_path="/metrics")
    request(server, "POST", "/v1/models/m:predict", b"{}")
    code, headers, body = request(server, "GET", "/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain")
    assert ':tensorflow:serving:request_count{model_name="m",version="1"' in body.decode()


def test_a_taken_port_fails_start(serve):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options = http_server.HttpOptions(port=taken.getsockname()[1], host="127.0.0.1")
        app = http_server.RestApiApp(ScriptedHandler(), options, metrics.ServingMetrics(False))
        with pytest.raises(status.ServingError, match="Failed to start HTTP Server"):
            http_server.HttpServer(app, options).start()
        app.close()


def test_stop_closes_the_port(serve):
    server, _, _ = serve()
    port = server.port
    server.stop(timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
