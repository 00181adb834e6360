"""ServableHandle: what a request holds while it uses one loaded version
(upstream: core/servable_handle.h).

Handlers (predict, classify, ...) see only the name, the version and the
servable; who owns the version, and how its use is counted, stays with
whoever made the handle (ServerCore for requests, the loader for warmup).
"""

from __future__ import annotations


class ServableHandle:
    """A loaded version in use by one request, until release().

    release() may be called from any thread, and more than once: only the
    first call counts. Using a handle as a context manager releases it on exit.
    """

    __slots__ = ("name", "version", "servable")

    def __init__(self, name: str, version: int, servable: object):
        self.name = name
        self.version = version
        self.servable = servable

    def release(self) -> None:
        """Ends this request's use of the version (nothing to count for a bare handle)."""

    def __enter__(self) -> ServableHandle:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
