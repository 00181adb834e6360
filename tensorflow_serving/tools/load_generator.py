"""A bounded, multi-process, closed-loop load generator for Predict over gRPC and REST.

The same generator drives every party of the benchmark (transport floors and
the model server), so their numbers differ only by what the server does.

- The request is serialized once, before the run (a PredictRequest for gRPC,
  a JSON body for REST :predict); workers send those bytes and read the
  answer without decoding it: the status (gRPC code, HTTP status) decides
  success. `send_one` checks one full answer up front.
- `procs` worker processes (spawned, so no TensorFlow and no inherited
  threads), each an asyncio loop holding its share of `concurrency`
  requests in flight: one gRPC channel per process (HTTP/2 streams, as a
  real client), one keep-alive HTTP/1.1 connection per in-flight request.
- Phases: connect, warm-up (same load, not recorded), measurement (a
  duration, or a number of requests), drain. Requests started inside the
  measured window are the ones recorded.
- Bounded: loopback targets only, duration/warm-up/requests/concurrency
  capped, a per-request timeout, and the parent kills its own workers (by
  pid) if they overrun.
- CPU: each worker's own CPU time over the measured window (a client that
  uses ~all of its cores is flagged as saturated), and optionally a server's
  process tree read from /proc.
- Batches: optionally the batches the server ran over the window, from its
  Prometheus page (server_metrics.BatchSizeMeter).

This is the `python` engine; c_load_generators.py drives h2load and wrk
under the same LoadSpec and returns the same LoadResult.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import gc
import ipaddress
import multiprocessing
import os
import queue
import resource
import socket
import time
from typing import Any, NamedTuple

from tensorflow_serving.tools import processes, server_metrics
from tensorflow_serving.tools.percentiles import percentile

GRPC_PREDICT = "/tensorflow.serving.PredictionService/Predict"
MAX_DURATION_S = 120.0
MAX_WARMUP_S = 30.0
MAX_REQUESTS = 1_000_000
MAX_CONCURRENCY = 256
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
]


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """One load run: where, what, how much."""

    protocol: str  # "grpc" or "rest"
    port: int
    body: bytes  # serialized PredictRequest (gRPC) or JSON body (REST)
    batch: int  # rows per request (for inferences/s)
    concurrency: int
    rest_path: str = ""  # e.g. /v1/models/mnist:predict
    host: str = "127.0.0.1"
    duration_s: float | None = 5.0  # measured seconds, or None with `requests`
    requests: int | None = None  # measure this many requests instead of a duration
    warmup_s: float = 1.0
    timeout_s: float = 10.0
    procs: int = 0  # worker processes; 0: min(2, concurrency)
    cpus: frozenset[int] | None = None  # pin the workers here
    server_pid: int | None = None  # account this process tree's CPU
    # The server's Prometheus page on `host` (port, path): count its batches over the window.
    metrics_page: tuple[int, str] | None = None

    def validate(self) -> None:
        """Raises ValueError for a target off loopback or a load out of bounds."""
        if self.protocol not in ("grpc", "rest"):
            raise ValueError(f"protocol must be grpc or rest, got {self.protocol!r}")
        if not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"refusing non-loopback target {self.host!r}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be in 1..{MAX_CONCURRENCY}, got {self.concurrency}")
        if self.requests is None and self.duration_s is None:
            raise ValueError("give a duration or a number of requests")
        if self.duration_s is not None and not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S}] s, got {self.duration_s}")
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise ValueError(f"requests must be in 1..{MAX_REQUESTS}, got {self.requests}")
        if not 0 <= self.warmup_s <= MAX_WARMUP_S:
            raise ValueError(f"warm-up must be in [0, {MAX_WARMUP_S}] s, got {self.warmup_s}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")

    def worker_count(self) -> int:
        return max(1, min(self.procs or 2, self.concurrency))

    def http_request(self) -> bytes:
        """The whole HTTP/1.1 request a REST worker writes, head and body."""
        head = (
            f"POST {self.rest_path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body


@dataclasses.dataclass
class LoadResult:
    """What one run measured. Latencies in ms; CPU as cores busy and us per unit."""

    protocol: str
    batch: int
    concurrency: int
    procs: int
    duration_s: float
    requests_ok: int
    errors: int
    error_kinds: dict[str, int]
    throughput_rps: float
    throughput_ips: float
    latency_ms: dict[str, float | None]
    client_cpu: dict[str, Any]
    server_cpu: dict[str, float] | None = None
    # Busy fraction of every CPU over the window, by anyone: with server_cpu and
    # client_cpu it shows what other processes took (the noise of a shared machine).
    cpu_busy: dict[str, float] = dataclasses.field(default_factory=dict)
    # With spec.metrics_page: server_metrics.batch_delta's record (batches, rows, mean).
    server_batches: dict[str, float | None] | None = None
    failure: str | None = None  # the run itself failed (workers did not start, ...)
    engine: str = "python"  # who generated the load (c_load_generators.ENGINES)
    connections: int = 0  # TCP connections to the server
    engine_note: str | None = None  # what this engine does not measure or check
    engine_command: list[str] | None = None  # the C engine's command line

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- worker side
class _GrpcClient:
    """Raw-bytes unary calls on one grpc.aio channel."""

    def __init__(self, spec: LoadSpec):
        import grpc  # in the worker only

        self._grpc = grpc
        self._spec = spec

    async def connect(self, slots: int) -> None:
        spec = self._spec
        self._channel = self._grpc.aio.insecure_channel(
            f"{spec.host}:{spec.port}", options=_GRPC_OPTIONS
        )
        await asyncio.wait_for(self._channel.channel_ready(), timeout=30)
        self._call = self._channel.unary_unary(GRPC_PREDICT)  # no (de)serializers: bytes

    async def request(self, slot: int) -> str | None:
        try:
            await self._call(self._spec.body, timeout=self._spec.timeout_s)
            return None
        except self._grpc.aio.AioRpcError as error:
            return f"grpc:{error.code().name}"
        except Exception as error:  # noqa: BLE001  (counted, never fatal to the run)
            return f"exception:{type(error).__name__}"

    async def close(self) -> None:
        await self._channel.close()


class _RestClient:
    """HTTP/1.1 keep-alive, one connection per in-flight request, no pipelining."""

    def __init__(self, spec: LoadSpec):
        self._spec = spec
        self._request = spec.http_request()
        self._conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._spec.host, self._spec.port), timeout=30
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def connect(self, slots: int) -> None:
        self._conns = [await self._open() for _ in range(slots)]

    async def _roundtrip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(self._request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
        if length is not None:
            await reader.readexactly(length)
        return status, close

    async def request(self, slot: int) -> str | None:
        reader, writer = self._conns[slot]
        try:
            async with asyncio.timeout(self._spec.timeout_s):
                status, close = await self._roundtrip(reader, writer)
        except Exception as error:  # noqa: BLE001  (counted; the connection is replaced)
            writer.close()
            self._conns[slot] = await self._open()
            if isinstance(error, TimeoutError):
                return "timeout"
            return f"exception:{type(error).__name__}"
        if close:
            writer.close()
            self._conns[slot] = await self._open()
        return None if status == 200 else f"http:{status}"

    async def close(self) -> None:
        for _, writer in self._conns:
            writer.close()


async def _worker_main(spec: LoadSpec, wid: int, slots: int, quota: int | None, ctl) -> dict:
    client = _GrpcClient(spec) if spec.protocol == "grpc" else _RestClient(spec)
    try:
        await client.connect(slots)
    except Exception as error:  # noqa: BLE001
        ctl["ready"].put(("error", wid, f"connect failed: {type(error).__name__}: {error}"))
        return {}
    gc.collect()
    gc.freeze()
    ctl["ready"].put(("ready", wid, os.getpid()))
    loop = asyncio.get_running_loop()
    while not ctl["go"].is_set():
        await loop.run_in_executor(None, ctl["go"].wait, 0.5)
    t_start, t_measure, t_end = ctl["schedule"][:]
    mono = time.monotonic
    latencies = array.array("d")
    counts = {"ok": 0, "err": 0, "sent": 0}
    kinds: dict[str, int] = {}
    cpu_mark: dict[str, float] = {}

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, t_measure - mono()))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_mark["t"], cpu_mark["cpu"] = mono(), usage.ru_utime + usage.ru_stime

    async def slot_loop(slot: int) -> None:
        while True:
            t0 = mono()
            if t0 >= t_end:
                return
            measured = t0 >= t_measure
            if measured:
                if quota is not None and counts["sent"] >= quota:
                    return
                counts["sent"] += 1
            error = await client.request(slot)
            if not measured:
                continue
            if error is None:
                counts["ok"] += 1
                latencies.append(mono() - t0)
            else:
                counts["err"] += 1
                kinds[error] = kinds.get(error, 0) + 1

    await asyncio.sleep(max(0.0, t_start - mono()))
    marker = asyncio.ensure_future(mark_cpu())
    await asyncio.gather(*(slot_loop(s) for s in range(slots)))
    t_last = mono()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if not marker.done():
        marker.cancel()
    await client.close()
    return {
        "ok": counts["ok"],
        "err": counts["err"],
        "kinds": kinds,
        "lat": latencies.tobytes(),
        "t_last": t_last,
        "cpu_s": usage.ru_utime + usage.ru_stime - cpu_mark.get("cpu", 0.0),
        "cpu_wall": t_last - cpu_mark.get("t", t_measure),
    }


def _worker(spec: LoadSpec, wid: int, slots: int, quota: int | None, ctl) -> None:
    try:
        if spec.cpus:
            os.sched_setaffinity(0, spec.cpus)
        if spec.protocol == "rest":
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
        result = asyncio.run(_worker_main(spec, wid, slots, quota, ctl))
        if result:
            ctl["results"].put(result)
    except Exception as error:  # noqa: BLE001  (reported to the parent)
        ctl["ready"].put(("error", wid, f"{type(error).__name__}: {error}"))


# --------------------------------------------------------------------------- parent side
class WindowMeters:
    """The measured window's server CPU, every CPU's busy share, and the server's batches.

    start() at the window's start; the first stop() reads them all, later
    calls change nothing (`stopped`). The page is read outside the CPU window.
    """

    def __init__(self, spec: LoadSpec):
        self._cpu = processes.CpuMeter(spec.server_pid)
        self._busy = processes.CpuBusyMeter()
        self._batches = None
        if spec.metrics_page is not None:
            self._batches = server_metrics.BatchSizeMeter(spec.host, *spec.metrics_page)
        self._started = 0.0
        self.stopped = False
        self.server_cpu_s: float | None = None
        self.wall_s = 0.0
        self.cpu_busy: dict[int, float] = {}
        self.batches: dict[str, float | None] | None = None

    def start(self) -> None:
        if self._batches is not None:
            self._batches.start()
        self._cpu.start()
        self._busy.start()
        self._started = time.monotonic()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.server_cpu_s = self._cpu.stop()
        self.wall_s = time.monotonic() - self._started
        self.cpu_busy = self._busy.stop()
        if self._batches is not None:
            self.batches = self._batches.stop()


class Check(NamedTuple):
    """One request's answer, checked: ok, what was wrong (or the size), the answer's bytes."""

    ok: bool
    detail: str
    answer_bytes: int = 0


def send_one(spec: LoadSpec) -> Check:
    """Sends the run's request once and reads the whole answer."""
    spec.validate()
    if spec.protocol == "grpc":
        import grpc

        with grpc.insecure_channel(f"{spec.host}:{spec.port}", options=_GRPC_OPTIONS) as channel:
            try:
                answer = channel.unary_unary(GRPC_PREDICT)(spec.body, timeout=spec.timeout_s)
            except grpc.RpcError as error:
                return Check(False, f"gRPC {error.code().name}: {error.details()}")
        return Check(True, f"{len(answer)} bytes", len(answer))
    import http.client
    import json

    conn = http.client.HTTPConnection(spec.host, spec.port, timeout=spec.timeout_s)
    try:
        conn.request("POST", spec.rest_path, spec.body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except OSError as error:
        return Check(False, f"{type(error).__name__}: {error}")
    finally:
        conn.close()
    if response.status != 200:
        return Check(False, f"HTTP {response.status}: {data[:300].decode(errors='replace')}")
    answer = json.loads(data)
    if "predictions" not in answer and "outputs" not in answer:
        return Check(False, f"no predictions/outputs in {data[:200]!r}")
    return Check(True, f"{len(data)} bytes", len(data))


def run_load(spec: LoadSpec) -> LoadResult:
    """Runs one load and returns its numbers (`failure` set if the run could not happen)."""
    spec.validate()
    procs = spec.worker_count()
    slots = [
        spec.concurrency // procs + (1 if i < spec.concurrency % procs else 0) for i in range(procs)
    ]
    quotas: list[int | None] = [None] * procs
    if spec.requests is not None:
        quotas = [spec.requests * s // spec.concurrency for s in slots]
        quotas[0] += spec.requests - sum(quotas)
    ctx = multiprocessing.get_context("spawn")
    ctl = {
        "ready": ctx.Queue(),
        "results": ctx.Queue(),
        "go": ctx.Event(),
        "schedule": ctx.Array("d", 3, lock=False),
    }
    workers = [
        ctx.Process(target=_worker, args=(spec, i, slots[i], quotas[i], ctl), daemon=True)
        for i in range(procs)
    ]
    for worker in workers:
        worker.start()

    def fail(message: str) -> LoadResult:
        return empty_result(spec, procs, message)

    try:
        deadline = time.monotonic() + 60
        ready = 0
        while ready < procs:
            try:
                kind, wid, detail = ctl["ready"].get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                return fail("load workers did not start within 60 s")
            if kind != "ready":
                return fail(f"load worker {wid}: {detail}")
            ready += 1
        measured = spec.duration_s if spec.duration_s is not None else MAX_DURATION_S
        t_start = time.monotonic() + 0.1
        t_measure = t_start + spec.warmup_s
        t_end = t_measure + measured
        ctl["schedule"][:] = [t_start, t_measure, t_end]
        ctl["go"].set()

        meters = WindowMeters(spec)
        time.sleep(max(0.0, t_measure - time.monotonic()))
        meters.start()
        results = []
        hard_deadline = t_end + spec.timeout_s + 30
        while len(results) < procs:
            # Duration runs: read the server's CPU at the end of the window, not after the drain.
            if spec.requests is None and not meters.stopped and time.monotonic() >= t_end:
                meters.stop()
            try:
                wait = 0.05 if spec.requests is None and not meters.stopped else 1.0
                results.append(ctl["results"].get(timeout=wait))
            except queue.Empty:
                if time.monotonic() > hard_deadline:
                    return fail(f"only {len(results)}/{procs} load workers finished in time")
                if not any(w.is_alive() for w in workers):
                    return fail(f"load workers exited; {len(results)}/{procs} reported")
        meters.stop()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()  # our own child, by pid
                worker.join(timeout=5)
    result = _summarize(spec, procs, results, t_measure, meters.server_cpu_s, meters.wall_s)
    result.cpu_busy = {str(cpu): busy for cpu, busy in sorted(meters.cpu_busy.items())}
    result.server_batches = meters.batches
    return result


def connections(spec: LoadSpec, procs: int) -> int:
    """TCP connections the python engine opens: a gRPC channel per process, a REST
    connection per request in flight."""
    return procs if spec.protocol == "grpc" else spec.concurrency


def counted_result(
    spec: LoadSpec,
    procs: int,
    seconds: float,
    ok: int,
    errors: int,
    kinds: dict[str, int],
    **measured: Any,
) -> LoadResult:
    """A run's result from what it counted over `seconds` measured (throughputs derived);
    `measured` gives the rest: latency_ms, client_cpu, server_cpu, engine, ..."""
    seconds = max(seconds, 1e-9)
    measured.setdefault("connections", connections(spec, procs))
    return LoadResult(
        protocol=spec.protocol,
        batch=spec.batch,
        concurrency=spec.concurrency,
        procs=procs,
        duration_s=round(seconds, 3),
        requests_ok=ok,
        errors=errors,
        error_kinds=kinds,
        throughput_rps=round(ok / seconds, 1),
        throughput_ips=round(ok * spec.batch / seconds, 1),
        **measured,
    )


def empty_result(spec: LoadSpec, procs: int, failure: str, engine: str = "python") -> LoadResult:
    """The result of a run that could not happen, saying why."""
    return counted_result(
        spec, procs, 0.0, 0, 0, {}, latency_ms={}, client_cpu={}, failure=failure, engine=engine
    )


def _summarize(
    spec: LoadSpec,
    procs: int,
    results: list[dict],
    t_measure: float,
    server_cpu_s: float | None,
    meter_wall: float,
) -> LoadResult:
    latencies = array.array("d")
    ok = errors = 0
    kinds: dict[str, int] = {}
    client_cpu_s = 0.0
    client_wall = 0.0
    for result in results:
        latencies.frombytes(result["lat"])
        ok += result["ok"]
        errors += result["err"]
        client_cpu_s += result["cpu_s"]
        client_wall = max(client_wall, result["cpu_wall"])
        for kind, count in result["kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    if spec.requests is not None:
        wall = max(r["t_last"] for r in results) - t_measure
    else:
        wall = spec.duration_s
    ordered = sorted(latencies)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1e3, 3)

    return counted_result(
        spec,
        procs,
        wall,
        ok,
        errors,
        kinds,
        latency_ms={
            "p50": ms(percentile(ordered, 50)),
            "p90": ms(percentile(ordered, 90)),
            "p99": ms(percentile(ordered, 99)),
            "mean": ms(sum(ordered) / len(ordered) if ordered else None),
            "max": ms(ordered[-1] if ordered else None),
        },
        client_cpu=client_cpu_record(spec, procs, client_cpu_s, client_wall, ok + errors),
        server_cpu=server_cpu_record(spec, server_cpu_s, meter_wall, ok),
    )


def client_cpu_record(
    spec: LoadSpec, threads: int, cpu_s: float, wall_s: float, requests: int
) -> dict[str, Any]:
    """The client's cores busy and CPU per request; `saturated` when it used 90% or more of
    the cores it may use (`threads` processes or threads, the CPUs it is pinned to)."""
    allowed = len(spec.cpus) if spec.cpus else (os.cpu_count() or 1)
    cores = cpu_s / max(wall_s, 1e-9)
    return {
        "cores": round(cores, 3),
        "us_per_request": round(cpu_s / max(requests, 1) * 1e6, 1),
        "cpus": sorted(spec.cpus) if spec.cpus else None,
        # The client, not the server, may be the limit.
        "saturated": cores > 0.9 * min(allowed, threads),
    }


def server_cpu_record(
    spec: LoadSpec, cpu_s: float | None, wall_s: float, ok: int
) -> dict[str, float] | None:
    """The server's process tree over the window: cores busy, CPU per request and inference."""
    if cpu_s is None:
        return None
    return {
        "cores": round(cpu_s / max(wall_s, 1e-9), 3),
        "us_per_request": round(cpu_s / max(ok, 1) * 1e6, 1),
        "us_per_inference": round(cpu_s / max(ok * spec.batch, 1) * 1e6, 1),
    }
