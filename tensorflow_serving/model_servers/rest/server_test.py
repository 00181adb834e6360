"""The HTTP server around the REST handler: headers, limits, the metrics page, lifecycle."""

import asyncio
import gzip
import http.client
import json
import logging
import socket
import sys
import threading
import time

import pytest

from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.model_servers import metrics
from tensorflow_serving.model_servers.data_plane import Work
from tensorflow_serving.model_servers.rest import app as app_lib
from tensorflow_serving.model_servers.rest import loop_timeouts
from tensorflow_serving.model_servers.rest import server as http_server
from tensorflow_serving.model_servers.rest.handler import (
    HttpRestApiHandler,
    RestResponse,
)
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.raw_http import read_responses, status_of, until_closed
from tensorflow_serving.util import status
from tensorflow_serving.util.rate_limited_log import RateLimitingFilter


class FakeCore:
    """Enough of ServerCore: every model name has a version 1, and the health checks."""

    def __init__(self):
        self.reasons: list[str] = []

    def servable_handle(self, model_spec):
        return ServableHandle(model_spec.name, 1, None)

    def readiness(self):
        return list(self.reasons)


class ScriptedWork(Work):
    """Answers with what it was asked, on the runner the app gives it, once the gate is open."""

    def __init__(self, handler, route, body):
        self._handler, self._route, self._body = handler, route, body

    def start(self, handle, runner):
        return runner.submit(self._handler.answer, self._route, self._body)


class ScriptedHandler(HttpRestApiHandler):
    """Answers every API call itself; `gate` holds requests until the test opens it."""

    def __init__(self, plane, control=None, max_decoded_bytes=0):
        super().__init__(plane, control, max_decoded_bytes)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)

    def answer(self, route, body):
        self.entered.release()
        self.gate.wait(10)
        answer = {"model": route.model_name, "api": route.api, "bytes": len(body)}
        return RestResponse(200, json.dumps(answer).encode(), version="1")

    def work_for(self, route, body):
        return ScriptedWork(self, route, body)

    def status(self, route):
        return self.answer(route, b"")


@pytest.fixture
def serve():
    servers = []

    def start(app_type=app_lib.RestApiApp, **kw):
        serving_metrics = metrics.ServingMetrics(process=False)
        options = app_lib.HttpOptions(port=0, host="127.0.0.1", **kw)
        app = app_type(FakeCore(), options, serving_metrics, handler_type=ScriptedHandler)
        server = http_server.HttpServer(app, options)
        server.start()
        servers.append(server)
        return server, app.handler, serving_metrics

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


def test_a_preflight_needs_a_web_origin(serve):
    server, _, _ = serve(enable_cors=True)
    for headers in ({}, {"Origin": "null"}):
        code, answer_headers, body = request(
            server, "OPTIONS", "/v1/models/m:predict", headers=headers
        )
        assert code == 400
        assert "Origin" in json.loads(body)["error"]
        assert answer_headers["access-control-allow-origin"] == "*"


def test_gzip_bodies_are_inflated_on_both_paths(serve):
    server, _, _ = serve(CountingApp)
    payload = b'{"instances": [1, 2, 3]}'
    code, _, body = request(
        server,
        "POST",
        "/v1/models/m:predict",
        gzip.compress(payload),
        {"Content-Encoding": "gzip"},
    )
    assert code == 200 and json.loads(body)["bytes"] == len(payload)
    assert server.app.asgi_calls == 1  # a compressed body leaves the inline path
    code, _, body = request(server, "POST", "/v1/models/m:predict", payload)
    assert code == 200 and json.loads(body)["bytes"] == len(payload)
    assert server.app.asgi_calls == 1  # an ordinary one keeps it


def test_gzip_inflating_past_the_limit_gets_413(serve):
    server, _, _ = serve(max_request_bytes=1000)
    bomb = gzip.compress(b"0" * 100_000)
    assert len(bomb) < 1000
    code, _, body = request(
        server, "POST", "/v1/models/m:predict", bomb, {"Content-Encoding": "gzip"}
    )
    assert code == 413
    message = json.loads(body)["error"]
    assert "inflates to" in message and "--max_request_bytes=1000" in message


