"""The HTTP server on --rest_api_port: the REST API, the Prometheus page and the
health checks (upstream: http_server.cc).

uvicorn (uvloop + httptools) serves a RestApiApp (app.py) on a thread of the
model server's process, so gRPC and REST share one ServerCore and one set of
loaded models. No web framework: routing is upstream's URL regexes
(routes.py). uvicorn's HTTP protocol is replaced by inline_protocol.py's
subclass, which hands small :predict requests to the app without ASGI and
bounds each connection's header bytes and time (HttpOptions), and keeps the
keep-alive timer itself.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time

import uvicorn

from tensorflow_serving.model_servers import metrics as metrics_lib
from tensorflow_serving.model_servers.rest.app import HttpOptions, RestApiApp
from tensorflow_serving.model_servers.rest.connection_limits import ConnectionCap
from tensorflow_serving.model_servers.rest.inline_protocol import InlinePredictProtocol
from tensorflow_serving.util import status
from tensorflow_serving.util.rate_limited_log import RateLimitedLog, RateLimitingFilter

_STARTUP_SECONDS = 30.0
# How the lines uvicorn logs per request or connection for a client's misbehaviour begin.
CLIENT_FAILURE_MESSAGES = (
    "Invalid HTTP request received.",
    "Unsupported upgrade request.",
    "No supported WebSocket library detected.",
    "Exceeded concurrency limit.",
)
_UVICORN_LOGGER = "uvicorn.error"


def limit_client_failure_logs(logger: logging.Logger | None = None) -> None:
    """uvicorn's lines for CLIENT_FAILURE_MESSAGES: each at most once a minute, no
    traceback. Idempotent (a process may start several REST servers, e.g. in tests)."""
    logger = logger or logging.getLogger(_UVICORN_LOGGER)
    if not any(isinstance(f, RateLimitingFilter) for f in logger.filters):
        logger.addFilter(RateLimitingFilter(CLIENT_FAILURE_MESSAGES, RateLimitedLog(logger)))


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """Binds before the thread starts, so a taken port fails build_and_start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
        limit_client_failure_logs()
        sock = _bind(self.options.host, self.options.port, self.options.reuse_port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http=functools.partial(
                InlinePredictProtocol,
                rest_app=self.app,
                cap=ConnectionCap(self.options.max_connections),
            ),
            ws="none",  # the API has no WebSocket: every connection stays with our protocol
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            backlog=2048,
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


def create_and_start(
    core,
    options: HttpOptions,
    metrics: metrics_lib.ServingMetrics | None = None,
    control=None,
) -> HttpServer:
    """The REST server of a model server (upstream: CreateAndStartHttpServer).

    `control` answers model status and readiness (see HttpRestApiHandler).
    """
    app = RestApiApp(core, options, metrics, control=control)
    server = HttpServer(app, options)
    try:
        server.start()
    except BaseException:
        app.close()
        raise
    return server


__all__ = ["HttpServer", "create_and_start"]
