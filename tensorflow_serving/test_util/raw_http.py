"""HTTP/1.1 read straight off a socket, for tests that send bytes no HTTP client would."""

from __future__ import annotations

import socket


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict, bytes]]:
    """`count` Content-Length framed responses from one socket, in order: (status, headers, body)."""
    data = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} responses"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(data) < length:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
        answers.append((int(lines[0].split()[1]), headers, data[:length]))
        data = data[length:]
    return answers


def until_closed(sock: socket.socket, timeout: float = 30) -> bytes:
    """What the server sends before it closes the connection (a reset after it counts)."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def status_of(response: bytes) -> int:
    """The status code of a response's bytes."""
    return int(response.split(b" ", 2)[1])
