"""hostile_bench: issue 36's checks on the model server, each against its limit, in one run.

Starts the model server (the built binary beside this one in Bazel's
runfiles, else the module) on free loopback ports with a half_plus_two model
it exports itself (x float[-1,1] -> y = 0.5x + 2), then, for --rounds rounds:

- header: --clients closed-loop clients send Predicts (gRPC and REST, one
  batch row each) without, then with, an attacker that sends a
  --header_bytes header on a new REST connection --header_attacks_per_second
  times a second (0: one after another, a connection flood); the ratio is
  the attacked p99 over the quiet p99 of the same round (limit 2.0, 0 failed);
- idle: the same load without, then with, --idle_connections idle TCP
  connections held on the REST port (spread over processes of at most
  10,000 sockets each); the clients connect before the attacker, who opens
  each socket once and never reconnects (limit 2.0, 0 failed);
- bomb: a gRPC Predict of --bomb_entries empty string_val entries for the
  float input (2 bytes each on the wire: 120 MB for 60 million); the time
  to its refusal (limit 0.5 s) and the server's peak RSS growth over the
  call (VmHWM after the kernel's peak was reset, minus VmRSS before; limit
  200 MB); the server must refuse it, INVALID_ARGUMENT (what it would
  decode to) or RESOURCE_EXHAUSTED (--max_request_bytes), and go on serving;
- control: GetModelStatus latency, probed every --probe_interval_ms, alone
  and under --control_clients gRPC clients sending --control_rows-row
  Predicts (limit: p99 under 50 ms under load).

Each client load is load_generator.run_load (spawned worker processes); the
attackers run in spawned processes of their own (hostile_clients). The
machine's other work shows in the spread over rounds, which the report
gives with the median.

    bazel run //tensorflow_serving/tools:hostile_bench -- --rounds=3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from tensorflow_serving.tools import hostile_clients, load_generator, processes
from tensorflow_serving.tools.percentiles import percentile

_SERVER_BINARY = "tensorflow_serving/model_servers/tensorflow_model_server"
_MODEL = "hp"
_GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
_SOCKETS_PER_PROCESS = 10_000
# Open files beyond those of before an idle attack that still count as released (the
# load's own connections, log files).
_SETTLED_SLACK = 64
# The answers that refuse the string bomb: over the decode budget, or over the size limit.
_BOMB_REFUSALS = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
CHECKS = ("header", "idle", "bomb", "control")
LIMITS = {
    "latency_ratio": 2.0,
    "bomb_seconds": 0.5,
    "bomb_rss_mb": 200.0,
    "control_p99_ms": 50.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", default=",".join(CHECKS), help="any of " + ",".join(CHECKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--protocols", default="rest,grpc", help="the clients' transports")
    parser.add_argument("--header_bytes", type=int, default=32 << 20)
    parser.add_argument(
        "--header_attacks_per_second",
        type=float,
        default=10.0,
        help="new huge-header connections started a second (0: back to back, a flood)",
    )
    parser.add_argument("--idle_connections", type=int, default=20_000)
    parser.add_argument(
        "--idle_warmup",
        type=float,
        default=15.0,
        help="seconds the attacker has to open them before the window",
    )
    parser.add_argument("--bomb_entries", type=int, default=60_000_000)
    parser.add_argument("--control_clients", type=int, default=32)
    parser.add_argument("--control_rows", type=int, default=1000)
    parser.add_argument("--probe_interval_ms", type=float, default=10.0)
    parser.add_argument("--server_binary", default="", help="command that starts the server")
    parser.add_argument("--server_flags", default="", help="more flags for the server")
    parser.add_argument("--out", default="", help="write the report as JSON here")
    args = parser.parse_args(argv)
    unknown = set(args.checks.split(",")) - set(CHECKS)
    if unknown:
        parser.error(f"--checks: unknown {sorted(unknown)}; known: {', '.join(CHECKS)}")
    if not 1 <= args.rounds <= 9:
        parser.error(f"--rounds must be 1..9, got {args.rounds}")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- The server ---------------------------------------------------------------------------


def _export_model(base_path: str) -> None:
    """half_plus_two version 1 (TensorFlow imported here only: spawned children skip it)."""
    from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp

    hp.export_half_plus_two_tf1(base_path, 1)


def server_command(binary: str) -> list[str]:
    if binary:
        return shlex.split(binary)
    candidate = os.path.join(processes.PACKAGE_ROOT, _SERVER_BINARY)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return [candidate]
    return processes.python_module("tensorflow_serving.model_servers.main")


class Server:
    """One model server process on free loopback ports, stopped by its pid."""

    def __init__(self, args: argparse.Namespace, workdir: str):
        base_path = os.path.join(workdir, _MODEL)
        _export_model(base_path)
        self.grpc_port = processes.free_port()
        self.rest_port = processes.free_port()
        self.log_path = os.path.join(workdir, "server.log")
        command = [
            *server_command(args.server_binary),
            f"--port={self.grpc_port}",
            f"--rest_api_port={self.rest_port}",
            f"--model_name={_MODEL}",
            f"--model_base_path={base_path}",
            "--bind_address=127.0.0.1",
            *shlex.split(args.server_flags),
        ]
        say("server: " + shlex.join(command))
        self.process = processes.start(command, None, self.log_path)
        if not processes.wait_for_port(self.rest_port, 180, self.process):
            raise SystemExit(f"server did not start:\n{processes.log_tail(self.log_path)}")
        probe = predict_spec("grpc", self, 1, 1, 1.0)
        deadline = time.monotonic() + 180
        while not load_generator.send_one(probe).ok:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"model not served:\n{processes.log_tail(self.log_path)}")
            time.sleep(0.5)

    @property
    def pid(self) -> int:
        return self.process.pid

    def port(self, protocol: str) -> int:
        return self.grpc_port if protocol == "grpc" else self.rest_port

    def stop(self) -> int | None:
        return processes.stop(self.process, grace_seconds=60)


def predict_spec(
    protocol: str, server: Server, rows: int, clients: int, duration: float, warmup: float = 1.0
) -> load_generator.LoadSpec:
    """A closed-loop Predict load of `clients` requests in flight, `rows` rows each."""
    values = [[1.0]] * rows
    if protocol == "grpc":
        body = _predict_request(rows)
    else:
        body = json.dumps({"instances": values}).encode()
    return load_generator.LoadSpec(
        protocol=protocol,
        port=server.port(protocol),
        body=body,
        batch=rows,
        concurrency=clients,
        rest_path=f"/v1/models/{_MODEL}:predict",
        duration_s=duration,
        warmup_s=warmup,
        procs=min(2, clients),
        server_pid=server.pid,
    )


def _predict_request(rows: int) -> bytes:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = _MODEL
    tensor = request.inputs["x"]
    tensor.dtype = hostile_clients.DT_FLOAT
    tensor.tensor_shape.dim.add(size=rows)
    tensor.tensor_shape.dim.add(size=1)
    tensor.float_val.extend([1.0] * rows)
    return request.SerializeToString()


# -- /proc --------------------------------------------------------------------------------


def established(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local port is `port` (the server's side)."""
    count = 0
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    count += fields[1].endswith(wanted) and fields[3] == "01"
        except OSError:
            continue
    return count


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Resets the kernel's VmHWM of `pid` to its current RSS (clear_refs 5); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_open_files(pid: int, at_most: int, timeout: float) -> float | None:
    """Waits until the server holds at most `at_most` open files, so that an attack's
    sockets are closed on its side before the next check; seconds waited (None: timed out)."""
    started = time.monotonic()
    while open_files(pid) > at_most:
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.05)
    return round(time.monotonic() - started, 2)