def test_unknown_encodings_and_broken_gzip_are_refused(serve):
    server, _, _ = serve()
    code, _, body = request(
        server, "POST", "/v1/models/m:predict", b"{}", {"Content-Encoding": "br"}
    )
    assert code == 415 and "'br'" in json.loads(body)["error"]
    code, _, body = request(
        server, "POST", "/v1/models/m:predict", b"not gzip", {"Content-Encoding": "gzip"}
    )
    assert code == 400 and "not valid gzip" in json.loads(body)["error"]
    truncated = gzip.compress(b'{"instances": [1]}')[:-6]
    code, _, body = request(
        server, "POST", "/v1/models/m:predict", truncated, {"Content-Encoding": "gzip"}
    )
    assert code == 400 and "ends before" in json.loads(body)["error"]


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


def post_while_held(server, handler, paths: dict) -> dict:
    """POSTs each path from its own thread while the handler holds them; {name: HTTP code}.

    Each request is sent only once the previous one reached the handler.
    """
    answers = {}

    def post(name, path):
        answers[name] = request(server, "POST", path, b"{}")[0]

    handler.gate.clear()
    threads = [threading.Thread(target=post, args=item) for item in paths.items()]
    try:
        for thread in threads:
            thread.start()
            assert handler.entered.acquire(timeout=10)
        for thread in threads:
            thread.join(10)
    finally:
        handler.gate.set()
    return answers


def test_each_request_times_out_on_the_loop_and_on_workers(serve):
    server, handler, _ = serve(timeout_in_ms=300)
    # :predict is started on the loop, :classify on a worker; the same timeout applies.
    answers = post_while_held(
        server,
        handler,
        {"predict": "/v1/models/m:predict", "classify": "/v1/models/m:classify"},
    )
    assert answers == {"predict": 504, "classify": 504}
    assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200


def test_held_predicts_each_time_out_however_many_wait(serve):
    """The loop keeps one timer for all its requests; each held one still gets its 504."""
    server, handler, _ = serve(timeout_in_ms=300, num_threads=4)
    answers = post_while_held(server, handler, {i: "/v1/models/m:predict" for i in range(4)})
    assert answers == {0: 504, 1: 504, 2: 504, 3: 504}
    # Answered requests leave no timer behind: later ones are answered, not timed out.
    for _ in range(3):
        assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200


class _Held:
    """What the loop's timeout queue sees of a request: answered or not, and its 504."""

    def __init__(self):
        self.answered = False
        self.timed_out = False

    def time_out(self):
        self.timed_out = self.answered = True


def test_answered_requests_behind_a_hung_one_do_not_pile_up():
    """One request that never answers must not make the timeout queue keep every later one."""

    async def traffic():
        timeouts = loop_timeouts.LoopTimeouts(0.2)
        hung = _Held()
        timeouts.add(hung)
        longest = 0
        for _ in range(50_000):
            quick = _Held()
            timeouts.add(quick)
            quick.answered = True
            longest = max(longest, len(timeouts._queue))
        for _ in range(1000):  # until the timer has fired for the hung request (at 0.2 s)
            if hung.timed_out:
                break
            await asyncio.sleep(0.01)
        return hung, longest, len(timeouts._queue)

    hung, longest, left = asyncio.run(traffic())
    assert longest <= 2 * loop_timeouts.COMPACT_LENGTH
    assert hung.timed_out  # still timed out on its own clock
    assert left == 0


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
        options = app_lib.HttpOptions(port=taken.getsockname()[1], host="127.0.0.1")
        app = app_lib.RestApiApp(FakeCore(), options, metrics.ServingMetrics(False))
        with pytest.raises(status.ServingError, match="Failed to start HTTP Server"):
            http_server.HttpServer(app, options).start()
        app.close()


