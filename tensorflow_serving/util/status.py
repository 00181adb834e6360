"""One error type for the whole server: a gRPC status code and a message.

The core and the handlers raise `ServingError`; each transport maps it once
(gRPC: the code itself; REST: `http_status()` and `{"error": message}`), so a
client sees the same code and words whichever way it called.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

# Upstream's REST handler maps canonical codes to HTTP this way.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A failure a client should see, with the canonical code that names it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def _with_code(code: grpc.StatusCode) -> Callable[[str], ServingError]:
    """A constructor of ServingErrors with `code`, named like upstream's errors::* helpers."""

    def make(message: str) -> ServingError:
        return ServingError(code, message)

    make.__name__ = code.name.lower()
    return make


invalid_argument = _with_code(grpc.StatusCode.INVALID_ARGUMENT)
not_found = _with_code(grpc.StatusCode.NOT_FOUND)
failed_precondition = _with_code(grpc.StatusCode.FAILED_PRECONDITION)
unavailable = _with_code(grpc.StatusCode.UNAVAILABLE)
unimplemented = _with_code(grpc.StatusCode.UNIMPLEMENTED)
deadline_exceeded = _with_code(grpc.StatusCode.DEADLINE_EXCEEDED)
internal = _with_code(grpc.StatusCode.INTERNAL)
resource_exhausted = _with_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
