"""Maps the core's errors onto a gRPC status, once, for every RPC."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import grpc

from tensorflow_serving.model_servers import metrics
from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)


def abort_with(context: grpc.ServicerContext, error: status.ServingError):
    context.abort(error.code, error.message)


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
            started = time.perf_counter()
            response = None
            code = grpc.StatusCode.OK
            remaining = context.time_remaining()
            try:
                if remaining is not None and remaining <= 0:
                    raise status.deadline_exceeded(f"{api}: deadline exceeded before it started")
                response = method(self, request, context)
                return response
            except status.ServingError as error:
                _LOG.debug("%s failed: %s", api, error.message)
                code = error.code
                abort_with(context, error)
            except Exception as error:
                _LOG.exception("%s failed unexpectedly", api)
                code = grpc.StatusCode.INTERNAL
                abort_with(
                    context, status.internal(f"{api} failed: {type(error).__name__}: {error}")
                )
            finally:
                metrics.default().record_grpc(
                    api, request, response, code, time.perf_counter() - started
                )

        return wrapper

    return decorate