# -- Attackers ----------------------------------------------------------------------------


class Attack:
    """Attacker processes (hostile_clients functions), started and stopped together."""

    def __init__(self, target: Callable, args_per_process: list[tuple]):
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.reports = context.Queue()
        self._processes = [
            context.Process(target=target, args=(*args, self.stop_event, self.reports), daemon=True)
            for args in args_per_process
        ]

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def wait_reports(self, count: int, timeout: float) -> list[tuple]:
        """`count` reports, or as many as came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        reports = []
        while len(reports) < count:
            try:
                reports.append(self.reports.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
        return reports

    def stop(self) -> list[tuple]:
        self.stop_event.set()
        reports = self.wait_reports(len(self._processes), 60)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()  # our own child, by pid
                process.join(5)
        return reports


def header_attack(server: Server, header_bytes: int, per_second: float) -> Attack:
    return Attack(
        hostile_clients.header_flood, [("127.0.0.1", server.rest_port, header_bytes, per_second)]
    )


def idle_attack(server: Server, connections: int) -> Attack:
    shares = []
    left = connections
    while left > 0:
        shares.append(min(left, _SOCKETS_PER_PROCESS))
        left -= shares[-1]
    return Attack(
        hostile_clients.idle_connections, [("127.0.0.1", server.rest_port, n) for n in shares]
    )


# -- Checks -------------------------------------------------------------------------------


def _load_record(result: load_generator.LoadResult) -> dict[str, Any]:
    return {
        "p50_ms": result.latency_ms.get("p50"),
        "p99_ms": result.latency_ms.get("p99"),
        "ok": result.requests_ok,
        "failed": result.errors,
        "error_kinds": result.error_kinds,
        "failure": result.failure,
        "server_cores": (result.server_cpu or {}).get("cores"),
        "cpu_busy": result.cpu_busy,
    }


def _in_thread(function: Callable[[], Any]) -> tuple[threading.Thread, list]:
    box: list = []
    thread = threading.Thread(target=lambda: box.append(function()), daemon=True)
    thread.start()
    return thread, box


def attacked_pair(
    args: argparse.Namespace, server: Server, protocol: str, check: str
) -> dict[str, Any]:
    """One round of `check` on `protocol`: the load alone, then under attack."""
    quiet = load_generator.run_load(predict_spec(protocol, server, 1, args.clients, args.duration))
    record: dict[str, Any] = {"quiet": _load_record(quiet)}
    if check == "header":
        attack = header_attack(server, args.header_bytes, args.header_attacks_per_second)
        attack.start()
        loud = load_generator.run_load(
            predict_spec(protocol, server, 1, args.clients, args.duration)
        )
        record["attacker"] = attack.stop()
    else:
        spec = predict_spec(protocol, server, 1, args.clients, args.duration, args.idle_warmup)
        files_before = open_files(server.pid)
        started = time.monotonic()
        thread, box = _in_thread(lambda: load_generator.run_load(spec))
        # The clients connect first: past the connection cap a new one is refused (503).
        clients_in = time.monotonic() + 60
        while established(spec.port) < _connections(spec) and time.monotonic() < clients_in:
            time.sleep(0.05)
        attack = idle_attack(server, args.idle_connections)
        attack.start()
        held = attack.wait_reports(len(attack._processes), args.idle_warmup + 30)
        record["attack_ready_s"] = round(time.monotonic() - started, 2)
        # The window starts after the workers' start-up and the warm-up: an attack
        # held later than the warm-up may have been opening during it.
        record["attack_late"] = record["attack_ready_s"] > args.idle_warmup
        record["server_open_files"] = open_files(server.pid)
        thread.join()
        loud = box[0]
        record["attacker"] = held + attack.stop()
        record["released_s"] = wait_for_open_files(server.pid, files_before + _SETTLED_SLACK, 120)
    record["attacked"] = _load_record(loud)
    q, a = quiet.latency_ms.get("p99"), loud.latency_ms.get("p99")
    record["ratio"] = round(a / q, 2) if q and a else None
    return record


def _connections(spec: load_generator.LoadSpec) -> int:
    """Connections the load opens to the server: one per REST request in flight, one
    channel per gRPC worker process."""
    return spec.concurrency if spec.protocol == "rest" else spec.worker_count()


def bomb_round(args: argparse.Namespace, server: Server, request: bytes) -> dict[str, Any]:
    """Sends the string bomb once: its answer, the time to it, the server's RSS growth."""
    before_kib = _status_kib(server.pid, "VmRSS")
    peak_reset = reset_peak_rss(server.pid)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        started = time.monotonic()
        try:
            call(request, timeout=60)
            code, details = "OK", ""
        except grpc.RpcError as error:
            code, details = error.code().name, error.details() or ""
        seconds = time.monotonic() - started
    peak_kib = _status_kib(server.pid, "VmHWM")
    serving = load_generator.send_one(predict_spec("grpc", server, 1, 1, 1.0)).ok
    return {
        "code": code,
        "details": details[:200],
        "seconds": round(seconds, 3),
        "rss_growth_mb": round((peak_kib - before_kib) / 1024, 1) if peak_reset else None,
        "rss_before_mb": round(before_kib / 1024, 1),
        "serving_after": serving,
    }


