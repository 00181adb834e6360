"""gRPC status plumbing: ServingError -> status for the control calls, Future
answers on grpcio's server, and undecodable requests as INVALID_ARGUMENT."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable

import grpc

from tensorflow_serving.model_servers import metrics
from tensorflow_serving.model_servers.data_plane import serving_error
from tensorflow_serving.util import status
from tensorflow_serving.util.completion import Completion

_LOG = logging.getLogger(__name__)

# What a unary handler may return instead of its response: answered once done.
_PENDING_TYPES = (Completion, concurrent.futures.Future)


def abort_with(context: grpc.ServicerContext, error: status.ServingError):
    context.abort(error.code, error.message)


def grpc_method(api: str) -> Callable:
    """Wraps a control method (ModelService): ServingError -> its code, anything else INTERNAL.

    For the calls that do not go through the DataPlane (they use no model
    version): the error is mapped by the same data_plane.serving_error, and
    the call is counted in the same request metrics.
    """

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self, request, context: grpc.ServicerContext):
            started = time.perf_counter()
            response, code = None, grpc.StatusCode.OK
            try:
                response = method(self, request, context)
            except Exception as raised:
                failure = serving_error(api, raised)
                code = failure.code
                abort_with(context, failure)
            finally:
                metrics.default().record_grpc(
                    api, request, response, code, time.perf_counter() - started
                )
            return response

        return wrapper

    return decorate


class FutureResponses(grpc.ServerInterceptor):
    """For grpcio's server: a unary handler that returns a Completion (or Future) is answered when it is done.

    InlineGrpcServer answers such handlers from the thread that completes the
    future; grpcio's thread-pool server needs a response, so this waits for
    it on the handler's thread, and a ServingError aborts with its code.
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler.unary_unary:
            return handler
        behavior = handler.unary_unary

        def waiting_behavior(request, context):
            response = behavior(request, context)
            if not isinstance(response, _PENDING_TYPES):
                return response
            try:
                return response.result()
            except status.ServingError as error:
                abort_with(context, error)

        return grpc.unary_unary_rpc_method_handler(
            waiting_behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _Undecodable:
    """Stands in for a request that was not decoded: the status its client gets."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str):
        self.code = code
        self.message = message


class UndecodableRequestInterceptor(grpc.ServerInterceptor):
    """Bytes that do not parse as the request message: INVALID_ARGUMENT, not INTERNAL.

    grpcio (like gRPC C++ under the stock server) answers a request it cannot
    deserialize with INTERNAL, "Exception deserializing request!", which reads
    as a server fault; the fault is the client's. Each unary method's
    deserializer is wrapped once (handlers are cached per method name).

    `decoders` replaces the deserializer of the methods it names (full names,
    "/package.Service/Method"); a decoder that refuses a request raises a
    ServingError, whose code and message the client gets.
    """

    def __init__(self, decoders: dict[str, Callable[[bytes], object]] | None = None) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}
        self._decoders = dict(decoders or {})

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        try:
            return self._handlers[method]
        except KeyError:
            pass
        handler = continuation(handler_call_details)
        if handler is not None and handler.unary_unary and handler.request_deserializer:
            decode = self._decoders.get(method, handler.request_deserializer)
            handler = _decoding_checked(method, handler, decode)
        self._handlers[method] = handler
        return handler


def _decoding_checked(
    method: str, handler: grpc.RpcMethodHandler, deserialize: Callable[[bytes], object]
) -> grpc.RpcMethodHandler:
    behavior = handler.unary_unary

    def safe_deserialize(data: bytes):
        try:
            return deserialize(data)
        except status.ServingError as refusal:
            return _Undecodable(refusal.code, refusal.message)
        except Exception as error:  # protobuf's DecodeError, or worse bytes
            return _Undecodable(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request to {method} is not a valid protobuf message of its type "
                f"({type(error).__name__}: {error})",
            )

    def checked_behavior(request, context):
        if isinstance(request, _Undecodable):
            context.abort(request.code, request.message)
        return behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        checked_behavior,
        request_deserializer=safe_deserialize,
        response_serializer=handler.response_serializer,
    )
