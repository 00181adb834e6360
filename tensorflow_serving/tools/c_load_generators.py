"""The C load generators as engines of the benchmark: h2load (gRPC and REST) and wrk (REST).

A Python client needs about a core to load a server that answers in
microseconds; h2load and wrk need about a tenth of one, so they can load a
server that has every core of the machine (the scaling mode) while sharing
one of them. Same LoadSpec in, same LoadResult out as load_generator.py (the
`python` engine):

- gRPC, h2load only: the serialized PredictRequest framed as one gRPC
  message (grpc_frame) and POSTed over HTTP/2 (h2c) to
  /tensorflow.serving.PredictionService/Predict with `content-type:
  application/grpc` and `te: trailers`. h2load counts an answer with HTTP
  status 2xx as a success and never reads the `grpc-status` trailer; a
  failed call answers 200 and no message, so the answers' DATA bytes are
  compared with the checked answer's size and the shortfall is counted as
  `grpc:no-message` errors (`answer_bytes`).
- REST: wrk, with a Lua script that sets the method, the content type and
  the JSON body; or h2load --h1.
- One connection per client, one request in flight on each: h2load `-c N
  -m 1`, wrk `-c N`; threads (`spec.worker_count()`) never exceed connections.
- Errors are non-2xx answers (wrk: 4xx and 5xx), plus the tools' stream,
  socket and timeout errors.
- Latency: wrk reports p50/p90/p99 (`--latency`); h2load's summary has no
  percentiles, so they come from its per-request log (`--log-file`: start,
  status, microseconds; the measured period's requests only).
- Warm-up: h2load's `--warm-up-time`; wrk has none, so a first wrk run of
  the warm-up's length is thrown away. wrk runs whole seconds.
- Client CPU: the tool's own CPU time over its whole run (h2load: warm-up
  included), from the kernel's account of the finished child (wait4).
- The server's CPU, every CPU's busy share and the server's batches are
  read over the measured window, as load_generator does.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable
from typing import Any

from tensorflow_serving.tools import processes
from tensorflow_serving.tools.load_generator import (
    GRPC_PREDICT,
    LoadResult,
    LoadSpec,
    WindowMeters,
    client_cpu_record,
    counted_result,
    empty_result,
    server_cpu_record,
)
from tensorflow_serving.tools.percentiles import percentile

# Engine -> the protocols it speaks.
ENGINES = {"python": ("grpc", "rest"), "h2load": ("grpc", "rest"), "wrk": ("rest",)}
DEBIAN_PACKAGES = {"h2load": "nghttp2-client", "wrk": "wrk"}
GRPC_FRAME_HEADER = 5  # compressed flag (1 byte) + message length (4 bytes, big-endian)
H2LOAD_GRPC_NOTE = (
    "h2load does not read grpc-status trailers: a call that failed answers HTTP 200; answers "
    "without a gRPC message are counted as grpc:no-message, from the DATA bytes"
)
# Seconds past the run's end before the engine is killed (its own child, by pid).
_GRACE_S = 30.0


def engines_by_protocol(text: str, protocols: Iterable[str]) -> dict[str, str]:
    """'wrk,h2load' -> {protocol: the first engine listed that speaks it}, for `protocols`.

    Raises ValueError for an unknown engine, or a protocol no listed engine speaks.
    """
    listed = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in listed if name not in ENGINES]
    if unknown or not listed:
        raise ValueError(f"--engine={text!r}: choose from {', '.join(ENGINES)}")
    chosen = {}
    for protocol in protocols:
        speakers = [name for name in listed if protocol in ENGINES[name]]
        if not speakers:
            raise ValueError(
                f"--engine={text}: none speaks {protocol} (wrk is HTTP/1.1 only: add h2load)"
            )
        chosen[protocol] = speakers[0]
    return chosen


def require_binaries(engines: Iterable[str]) -> None:
    """Raises ValueError naming the Debian package of a C engine that is not on PATH."""
    for engine in sorted(set(engines) - {"python"}):
        if shutil.which(engine) is None:
            raise ValueError(
                f"{engine} not found on PATH: install the Debian package "
                f"{DEBIAN_PACKAGES[engine]} (bash tools/setup.sh does)"
            )


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC message as it goes on the wire: flag 0, length, the bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def wrk_script(body_path: str) -> str:
    """The Lua script that makes every wrk request a JSON POST of the file at `body_path`."""
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local file = assert(io.open("{body_path}", "rb"))\n'
        'wrk.body = file:read("*a")\n'
        "file:close()\n"
    )


def _url(spec: LoadSpec) -> str:
    path = GRPC_PREDICT if spec.protocol == "grpc" else spec.rest_path
    return f"http://{spec.host}:{spec.port}{path}"


def _millis(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def h2load_command(spec: LoadSpec, body_path: str, log_path: str) -> list[str]:
    """h2load for `spec`: one connection per client, one request in flight on each, every
    measured request logged to `log_path`."""
    if spec.protocol == "grpc":
        protocol = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        protocol = ["--h1", "-H", "content-type: application/json"]
    warmup = ["--warm-up-time", _millis(spec.warmup_s)] if spec.warmup_s > 0 else []
    return [
        "h2load",
        "-D",
        _millis(spec.duration_s),
        *warmup,
        "-t",
        str(spec.worker_count()),
        "-c",
        str(spec.concurrency),
        "-m",
        "1",
        "-d",
        body_path,
        f"--log-file={log_path}",
        *protocol,
        _url(spec),
    ]


def wrk_seconds(seconds: float) -> int:
    """wrk's -d takes whole seconds: `seconds` rounded up."""
    return max(1, math.ceil(seconds - 1e-9))


