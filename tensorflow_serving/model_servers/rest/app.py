"""RestApiApp: the REST transport's one entry for a parsed request, and its ASGI app.

Every API request goes through `answer(route, body, respond)` on the event
loop, however it arrived (uvicorn's ASGI path, or inline_protocol.py's
direct path for small :predict bodies):

  - a :predict whose body is at most INLINE_BODY_BYTES is decoded on the
    loop and its model run goes to the DataPlane with a LoopPassRunner
    (batching queue or worker thread: never the loop);
  - a larger :predict, :classify and :regress run whole on a worker
    thread (decoding a large body must not stall the loop);
  - model status (outside the DataPlane) and metadata run on CONTROL_THREADS
    threads of their own (normal CPU scheduling policy), so they are
    answered while every worker runs a model;
  - each answer comes within --rest_api_timeout_in_ms (504 after it; beyond
    upstream, which bounds only the TensorFlow run), and the DataPlane
    bounds the requests in flight (503 past `HttpOptions.pending_limit()`).

The model never runs on the loop, so health checks are answered while it
works.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import Callable

from tensorflow_serving.model_servers import metrics as metrics_lib
from tensorflow_serving.model_servers.data_plane import Call, DataPlane
from tensorflow_serving.model_servers.rest import content_encoding
from tensorflow_serving.model_servers.rest.handler import (
    HttpRestApiHandler,
    RestResponse,
    error_response,
    response_of,
)
from tensorflow_serving.model_servers.rest.loop_runner import LoopPassRunner
from tensorflow_serving.model_servers.rest.loop_timeouts import LoopTimeouts
from tensorflow_serving.model_servers.rest.routes import (
    HEALTH_LIVE_PATH,
    HEALTH_READY_PATH,
    METADATA,
    PATH_REGEX,
    PREDICT,
    STATUS,
    Route,
    parse_route,
)
from tensorflow_serving.util import cpu_scheduling, status
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import CALLING_THREAD, WorkerThreads

_JSON = (b"content-type", b"application/json")
# Upstream's CORS headers (--rest_api_enable_cors_support).
CORS_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-allow-headers", b"Content-Type"),
)
# What a preflight's Origin must hold (upstream: a partial match of "https?://").
_WEB_ORIGIN = re.compile(rb"https?://")
# :predict bodies up to this size are decoded on the event loop; larger ones
# on a worker, so that parsing them cannot stall the loop.
INLINE_BODY_BYTES = 256 * 1024
# Paths whose inline routing is remembered.
_ROUTES_KEPT = 1024
# Threads for model status and metadata, apart from the workers that run models.
CONTROL_THREADS = 2


@dataclasses.dataclass
class HttpOptions:
    """The REST flags, plus the limits upstream does not have."""

    port: int
    host: str = "0.0.0.0"
    num_threads: int = 4
    timeout_in_ms: int = 30000
    enable_cors: bool = False
    prometheus_path: str | None = None
    # Requests queued or running before new ones get 503.
    max_pending: int = 0  # 0: 64 per worker thread, at least 256
    # --max_request_bytes: longer bodies get 413 and are not read further (0: no limit).
    max_request_bytes: int = 0
    # --max_decoded_request_bytes: what a body may parse to (0: no limit).
    max_decoded_request_bytes: int = 0
    # Listen with SO_REUSEPORT, beside the other workers of a supervisor.
    reuse_port: bool = False
    # What one connection may cost (inline_protocol.py); for each, 0: no limit.
    # An idle keep-alive connection closes this long after its last answer.
    keep_alive_seconds: float = 5.0
    # A request's line and headers must arrive within this long (from the
    # connection's start, or from the request's first byte on a kept-alive one).
    header_timeout_seconds: float = 0.0
    # A request's body must arrive within this long after its headers.
    body_timeout_seconds: float = 0.0
    # A longer request line and headers get 431 and the connection closes.
    max_header_bytes: int = 0
    # Connections open at once; beyond it a new one gets 503 and is closed.
    max_connections: int = 0

    def pending_limit(self) -> int:
        return self.max_pending or max(256, 64 * self.num_threads)


class RestApiApp:
    """The ASGI callable, and `answer` for requests parsed without ASGI."""

    def __init__(
        self,
        core,
        options: HttpOptions,
        metrics: metrics_lib.ServingMetrics | None = None,
        handler_type: type[HttpRestApiHandler] = HttpRestApiHandler,
        control=None,
    ):
        self._options = options
        self._metrics = metrics or metrics_lib.default()
        self._pool = WorkerThreads(max(1, options.num_threads), thread_name_prefix="rest")
        self._control_pool = WorkerThreads(
            max_workers=CONTROL_THREADS,
            thread_name_prefix="rest_control",
            initializer=cpu_scheduling.apply_to_this_thread,
            initargs=("normal",),
        )
        self._loop_runner = LoopPassRunner(self._pool)
        plane = DataPlane(
            core,
            metrics_lib.REST,
            runner=self._loop_runner,
            max_in_flight=options.pending_limit(),
            metrics=self._metrics,
        )
        self.handler = handler_type(plane, control, options.max_decoded_request_bytes)
        self._timeout = options.timeout_in_ms / 1000 if options.timeout_in_ms > 0 else None
        self._loop_timeouts = None if self._timeout is None else LoopTimeouts(self._timeout)
        self._extra_headers = list(CORS_HEADERS) if options.enable_cors else []
        # POST path -> its :predict Route, or None; on the loop only (Routes are frozen).
        self._inline_routes: dict[str, Route | None] = {}

    @property
    def options(self) -> HttpOptions:
        """The options it serves with (the HTTP protocol reads the connection limits)."""
        return self._options

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers every answer carries beyond content type and length (CORS, when enabled)."""
        return self._extra_headers

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._control_pool.shutdown(wait=False, cancel_futures=True)

    # -- The one entry ---------------------------------------------------------

    def answer(self, route: Route, body: bytes, respond: Callable[[RestResponse], None]) -> None:
        """Serves an API request; `respond(answer)` follows exactly once, on the loop.

        Call on the event loop's thread.
        """
        started = time.perf_counter()
        if route.error is not None:
            response = error_response(route.error)
            self.record(route, response, started)
            respond(response)
            return
        pending = _PendingAnswer(self, route, started, respond)
        if route.api == STATUS:
            self._on_worker(self._control_pool, pending, self.handler.status, route)
            return
        work = self.handler.work_for(route, body)
        pending.call = call = Call(route.api, route.model_spec(), pending.deadline, started)
        plane = self.handler.plane
        if route.api == PREDICT and len(body) <= INLINE_BODY_BYTES:
            plane.serve(call, work, pending.on_outcome)
            return
        pool = self._control_pool if route.api == METADATA else self._pool
        self._on_worker(pool, pending, plane.serve, call, work, pending.on_outcome, CALLING_THREAD)

    def _on_worker(self, pool: WorkerThreads, pending: _PendingAnswer, fn, *args) -> None:
        try:
            if pending.call is None:  # not a DataPlane call: its answer is fn's result
                pool.submit(fn, *args).add_done_callback(pending.on_outcome)
            else:  # the DataPlane answers through pending.on_outcome itself
                pool.execute(fn, *args)
        except RuntimeError:  # the pool shut down: the server is stopping
            pending.finish(error_response(status.unavailable("The HTTP/REST server is stopping")))

    def record(self, route: Route, response: RestResponse, started: float) -> None:
        """Counts a request the DataPlane did not count (`started`: time.perf_counter())."""
        self._metrics.record_request(
            route.model_name,
            route.api,
            metrics_lib.REST,
            response.status_name,
            time.perf_counter() - started,
            response.version,
            response.signature_name,
        )

    def timed_out(self) -> RestResponse:
        return error_response(
            status.deadline_exceeded(
                "Request did not finish within "
                f"--rest_api_timeout_in_ms={self._options.timeout_in_ms}"
            )
        )

    def inline_predict_route(self, method: bytes, path: str, content_length: int) -> Route | None:
        """The route of a request the protocol may answer without ASGI (see inline_protocol).

        Only a POST :predict whose declared body is small enough to decode on
        the loop and within --max_request_bytes; None sends the request down
        the ASGI path, which handles everything.
        """
        limit = self._options.max_request_bytes
        if (
            method != b"POST"
            or content_length > INLINE_BODY_BYTES
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

    # -- ASGI ------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method = scope["method"]
        raw_path = scope.get("raw_path")
        path = raw_path.decode("utf-8", "replace") if raw_path else scope["path"]
        limit = self._options.max_request_bytes
        try:
            decoder = content_encoding.body_decoder(_header(scope, b"content-encoding"), limit)
            body = await _read_body(
                receive, limit, _content_length(scope) if limit else None, decoder
            )
        except status.ServingError as error:  # an unknown coding, or a body that does not inflate
            response = error_response(error)
            await self._send(send, response)
            self.record(parse_route(method, path), response, started)
            return
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
            await self._send(send, _preflight(_header(scope, b"origin")))
            return
        if method == "GET" and path == HEALTH_LIVE_PATH:
            await self._send(send, self.handler.live())
            return
        if method == "GET" and path == HEALTH_READY_PATH:
            await self._send(send, self.handler.ready())
            return
        answered = asyncio.get_running_loop().create_future()
        self.answer(parse_route(method, path), body, lambda response: _settle(answered, response))
        await self._send(send, await answered)

    async def _refuse_too_large(self, send, body: _TooLarge, method, path, started) -> None:
        """413: the body was not (or not entirely) read; a declared length also closes."""
        what = "inflates to" if body.inflated else "of"
        error = status.resource_exhausted(
            f"Request body {what} {body.size} bytes{'' if body.declared else ' or more'} is "
            f"larger than --max_request_bytes={self._options.max_request_bytes}"
        )
        response = error_response(error)
        response.http_status = 413  # Payload Too Large, rather than RESOURCE_EXHAUSTED's 429
        extra = [*self._extra_headers, *([(b"connection", b"close")] if body.declared else [])]
        await _reply(send, response.http_status, response.body, None, extra)
        self.record(parse_route(method, path), response, started)

    async def _send(self, send, response: RestResponse) -> None:
        await _reply(send, response.http_status, response.body, None, self._extra_headers)


class _PendingAnswer:
    """One request between answer() and its response: its deadline and its one answer.

    Created and finished on the loop; on_outcome may be called from any thread.
    """

    __slots__ = (
        "_app",
        "_route",
        "_started",
        "_respond",
        "_loop",
        "_loop_thread",
        "call",
        "deadline",
        "answered",
    )

    def __init__(
        self, app: RestApiApp, route: Route, started: float, respond: Callable[[RestResponse], None]
    ):
        self._app = app
        self._route = route
        self._started = started
        self._respond: Callable[[RestResponse], None] | None = respond
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.call: Call | None = None
        self.answered = False
        timeouts = app._loop_timeouts
        self.deadline = None if timeouts is None else timeouts.add(self)

    def on_outcome(self, outcome: Completion) -> None:
        """The DataPlane's (or the worker's) outcome, on whichever thread finished it."""
        response = response_of(outcome) if not outcome.cancelled() else None
        if response is None:
            response = error_response(status.unavailable("The HTTP/REST server is stopping"))
        try:
            if threading.get_ident() == self._loop_thread:
                self.finish(response)
            else:
                self._loop.call_soon_threadsafe(self.finish, response)
        except RuntimeError:
            pass  # the loop is closed: the server stopped and nobody waits any more

    def time_out(self) -> None:
        """LoopTimeouts: the deadline passed before the answer."""
        if self.call is not None:
            self.call.answered_elsewhere = True
        self.finish(self._app.timed_out(), count=True)

    def finish(self, response: RestResponse, count: bool = False) -> None:
        if self.answered:
            return  # timed out earlier; the late answer is dropped
        self.answered = True
        if count or self.call is None:
            self._app.record(self._route, response, self._started)
        respond, self._respond = self._respond, None  # the timeout queue may outlive us
        respond(response)


def _preflight(origin: bytes | None) -> RestResponse:
    """A CORS preflight's answer: empty 200 for a web origin, as upstream; 400 without one.

    Like upstream, a preflight must come from a page (an Origin header with
    an http:// or https:// URL); the CORS headers go on either answer.
    """
    if origin is not None and _WEB_ORIGIN.search(origin):
        return RestResponse(200, b"")
    shown = "none" if origin is None else repr(origin.decode("latin-1"))
    return error_response(
        status.failed_precondition(
            f"CORS preflight (OPTIONS) needs an Origin header with an http(s):// URL; got {shown}"
        )
    )


def _settle(future: asyncio.Future, response: RestResponse) -> None:
    if not future.done():  # not if the request's task was cancelled meanwhile
        future.set_result(response)


@dataclasses.dataclass
class _TooLarge:
    """A body over --max_request_bytes: its declared size, or the bytes seen so far."""

    size: int
    declared: bool
    inflated: bool = False


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def _content_length(scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def _read_body(
    receive,
    limit: int = 0,
    declared: int | None = None,
    decoder: content_encoding.GzipBody | None = None,
) -> bytes | _TooLarge | None:
    """The whole body (inflated by `decoder`, if any); None if the client left; _TooLarge
    past `limit` (0: none).

    A Content-Length over the limit is refused before reading; a chunked body
    is read only until it passes the limit (uvicorn discards the rest). A
    compressed body is inflated as it arrives, and refused as soon as what it
    inflates to passes the limit. Raises status.ServingError for a body that
    does not inflate.
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
            size += len(chunk)
            if limit and size > limit:
                return _TooLarge(size, declared=False)
            if decoder is None:
                chunks.append(chunk)
            else:
                try:
                    decoder.feed(chunk)
                except content_encoding.InflatedTooLarge as too_large:
                    return _TooLarge(too_large.size, declared=False, inflated=True)
        if not message.get("more_body", False):
            break
    if decoder is not None:
        return decoder.finish()
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
