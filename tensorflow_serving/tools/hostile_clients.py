"""Hostile clients for hostile_bench: a huge REST header, idle sockets, a string bomb.

Each attacker that runs beside a load is a function meant for its own
spawned process (socket work only, no TensorFlow), driven by a `stop` event
and reporting on a queue; `string_bomb` builds the wire bytes of a gRPC
PredictRequest that is small to send and huge to decode.

Loopback only: every function refuses a host that is not a loopback address,
so the tool cannot be pointed at someone else's server.
"""

from __future__ import annotations

import ipaddress
import resource
import selectors
import socket
import time

from tensorflow_serving.util import proto_wire
from tensorflow_serving.util.proto_wire import LENGTH_DELIMITED, VARINT

_CHUNK = 1 << 20
# Connections an idle attacker starts at once (the server's accept backlog is larger).
_CONNECT_BATCH = 512
DT_FLOAT = 1


def _check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"hostile clients attack loopback servers only, not {host!r}")


def big_header_head(host: str, port: int) -> bytes:
    """The start of a GET whose last header (X-Big) has not ended: its value follows."""
    return f"GET /v1/models/x HTTP/1.1\r\nHost: {host}:{port}\r\nX-Big: ".encode()


def header_flood(host: str, port: int, header_bytes: int, per_second: float, stop, report) -> None:
    """Sends one `header_bytes` header after another until `stop` is set, starting at
    most `per_second` of them a second (0: back to back); reports ("header",
    attempts, answers that began 'HTTP/1.1 4', bytes the kernel took).

    Each attempt opens a connection, writes the head and up to `header_bytes`
    of header value as fast as the server reads, then reads what the server
    answers (a 431 or 400 and a close, once it stops reading).
    """
    _check_loopback(host)
    attempts = refused = taken = 0
    filler = b"a" * _CHUNK
    period = 1 / per_second if per_second > 0 else 0.0
    next_start = time.monotonic()
    while not stop.wait(max(0.0, next_start - time.monotonic())):
        next_start += period
        attempts += 1
        with socket.create_connection((host, port), timeout=10) as sock:
            sent = 0
            try:
                sock.sendall(big_header_head(host, port))
                while sent < header_bytes and not stop.is_set():
                    sent += sock.send(filler[: min(_CHUNK, header_bytes - sent)])
                answer = sock.recv(64)
            except OSError:
                answer = b""
                try:
                    answer = sock.recv(64)
                except OSError:
                    pass
            taken += sent
            refused += answer.startswith(b"HTTP/1.1 4")
    report.put(("header", attempts, refused, taken))


def raise_open_files_limit() -> int:
    """Raises this process's soft open-file limit to its hard limit; returns the limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def idle_connections(host: str, port: int, count: int, stop, report) -> None:
    """Opens `count` TCP connections and sends nothing on them until `stop` is set.

    Reports ("idle-held", opened, failed, seconds taken) once all were tried,
    then ("idle-closed", still open per the kernel) when stopped. A connection
    the server closes (its cap, its header timeout) is not reopened: the
    attack is idle sockets, not a reconnect flood.
    """
    _check_loopback(host)
    raise_open_files_limit()
    held: list[socket.socket] = []
    failed = 0
    started = time.monotonic()
    for first in range(0, count, _CONNECT_BATCH):
        if stop.is_set():
            break
        batch = _connect_batch(host, port, min(_CONNECT_BATCH, count - first))
        held += batch
        failed += min(_CONNECT_BATCH, count - first) - len(batch)
    report.put(("idle-held", len(held), failed, time.monotonic() - started))
    stop.wait()
    still_open = sum(1 for sock in held if _open(sock))
    for sock in held:
        sock.close()
    report.put(("idle-closed", still_open))


def _connect_batch(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` connections started at once (non-blocking); the ones that connected within 10 s."""
    pending: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((host, port))
        pending.append(sock)
    connected = []
    with selectors.DefaultSelector() as selector:
        for sock in pending:
            selector.register(sock, selectors.EVENT_WRITE)
        deadline = time.monotonic() + 10
        while len(selector.get_map()) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                selector.unregister(key.fileobj)
                if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected.append(key.fileobj)
                else:
                    key.fileobj.close()
        for key in list(selector.get_map().values()):
            key.fileobj.close()
    return connected


def _open(sock: socket.socket) -> bool:
    """Whether the peer has not closed the connection (no EOF, no error, waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _length_delimited(number: int, payload: bytes) -> bytes:
    return proto_wire.tag(number, LENGTH_DELIMITED) + proto_wire.varint(len(payload)) + payload


def string_bomb(model: str, alias: str, entries: int, dtype: int = DT_FLOAT) -> bytes:
    """A serialized PredictRequest: input `alias` of `dtype` and shape [entries, 1]
    carrying `entries` empty string_val entries (2 bytes each on the wire).

    Built on the wire: a PredictRequest object with 60 million strings would
    cost the client gigabytes before a byte is sent.
    """
    dim = _length_delimited(2, proto_wire.tag(1, VARINT) + proto_wire.varint(entries))
    one = _length_delimited(2, proto_wire.tag(1, VARINT) + proto_wire.varint(1))
    header = proto_wire.tag(1, VARINT) + proto_wire.varint(dtype)
    header += _length_delimited(2, dim + one)
    empty_string = proto_wire.tag(8, LENGTH_DELIMITED) + b"\x00"
    tensor = header + empty_string * entries
    entry = _length_delimited(1, alias.encode()) + _length_delimited(2, tensor)
    spec = _length_delimited(1, _length_delimited(1, model.encode()))
    return spec + _length_delimited(2, entry)
