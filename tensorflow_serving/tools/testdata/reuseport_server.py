"""A stand-in for a model server with worker processes, for the benchmark's scaling tests.

Takes the flags the benchmark gives a model server (others are ignored) and
`--num_server_processes=N` (0: one per CPU of its affinity). The process the
benchmark starts supervises N workers, its children; each worker listens on
the gRPC and the REST port with SO_REUSEPORT and answers every gRPC call
with an empty message and every REST POST with {"predictions": [[0.0]]}.
SIGTERM stops the workers, then the supervisor (exit 0).

    python reuseport_server.py --port=8500 --rest_api_port=8501 --num_server_processes=2
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading

_ANSWER = b'{"predictions": [[0.0]]}'


class _RestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # the head and the body go out as two writes

    def do_POST(self) -> None:  # noqa: N802  (http.server's method name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)

    def log_message(self, *args) -> None:
        pass


class _ReusePortServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def _worker(grpc_port: int, rest_port: int) -> None:
    """Serves both ports until SIGTERM."""
    from concurrent import futures

    import grpc

    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(lambda request, context: b"")},
    )
    server = grpc.server(futures.ThreadPoolExecutor(8), options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    rest = _ReusePortServer(("127.0.0.1", rest_port), _RestHandler)
    threading.Thread(target=rest.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    rest.shutdown()
    server.stop(0)


def _supervise(args: argparse.Namespace) -> int:
    count = args.num_server_processes or len(os.sched_getaffinity(0))
    worker = [sys.executable, os.path.abspath(__file__), "--worker"]
    ports = [f"--port={args.port}", f"--rest_api_port={args.rest_api_port}"]
    workers = [subprocess.Popen([*worker, *ports]) for _ in range(count)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    for child in workers:
        child.terminate()
    for child in workers:
        child.wait(10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rest_api_port", type=int, required=True)
    parser.add_argument("--num_server_processes", type=int, default=1)
    parser.add_argument("--worker", action="store_true")
    args, _ = parser.parse_known_args(argv)
    if args.worker:
        _worker(args.port, args.rest_api_port)
        return 0
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())
