"""uvicorn's HTTP/1.1 protocol, with small :predict requests answered without ASGI.

The one module that builds on uvicorn's private protocol API
(`HttpToolsProtocol` and the attributes it keeps per connection and per
request); requirements.txt pins uvicorn for it, and a test checks the names
it relies on.

When the headers of a request are in, and it is a POST :predict with a
Content-Length that RestApiApp.inline_predict_route accepts, no Expect:
100-continue, no upgrade, and no earlier response still pending on the
connection, the request gets an `_InlineCycle` instead of uvicorn's
RequestResponseCycle. Its body accumulates as usual; when it is complete,
it goes to RestApiApp.answer (the same entry the ASGI path ends in), and the
answer is written straight to the transport. Everything else (chunked
bodies, pipelined requests, every other URL) takes uvicorn's ASGI path.

A complete body is handed to the app on the loop's next pass, and an answer
is written on the pass after it was built: each phase (reading every
connection, decoding, writing) runs for all connections in turn, with its
own code warm in the CPU caches.

The cycle keeps the attributes uvicorn's protocol reads from a cycle
(body, more_body, message_event, response_complete, keep_alive,
disconnected), so keep-alive, pipelining, disconnects, the keep-alive
timeout and graceful shutdown work as they do for ASGI requests.

A client that leaves with pipelined requests pending: uvicorn marks only
the newest request's cycle as disconnected, so the one being answered
wrote to a closed transport (a traceback per connection). Here every
cycle of the connection that is not answered yet is marked.
"""

from __future__ import annotations

import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tensorflow_serving.model_servers.rest.handler import RestResponse, error_response
from tensorflow_serving.model_servers.rest.routes import Route
from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)


class _NoEvent:
    """uvicorn sets a cycle's message_event when data arrives; nothing waits on ours."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class _InlineCycle:
    """One small :predict: its body, and its answer written straight to the transport."""

    __slots__ = (
        "_protocol",
        "_route",
        "_answered",
        "body",
        "more_body",
        "message_event",
        "response_complete",
        "keep_alive",
        "disconnected",
    )

    def __init__(self, protocol: InlinePredictProtocol, route: Route, keep_alive: bool):
        self._protocol = protocol
        self._route = route
        self._answered = False
        self.body = bytearray()
        self.more_body = True
        self.message_event = _NO_EVENT
        self.response_complete = False
        self.keep_alive = keep_alive
        self.disconnected = False

    def run(self) -> None:
        """The body is complete: hands the request to the app, which answers via respond()."""
        app = self._protocol.rest_app
        try:
            app.answer(self._route, bytes(self.body), self.respond)
        except Exception as error:  # answer() answers its own errors; this is a bug
            _LOG.exception("Inline :predict failed")
            self.respond(error_response(status.internal(f"predict failed: {error}")))

    def respond(self, response: RestResponse) -> None:
        """Takes the answer (once, on the loop); it is written on the loop's next pass."""
        if self._answered:
            return
        self._answered = True
        self._protocol.loop.call_soon(self._write, response)

    def _write(self, response: RestResponse) -> None:
        """Sends the answer, then lets uvicorn go on with the connection."""
        self.response_complete = True
        if self.disconnected:
            return
        transport = self._protocol.transport
        transport.write(self._encode(response))
        if not self.keep_alive:
            transport.close()
        self._protocol.on_response_complete()

    def _encode(self, response: RestResponse) -> bytes:
        body = response.body
        content = [STATUS_LINE[response.http_status]]
        for name, value in self._protocol.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-type: application/json\r\ncontent-length: ", b"%d\r\n" % len(body)]
        for name, value in self._protocol.rest_app.extra_headers:
            content += [name, b": ", value, b"\r\n"]
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content += [b"\r\n", body]
        return b"".join(content)


class InlinePredictProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that answers small :predict requests without an ASGI task.

    `rest_app` is the RestApiApp behind the ASGI app (which uvicorn may have
    wrapped in middleware).
    """

    def __init__(self, *args: Any, rest_app, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rest_app = rest_app
        self._idle_since: float | None = None  # loop.time() of the last answer; None: busy
        # The request being answered (an _InlineCycle or uvicorn's cycle); pipelined
        # ones wait in self.pipeline.
        self._answering: Any = None

    def on_headers_complete(self) -> None:
        route = self._inline_route()
        if route is None:
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        self.cycle = self._answering = _InlineCycle(self, route, keep_alive)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """uvicorn's, noting the request being answered."""
        self._answering = cycle
        super()._start_asgi_task(cycle, app)

    def _inline_route(self) -> Route | None:
        """The :predict route if this request can skip ASGI, else None."""
        if self.expect_100_continue or self.limit_concurrency is not None:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind a pending answer: uvicorn queues it
        if self.parser.should_upgrade():
            return None
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None  # repeated or malformed: let the ASGI path judge
                length = int(value)
            elif name == b"transfer-encoding":
                return None
        if length is None:
            return None
        raw_path = httptools.parse_url(self.url).path
        return self.rest_app.inline_predict_route(
            self.parser.get_method(), raw_path.decode("utf-8", "replace"), length
        )

    # -- Keep-alive: one timer per idle spell instead of one per answer ----------
    #
    # uvicorn arms a keep-alive timer after every answer and cancels it on the
    # next read. Here reads and answers only note whether the connection is
    # idle, and since when; one timer checks that, and is armed again only
    # while the connection stays open. An idle connection still closes
    # timeout_keep_alive seconds after its last answer.

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # uvicorn calls this on every read: busy now

    def on_response_complete(self) -> None:
        """uvicorn's (count, resume reading, start a pipelined request), then idle."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._check_keep_alive
            )

    def _check_keep_alive(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # busy: its answer arms the timer again
        idle = self.loop.time() - self._idle_since
        if idle >= self.timeout_keep_alive:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive - idle, self._check_keep_alive
            )

    def connection_lost(self, exc: Exception | None) -> None:
        """Every request of the connection not answered yet learns that its client left."""
        for cycle in (self._answering, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._answering = None
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    # -- Inline :predict ------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, _InlineCycle):
            # Bounded by the Content-Length checked above: no read pausing needed.
            if not cycle.response_complete:
                cycle.body += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if isinstance(cycle, _InlineCycle):
            if not cycle.response_complete:
                cycle.more_body = False
                # On the loop's next pass, like the answer (see respond): the
                # reads of all connections with data come first, then all the
                # decoding, each phase with its own code in cache.
                self.loop.call_soon(cycle.run)
            return
        super().on_message_complete()
