"""Maps the core's errors onto a gRPC status, once, for every RPC."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import grpc

from tensorflow_serving.model_servers import metrics
from tensorflow_serving.model_servers.inline_grpc_server import DEFERRED
from tensorflow_serving.util import request_deadline, status

_LOG = logging.getLogger(__name__)


def abort_with(context: grpc.ServicerContext, error: status.ServingError):
    context.abort(error.code, error.message)


class _Call:
    """One RPC as the metrics and the status mapping see it."""

    __slots__ = ("api", "request", "started")

    def __init__(self, api: str, request):
        self.api = api
        self.request = request
        self.started = time.perf_counter()

    def check_deadline(self, remaining: float | None) -> None:
        if remaining is not None and remaining <= 0:
            raise status.deadline_exceeded(f"{self.api}: deadline exceeded before it started")

    def answered(self, response):
        self.record(response, grpc.StatusCode.OK)
        return response

    def failed(self, error: BaseException) -> status.ServingError:
        failure = self.client_error(error)
        self.record(None, failure.code)
        return failure

    def client_error(self, error: BaseException) -> status.ServingError:
        """The error as the client sees it; anything but a ServingError is INTERNAL."""
        if isinstance(error, status.ServingError):
            _LOG.debug("%s failed: %s", self.api, error.message)
            return error
        _LOG.error("%s failed unexpectedly", self.api, exc_info=error)
        return status.internal(f"{self.api} failed: {type(error).__name__}: {error}")

    def record(self, response, code: grpc.StatusCode) -> None:
        """Counts the call in the request metrics, with its latency so far."""
        metrics.default().record_grpc(
            self.api, self.request, response, code, time.perf_counter() - self.started
        )


def grpc_method(api: str) -> Callable:
    """Wraps a servicer method: ServingError -> its code, anything else -> INTERNAL.

    A bad request must never surface as UNKNOWN with a Python traceback, and
    must never stop the server; the wrapped method also refuses work whose
    deadline has already passed. Every call is counted in the request metrics
    (the same ones REST requests go to), with the code it ended with.
    """

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self, request, context: grpc.ServicerContext):
            call = _Call(api, request)
            remaining = context.time_remaining()
            try:
                call.check_deadline(remaining)
                # Queues below (batching) drop the work once the client stopped waiting.
                with request_deadline.scope(remaining):
                    response = method(self, request, context)
            except Exception as error:
                abort_with(context, call.failed(error))
            return call.answered(response)

        return wrapper

    return decorate


def answer_later(api: str, request, context, start: Callable[[Callable], None]):
    """grpc_method for a call whose answer comes from another thread (InlineGrpcServer).

    `start(done)` queues the work and returns; `done(response, error)` is then
    called once, on the thread that finished it, and sends the answer. The
    handler's thread goes back to serving other calls meanwhile.
    """
    call = _Call(api, request)
    remaining = context.time_remaining()
    reply = context.deferred_reply()

    def done(response, error: BaseException | None) -> None:
        # The answer leaves first and is counted after: with one client the
        # metrics then cost no latency (the latency recorded ends at the send).
        try:
            if error is None:
                code = grpc.StatusCode.OK
                reply.send(response)
            else:
                failure = call.client_error(error)
                code = failure.code
                reply.fail(failure.code, failure.message)
            call.record(response, code)
        except Exception:  # the answer is lost, but the thread running batches goes on
            _LOG.exception("%s: sending the answer failed", api)

    try:
        call.check_deadline(remaining)
        with request_deadline.scope(remaining):
            start(done)
    except Exception as error:
        abort_with(context, call.failed(error))
    return DEFERRED


class _Undecodable:
    """Stands in for a request whose bytes are not the RPC's message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


class UndecodableRequestInterceptor(grpc.ServerInterceptor):
    """Bytes that do not parse as the request message: INVALID_ARGUMENT, not INTERNAL.

    grpcio (like gRPC C++ under the stock server) answers a request it cannot
    deserialize with INTERNAL, "Exception deserializing request!", which reads
    as a server fault; the fault is the client's. Each unary method's
    deserializer is wrapped once (handlers are cached per method name).
    """

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        try:
            return self._handlers[method]
        except KeyError:
            pass
        handler = continuation(handler_call_details)
        if handler is not None and handler.unary_unary and handler.request_deserializer:
            handler = _decoding_checked(method, handler)
        self._handlers[method] = handler
        return handler


def _decoding_checked(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    deserialize = handler.request_deserializer
    behavior = handler.unary_unary

    def safe_deserialize(data: bytes):
        try:
            return deserialize(data)
        except Exception as error:  # protobuf's DecodeError, or worse bytes
            return _Undecodable(f"{type(error).__name__}: {error}")

    def checked_behavior(request, context):
        if isinstance(request, _Undecodable):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request to {method} is not a valid protobuf message of its type "
                f"({request.reason})",
            )
        return behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        checked_behavior,
        request_deserializer=safe_deserialize,
        response_serializer=handler.response_serializer,
    )