def test_stop_closes_the_port(serve):
    server, _, _ = serve()
    port = server.port
    server.stop(timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- Small :predict requests answered from the protocol (rest/inline_protocol.py) --------------


class CountingApp(app_lib.RestApiApp):
    """Counts the requests that took uvicorn's ASGI path."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asgi_calls = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.asgi_calls += 1
        await super().__call__(scope, receive, send)


def _post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def _send_held_predict(server, handler) -> socket.socket:
    """A socket whose :predict the handler holds (gate closed) until the test opens the gate."""
    handler.gate.clear()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(_post("/v1/models/m:predict", b"{}"))
    assert handler.entered.acquire(timeout=10)
    return sock


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_small_predicts_on_a_keep_alive_connection_skip_asgi(serve):
    server, _, _ = serve(CountingApp, enable_cors=True)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for name in ("a", "b", "c"):
            sock.sendall(_post(f"/v1/models/{name}:predict", b'{"instances": [1]}'))
            ((code, headers, body),) = read_responses(sock, 1)
            assert code == 200
            assert json.loads(body) == {"model": name, "api": "predict", "bytes": 18}
            assert headers["content-type"] == "application/json"
            assert headers["access-control-allow-origin"] == "*"
            assert "connection" not in headers and "date" in headers
    assert server.app.asgi_calls == 0
    # Other APIs, and :predict with a chunked body, take the ASGI path with the same answers.
    assert request(server, "GET", "/v1/health/live")[0] == 200
    code, _, body = request(server, "POST", "/v1/models/m:Predict", b"{}")  # upstream: case matters
    assert code == 400 and "Malformed request" in json.loads(body)["error"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/v1/models/d:predict", body=iter([b'{"instances":', b" [1]}"]))
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["bytes"] == 18
    connection.close()
    assert server.app.asgi_calls == 3


def test_keep_alive_connections_close_only_after_an_idle_spell(serve):
    """Busy connections stay open past the keep-alive time; idle ones close after it."""
    server, _, _ = serve(keep_alive_seconds=0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # three keep-alive spans of steady traffic
            time.sleep(0.15)
            sock.sendall(_post("/v1/models/m:predict", b'{"instances": [1]}'))
            assert read_responses(sock, 1)[0][0] == 200
            sock.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")  # ASGI path
            assert read_responses(sock, 1)[0][0] == 200
        sock.settimeout(10)
        assert sock.recv(1) == b""  # closed by the server once idle


def test_each_path_reaches_its_own_model_however_many_paths_clients_use(serve):
    """The loop remembers the route of each :predict path it saw, within a bound."""
    server, _, _ = serve(CountingApp)
    names = [f"m{i}" for i in range(app_lib._ROUTES_KEPT + 20)] + ["m0", "m1"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for name in names:
            sock.sendall(_post(f"/v1/models/{name}:predict", b"{}"))
            ((code, _, body),) = read_responses(sock, 1)
            assert code == 200 and json.loads(body)["model"] == name
        sock.sendall(_post("/v1/models/m0:predictx", b"{}"))
        assert read_responses(sock, 1)[0][0] == 400
    assert server.app.asgi_calls == 1


def test_a_body_that_arrives_in_pieces_is_answered_whole(serve):
    server, _, _ = serve(CountingApp)
    whole = _post("/v1/models/m:predict", b'{"instances": [1, 2, 3]}')
    cut = whole.index(b"\r\n\r\n") + 10
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for piece in (whole[:cut], whole[cut:-3], whole[-3:]):
            sock.sendall(piece)
            time.sleep(0.05)
        ((code, _, body),) = read_responses(sock, 1)
    assert code == 200 and json.loads(body)["bytes"] == len(b'{"instances": [1, 2, 3]}')
    assert server.app.asgi_calls == 0


def test_pipelined_requests_are_answered_in_order(serve):
    server, _, _ = serve(CountingApp)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            _post("/v1/models/first:predict", b"{}")
            + _post("/v1/models/second:predict", b"{}")
            + b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = read_responses(sock, 3)
    assert [json.loads(body).get("model") for _, _, body in answers] == ["first", "second", None]
    assert [code for code, _, _ in answers] == [200, 200, 200]


def test_connection_close_and_http_1_0_close_after_the_answer(serve):
    server, _, _ = serve(CountingApp)
    for request_bytes in (
        _post("/v1/models/m:predict", b"{}", b"Connection: close\r\n"),
        _post("/v1/models/m:predict", b"{}").replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request_bytes)
            ((code, headers, _),) = read_responses(sock, 1)
            assert code == 200 and headers["connection"] == "close"
            assert _closed(sock)
    assert server.app.asgi_calls == 0


def test_expect_continue_and_bad_lengths_take_the_asgi_path(serve):
    server, _, _ = serve(CountingApp, max_request_bytes=100)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with_expect = _post("/v1/models/m:predict", b"{}", b"Expect: 100-continue\r\n")
        sock.sendall(with_expect[:-2])  # the headers only: the client waits for 100 Continue
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"{}")
        ((code, _, body),) = read_responses(sock, 1)
    assert code == 200 and json.loads(body)["bytes"] == 2
    code, _, body = request(server, "POST", "/v1/models/m:predict", b"x" * 101)
    assert code == 413 and "--max_request_bytes=100" in json.loads(body)["error"]
    assert server.app.asgi_calls == 2


def test_a_client_gone_before_its_answer_leaves_the_server_serving(serve):
    server, handler, _ = serve(CountingApp)
    sock = _send_held_predict(server, handler)
    sock.close()
    handler.gate.set()
    for _ in range(3):
        assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200
    assert server.app.asgi_calls == 0


def _after_loop_passes(loop: asyncio.AbstractEventLoop, passes: int = 3) -> None:
    """Returns once `loop` ran what it had queued, and what that queued, `passes` deep."""
    for _ in range(passes):
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        assert ran.wait(10)


@pytest.mark.parametrize(
    "first", ["/v1/models/m:predict", "/v1/models/m:classify"], ids=["inline", "asgi"]
)
def test_a_client_gone_with_pipelined_requests_pending_logs_nothing(serve, caplog, first):
    """uvicorn marked only the newest pipelined request as disconnected; the one being
    answered then wrote to the closed connection and logged a traceback (issue 36, item 8)."""
    server, handler, _ = serve()
    handler.gate.clear()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(_post(first, b"{}") + _post("/v1/models/m:predict", b"{}") * 3)
    assert handler.entered.acquire(timeout=10)
    state = server._server.server_state
    (protocol,) = state.connections
    with caplog.at_level(logging.INFO):
        sock.close()
        handler.gate.set()
        # Gone (an inline answer is written first: reading was paused), and every
        # request the connection started has ended.
        assert testing.wait_for(lambda: protocol not in state.connections, timeout=10)
        assert testing.wait_for(lambda: not state.tasks, timeout=10)
        _after_loop_passes(protocol.loop)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200


def test_garbage_request_lines_log_one_line_a_minute_without_traceback(serve, caplog):
    uvicorn_log = logging.getLogger("uvicorn.error")
    for earlier in [f for f in uvicorn_log.filters if isinstance(f, RateLimitingFilter)]:
        uvicorn_log.removeFilter(earlier)  # a fresh limit, as in a new process
    server, _, _ = serve()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"GARBAGE\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    lines = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert [r.getMessage() for r in lines] == ["Invalid HTTP request received."]
    assert lines[0].exc_info is None


def test_stop_answers_an_inline_predict_in_flight_then_closes(serve):
    server, handler, _ = serve(CountingApp)
    sock = _send_held_predict(server, handler)
    stopping = threading.Thread(target=server.stop, kwargs={"timeout": 10})
    stopping.start()
    assert testing.wait_for(lambda: _refuses_connections(server.port), timeout=10)
    handler.gate.set()
    ((code, headers, _),) = read_responses(sock, 1)
    stopping.join(10)
    assert code == 200 and headers["connection"] == "close"
    assert _closed(sock)
    sock.close()
    assert not stopping.is_alive()


# -- What one connection may cost (inline_protocol.py, connection_limits.py) -------------------

HEADER_LIMIT = 4096
SHORT = 0.2  # seconds: each phase's timeout in the timeout tests


def _header_section(size: int, end: bool = True) -> bytes:
    """`size` bytes of a GET's request line and headers (one X-Big header pads it); `end`:
    with the blank line that ends them."""
    start = b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\nX-Big: "
    ending = b"\r\n\r\n" if end else b""
    return start + b"a" * (size - len(start) - len(ending)) + ending


@pytest.mark.parametrize("ends", [True, False], ids=["headers_end_in_the_read", "never_end"])
def test_a_header_section_past_the_limit_gets_431_and_the_connection_closes(serve, ends):
    server, handler, _ = serve(max_header_bytes=HEADER_LIMIT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_header_section(HEADER_LIMIT + 1, end=ends))
        answer = until_closed(sock)
    assert status_of(answer) == 431
    assert b"connection: close" in answer
    assert b"--rest_api_max_header_bytes=4096" in answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_header_section(HEADER_LIMIT))
        assert read_responses(sock, 1)[0][0] == 200


def test_other_clients_are_answered_while_one_streams_an_endless_header(serve):
    server, _, _ = serve(max_header_bytes=HEADER_LIMIT)
    attack: dict = {}

    def stream_header() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sent = 0
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nX-Big: ")
                while sent < 64 * 1024 * 1024:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            except OSError:
                pass  # cut off by the server
            attack["sent"] = sent
            attack["answer"] = until_closed(sock)

    attacker = threading.Thread(target=stream_header)
    attacker.start()
    try:
        for _ in range(20):
            assert request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200
    finally:
        attacker.join(30)
    assert status_of(attack["answer"]) == 431
    assert attack["sent"] < 64 * 1024 * 1024


def test_an_oversized_header_behind_a_pending_answer_closes_without_answering_out_of_turn(serve):
    server, handler, _ = serve(max_header_bytes=HEADER_LIMIT)
    sock = _send_held_predict(server, handler)
    try:
        sock.sendall(_header_section(2 * HEADER_LIMIT, end=False))
        assert not until_closed(sock).startswith(b"HTTP/1.1 431")
    finally:
        handler.gate.set()
        sock.close()


def _phase_timeouts(serve):
    return serve(header_timeout_seconds=SHORT, body_timeout_seconds=SHORT, keep_alive_seconds=SHORT)


@pytest.mark.parametrize(
    "sent,answered",
    [
        (b"", None),
        (b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n", 408),
        (_post("/v1/models/m:predict", b'{"instances": [1]}')[:-3], 408),
        (_post("/v1/models/m:classify", b'{"examples": []}')[:-3], 408),
    ],
    ids=["nothing", "mid_headers", "mid_body_inline", "mid_body_asgi"],
)
def test_a_connection_stuck_in_a_phase_is_closed_after_its_timeout(serve, sent, answered):
    server, handler, _ = _phase_timeouts(serve)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(sent)
        answer = until_closed(sock)
    if answered is None:
        assert answer == b""
    else:
        assert status_of(answer) == answered and b"connection: close" in answer
        assert b"did not arrive within 200 ms" in answer
    assert not handler.entered.acquire(blocking=False)  # no stuck request reached the model


def test_a_kept_alive_connection_is_closed_after_its_idle_timeout_then_mid_headers(serve):
    server, _, _ = _phase_timeouts(serve)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_post("/v1/models/m:predict", b"{}"))
        assert read_responses(sock, 1)[0][0] == 200
        assert until_closed(sock) == b""  # idle: closed, nothing to answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_post("/v1/models/m:predict", b"{}") + b"GET /v1/models/m HTTP/1.1\r\n")
        assert read_responses(sock, 1)[0][0] == 200
        assert status_of(until_closed(sock)) == 408  # the next request's headers stalled


def test_a_pipelined_body_is_timed_only_once_the_server_reads_it(serve):
    """uvicorn stops reading behind a pending answer: that wait is not the client's."""
    server, handler, _ = _phase_timeouts(serve)
    sock = _send_held_predict(server, handler)
    try:
        classify = _post("/v1/models/m:classify", b'{"examples": []}')
        sock.sendall(classify[:-3])  # pipelined behind the held :predict
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as later:
            later.sendall(b"GET /v1/models/m HTTP/1.1\r\n")
            assert status_of(until_closed(later)) == 408  # a timeout has passed since
        sock.sendall(classify[-3:])
        handler.gate.set()
        answers = read_responses(sock, 2)
    finally:
        handler.gate.set()
        sock.close()
    assert [json.loads(body)["api"] for _, _, body in answers] == ["predict", "classify"]


def test_connections_past_the_cap_get_503_and_close_while_open_ones_serve(serve):
    server, _, _ = serve(max_connections=2)
    open_ones = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in "ab"]
    try:
        for sock in open_ones:
            sock.sendall(_post("/v1/models/m:predict", b"{}"))
            assert read_responses(sock, 1)[0][0] == 200
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as refused:
            answer = until_closed(refused)
        assert status_of(answer) == 503 and b"--rest_api_max_connections=2" in answer
        for sock in open_ones:
            sock.sendall(_post("/v1/models/m:predict", b"{}"))
            assert read_responses(sock, 1)[0][0] == 200
    finally:
        open_ones.pop().close()
    # A closed connection's place is free again once the server has seen it go.
    assert testing.wait_for(lambda: _answers_on_a_new_connection(server), timeout=10)
    open_ones[0].close()


def _answers_on_a_new_connection(server) -> bool:
    try:
        return request(server, "POST", "/v1/models/m:predict", b"{}")[0] == 200
    except (ConnectionError, http.client.HTTPException):
        return False


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
