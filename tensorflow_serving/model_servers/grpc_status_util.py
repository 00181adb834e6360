"""Maps the core's errors onto a gRPC status, once, for every RPC."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import grpc

from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)


def abort_with(context: grpc.ServicerContext, error: status.ServingError):
    context.abort(error.code, error.message)


def grpc_method(api: str) -> Callable:
    """Wraps a servicer method: ServingError -> its code, anything else -> INTERNAL.

    A bad request must never surface as UNKNOWN with a Python traceback, and
    must never stop the server; the wrapped method also refuses work whose
    deadline has already passed.
    """

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self, request, context: grpc.ServicerContext):
            remaining = context.time_remaining()
            try:
                if remaining is not None and remaining <= 0:
                    raise status.deadline_exceeded(f"{api}: deadline exceeded before it started")
                return method(self, request, context)
            except status.ServingError as error:
                _LOG.debug("%s failed: %s", api, error.message)
                abort_with(context, error)
            except Exception as error:
                _LOG.exception("%s failed unexpectedly", api)
                abort_with(
                    context, status.internal(f"{api} failed: {type(error).__name__}: {error}")
                )

        return wrapper

    return decorate
