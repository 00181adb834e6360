"""Soak: the model server under steady load, version swaps and bad requests.

Starts the model server (the built binary beside this one in Bazel's
runfiles, else the module) on free loopback ports with a half_plus_two model
it exports itself, then for --duration_seconds:

- --concurrency clients (half gRPC, half REST) send Predict in a loop;
- every --swap_every_seconds a new version v+1 is exported (y = 0.5x + v+1,
  so each answer says which version computed it) and version v-1 is deleted;
- --malformed_fraction of the requests are malformed (wrong dtype, shape and
  value count disagreeing, unknown input, broken JSON, ragged lists, ...).

It prints requests served, failed well-formed requests (must be 0: an error,
or an answer that no exported version would give), malformed requests that
did not get a client error (must be 0), latency percentiles of the
well-formed ones, and the server's peak RSS (VmHWM from /proc); the exit code
is 1 when any of the "must be 0" counts is not, or the server does not exit 0
on SIGTERM.

    bazel run //tensorflow_serving/tools:soak -- --duration_seconds=60

Exports run in a helper process (this module with --export_to), so the
clients' latencies do not include TensorFlow building graphs in this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from tensorflow_serving.tools import processes
from tensorflow_serving.tools.percentiles import percentile

MODEL = "hp"
_SERVER_BINARY = "tensorflow_serving/model_servers/tensorflow_model_server"
_STARTUP_SECONDS = 180
_REQUEST_TIMEOUT = 30.0
_FAILURES_SHOWN = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration_seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--swap_every_seconds", type=float, default=5.0)
    parser.add_argument("--malformed_fraction", type=float, default=0.01)
    parser.add_argument(
        "--server_arg",
        action="append",
        default=[],
        help="Extra model server flag, e.g. --server_arg=--enable_batching (repeatable).",
    )
    parser.add_argument("--workdir", default="", help="Keep models and logs here (default: temp).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export_to", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration_seconds <= 0 or args.swap_every_seconds <= 0:
        parser.error("--concurrency, --duration_seconds and --swap_every_seconds must be > 0")
    if not 0 <= args.malformed_fraction <= 1:
        parser.error("--malformed_fraction must be within [0, 1]")
    return args


# -- The exporter helper process ---------------------------------------------------


def run_exporter(base_path: str) -> int:
    """Reads version numbers on stdin, exports each, answers 'exported <v>'."""
    from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp

    for line in sys.stdin:
        version = int(line)
        hp.export_half_plus_two_tf1(base_path, version, b=float(version))
        print(f"exported {version}", flush=True)
    return 0


class Exporter:
    """The helper process: one TensorFlow import, many exports."""

    def __init__(self, base_path: str, log_path: str):
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [*processes.python_module(__spec__.name), f"--export_to={base_path}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=processes.child_env(),
            text=True,
        )
        self.log_path = log_path

    def export(self, version: int) -> None:
        self.process.stdin.write(f"{version}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != f"exported {version}":
            raise RuntimeError(
                f"exporting version {version} failed:\n{processes.log_tail(self.log_path)}"
            )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                processes.stop(self.process)
        self._log.close()


# -- Server ---------------------------------------------------------------------------


def server_command() -> list[str]:
    candidate = os.path.join(processes.PACKAGE_ROOT, _SERVER_BINARY)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return [candidate]
    return processes.python_module("tensorflow_serving.model_servers.main")


def _proc_status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssWatch:
    """Samples the server tree's RSS; the peak is the kernel's VmHWM (no sample missed)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.first_kib = 0
        self.last_kib = 0
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> None:
        self.first_kib = self._sample()
        self._thread.start()

    def _sample(self) -> int:
        pids = processes.with_descendants(self.pid)
        rss = sum(_proc_status_kib(p, "VmRSS") for p in pids)
        self.peak_kib = max([self.peak_kib] + [_proc_status_kib(p, "VmHWM") for p in pids])
        self.last_kib = rss
        return rss

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def stop(self) -> None:
        self._sample()
        self._stop.set()
        self._thread.join(5)


