"""The HTTP server on --rest_api_port: REST API, Prometheus page, health checks
(upstream: http_server.cc).

A bare ASGI app served by uvicorn (uvloop + httptools) on a thread of the
model server's process, so gRPC and REST share one ServerCore and one set of
loaded models. No web framework: routing is upstream's URL regexes.

Chosen by measurement (2 vCPU, server pinned to one core, shared/bench's
loadgen on the other, same handler and worker pool behind each stack, fixed
answer, medians of 4 runs; requests/s and server CPU per request):

    stack                                  c=1        c=32
    bare ASGI on uvicorn+uvloop+httptools  4,310/s    13,000/s  76 us
    aiohttp 3.14 web (uvloop)              3,820/s    12,860/s  77 us
    Starlette 1.10 on the same uvicorn     3,750/s     9,180/s  109 us

aiohttp ties the bare ASGI app but would be one more dependency; Starlette's
request/response objects cost ~30% at load. With the MNIST CNN behind it the
model dominates (~700-820 requests/s on one core for every stack).

A :predict with a body up to _INLINE_BODY_BYTES is decoded and answered on
the event loop; its model run goes into the batching queue without a thread
(with --enable_batching) or to a worker. When such a request has a
Content-Length and nothing else pending on its connection, uvicorn's
protocol hands it to RestApiApp.answer_predict straight from its parser
callbacks, without an ASGI task (http_inline_predict.py: REST at 32 clients
1,803-1,904 -> 2,074-2,318 inferences/s; then, with dense bodies decoded
by simdjson (util/json_dense.py), one timer for every request's deadline
(_LoopTimeouts) and the loop's work done in phases, 1,928-2,230 ->
2,262-2,556 in four interleaved pairs); other requests, chunked or
pipelined ones included, take the ASGI path, which ends in the same
answer_predict. Everything else (large bodies,
classify, regress, status, metadata) runs whole on `--rest_api_num_threads`
worker threads, as upstream runs its handlers on its own pool. Either way
the model never runs on the loop, so health checks are answered while it
works. With batching on, the loop path is what lets 32 concurrent requests
form batches of 32 on one core (REST, the chapter's CNN: 1,320 -> ~1,800
inferences/s; see the README's tuning table). Beyond upstream, each
request is bounded by `--rest_api_timeout_in_ms` as a whole (504 when it
passes; upstream bounds only the TensorFlow run), and a bounded backlog of
waiting requests answers 503 instead of queueing without limit.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from tensorflow_serving.model_servers import metrics as metrics_lib
from tensorflow_serving.model_servers.http_inline_predict import InlinePredictProtocol
from tensorflow_serving.model_servers.http_rest_api_handler import (
    HEALTH_LIVE_PATH,
    HEALTH_READY_PATH,
    PATH_REGEX,
    PREDICT,
    HttpRestApiHandler,
    RestResponse,
    Route,
    error_response,
    parse_route,
)
from tensorflow_serving.util import request_deadline, status

_LOG = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")
# Upstream's CORS headers (--rest_api_enable_cors_support).
CORS_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-allow-headers", b"Content-Type"),
)
_STARTUP_SECONDS = 30.0
# :predict bodies up to this size are decoded and answered on the event loop and
# reach the model through the batching queue without a worker thread; larger
# ones go to a worker so that parsing them cannot stall the loop.
_INLINE_BODY_BYTES = 256 * 1024

# Paths whose inline routing is remembered (matching one costs ~5 us hot).
_ROUTES_KEPT = 1024


@dataclasses.dataclass
class HttpOptions:
    """The REST flags, plus the limits upstream does not have."""

    port: int
    host: str = "0.0.0.0"
    num_threads: int = 4
    timeout_in_ms: int = 30000
    enable_cors: bool = False
    prometheus_path: str | None = None
    # Requests queued or running on the workers before new ones get 503.
    max_pending: int = 0  # 0: 64 per worker thread, at least 256
    # --max_request_bytes: longer bodies get 413 and are not read further (0: no limit).
    max_request_bytes: int = 0
    # An idle keep-alive connection closes this long after its last answer (uvicorn's default).
    keep_alive_seconds: float = 5.0

    def pending_limit(self) -> int:
        return self.max_pending or max(256, 64 * self.num_threads)


class RestApiApp:
    """The ASGI callable: routes, runs the handler on workers, answers JSON."""

    def __init__(
        self,
        handler: HttpRestApiHandler,
        options: HttpOptions,
        metrics: metrics_lib.ServingMetrics | None = None,
    ):
        self._handler = handler
        self._options = options
        self._metrics = metrics or metrics_lib.default()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, options.num_threads), thread_name_prefix="rest"
        )
        self._timeout = options.timeout_in_ms / 1000 if options.timeout_in_ms > 0 else None
        self._loop_timeouts = None if self._timeout is None else _LoopTimeouts(self._timeout)
        self._extra_headers = list(CORS_HEADERS) if options.enable_cors else []
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._max_pending = options.pending_limit()
        # POST path -> its :predict Route, or None; on the loop only (Routes are frozen).
        self._inline_routes: dict[str, Route | None] = {}

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers every answer carries beyond content type and length (CORS, when enabled)."""
        return self._extra_headers

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method = scope["method"]
        raw_path = scope.get("raw_path")
        path = raw_path.decode("utf-8", "replace") if raw_path else scope["path"]
        limit = self._options.max_request_bytes
        body = await _read_body(receive, limit, _content_length(scope) if limit else None)
        if body is None:
            return  # the client went away
        if isinstance(body, _TooLarge):
            await self._refuse_too_large(send, body, method, path, started)
            return
        prometheus = self._options.prometheus_path
        if prometheus is not None and path == prometheus:
            await _reply(send, 200, self._metrics.render(), metrics_lib.CONTENT_TYPE.encode())
            return
        if not PATH_REGEX.fullmatch(path):
            error = status.not_found(f"Not found: {method} {path}")
            await self._send(send, error_response(error))
            return
        if method == "OPTIONS" and self._extra_headers:
            await self._send(send, RestResponse(200, b""))  # CORS preflight
            return
        if method == "GET" and path == HEALTH_LIVE_PATH:
            await self._send(send, self._handler.live())
            return
        if method == "GET" and path == HEALTH_READY_PATH:
            await self._send(send, self._handler.ready())
            return
        route = parse_route(method, path)
        if route.error is not None:
            response = error_response(route.error)
        else:
            response = await self._run(route, body)
        await self._send(send, response)
        self.record(route, response, started)

    def record(self, route: Route, response: RestResponse, started: float) -> None:
        """The request's metrics, once its answer is sent (`started`: time.perf_counter())."""
        self._metrics.record_request(
            route.model_name,
            route.api,
            metrics_lib.REST,
            response.status_name,
            time.perf_counter() - started,
            response.version,
            response.signature_name,
        )

    def inline_predict_route(self, method: bytes, path: str, content_length: int) -> Route | None:
        """The route of a request the protocol may answer without ASGI (see http_inline_predict).

        Only a POST :predict whose declared body is small enough to decode on
        the loop and within --max_request_bytes; None sends the request down
        the ASGI path, which handles everything.
        """
        limit = self._options.max_request_bytes
        if (
            method != b"POST"
            or content_length > _INLINE_BODY_BYTES
            or (limit and content_length > limit)
        ):
            return None
        try:
            return self._inline_routes[path]
        except KeyError:
            pass
        route = None
        if (
            path.endswith(":predict")  # upstream's dispatch is case-sensitive here
            and path != self._options.prometheus_path
            and PATH_REGEX.fullmatch(path)
        ):
            route = parse_route("POST", path)
            if route.error is not None or route.api != PREDICT:
                route = None
        if len(self._inline_routes) >= _ROUTES_KEPT:
            self._inline_routes.clear()  # a client spraying paths; the usual few come back
        self._inline_routes[path] = route
        return route

    def answer_predict(
        self, route: Route, body: bytes, respond: Callable[[RestResponse], None]
    ) -> None:
        """A small :predict on the event loop, without a task: `respond` follows, exactly once.

        The model run goes into the batching queue (with --enable_batching) or
        to a worker; the answer comes within --rest_api_timeout_in_ms (504
        after it), and the request counts against the backlog limit meanwhile.
        """
        refusal = self._admit()
        if refusal is not None:
            respond(refusal)
            return
        _PendingPredict(self, respond).start(route, body)

    async def _run(self, route, body: bytes) -> RestResponse:
        if route.api == PREDICT and len(body) <= _INLINE_BODY_BYTES:
            answer = asyncio.get_running_loop().create_future()
            self.answer_predict(route, body, lambda response: _settle(answer, response))
            return await answer
        refusal = self._admit()
        if refusal is not None:
            return refusal
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        work = self._executor.submit(self._handle_unless_late, deadline, route, body)
        work.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(work), self._timeout)
        except TimeoutError:
            return error_response(self._timed_out())

    def _admit(self) -> RestResponse | None:
        """Counts a request in; a 503 answer instead when the backlog is full."""
        with self._pending_lock:
            if self._pending >= self._max_pending:
                return error_response(
                    status.unavailable(
                        f"Server is overloaded: {self._pending} HTTP/REST requests are already "
                        "queued or running; retry later"
                    )
                )
            self._pending += 1
        return None

    def _timed_out(self) -> status.ServingError:
        return status.deadline_exceeded(
            f"Request did not finish within --rest_api_timeout_in_ms={self._options.timeout_in_ms}"
        )

    def _handle_unless_late(self, deadline: float | None, route, body: bytes) -> RestResponse:
        """On a worker: runs the handler, unless the client got its 504 while this waited.

        The deadline goes down to the batching queue too, so a request that
        times out there is dropped instead of run for nobody.
        """
        if deadline is not None and time.monotonic() >= deadline:
            return error_response(self._timed_out())
        with request_deadline.at(deadline):
            return self._handler.handle(route, body)

    async def _refuse_too_large(self, send, body: _TooLarge, method, path, started) -> None:
        """413: the body was not (or not entirely) read; a declared length also closes."""
        error = status.resource_exhausted(
            f"Request body of {body.size} bytes{'' if body.declared else ' or more'} is larger "
            f"than --max_request_bytes={self._options.max_request_bytes}"
        )
        response = error_response(error)
        response.http_status = 413  # Payload Too Large, rather than RESOURCE_EXHAUSTED's 429
        extra = [*self._extra_headers, *([(b"connection", b"close")] if body.declared else [])]
        await _reply(send, response.http_status, response.body, None, extra)
        self.record(parse_route(method, path), response, started)

    def _finished(self, _future) -> None:
        with self._pending_lock:
            self._pending -= 1

    async def _send(self, send, response: RestResponse) -> None:
        await _reply(send, response.http_status, response.body, None, self._extra_headers)