def wrk_command(spec: LoadSpec, script_path: str, seconds: int) -> list[str]:
    """wrk for `spec`, `seconds` long: one connection per client, latency percentiles on."""
    return [
        "wrk",
        "-t",
        str(spec.worker_count()),
        "-c",
        str(spec.concurrency),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{wrk_seconds(spec.timeout_s)}s",
        "--latency",
        "-s",
        script_path,
        _url(spec),
    ]


# --------------------------------------------------------------------------- reports
@dataclasses.dataclass
class EngineReport:
    """What a C engine printed, in the benchmark's units (latencies in ms)."""

    requests_ok: int
    errors: int
    error_kinds: dict[str, int]
    seconds: float | None  # the measured period (None: the duration asked for)
    latency_ms: dict[str, float | None]
    data_bytes: int | None = None  # h2load: DATA frame bytes received in the measured period


def duration_seconds(text: str) -> float:
    """'36us', '8.54ms', '1.20s', '2.00m' (the tools' units) -> seconds."""
    text = text.strip()
    for suffix, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _ms(text: str) -> float:
    return round(duration_seconds(text) * 1e3, 3)


def _no_latency() -> dict[str, float | None]:
    return {"p50": None, "p90": None, "p99": None, "mean": None, "max": None}


def h2load_latency(log: str) -> dict[str, float | None]:
    """Latency of the successful requests in h2load's --log-file, in ms.

    A line per request of the measured period: start (us since the epoch),
    HTTP status ('-' when the stream failed), microseconds to the answer's end.
    """
    micros = []
    for line in log.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[1].startswith("2"):
            micros.append(int(fields[2]))
    if not micros:
        return _no_latency()
    micros.sort()

    def ms(value: float) -> float:
        return round(value / 1e3, 3)

    return {
        "p50": ms(percentile(micros, 50)),
        "p90": ms(percentile(micros, 90)),
        "p99": ms(percentile(micros, 99)),
        "mean": ms(sum(micros) / len(micros)),
        "max": ms(micros[-1]),
    }


def parse_h2load(text: str, log: str) -> EngineReport:
    """h2load's summary and its --log-file -> counts, error kinds, the measured period, latency.

    Raises ValueError when the summary is missing (h2load failed before it).
    """
    finished = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    if not (finished and counts):
        raise ValueError(f"no h2load summary in its output: {text[-600:]!r}")
    done, succeeded, failed, errored, timeouts = (int(g) for g in counts.groups())
    kinds: dict[str, int] = {}
    statuses = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if statuses:
        for family, count in zip(("3xx", "4xx", "5xx"), statuses.groups(), strict=True):
            if int(count):
                kinds[f"http:{family}"] = int(count)
    # h2load counts every timeout as errored and every errored request as failed.
    if errored - timeouts > 0:
        kinds["stream error"] = errored - timeouts
    if timeouts:
        kinds["timeout"] = timeouts
    rps = float(finished.group(1))
    data = re.search(r"\((\d+)\) data", text)
    return EngineReport(
        requests_ok=succeeded,
        errors=failed,
        error_kinds=kinds,
        seconds=done / rps if rps > 0 and done else None,
        latency_ms=h2load_latency(log),
        data_bytes=int(data.group(1)) if data else None,
    )