# -- Clients ----------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """What one client saw; merged at the end."""

    well_formed: int = 0
    malformed: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    malformed_wrongly_answered: list[str] = dataclasses.field(default_factory=list)
    failure_count: int = 0
    malformed_wrong_count: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    versions: set[int] = dataclasses.field(default_factory=set)

    def fail(self, what: str) -> None:
        self.failure_count += 1
        if len(self.failures) < _FAILURES_SHOWN:
            self.failures.append(what)

    def malformed_wrong(self, what: str) -> None:
        self.malformed_wrong_count += 1
        if len(self.malformed_wrongly_answered) < _FAILURES_SHOWN:
            self.malformed_wrongly_answered.append(what)


def _plausible(x: float, y: float, exported: frozenset[int]) -> int | None:
    """The version whose y = 0.5x + version this answer is, or None."""
    version = round(y - 0.5 * x)
    if abs(y - 0.5 * x - version) > 1e-3 or version not in exported:
        return None
    return version


class GrpcClient:
    # Client-side faults by their gRPC code (4xx in REST terms).
    CLIENT_ERRORS = ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "OUT_OF_RANGE")

    def __init__(self, port: int):
        import grpc

        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        self._grpc = grpc
        self._predict_pb2 = predict_pb2
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def _request(self, x: float):
        from tensorflow.core.framework import types_pb2

        request = self._predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        tensor = request.inputs["x"]
        tensor.dtype = types_pb2.DT_FLOAT
        tensor.tensor_shape.dim.add(size=1)
        tensor.tensor_shape.dim.add(size=1)
        tensor.float_val.append(x)
        return request

    def well_formed(self, x: float, exported: frozenset[int], tally: Tally) -> None:
        try:
            response = self._stub.Predict(self._request(x), timeout=_REQUEST_TIMEOUT)
        except self._grpc.RpcError as error:
            tally.fail(f"gRPC {error.code().name}: {error.details()}")
            return
        version = response.model_spec.version.value
        y = response.outputs["y"].float_val[0]
        if _plausible(x, y, exported) != version:
            tally.fail(f"gRPC: version {version} answered y={y} for x={x}")
            return
        tally.versions.add(version)

    def malformed(self, rng: random.Random, tally: Tally) -> None:
        from tensorflow.core.framework import types_pb2

        request = self._request(1.0)
        tensor = request.inputs["x"]
        kind = rng.choice(("dtype", "count", "input", "signature", "content"))
        if kind == "dtype":
            tensor.dtype = types_pb2.DT_STRING
            tensor.ClearField("float_val")
            tensor.string_val.append(b"one")
        elif kind == "count":
            tensor.float_val.extend([2.0, 3.0])  # shape [1,1], three values
        elif kind == "input":
            request.inputs["z"].CopyFrom(tensor)
            del request.inputs["x"]
        elif kind == "signature":
            request.model_spec.signature_name = "no_such_signature"
        else:
            tensor.ClearField("float_val")
            tensor.tensor_content = b"\x00\x01\x02"  # not a whole float
        try:
            self._stub.Predict(request, timeout=_REQUEST_TIMEOUT)
        except self._grpc.RpcError as error:
            if error.code().name not in self.CLIENT_ERRORS:
                tally.malformed_wrong(f"gRPC {kind}: {error.code().name}: {error.details()}")
            return
        tally.malformed_wrong(f"gRPC {kind}: answered OK")

    def close(self) -> None:
        self._channel.close()


