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
or compressed bodies, pipelined requests, every other URL) takes uvicorn's
ASGI path.

A complete body is handed to the app on the loop's next pass, and an answer
is written on the pass after it was built: each phase (reading every
connection, decoding, writing) runs for all connections in turn, with its
own code warm in the CPU caches.

The cycle keeps the attributes uvicorn's protocol (and ours) read from a
cycle (body, more_body, message_event, response_started, response_complete,
keep_alive, disconnected), so keep-alive, pipelining, disconnects and
graceful shutdown work as they do for ASGI requests.

The protocol also bounds what one connection may cost, for both paths
(HttpOptions; each limit 0 is none):
  - connections beyond `max_connections` get 503 and are closed at once;
  - a request line and headers longer than `max_header_bytes` get 431 and
    the connection closes: the bytes are counted as they arrive, so the
    parser never holds more of them than the limit and a read or two;
  - each connection has one deadline (connection_limits.Deadline), for the
    phase it is in: its request line and headers within
    `header_timeout_seconds`, a body within `body_timeout_seconds` after
    its headers, an idle spell between requests within
    `keep_alive_seconds`. Past it the connection closes, with 408 if a
    request had begun and no other answer is owed on the connection. Once
    a request is whole, --rest_api_timeout_in_ms bounds it (app.py).

A client that leaves with pipelined requests pending: uvicorn marks only
the newest request's cycle as disconnected, so the one being answered
wrote to a closed transport (a traceback per connection). Here every
cycle of the connection that is not answered yet is marked.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tensorflow_serving.model_servers.rest.connection_limits import ConnectionCap, Deadline
from tensorflow_serving.model_servers.rest.handler import RestResponse, error_response
from tensorflow_serving.model_servers.rest.routes import Route
from tensorflow_serving.util import json_response, status

_LOG = logging.getLogger(__name__)

# The phases of a connection, each with its own deadline (see the module doc).
_NEW = 0  # open, no byte of a request yet: the header timeout runs from the start
_HEADERS = 1  # a request's line and headers are arriving
_BODY = 2  # its body is arriving
_ANSWERING = 3  # the request is whole: no deadline of the connection's
_IDLE = 4  # kept alive after an answer


class _HeadersTooLarge(Exception):
    """Raised in a parser callback, so the parser reads no further."""


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

    @property
    def response_started(self) -> bool:
        """Whether the answer is taken (it is then written whole on the loop's next pass)."""
        return self._answered

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
        transport.write(_encode(self._protocol, response, self.keep_alive))
        if not self.keep_alive:
            transport.close()
        self._protocol.on_response_complete()


def _encode(protocol: InlinePredictProtocol, response: RestResponse, keep_alive: bool) -> bytes:
    """`response` as HTTP/1.1 bytes, with the server's default headers and the app's own."""
    body = response.body
    content = [STATUS_LINE[response.http_status]]
    for name, value in protocol.server_state.default_headers:
        content += [name, b": ", value, b"\r\n"]
    content += [b"content-type: application/json\r\ncontent-length: ", b"%d\r\n" % len(body)]
    for name, value in protocol.rest_app.extra_headers:
        content += [name, b": ", value, b"\r\n"]
    if not keep_alive:
        content.append(b"connection: close\r\n")
    content += [b"\r\n", body]
    return b"".join(content)


class InlinePredictProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that answers small :predict requests without an ASGI task,
    and bounds what each connection may cost (see the module doc).

    `rest_app` is the RestApiApp behind the ASGI app (which uvicorn may have
    wrapped in middleware); its options hold the limits. `cap` is the
    server's ConnectionCap, shared by all its connections.
    """

    def __init__(self, *args: Any, rest_app, cap: ConnectionCap, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rest_app = rest_app
        options = rest_app.options
        self._cap = cap
        self._max_header_bytes = options.max_header_bytes
        self._header_timeout = options.header_timeout_seconds
        self._body_timeout = options.body_timeout_seconds
        self._keep_alive = options.keep_alive_seconds
        self._phase = _NEW
        self._deadline = Deadline(self.loop, self._on_deadline)
        # The header section arriving: its bytes from the reads that held
        # nothing else, and whether a read it shared with an earlier request
        # held more of it (then only its parsed size tells).
        self._header_bytes = 0
        self._header_bytes_shared = False
        self._sections = 0  # header sections parsed on this connection
        self._read_bytes = 0  # the size of the read being parsed
        # The request being answered (an _InlineCycle or uvicorn's cycle); pipelined
        # ones wait in self.pipeline.
        self._answering: Any = None

    # -- Connections, reads and phases -------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._cap.admits(len(self.connections)):
            self._answer_and_close(
                503,
                f"Too many open connections (--rest_api_max_connections={self._cap.limit}); "
                "retry later",
            )
            return
        self._deadline.after(self._header_timeout)

    def data_received(self, data: bytes) -> None:
        """uvicorn's (parse; 400 for what does not parse), counting header bytes as they come."""
        phase, sections = self._phase, self._sections
        self._read_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # served as plain HTTP: the API has no upgrades (server.py: ws="none")
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _HeadersTooLarge):
                self._refuse_headers()
            else:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return
        if self._phase == _HEADERS and self._max_header_bytes:
            self._count_header_bytes(phase, sections)

    def _count_header_bytes(self, phase_before: int, sections_before: int) -> None:
        """Adds the read just parsed to the header section still arriving; 431 past the limit.

        A read that began in the section (or between requests) and ended in
        it held nothing else: it counts whole. A read that also held the end
        of an earlier request does not count; the section's parsed size is
        checked in on_headers_complete instead.
        """
        if phase_before == _BODY or sections_before != self._sections:
            self._header_bytes_shared = True
            return
        self._header_bytes += self._read_bytes
        if self._header_bytes > self._max_header_bytes:
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_bytes_shared = False
        if self._phase != _NEW:  # a new connection's header time runs from its start
            self._deadline.after(self._header_timeout)
        self._phase = _HEADERS

    def on_headers_complete(self) -> None:
        self._sections += 1
        if self._max_header_bytes and self._header_section_too_large():
            raise _HeadersTooLarge  # the parser stops here; data_received answers 431
        self._phase = _BODY
        if self.cycle is None or self.cycle.response_complete:
            self._deadline.after(self._body_timeout)
        else:  # pipelined: uvicorn stops reading until it starts (on_response_complete)
            self._deadline.set(None)
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

    def _header_section_too_large(self) -> bool:
        """Whether the request line and headers just parsed pass the limit.

        Measured only when the reads they came in may have held more than the limit.
        """
        limit = self._max_header_bytes
        if not self._header_bytes_shared and self._header_bytes + self._read_bytes <= limit:
            return False
        size = len(self.parser.get_method()) + len(self.url) + len(" HTTP/1.1\r\n\r\n") + 1
        for name, value in self.headers:
            size += len(name) + len(value) + len(": \r\n")
        return size > limit

    def on_response_complete(self) -> None:
        """uvicorn's (count, resume reading, start a pipelined request), then idle."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if self._phase == _BODY:  # its body, read again from now on
                self._deadline.after(self._body_timeout)
            return
        if self._phase == _ANSWERING:  # not if the next request has begun meanwhile
            self._phase = _IDLE
            self._deadline.after(self._keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        """Every request of the connection not answered yet learns that its client left."""
        for cycle in (self._answering, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._answering = None
        super().connection_lost(exc)
        self._deadline.cancel()

    # -- Limits ---------------------------------------------------------------

    def _on_deadline(self) -> None:
        """The phase ran out of time: closes, with 408 if a request had begun."""
        if self.transport.is_closing():
            return
        if self._phase == _HEADERS:
            self._time_out("line and headers", "header", self._header_timeout)
        elif self._phase == _BODY:
            self._time_out("body", "body", self._body_timeout)
        else:
            self.transport.close()  # idle, or new without a byte: nothing to answer

    def _time_out(self, what: str, flag: str, seconds: float) -> None:
        self._answer_and_close(
            408,
            f"The request's {what} did not arrive within {seconds * 1000:.0f} ms "
            f"(--rest_api_{flag}_timeout_in_ms)",
        )

    def _refuse_headers(self) -> None:
        self._answer_and_close(
            431,
            "The request line and headers are longer than "
            f"--rest_api_max_header_bytes={self._max_header_bytes}",
        )

    def _answer_and_close(self, code: int, message: str) -> None:
        """Answers `code` with {"error": message}, unless an earlier answer is owed; closes."""
        if self._may_answer():
            response = RestResponse(code, json_response.error_json(message))
            self.transport.write(_encode(self, response, keep_alive=False))
        self.transport.close()

    def _may_answer(self) -> bool:
        """Whether an answer written now would be the next one the client expects."""
        cycle = self.cycle
        if self._phase == _BODY:  # the cycle is this request's; earlier ones are pipelined
            return not self.pipeline and not cycle.response_started
        return cycle is None or cycle.response_complete

    # -- Inline :predict ------------------------------------------------------

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
            elif name == b"transfer-encoding" or name == b"content-encoding":
                return None  # the ASGI path reads it (and inflates a compressed body)
        if length is None:
            return None
        raw_path = httptools.parse_url(self.url).path
        return self.rest_app.inline_predict_route(
            self.parser.get_method(), raw_path.decode("utf-8", "replace"), length
        )

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, _InlineCycle):
            # Bounded by the Content-Length checked above: no read pausing needed.
            if not cycle.response_complete:
                cycle.body += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _ANSWERING
        self._deadline.set(None)
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