class _PendingPredict:
    """One admitted :predict on the loop: its timeout, its deadline, and its one answer."""

    __slots__ = ("_app", "_respond", "answered")

    def __init__(self, app: RestApiApp, respond: Callable[[RestResponse], None]):
        self._app = app
        self._respond: Callable[[RestResponse], None] | None = respond
        self.answered = False

    def start(self, route, body: bytes) -> None:
        app = self._app
        timeouts = app._loop_timeouts
        deadline = None if timeouts is None else timeouts.add(self)
        # The batching queue stamps this deadline on the task: if the client has
        # its 504 before the batch forms, the task is dropped instead of run.
        with request_deadline.at(deadline):
            app._handler.predict_then(route, body, app._executor, self._finish)

    def time_out(self) -> None:
        self._finish(error_response(self._app._timed_out()))

    def _finish(self, response: RestResponse) -> None:
        if self.answered:
            return  # timed out earlier; the late answer is dropped
        self.answered = True
        respond, self._respond = self._respond, None  # the timeout queue may outlive the request
        self._app._finished(None)
        respond(response)


# _LoopTimeouts drops the answered requests queued behind an unanswered one
# once its queue is this long (and then each time the queue doubles).
_COMPACT_LENGTH = 4096


class _LoopTimeouts:
    """--rest_api_timeout_in_ms for the :predict requests on the loop, with one timer.

    A timer per request (call_later, then cancel on the answer) cost about
    10 us of loop CPU per request in situ. Every request here gets the same
    timeout, so deadlines fall in arrival order: one timer, armed for the
    oldest unanswered request, serves them all. Answered requests leave the
    head of the queue as new ones arrive; behind one request that hangs,
    they pile up, so the queue drops them all whenever it has doubled in
    length since it last did (at least _COMPACT_LENGTH entries): memory
    stays within about twice the requests in flight.
    """

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._queue: collections.deque[tuple[float, _PendingPredict]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._compact_at = _COMPACT_LENGTH

    def add(self, pending: _PendingPredict) -> float:
        """Starts `pending`'s clock (on the loop); returns its time.monotonic() deadline."""
        deadline = time.monotonic() + self._timeout
        queue = self._queue
        while queue and queue[0][1].answered:
            queue.popleft()
        if len(queue) >= self._compact_at:
            queue = self._queue = collections.deque(e for e in queue if not e[1].answered)
            self._compact_at = max(_COMPACT_LENGTH, 2 * len(queue))
        queue.append((deadline, pending))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expire)
        return deadline

    def _expire(self) -> None:
        """Times out what is due, then sleeps until the next unanswered deadline."""
        self._timer = None
        queue = self._queue
        now = time.monotonic()
        while queue:
            deadline, pending = queue[0]
            if pending.answered:
                queue.popleft()
            elif deadline <= now:
                queue.popleft()
                pending.time_out()
            else:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(deadline - now, self._expire)
                return


