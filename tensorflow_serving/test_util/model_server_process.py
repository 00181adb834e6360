"""Runs the built tensorflow_model_server in a test, on free loopback ports.

End-to-end tests drive the real binary (the py_binary from the test's
runfiles under Bazel, else the module from the source tree), stop it by its
own pid, and show its log when it does not come up.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tensorflow_serving.test_util import testing

BINARY = "tensorflow_serving/model_servers/tensorflow_model_server"
STARTUP_SECONDS = 180
# Where the server serves Prometheus metrics unless the monitoring config says otherwise.
DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


def server_command() -> list[str]:
    """The py_binary from this test's runfiles, else the module from the source tree."""
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        workspace = os.environ.get("TEST_WORKSPACE", "tf_serving_py")
        candidate = os.path.join(srcdir, workspace, BINARY)
        if os.access(candidate, os.X_OK):
            return [candidate]
    return [sys.executable, "-m", "tensorflow_serving.model_servers.main"]


def _open_files_limit(soft: int, hard: int) -> Callable[[], None]:
    """A preexec_fn: the child starts with this RLIMIT_NOFILE."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


class RunningServer:
    """One server process: started with flags, stopped by its own pid.

    `open_files`: the (soft, hard) open-file limit it starts with; None: this process's.
    `grpc_port`: the --port to serve on (for flags that name it); None: a free one.
    """

    def __init__(
        self,
        tmp_path,
        name: str,
        flags: list[str],
        rest: bool = True,
        open_files: tuple[int, int] | None = None,
        grpc_port: int | None = None,
    ):
        self.grpc_port = grpc_port or testing.free_port()
        self.rest_port = testing.free_port() if rest else 0
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                *server_command(),
                f"--port={self.grpc_port}",
                f"--rest_api_port={self.rest_port}",
                "--bind_address=127.0.0.1",
                *flags,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if open_files is None else _open_files_limit(*open_files),
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    @contextlib.contextmanager
    def serving(self) -> Iterator[RunningServer]:
        """Waits until it serves and yields it; on leaving (also when the wait failed)
        stops it and asserts that it exited 0 after SIGTERM (its log in the failure)."""
        try:
            self.wait_until_serving()
            yield self
        finally:
            code = self.stop()
        assert code == 0, f"exit code {code} after SIGTERM:\n{self.log_tail()}"

    def wait_until_serving(self) -> None:
        """Waits for the gRPC port (REST: its liveness endpoint) to answer."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited ({self.process.returncode}):\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        pytest.fail(f"server did not start in {STARTUP_SECONDS} s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        if self.rest_port:
            try:
                return self.request("GET", "/v1/health/live")[0] == 200
            except OSError:
                return False
        try:
            grpc.channel_ready_future(self.channel).result(timeout=0.5)
            return True
        except grpc.FutureTimeoutError:
            return False

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def request(self, method, path, body=None, headers=None):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def json(self, method, path, body=None):
        code, _, raw = self.request(method, path, body)
        return code, json.loads(raw) if raw else None

    def metric(self, name: str, path: str = DEFAULT_METRICS_PATH, **labels: str) -> float:
        """The sum of the samples `name` with these labels on the server's Prometheus page.

        `name` is spelled as the page writes it; prometheus_client's parser
        reports a counter's samples with `_total` appended, and both spellings
        match. The server needs --monitoring_config_file with
        prometheus_config at `path`; a sample that is not on the page counts 0.
        """
        code, _, raw = self.request("GET", path)
        assert code == 200, f"GET {path}: {code} {raw[:200]!r}"
        return sum(
            sample.value
            for family in text_string_to_metric_families(raw.decode())
            for sample in family.samples
            if sample.name in (name, f"{name}_total")
            and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def swap_under_load(
        self,
        answering_version: Callable[[], int],
        export_new: Callable[[], None],
        new: int,
        clients: int,
        model: str,
    ) -> tuple[set[int], list[grpc.RpcError]]:
        """Versions that answered, and the errors, while `clients` threads call
        `answering_version()` in a loop and `export_new()` adds version `new`
        of `model`.

        The load starts before the export and goes on until `new` answers and
        the server's log says the version that answered before it was
        unloaded, so the whole swap happens under load.
        """
        failures: list[grpc.RpcError] = []
        versions: set[int] = set()
        lock = threading.Lock()
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    version = answering_version()
                except grpc.RpcError as error:
                    with lock:
                        failures.append(error)
                    continue
                with lock:
                    versions.add(version)

        def answered() -> set[int]:
            with lock:
                return set(versions)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            if not testing.wait_for(lambda: bool(answered()), timeout=60):
                pytest.fail(f"no client got an answer before the swap:\n{self.log_tail()}")
            old = max(answered())
            export_new()
            if not testing.wait_for(lambda: new in answered(), timeout=60):
                pytest.fail(f"version {new} never answered:\n{self.log_tail()}")
            unloaded = f"Unloaded servable version {{name: {model} version: {old}}}"
            if not testing.wait_for(lambda: unloaded in self.log_path.read_text(), timeout=60):
                pytest.fail(f"version {old} was never unloaded:\n{self.log_tail()}")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        return versions, failures

    def stop(self) -> int | None:
        """SIGTERM, then wait; returns the exit code."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode
