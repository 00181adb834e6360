"""Request bodies sent with `Content-Encoding`: inflated as they stream in, within a limit.

Upstream's HTTP server inflates a `Content-Encoding: gzip` body before the
handler sees it; so do we. `--max_request_bytes` then bounds what the body
inflates to, checked as each piece comes out of zlib: a small body that
inflates to gigabytes (a "gzip bomb") costs at most the limit in memory
before it is refused, never the whole inflated size.

`identity` (or no header) is the body as sent; any other coding is refused
with 415, naming it.
"""

from __future__ import annotations

import zlib

import grpc

from tensorflow_serving.util import status

# The largest piece zlib hands back at once: the limit is checked this often.
_PIECE_BYTES = 1 << 20
_GZIP = ("gzip", "x-gzip")
_IDENTITY = ("", "identity")


class UnsupportedEncoding(status.ServingError):
    """A Content-Encoding we do not inflate (HTTP 415)."""

    def http_status(self) -> int:
        return 415


class InflatedTooLarge(Exception):
    """The body inflated past the limit; `size` is what it had reached (at least limit + 1)."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def is_identity(header: bytes | None) -> bool:
    """Whether a Content-Encoding header value leaves the body as sent (cheap; any thread)."""
    return header is None or header.strip().lower() in (b"", b"identity")


class GzipBody:
    """Inflates one gzip body chunk by chunk, keeping at most `limit` inflated bytes.

    feed() each chunk as it arrives, then finish() for the body. Raises
    InflatedTooLarge as soon as the output passes `limit` (0: no limit),
    and status.ServingError (INVALID_ARGUMENT) for bytes that are not gzip
    or a stream that ends early. Several gzip members one after another
    inflate to their concatenation, as gunzip does. One body per instance,
    on one thread at a time.
    """

    def __init__(self, limit: int = 0):
        self._limit = limit
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pieces: list[bytes] = []
        self._size = 0
        self._fed = False

    def feed(self, data: bytes) -> None:
        """Inflates `data`, the next bytes of the body."""
        while data:
            self._fed = True
            piece_limit = _PIECE_BYTES
            if self._limit:
                piece_limit = min(piece_limit, self._limit - self._size + 1)
            try:
                piece = self._inflater.decompress(data, piece_limit)
            except zlib.error as error:
                raise status.invalid_argument(
                    f"Request body is not valid gzip (Content-Encoding: gzip): {error}"
                ) from None
            self._keep(piece)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                data = self._inflater.unused_data + data
                if data:  # another gzip member follows
                    self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def _keep(self, piece: bytes) -> None:
        if not piece:
            return
        self._size += len(piece)
        if self._limit and self._size > self._limit:
            self._pieces.clear()
            raise InflatedTooLarge(self._size)
        self._pieces.append(piece)

    def finish(self) -> bytes:
        """The inflated body; the stream must have ended with a whole gzip member."""
        if self._fed and not self._inflater.eof:
            raise status.invalid_argument(
                "Request body is not valid gzip (Content-Encoding: gzip): the stream ends "
                f"before its end marker, after {self._size} inflated bytes"
            )
        return b"".join(self._pieces)


def body_decoder(header: bytes | None, limit: int) -> GzipBody | None:
    """The decoder for a Content-Encoding header value: None for identity, GzipBody for gzip.

    Raises UnsupportedEncoding (415) for any other coding, or a list of them.
    """
    if is_identity(header):
        return None
    coding = header.strip().lower().decode("latin-1")
    if coding in _GZIP:
        return GzipBody(limit)
    raise UnsupportedEncoding(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Unsupported Content-Encoding: {coding!r}; the REST API accepts gzip or identity",
    )