def _settle(future: asyncio.Future, response: RestResponse) -> None:
    if not future.done():  # not if the request's task was cancelled meanwhile
        future.set_result(response)


@dataclasses.dataclass
class _TooLarge:
    """A body over --max_request_bytes: its declared size, or the bytes seen so far."""

    size: int
    declared: bool


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(
    receive, limit: int = 0, declared: int | None = None
) -> bytes | _TooLarge | None:
    """The whole body; None if the client left; _TooLarge past `limit` (0: none).

    A Content-Length over the limit is refused before reading; a chunked body
    is read only until it passes the limit (uvicorn discards the rest).
    """
    if limit and declared is not None and declared > limit:
        return _TooLarge(declared, declared=True)
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
            if limit and size > limit:
                return _TooLarge(size, declared=False)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _reply(
    send,
    code: int,
    body: bytes,
    content_type: bytes | None = None,
    extra_headers: list | None = None,
) -> None:
    headers = [
        (b"content-type", content_type) if content_type else _JSON,
        (b"content-length", str(len(body)).encode()),
    ]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bind(host: str, port: int) -> socket.socket:
    """Binds before the thread starts, so a taken port fails build_and_start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise status.unavailable(
            f"Failed to start HTTP Server at {host}:{port}: {error.strerror or error}"
        ) from None
    sock.set_inheritable(True)
    return sock


class HttpServer:
    """uvicorn serving a RestApiApp on a thread; start() returns once it listens."""

    def __init__(self, app: RestApiApp, options: HttpOptions):
        self.app = app
        self.options = options
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = _bind(self.options.host, self.options.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http=functools.partial(InlinePredictProtocol, rest_app=self.app),
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            backlog=2048,
            timeout_keep_alive=self.options.keep_alive_seconds,
            timeout_graceful_shutdown=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise status.unavailable(f"HTTP/REST server on port {self.port} did not start")
            time.sleep(0.005)

    def stop(self, timeout: float = 30.0) -> None:
        """Stops listening, lets in-flight requests finish (up to `timeout`), stops workers."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.app.close()


def create_and_start(core, options: HttpOptions, metrics=None) -> HttpServer:
    """The REST server of a model server (upstream: CreateAndStartHttpServer)."""
    app = RestApiApp(HttpRestApiHandler(core), options, metrics)
    server = HttpServer(app, options)
    try:
        server.start()
    except BaseException:
        app.close()
        raise
    return server


__all__ = [
    "CORS_HEADERS",
    "HttpOptions",
    "HttpServer",
    "RestApiApp",
    "create_and_start",
]