def parse_wrk(text: str) -> EngineReport:
    """wrk's report (with --latency) -> counts, error kinds, its run time, p50/p90/p99.

    wrk counts statuses above 399 as errors; socket errors come as connect,
    read, write and timeout counts. Raises ValueError without a report.
    """
    done = re.search(r"(\d+) requests in ([\d.]+\w+),", text)
    if not done:
        raise ValueError(f"no wrk report in its output: {text[-600:]!r}")
    answered = int(done.group(1))
    kinds: dict[str, int] = {}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad and int(bad.group(1)):
        kinds["http:4xx/5xx"] = int(bad.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sockets:
        for name, count in zip(
            ("connect", "read", "write", "timeout"), sockets.groups(), strict=True
        ):
            if int(count):
                kinds[f"socket {name}"] = int(count)
    # With nothing answered wrk prints zeros.
    latency = _wrk_latency(text) if answered else _no_latency()
    non_2xx = kinds.get("http:4xx/5xx", 0)
    return EngineReport(
        requests_ok=answered - non_2xx,
        errors=sum(kinds.values()),
        error_kinds=kinds,
        seconds=duration_seconds(done.group(2)),
        latency_ms=latency,
    )


def _wrk_latency(text: str) -> dict[str, float | None]:
    """p50/p90/p99 from wrk's latency distribution, mean and max from its thread stats."""
    latency = _no_latency()
    for quantile in ("50", "90", "99"):
        found = re.search(rf"^\s+{quantile}%\s+(\S+)", text, re.MULTILINE)
        if found:
            latency[f"p{quantile}"] = _ms(found.group(1))
    summary = re.search(r"^\s*Latency\s+([\d.]+\w+)\s+\S+\s+([\d.]+\w+)", text, re.MULTILINE)
    if summary:
        latency["mean"], latency["max"] = _ms(summary.group(1)), _ms(summary.group(2))
    return latency


def count_messageless_answers(report: EngineReport, answer_bytes: int, in_flight: int) -> None:
    """Moves gRPC answers that carried no message from `requests_ok` to the errors.

    A call that fails answers HTTP 200 with only trailers, which h2load counts
    as a success. Every successful call of the run gets the same answer
    (`answer_bytes`, the checked one), framed: the DATA bytes say how many
    did. Up to `in_flight` answers may straddle the start of the measured
    period, so a shortfall that small is not counted.
    """
    if report.data_bytes is None or answer_bytes <= 0:
        return
    with_message = report.data_bytes // (answer_bytes + GRPC_FRAME_HEADER)
    missing = report.requests_ok - with_message
    if missing > in_flight:
        report.requests_ok -= missing
        report.errors += missing
        report.error_kinds["grpc:no-message"] = missing


# --------------------------------------------------------------------------- running
@dataclasses.dataclass
class _Finished:
    """A C engine's run: its output, CPU seconds and wall seconds."""

    output: str
    cpu_s: float
    wall_s: float


def _wait4(pid: int, until: float) -> tuple[int, Any] | None:
    """(wait status, rusage) of child `pid` once it ends, or None if it runs past `until`."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return status, usage
        left = until - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(0.05, left))


def _run_measured(
    cmd: list[str], spec: LoadSpec, meters: WindowMeters | None, offset_s: float, measured_s: float
) -> _Finished:
    """Runs `cmd` pinned to the client's CPUs; `meters` read from `offset_s` for `measured_s`.

    Killed (our own child, by pid) past the run's end plus the request
    timeout and a grace period.
    """
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(
            processes.pinned(cmd, spec.cpus),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        ended = _wait4(child.pid, started + offset_s)
        if ended is None and meters is not None:
            meters.start()
            ended = _wait4(child.pid, started + offset_s + measured_s)
            meters.stop()
        if ended is None:
            ended = _wait4(child.pid, started + offset_s + measured_s + spec.timeout_s + _GRACE_S)
        if ended is None:
            child.kill()
            _, *ended = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
        status, usage = ended
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        output = out.read().decode(errors="replace")
    return _Finished(output, usage.ru_utime + usage.ru_stime, wall)


def _run_h2load(
    spec: LoadSpec, work: str, meters: WindowMeters
) -> tuple[list[str], _Finished, EngineReport]:
    """h2load's run, its command and its report; ValueError without a report."""
    body = grpc_frame(spec.body) if spec.protocol == "grpc" else spec.body
    body_path = os.path.join(work, "body")
    with open(body_path, "wb") as handle:
        handle.write(body)
    log_path = os.path.join(work, "requests.log")
    cmd = h2load_command(spec, body_path, log_path)
    finished = _run_measured(cmd, spec, meters, spec.warmup_s, spec.duration_s)
    log = ""
    if os.path.exists(log_path):
        with open(log_path) as handle:
            log = handle.read()
    return cmd, finished, parse_h2load(finished.output, log)


def _run_wrk(
    spec: LoadSpec, work: str, meters: WindowMeters
) -> tuple[list[str], _Finished, EngineReport]:
    """wrk's run (after a warm-up run), its command and its report; ValueError without one."""
    body_path = os.path.join(work, "body.json")
    with open(body_path, "wb") as handle:
        handle.write(spec.body)
    script_path = os.path.join(work, "post.lua")
    with open(script_path, "w") as handle:
        handle.write(wrk_script(body_path))
    if spec.warmup_s > 0:
        warmup = wrk_command(spec, script_path, wrk_seconds(spec.warmup_s))
        _run_measured(warmup, spec, None, 0.0, wrk_seconds(spec.warmup_s))
    seconds = wrk_seconds(spec.duration_s)
    cmd = wrk_command(spec, script_path, seconds)
    finished = _run_measured(cmd, spec, meters, 0.0, seconds)
    return cmd, finished, parse_wrk(finished.output)


def run_load(spec: LoadSpec, engine: str, answer_bytes: int = 0) -> LoadResult:
    """Runs one load with `engine` (h2load or wrk) and returns its numbers.

    `answer_bytes`: the size of the run's answer as send_one checked it; for
    gRPC it lets answers without a message count as errors. `failure` is set
    when the engine printed no report. Raises ValueError for a spec this
    engine cannot run (a request count, a protocol it does not speak).
    """
    spec.validate()
    if spec.protocol not in ENGINES.get(engine, ()) or engine == "python":
        raise ValueError(f"engine {engine!r} does not run {spec.protocol} here")
    if spec.requests is not None or spec.duration_s is None:
        raise ValueError(f"{engine} runs for a duration: a request count is for the python engine")
    meters = WindowMeters(spec)
    run = _run_h2load if engine == "h2load" else _run_wrk
    try:
        with tempfile.TemporaryDirectory(prefix="tfs_load_") as work:
            cmd, finished, report = run(spec, work, meters)
    except ValueError as error:
        return empty_result(spec, spec.worker_count(), f"{engine}: {error}", engine)
    note = None
    if engine == "h2load" and spec.protocol == "grpc":
        count_messageless_answers(report, answer_bytes, spec.concurrency)
        note = H2LOAD_GRPC_NOTE
    return _result(spec, engine, cmd, report, finished, meters, note)


def _result(
    spec: LoadSpec,
    engine: str,
    cmd: list[str],
    report: EngineReport,
    finished: _Finished,
    meters: WindowMeters,
    note: str | None,
) -> LoadResult:
    threads = spec.worker_count()
    seconds = max(report.seconds or spec.duration_s or 0.0, 1e-9)
    ok = report.requests_ok
    # The engine's CPU covers its whole run (h2load: warm-up too): per request at the
    # measured rate, over that run.
    requests_in_run = (ok + report.errors) / seconds * finished.wall_s
    return counted_result(
        spec,
        threads,
        seconds,
        ok,
        report.errors,
        report.error_kinds,
        latency_ms=report.latency_ms,
        client_cpu=client_cpu_record(
            spec, threads, finished.cpu_s, finished.wall_s, round(requests_in_run)
        ),
        server_cpu=server_cpu_record(spec, meters.server_cpu_s, meters.wall_s, ok),
        cpu_busy={str(cpu): busy for cpu, busy in sorted(meters.cpu_busy.items())},
        server_batches=meters.batches,
        engine=engine,
        connections=spec.concurrency,
        engine_note=note,
        engine_command=cmd,
    )