class StatusProbe:
    """Calls GetModelStatus every `interval` seconds on a thread; latencies in ms."""

    def __init__(self, server: Server, interval: float):
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = _MODEL
        self._request = request.SerializeToString()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        self._call = self._channel.unary_unary(_GET_MODEL_STATUS)
        self._interval = interval
        self._recording = threading.Event()
        self._stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="status-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            started = time.monotonic()
            try:
                self._call(self._request, timeout=10)
                ok = True
            except grpc.RpcError:
                ok = False
            if self._recording.is_set():
                self.latencies_ms.append((time.monotonic() - started) * 1e3)
                self.failed += not ok

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        self._recording.set()
        try:
            yield
        finally:
            self._recording.clear()

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "probes": len(ordered),
            "failed": self.failed,
            "p50_ms": _round(percentile(ordered, 50)),
            "p99_ms": _round(percentile(ordered, 99)),
            "max_ms": _round(ordered[-1] if ordered else None),
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self._channel.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def control_round(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """GetModelStatus latency alone, then under the Predict load (probed during its window)."""
    interval = args.probe_interval_ms / 1000
    alone = StatusProbe(server, interval)
    with alone.recording():
        time.sleep(args.duration)  # the probe's own pace: it records for this long
    alone.close()
    spec = predict_spec("grpc", server, args.control_rows, args.control_clients, args.duration)
    loaded = StatusProbe(server, interval)
    thread, box = _in_thread(lambda: load_generator.run_load(spec))
    # The load's workers connect, warm up for spec.warmup_s, then measure.
    while established(spec.port) < _connections(spec) + 1 and thread.is_alive():
        time.sleep(0.05)
    time.sleep(spec.warmup_s)
    with loaded.recording():
        thread.join()
    loaded.close()
    return {"alone": alone.summary(), "loaded": loaded.summary(), "load": _load_record(box[0])}


# -- The run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    hostile_clients.raise_open_files_limit()
    checks = args.checks.split(",")
    report: dict[str, Any] = {"limits": LIMITS, "rounds": args.rounds, "checks": {}}
    with tempfile.TemporaryDirectory(prefix="hostile_bench_") as workdir:
        server = Server(args, workdir)
        try:
            report["server_open_files_limit"] = _soft_open_files(server.pid)
            bomb = None
            if "bomb" in checks:
                bomb = hostile_clients.string_bomb(_MODEL, "x", args.bomb_entries)
                report["bomb_bytes"] = len(bomb)
            for round_index in range(args.rounds):
                for check in ("header", "idle"):
                    if check not in checks:
                        continue
                    for protocol in args.protocols.split(","):
                        say(f"round {round_index + 1}: {check} / {protocol}")
                        result = attacked_pair(args, server, protocol, check)
                        report["checks"].setdefault(f"{check}/{protocol}", []).append(result)
                if bomb is not None:
                    say(f"round {round_index + 1}: bomb")
                    report["checks"].setdefault("bomb", []).append(bomb_round(args, server, bomb))
                if "control" in checks:
                    say(f"round {round_index + 1}: control")
                    report["checks"].setdefault("control", []).append(control_round(args, server))
        finally:
            report["server_exit_code"] = server.stop()
            report["server_log_tail"] = processes.log_tail(server.log_path, 1500)
    return report


def _soft_open_files(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _spread(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    return f"{statistics.median(present):.2f} (min {min(present):.2f}, max {max(present):.2f})"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per check: median and spread over rounds, the limit, and whether it held."""
    lines = []
    checks = report["checks"]
    for name, rounds in checks.items():
        if name in ("bomb", "control"):
            continue
        ratios = [r["ratio"] for r in rounds]
        failed = sum(r["attacked"]["failed"] + r["quiet"]["failed"] for r in rounds)
        quiet = [r["quiet"]["p99_ms"] for r in rounds]
        loud = [r["attacked"]["p99_ms"] for r in rounds]
        held = all(x is not None and x <= LIMITS["latency_ratio"] for x in ratios) and not failed
        late = sum(bool(r.get("attack_late")) for r in rounds)
        lines.append(
            f"{name:12s} p99 ratio {_spread(ratios)} vs limit {LIMITS['latency_ratio']}; "
            f"quiet p99 ms {_spread(quiet)}, attacked p99 ms {_spread(loud)}; "
            f"failed {failed}{f'; attack late in {late} rounds' if late else ''}: "
            f"{'HELD' if held else 'NOT MET'}"
        )
    if "bomb" in checks:
        rounds = checks["bomb"]
        seconds = [r["seconds"] for r in rounds]
        growth = [r["rss_growth_mb"] for r in rounds]
        codes = sorted({r["code"] for r in rounds})
        held = (
            set(codes) <= _BOMB_REFUSALS
            and all(s <= LIMITS["bomb_seconds"] for s in seconds)
            and all(g is not None and g <= LIMITS["bomb_rss_mb"] for g in growth)
            and all(r["serving_after"] for r in rounds)
        )
        lines.append(
            f"{'bomb':12s} {report.get('bomb_bytes', 0) / 1e6:.0f} MB: refused in s "
            f"{_spread(seconds)} vs {LIMITS['bomb_seconds']}; RSS growth MB {_spread(growth)} "
            f"vs {LIMITS['bomb_rss_mb']}; codes {codes}: {'HELD' if held else 'NOT MET'}"
        )
    if "control" in checks:
        rounds = checks["control"]
        alone = [r["alone"]["p99_ms"] for r in rounds]
        loaded = [r["loaded"]["p99_ms"] for r in rounds]
        failed = sum(r["loaded"]["failed"] + r["alone"]["failed"] for r in rounds)
        held = all(x is not None and x < LIMITS["control_p99_ms"] for x in loaded) and not failed
        lines.append(
            f"{'control':12s} GetModelStatus p99 ms under load {_spread(loaded)} vs limit "
            f"{LIMITS['control_p99_ms']} (alone {_spread(alone)}); failed {failed}: "
            f"{'HELD' if held else 'NOT MET'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1)
    for line in summary_lines(report):
        print(line)
    print(f"server exit code after SIGTERM: {report['server_exit_code']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