class RestClient:
    MALFORMED_BODIES = (
        b'{"instances": [[1.0]',  # truncated JSON
        b'{"instances": "one"}',
        b'{"instances": [[1.0], [2.0, 3.0]]}',  # ragged
        b'{"instances": [["x"]]}',  # wrong type
        b'{"inputs": {"z": [[1.0]]}}',  # unknown input
        b'{"instances": [[1.0]], "signature_name": "no_such_signature"}',
        b"",
        b'{"instances": [[1e999]]}',
    )

    def __init__(self, port: int):
        self._port = port
        self._connection: http.client.HTTPConnection | None = None

    def _post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    "127.0.0.1", self._port, timeout=_REQUEST_TIMEOUT
                )
            try:
                self._connection.request(
                    "POST",
                    f"/v1/models/{MODEL}:predict",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = self._connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                # A keep-alive connection the server closed between requests.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def well_formed(self, x: float, exported: frozenset[int], tally: Tally) -> None:
        try:
            code, raw = self._post(b'{"instances": [[%r]]}' % x)
        except (OSError, http.client.HTTPException) as error:
            tally.fail(f"REST: {type(error).__name__}: {error}")
            return
        if code != 200:
            tally.fail(f"REST {code}: {raw[:200]!r}")
            return
        y = json.loads(raw)["predictions"][0][0]
        version = _plausible(x, y, exported)
        if version is None:
            tally.fail(f"REST: y={y} for x={x} is no exported version's answer")
            return
        tally.versions.add(version)

    def malformed(self, rng: random.Random, tally: Tally) -> None:
        body = rng.choice(self.MALFORMED_BODIES)
        try:
            code, raw = self._post(body)
        except (OSError, http.client.HTTPException) as error:
            tally.malformed_wrong(f"REST {body[:40]!r}: {type(error).__name__}: {error}")
            return
        if not 400 <= code < 500:
            tally.malformed_wrong(f"REST {body[:40]!r}: {code} {raw[:200]!r}")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# -- The run ----------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    """Seconds as milliseconds for the report; "-" when there was nothing to measure."""
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: str):
        self.args = args
        self.workdir = workdir
        self.base_path = os.path.join(workdir, "models", MODEL)
        # Versions that may answer; replaced, never mutated, so clients read it lock-free.
        self.exported: frozenset[int] = frozenset()
        self.latest = 0
        self.swaps = 0
        self.swap_errors: list[str] = []
        self.stop = threading.Event()

    def _client_loop(self, client, index: int, tally: Tally, end: float) -> None:
        rng = random.Random(self.args.seed * 1000 + index)
        while time.monotonic() < end:
            if rng.random() < self.args.malformed_fraction:
                tally.malformed += 1
                client.malformed(rng, tally)
                continue
            x = float(rng.randint(0, 1000)) / 8  # exact in float32
            exported = self.exported  # versions that may answer now
            started = time.perf_counter()
            client.well_formed(x, exported, tally)
            tally.latencies.append(time.perf_counter() - started)
            tally.well_formed += 1
        client.close()

    def _swap_loop(self, exporter: Exporter) -> None:
        while not self.stop.wait(self.args.swap_every_seconds):
            new = self.latest + 1
            # Plausible from the moment its directory may appear.
            self.exported = self.exported | {new}
            try:
                exporter.export(new)
            except Exception as error:  # noqa: BLE001 - reported, the run goes on
                self.swap_errors.append(str(error))
                return
            self.latest = new
            old = new - 2
            if old in self.exported:
                shutil.rmtree(os.path.join(self.base_path, str(old)), ignore_errors=True)
                # Answers computed by `old` can still be in flight for a moment.
            self.swaps += 1

    def run(self) -> int:
        args = self.args
        log_path = os.path.join(self.workdir, "server.log")
        exporter = Exporter(self.base_path, os.path.join(self.workdir, "exporter.log"))
        server = None
        try:
            self.exported = frozenset({1})
            exporter.export(1)
            self.latest = 1
            grpc_port, rest_port = processes.free_port(), processes.free_port()
            server = processes.start(
                [
                    *server_command(),
                    f"--port={grpc_port}",
                    f"--rest_api_port={rest_port}",
                    "--bind_address=127.0.0.1",
                    f"--model_name={MODEL}",
                    f"--model_base_path={self.base_path}",
                    "--file_system_poll_wait_seconds=1",
                    *args.server_arg,
                ],
                None,
                log_path,
            )
            if not _wait_ready(rest_port, server):
                print(f"soak: the server did not come up:\n{processes.log_tail(log_path)}")
                return 1
            rss = RssWatch(server.pid)
            rss.start()
            result = self._load(grpc_port, rest_port, exporter)
            rss.stop()
            code = processes.stop(server, grace_seconds=60)
            server = None
        finally:
            if server is not None:
                processes.stop(server)
            exporter.close()
        return self._report(result, rss, code, log_path)

    def _load(
        self, grpc_port: int, rest_port: int, exporter: Exporter
    ) -> tuple[list[Tally], float]:
        args = self.args
        clients = []
        for index in range(args.concurrency):
            client = GrpcClient(grpc_port) if index % 2 == 0 else RestClient(rest_port)
            clients.append((client, Tally()))
        swapper = threading.Thread(target=self._swap_loop, args=(exporter,), name="swap")
        started = time.monotonic()
        end = started + args.duration_seconds
        threads = [
            threading.Thread(target=self._client_loop, args=(c, i, t, end), name=f"client-{i}")
            for i, (c, t) in enumerate(clients)
        ]
        swapper.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        self.stop.set()
        swapper.join()
        return [t for _, t in clients], elapsed

    def _report(self, result, rss: RssWatch, exit_code, log_path: str) -> int:
        args = self.args
        tallies, elapsed = result
        well = sum(t.well_formed for t in tallies)
        malformed = sum(t.malformed for t in tallies)
        failed = sum(t.failure_count for t in tallies)
        wrong = sum(t.malformed_wrong_count for t in tallies)
        latencies = sorted(x for t in tallies for x in t.latencies)
        versions = sorted(set().union(*(t.versions for t in tallies)))
        n_grpc = (args.concurrency + 1) // 2
        print(
            f"soak: {elapsed:.1f} s, concurrency {args.concurrency} ({n_grpc} gRPC, "
            f"{args.concurrency - n_grpc} REST), a version swap every "
            f"{args.swap_every_seconds:g} s, {args.malformed_fraction:.1%} malformed"
            + (f", server flags {' '.join(args.server_arg)}" if args.server_arg else "")
        )
        print(f"requests served: {well + malformed} ({(well + malformed) / elapsed:.0f}/s)")
        print(f"failed well-formed requests: {failed} of {well}")
        print(f"malformed requests: {malformed}, not answered with a client error: {wrong}")
        print(
            f"versions answering: {versions[0] if versions else '-'}..."
            f"{versions[-1] if versions else '-'} ({len(versions)} distinct), "
            f"{self.swaps} swaps (export v+1, delete v-1)"
        )
        print(
            f"latency of well-formed requests: p50 {_ms(percentile(latencies, 50))} ms, "
            f"p99 {_ms(percentile(latencies, 99))} ms, "
            f"max {_ms(latencies[-1] if latencies else None)} ms"
        )
        print(
            f"server peak RSS: {rss.peak_kib / 1024:.0f} MiB (after start "
            f"{rss.first_kib / 1024:.0f} MiB, at the end {rss.last_kib / 1024:.0f} MiB)"
        )
        print(f"server exit code after SIGTERM: {exit_code}")
        for t in tallies:
            for line in t.failures:
                print(f"  failure: {line}")
            for line in t.malformed_wrongly_answered:
                print(f"  malformed answered wrongly: {line}")
        for line in self.swap_errors:
            print(f"  swap failed: {line}")
        ok = failed == 0 and wrong == 0 and exit_code == 0 and not self.swap_errors
        if not ok:
            print(f"soak: FAILED (server log: {log_path})")
        return 0 if ok else 1


def _wait_ready(rest_port: int, server: subprocess.Popen) -> bool:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=2)
            connection.request("GET", "/v1/health/ready")
            ready = connection.getresponse().status == 200
            connection.close()
            if ready:
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.export_to:
        return run_exporter(args.export_to)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        return Soak(args, args.workdir).run()
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        return Soak(args, workdir).run()


if __name__ == "__main__":
    sys.exit(main())
