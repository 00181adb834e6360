"""benchmark: hold a model server against the physical limit of its model, in one run.

Like Triton's perf_analyzer, pointed at your own SavedModel:

  1. limit   the signature called in-process (Session callable, the server's
             intra/inter-op threads) at every batch size the run needs;
  2. floor   a no-work server on the same transport (gRPC Predict, REST
             :predict) answering a fixed response of the right shape;
  3. minimal the least a model server on our gRPC transport does (parse,
             decode, the same model call, encode; minimal_server.py), for
             gRPC scenarios with one client;
  4. standin the minimal server with the model call replaced by a busy loop
             as long as the limit's time per call: the same ceiling, for a
             model whose cost does not change between requests;
  5. modelfloor  the floor with a stand-in batch thread that runs the model
             on every batch of held requests (at most the server's
             max_batch_size rows) before answering them: the least a
             batching server on each transport does, for every scenario, so
             gRPC/REST of the model floors is what the transports allow;
  6. server  the model server, started here on free loopback ports with the
             flags you give;
  7. load    the same multi-process load generator drives the floors, the
             minimal and stand-in servers and the server for every scenario
             (protocol:batch:concurrency).

It prints one table (throughput, p50/p90/p99, errors, server CPU per
inference, client CPU with saturation flagged, server/limit and
server/ceiling) and writes everything as JSON with --out. A concurrency
sweep (--concurrency=1,2,4,... with --protocols and --batch_size instead of
--scenarios) also prints one table per protocol: the server's throughput,
latency, mean batch (from its Prometheus page), cores busy, and its ratio to
the in-process limit at that mean batch. With both protocols it also prints
gRPC over REST per concurrency, for the server and for each floor measured.
On a machine with
two or more CPUs the server side (limit, floors, server) is pinned to one
CPU and the load generator to another, so each party has a core of its own.

The load comes from --engine: the Python generator (load_generator.py) or
the C ones, h2load and wrk (c_load_generators.py). --scaling runs only the
server, on one core with one process and on every core with
--num_server_processes, interleaved over --rounds, and prints the ratio
(scaling.py). --compare_binary runs only two servers, ours and that one,
every scenario against each in turn, and prints each round's ratio
(ab_compare.py).

  bazel run //tensorflow_serving/tools:benchmark -- \\
      --model_base_path=/tmp/models/mnist_tf1 --model_name=mnist \\
      --signature_name=predict_images --scenarios=grpc:1:1,grpc:1:32,grpc:32:1,rest:1:32 \\
      --server_flags="--enable_batching --batching_parameters_file=/tmp/batching.txt"
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from tensorflow_serving.model_servers import metrics
from tensorflow_serving.model_servers.inline_grpc_server import GRPC_SERVERS
from tensorflow_serving.model_servers.supervisor import worker_cpu_sets
from tensorflow_serving.tools import (
    ab_compare,
    c_load_generators,
    host_idle,
    load_generator,
    processes,
    report,
    scaling,
)
from tensorflow_serving.tools.report import Scenario
from tensorflow_serving.tools.scaling import ServerSetup

# Flags the benchmark sets on the server itself.
_OWNED_SERVER_FLAGS = ("port", "rest_api_port", "model_name", "model_base_path", "bind_address")
_SERVER_BINARY = "tensorflow_serving/model_servers/tensorflow_model_server"
_MAX_ROUNDS = 9
PARTIES = ("limit", "floor", "minimal", "standin", "modelfloor", "server")
DEFAULT_SCENARIOS = "grpc:1:1,grpc:1:32,grpc:32:1,rest:1:32"
_UPSTREAM_MAX_BATCH_SIZE = 1000  # BatchingParameters default when the file does not set it
# What the benchmark adds when the server batches and the flags turn no Prometheus page on.
_MONITORING_CONFIG = "prometheus_config { enable: true }\n"


def say(message: str) -> None:
    """Progress for the user, on stderr (the table goes to stdout)."""
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def _user_path(path: str) -> str:
    """A path as the user meant it: `bazel run` moves the working directory."""
    if not path or os.path.isabs(path):
        return path
    return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()), path)


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "t", "yes")


def server_settings(server_flags: list[str]) -> dict[str, Any]:
    """What the server flags mean for the benchmark: TF threads, the batching cap, the warmer."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in _OWNED_SERVER_FLAGS:
        parser.add_argument(f"--{name}")
    parser.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    parser.add_argument("--batching_parameters_file", default="")
    for name in ("session", "intra_op", "inter_op"):
        parser.add_argument(f"--tensorflow_{name}_parallelism", type=int, default=0)
    parser.add_argument("--keep_model_warm_micros", type=int, default=0)
    parser.add_argument("--monitoring_config_file", default="")
    parser.add_argument("--num_server_processes", type=int, default=None)
    parser.add_argument("--prefer_tflite_model", type=_bool, nargs="?", const=True, default=False)
    known, _ = parser.parse_known_args(server_flags)
    owned = [f"--{n}" for n in _OWNED_SERVER_FLAGS if getattr(known, n) is not None]
    if owned:
        raise SystemExit(
            f"do not pass {', '.join(owned)} in --server_flags: the benchmark sets them"
        )
    max_batch = None
    if known.enable_batching:
        max_batch = _UPSTREAM_MAX_BATCH_SIZE
        if known.batching_parameters_file:
            from tensorflow_serving.util import config_protos

            params = config_protos.parse_text_file(
                _user_path(known.batching_parameters_file), config_protos.BatchingParameters
            )
            if params.HasField("max_batch_size"):
                max_batch = params.max_batch_size.value
    session = known.tensorflow_session_parallelism
    return {
        "intra_op_threads": known.tensorflow_intra_op_parallelism or session,
        "inter_op_threads": known.tensorflow_inter_op_parallelism or session,
        "max_batch_size": max_batch,
        "keep_model_warm_micros": known.keep_model_warm_micros,
        "monitoring_config_file": known.monitoring_config_file,
        "metrics_path": _metrics_path(known.monitoring_config_file),
        "num_server_processes": known.num_server_processes,
        "prefer_tflite_model": known.prefer_tflite_model,
    }


def _metrics_path(monitoring_config_file: str) -> str | None:
    """The Prometheus page a --monitoring_config_file turns on; None without one or when off."""
    if not monitoring_config_file:
        return None
    return metrics.prometheus_path(
        metrics.read_monitoring_config(_user_path(monitoring_config_file))
    )


def scenarios_from_args(args: argparse.Namespace) -> list[Scenario]:
    """--scenarios, or the sweep of --protocols x --batch_size x --concurrency.

    The default scenarios are the scaling mode's with --scaling. Raises
    SystemExit when both ways are given, ValueError for a bad item.
    """
    if args.concurrency:
        if args.scenarios is not None:
            raise SystemExit("give --scenarios or --concurrency (a sweep), not both")
        protocols = args.protocols if args.protocols is not None else "grpc,rest"
        batch = args.batch_size if args.batch_size is not None else 1
        return report.sweep_scenarios(protocols, batch, args.concurrency)
    if args.protocols is not None or args.batch_size is not None:
        raise SystemExit("--protocols and --batch_size go with --concurrency")
    default = scaling.DEFAULT_SCENARIOS if args.scaling else DEFAULT_SCENARIOS
    return report.parse_scenarios(args.scenarios or default)


def engine_text(args: argparse.Namespace) -> str:
    """--engine as given; by default python, and with --scaling the C engines (wrk, h2load)."""
    if args.engine:
        return args.engine
    return "wrk,h2load" if args.scaling else "python"


def latest_version_dir(base_path: str, version: int | None) -> str:
    """The version directory the server will serve (the highest number by default)."""
    if version is not None:
        path = os.path.join(base_path, str(version))
        if not os.path.isdir(path):
            raise SystemExit(f"no version {version} under {base_path}")
        return path
    try:
        versions = [int(d) for d in os.listdir(base_path) if d.isdigit()]
    except OSError as error:
        raise SystemExit(f"cannot read --model_base_path {base_path}: {error}") from None
    if not versions:
        raise SystemExit(f"no numeric version directory under {base_path}")
    return os.path.join(base_path, str(max(versions)))


def pick_cpus(server: str, client: str) -> tuple[set[int] | None, set[int] | None]:
    """Server and client CPU sets: by default the first and second CPU this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    auto_server = {allowed[0]} if len(allowed) >= 2 else None
    auto_client = {allowed[1]} if len(allowed) >= 2 else None
    server_cpus = auto_server if server == "auto" else processes.parse_cpus(server)
    client_cpus = auto_client if client == "auto" else processes.parse_cpus(client)
    return server_cpus, client_cpus


def _frozen(cpus: set[int] | None) -> frozenset[int] | None:
    return frozenset(cpus) if cpus else None


def default_server_command() -> list[str]:
    """Our server: the py_binary beside this one in Bazel's runfiles, else the module."""
    candidate = os.path.join(processes.PACKAGE_ROOT, _SERVER_BINARY)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return [candidate]
    return processes.python_module("tensorflow_serving.model_servers.main")


@dataclasses.dataclass(frozen=True)
class _RunningServer:
    """A server _started_server started: its process, ports by protocol, Prometheus page."""

    process: subprocess.Popen
    ports: dict[str, int]
    metrics_page: tuple[int, str] | None
    command: list[str]


class Benchmark:
    """One run: limit, floors and server under the same load; `run()` returns the report."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.scenarios = scenarios_from_args(args)
        self.sweep = bool(args.concurrency)
        self.parties = {p.strip() for p in args.parties.split(",") if p.strip()}
        unknown = self.parties - set(PARTIES)
        if unknown:
            raise SystemExit(f"--parties: unknown {sorted(unknown)} ({', '.join(PARTIES)})")
        self.server_flags = shlex.split(args.server_flags)
        self.settings = server_settings(self.server_flags)
        self.model_base_path = os.path.abspath(_user_path(args.model_base_path))
        self.model_dir = latest_version_dir(self.model_base_path, args.model_version)
        self.engines = c_load_generators.engines_by_protocol(
            engine_text(args), sorted({s.protocol for s in self.scenarios})
        )
        c_load_generators.require_binaries(self.engines.values())
        if args.requests and set(self.engines.values()) != {"python"}:
            raise SystemExit("--requests needs --engine=python: the C engines run for a duration")
        if args.scaling and args.compare_binary:
            raise SystemExit("give --scaling or --compare_binary, not both")
        if args.compare_binary:
            self.parties = {"server"}  # the limit runs only to write the payloads
        if args.scaling and self.settings["num_server_processes"] is not None:
            raise SystemExit("--scaling sets --num_server_processes: use --scaling_processes")
        self.setups: tuple[ServerSetup, ...]
        if args.scaling:
            # Only the server, on both setups; the payloads still come from the model.
            self.parties = {"server"}
            self.setups = scaling.setups(
                os.sched_getaffinity(0), args.server_cpus, args.client_cpus, args.scaling_processes
            )
            self.server_cpus = set(self.setups[0].server_cpus or ())
            self.client_cpus = set(self.setups[0].client_cpus or ()) or None
        else:
            self.server_cpus, self.client_cpus = pick_cpus(args.server_cpus, args.client_cpus)
            self.setups = (
                ServerSetup("server", _frozen(self.server_cpus), _frozen(self.client_cpus)),
            )
        self.cwd = os.environ.get("BUILD_WORKING_DIRECTORY") or None
        self.work = ""
        self.payloads: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ parties
    def _signature_flags(self) -> list[str]:
        """inprocess_limit.add_signature_flags, filled in: the model the limit and the
        minimal server load, with the server's thread settings."""
        a = self.args
        return [
            f"--model_dir={self.model_dir}",
            f"--signature={a.signature_name}",
            f"--tags={a.saved_model_tags}",
            f"--intra={self.settings['intra_op_threads']}",
            f"--inter={self.settings['inter_op_threads']}",
            *[f"--input_shape={s}" for s in a.input_shape],
            *(["--tflite"] if self.serves_tflite() else []),
        ]

    def serves_tflite(self) -> bool:
        """Whether the server runs the version's model.tflite (--prefer_tflite_model and the
        file is there): then the limit is that model on a TFLite interpreter."""
        return self.settings["prefer_tflite_model"] and os.path.isfile(
            os.path.join(self.model_dir, "model.tflite")
        )

    def measure_limit(
        self, when: str = "before", batches: list[int] | None = None, idle_gap_us: float = 0.0
    ) -> dict[str, Any]:
        """Runs inprocess_limit in a pinned child; returns its record (payload paths too).

        With `idle_gap_us` the child sleeps that long before each call (see
        inprocess_limit.timed_runs) and writes no payloads.
        """
        if batches is None:
            batches = report.limit_batches(
                self.scenarios, self.settings["max_batch_size"], between=self.sweep
            )
        runs = self.args.limit_runs if "limit" in self.parties else 0
        runtime = "TFLite interpreter, model.tflite" if self.serves_tflite() else "TensorFlow"
        say(f"in-process limit ({when}) at batches {batches} ({self.model_dir}, {runtime})")
        [record] = self._run_limits(
            [(when, self.server_cpus)], batches, runs, idle_gap_us, payloads=not idle_gap_us
        )
        return record

    def measure_limit_copies(
        self, when: str, cpu_sets: list[frozenset[int]], batches: list[int]
    ) -> list[dict[str, Any]]:
        """The model alone in one inprocess_limit per CPU set, all running at once, each
        pinned to its set (--limit_runs timed runs): what the machine gives N copies of the
        model side by side."""
        say(
            f"in-process limit ({when}): {len(cpu_sets)} at once, on CPUs "
            f"{' / '.join(','.join(map(str, sorted(c))) for c in cpu_sets)}, batches {batches}"
        )
        children = [(f"{when}_{index}", cpus) for index, cpus in enumerate(cpu_sets)]
        return self._run_limits(children, batches, self.args.limit_runs, 0.0, payloads=False)

    def _run_limits(
        self,
        children: list[tuple[str, set[int] | frozenset[int] | None]],
        batches: list[int],
        runs: int,
        idle_gap_us: float,
        payloads: bool,
    ) -> list[dict[str, Any]]:
        """Runs one inprocess_limit child per (name, CPUs) at the same time; their records.
        With `payloads` the first child also writes the request payloads."""
        a = self.args
        started = []
        for when, cpus in children:
            result_path = os.path.join(self.work, f"limit_{when}.json")
            cmd = [
                *processes.python_module("tensorflow_serving.tools.inprocess_limit"),
                *self._signature_flags(),
                f"--batches={','.join(map(str, batches))}",
                f"--runs={runs}",
                f"--run_seconds={a.limit_seconds}",
                f"--warmup_seconds={min(a.limit_seconds, 1.0)}",
                f"--data={a.data}",
                f"--model_name={a.model_name}",
                f"--rest_format={a.rest_format}",
                f"--payload_dir={self.work if payloads and not started else ''}",
                f"--idle_gap_us={idle_gap_us}",
                f"--result={result_path}",
            ]
            if a.input_data:
                cmd.append(f"--input_data={_user_path(a.input_data)}")
            if cpus:
                cmd.append(f"--cpus={','.join(map(str, sorted(cpus)))}")
            child = subprocess.Popen(
                cmd,
                env=processes.child_env(),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started.append((child, result_path))
        timeout = 120 + len(batches) * (a.limit_runs + 1) * (a.limit_seconds + 1) * 2
        records = []
        try:
            for child, result_path in started:
                output, _ = child.communicate(timeout=timeout)
                if child.returncode != 0 or not os.path.exists(result_path):
                    raise SystemExit(
                        f"in-process limit failed (exit {child.returncode}):\n{output[-3000:]}"
                    )
                with open(result_path) as handle:
                    records.append(json.load(handle))
        finally:
            for child, _ in started:  # after a failure, the others too (our children, by pid)
                if child.poll() is None:
                    child.kill()
                    child.wait()
        return records

    def measure_gapped_limits(self, floors: dict[str, dict]) -> dict[str, dict]:
        """For each concurrency-1 scenario: the limit at b_eff with the floor's p50 as idle gap.

        A server with one client idles for about the transport's round trip
        before every request, and the idle core may halt (on a VM) and its caches cool; this
        limit is what such a server can reach (report: "ceiling, idle gaps").
        """
        gapped = {}
        for scenario in self.scenarios:
            floor = floors.get(scenario.name)
            if scenario.concurrency != 1 or not report.usable(floor):
                continue
            batch = report.effective_batch(scenario, self.settings["max_batch_size"])
            gap_us = round(floor["latency_ms"]["p50"] * 1000.0, 1)
            record = self.measure_limit(f"gap_{scenario.name}".replace(":", "_"), [batch], gap_us)
            gapped[scenario.name] = record["limits"][str(batch)]
        return gapped

    def _spec(
        self,
        scenario: Scenario,
        port: int,
        server_pid: int | None,
        client_cpus: frozenset[int] | None,
        metrics_page: tuple[int, str] | None = None,
    ) -> load_generator.LoadSpec:
        a = self.args
        paths = self.payloads[str(scenario.batch)]
        with open(paths[scenario.protocol], "rb") as handle:
            body = handle.read()
        return load_generator.LoadSpec(
            protocol=scenario.protocol,
            port=port,
            body=body,
            batch=scenario.batch,
            concurrency=scenario.concurrency,
            rest_path=f"/v1/models/{a.model_name}:predict",
            duration_s=None if a.requests else a.duration,
            requests=a.requests or None,
            warmup_s=a.warmup,
            timeout_s=a.timeout,
            procs=a.client_procs,
            cpus=client_cpus,
            server_pid=server_pid,
            metrics_page=metrics_page,
        )

    def _drive(
        self,
        who: str,
        scenario: Scenario,
        port: int,
        pid: int,
        client_cpus: frozenset[int] | None,
        metrics_page: tuple[int, str] | None = None,
    ) -> dict[str, Any]:
        """Checks one request, then runs the scenario's load against `port` with the
        protocol's engine, the client on `client_cpus` (with `metrics_page`, counting the
        server's batches too)."""
        spec = self._spec(scenario, port, pid, client_cpus, metrics_page)
        check = load_generator.send_one(spec)
        if not check.ok:
            say(f"{who} {scenario.name}: request rejected: {check.detail}")
            return {"failure": f"request rejected: {check.detail}", "requests_ok": 0}
        engine = self.engines[scenario.protocol]
        if engine == "python":
            result = load_generator.run_load(spec).to_dict()
        else:
            result = c_load_generators.run_load(spec, engine, check.answer_bytes).to_dict()
        lat = result.get("latency_ms") or {}
        batches = result.get("server_batches") or {}
        if metrics_page and not batches and not result.get("failure"):
            say(
                f"{who} {scenario.name}: no {metrics.BATCH_SIZE_METRIC} histogram on "
                f"127.0.0.1:{metrics_page[0]}{metrics_page[1]}; mean batch unknown"
            )
        say(
            f"{who} {scenario.name}: {result['throughput_ips']:,.0f} inf/s, "
            f"p50 {lat.get('p50')} ms, errors {result['errors']}"
            + (f", mean batch {batches['mean']}" if batches.get("mean") else "")
            + (f", FAILED: {result['failure']}" if result.get("failure") else "")
        )
        return result

    def measure_floors(self, floor_spec: dict) -> dict[str, dict]:
        """Each protocol's floor server, started pinned, under every scenario of that protocol."""
        a = self.args
        flags = [f"--grpc_server={a.floor_grpc_server}", f"--hold_micros={a.floor_hold_micros}"]
        return self._floors(floor_spec, "floor", "no-work server", flags, 120)

    def measure_model_floors(self, floor_spec: dict) -> dict[str, dict]:
        """Each protocol's model floor (floor_servers.py --model_dir), started pinned, under
        every scenario of that protocol: the floor plus the model run in a stand-in batch
        thread on batches of at most the server's max_batch_size rows."""
        a = self.args
        flags = [
            *self._signature_flags(),
            # Without server batching each request runs alone: batches of one request.
            f"--max_batch_size={self.settings['max_batch_size'] or 1}",
            f"--data={a.data}",
            *([f"--input_data={a.input_data}"] if a.input_data else []),
        ]
        what = "floor with the model in a batch thread"
        return self._floors(floor_spec, "model floor", what, flags, a.ready_timeout)

    def _floors(
        self, floor_spec: dict, name: str, what: str, flags: list[str], ready_timeout: float
    ) -> dict[str, dict]:
        """floor_servers.py with `flags`, one per protocol of the scenarios, all started
        pinned, then driven under the scenarios in their order (a sweep's two protocols at
        one load run one after the other); results by scenario name."""
        protocols = sorted({s.protocol for s in self.scenarios})
        ports = dict(zip(protocols, processes.free_ports(len(protocols)), strict=True))
        started: dict[str, Any] = {}
        try:
            for protocol, port in ports.items():
                log_path = os.path.join(self.work, f"{name.replace(' ', '_')}_{protocol}.log")
                cmd = [
                    *processes.python_module("tensorflow_serving.tools.floor_servers"),
                    protocol,
                    f"--port={port}",
                    f"--spec={json.dumps(floor_spec)}",
                    f"--threads={self.args.floor_grpc_threads}",
                    *flags,
                ]
                say(f"{name}: {protocol} {what} on 127.0.0.1:{port}")
                server = processes.start(cmd, self.server_cpus, log_path, cwd=self.cwd)
                started[protocol] = server
                if not processes.wait_for_port(port, ready_timeout, server):
                    raise SystemExit(
                        f"{protocol} {name} did not start:\n{processes.log_tail(log_path)}"
                    )
            client = _frozen(self.client_cpus)
            return {
                s.name: self._drive(name, s, ports[s.protocol], started[s.protocol].pid, client)
                for s in self.scenarios
            }
        finally:
            for server in started.values():
                processes.stop(server)

    def _start_and_drive(
        self,
        what: str,
        who: str,
        cmd: list[str],
        port: int,
        log_path: str,
        ready_timeout: float,
        scenarios: list[Scenario],
    ) -> dict[str, dict]:
        """Starts a helper server pinned, drives `scenarios` against it, and stops it by pid."""
        server = processes.start(cmd, self.server_cpus, log_path, cwd=self.cwd)
        try:
            if not processes.wait_for_port(port, ready_timeout, server):
                raise SystemExit(f"{what} did not start:\n{processes.log_tail(log_path)}")
            client = _frozen(self.client_cpus)
            return {s.name: self._drive(who, s, port, server.pid, client) for s in scenarios}
        finally:
            processes.stop(server)

    def _one_client_grpc(self) -> list[Scenario]:
        return [s for s in self.scenarios if s.protocol == "grpc" and s.concurrency == 1]

    def measure_minimal(self, stand_in_us: dict[int, float] | None = None) -> dict[str, dict]:
        """The minimal server (minimal_server.py), started pinned, under every gRPC
        scenario with one client: the least any server on this transport does.

        With `stand_in_us` ({rows: microseconds}) it is the stand-in party instead:
        a busy loop that long replaces the model call for requests of those rows.
        """
        scenarios = self._one_client_grpc()
        if not scenarios:
            return {}
        a = self.args
        name = "standin" if stand_in_us else "minimal"
        port = processes.free_port()
        log_path = os.path.join(self.work, f"{name}.log")
        cmd = [
            *processes.python_module("tensorflow_serving.tools.minimal_server"),
            f"--port={port}",
            *self._signature_flags(),
            f"--model_name={a.model_name}",
            f"--threads={a.floor_grpc_threads}",
            f"--grpc_server={a.floor_grpc_server}",
        ]
        if stand_in_us:
            cmd.append(
                "--stand_in_micros="
                + ",".join(f"{rows}={micros:.1f}" for rows, micros in sorted(stand_in_us.items()))
            )
            loops = ", ".join(f"{m:,.0f} us at b{rows}" for rows, m in sorted(stand_in_us.items()))
            say(f"stand-in: the minimal server with busy loops ({loops}) on 127.0.0.1:{port}")
        else:
            # The server's warmer too, so that server/minimal compares code, not warming.
            cmd.append(f"--keep_model_warm_micros={self.settings['keep_model_warm_micros']}")
            say(f"minimal: gRPC server with only the model call on 127.0.0.1:{port}")
        results = self._start_and_drive(
            f"{name} server", name, cmd, port, log_path, a.ready_timeout, scenarios
        )
        if stand_in_us:
            for scenario in scenarios:
                results[scenario.name]["stand_in_us"] = stand_in_us[scenario.batch]
        return results

    def measure_stand_in(self, limits: dict[str, dict]) -> dict[str, dict]:
        """The stand-in party: each one-client gRPC batch replaced by the limit's time per call
        at that batch (`limits`, this round's pass), so the stand-in's ceiling is the ceiling."""
        stand_in_us = {}
        for scenario in self._one_client_grpc():
            record = limits.get(str(scenario.batch)) or {}
            if record.get("inferences_per_s"):
                stand_in_us[scenario.batch] = 1e6 * scenario.batch / record["inferences_per_s"]
        return self.measure_minimal(stand_in_us) if stand_in_us else {}

    def _metrics_flags(self) -> tuple[list[str], str | None]:
        """(flags to add, the Prometheus page's path): a page to count the server's batches.

        With batching on and no --monitoring_config_file of the user's, the
        benchmark writes one that turns the page on at its default path.
        """
        if self.settings["max_batch_size"] is None:
            return [], None
        if self.settings["monitoring_config_file"]:
            return [], self.settings["metrics_path"]
        path = os.path.join(self.work, "monitoring.txt")
        with open(path, "w") as handle:
            handle.write(_MONITORING_CONFIG)
        return [f"--monitoring_config_file={path}"], metrics.DEFAULT_PROMETHEUS_PATH

    def _server_command(
        self, grpc_port: int, rest_port: int, extra: list[str], binary: str | None = None
    ) -> list[str]:
        """The server's command line: ours (bound to loopback), or `binary` (else
        --server_binary) with only the flags every model server takes."""
        a = self.args
        binary = binary or a.server_binary
        if binary:
            base = shlex.split(binary)
            own = []
        else:
            base = default_server_command()
            own = ["--bind_address=127.0.0.1"]
        return [
            *base,
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_name={a.model_name}",
            f"--model_base_path={self.model_base_path}",
            *own,
            *extra,
            *self.server_flags,
        ]

    def measure_server(self, setup: ServerSetup) -> tuple[dict[str, dict], list[str]]:
        """Starts the server as `setup` says (_started_server) and runs every scenario with
        the client where `setup` puts it. Each result gets `server_processes`: the server's
        processes listening on the scenario's port just after its run."""
        results: dict[str, dict] = {}
        with self._started_server(setup, setup.name) as running:
            for scenario in self.scenarios:
                results[scenario.name] = self._drive_running(running, setup, setup.name, scenario)
        return results, running.command

    @contextlib.contextmanager
    def _started_server(
        self, setup: ServerSetup, label: str, binary: str | None = None
    ) -> Iterator[_RunningServer]:
        """A server (ours, or `binary`, else --server_binary) started as `setup` says (its
        CPUs, its processes) on free ports, once it serves the model and every process
        listens; stopped by pid on leaving."""
        grpc_port, rest_port = processes.free_ports(2)
        ports = {"grpc": grpc_port, "rest": rest_port}
        metrics_flags, metrics_path = self._metrics_flags()
        metrics_page = (rest_port, metrics_path) if metrics_path else None
        cmd = self._server_command(
            grpc_port, rest_port, [*metrics_flags, *setup.server_flags()], binary
        )
        log_path = os.path.join(self.work, f"server_{label.replace(' ', '_')}.log")
        say(f"{label}: " + " ".join(shlex.quote(c) for c in cmd))
        server = processes.start(cmd, setup.server_cpus, log_path, cwd=self.cwd)
        try:
            self._wait_until_serving(server, grpc_port, rest_port, log_path)
            used = sorted({ports[s.protocol] for s in self.scenarios})
            self._wait_for_processes(server, self._expected_processes(setup), used)
            yield _RunningServer(server, ports, metrics_page, cmd)
        finally:
            code = processes.stop(server)
            if code not in (0, None, -15) or self.args.keep_server_log:
                say(f"server exited with {code}; its log ends:\n{processes.log_tail(log_path)}")

    def _drive_running(
        self, running: _RunningServer, setup: ServerSetup, who: str, scenario: Scenario
    ) -> dict[str, Any]:
        """One scenario against a started server, the client where `setup` puts it."""
        port = running.ports[scenario.protocol]
        pid = running.process.pid
        result = self._drive(who, scenario, port, pid, setup.client_cpus, running.metrics_page)
        result["server_processes"] = len(processes.listening_pids(port, pid))
        return result

    def _expected_processes(self, setup: ServerSetup) -> int:
        """How many server processes should listen: the setup's, else --server_flags' own
        --num_server_processes (none: one)."""
        if setup.processes is None and self.settings["num_server_processes"] is not None:
            setup = dataclasses.replace(setup, processes=self.settings["num_server_processes"])
        return scaling.expected_processes(setup, scaling.cgroup_cpu_limit())

    def _wait_for_processes(self, server, expected: int, ports: list[int]) -> None:
        """Waits until `expected` processes of the server's tree listen on every one of
        `ports`: a worker not listening yet would get none of the clients' connections."""
        if expected <= 1:
            return
        deadline = time.monotonic() + self.args.ready_timeout
        while True:
            counts = {port: len(processes.listening_pids(port, server.pid)) for port in ports}
            if min(counts.values()) >= expected:
                return
            if time.monotonic() >= deadline or server.poll() is not None:
                say(
                    f"only {counts} server processes listen by port after "
                    f"{self.args.ready_timeout:.0f} s, not {expected}; measuring anyway"
                )
                return
            time.sleep(0.2)

    def _wait_until_serving(self, server, grpc_port: int, rest_port: int, log_path: str) -> None:
        first = self.scenarios[0]
        port = grpc_port if first.protocol == "grpc" else rest_port
        deadline = time.monotonic() + self.args.ready_timeout
        if not processes.wait_for_port(port, self.args.ready_timeout, server):
            raise SystemExit(f"server did not open port {port}:\n{processes.log_tail(log_path)}")
        probe = self._spec(Scenario(first.protocol, first.batch, 1), port, None, None)
        detail = ""
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(
                    f"server exited ({server.returncode}):\n{processes.log_tail(log_path)}"
                )
            ok, detail, _ = load_generator.send_one(probe)
            if ok:
                return
            time.sleep(0.5)
        raise SystemExit(
            f"the model did not answer within {self.args.ready_timeout} s (last: {detail}):\n"
            f"{processes.log_tail(log_path)}"
        )

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        """The whole run; its report (the JSON --out writes)."""
        if self.args.scaling:
            return self.run_scaling()
        if self.args.compare_binary:
            return self.run_compare()
        a = self.args
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        server_cmd: list[str] = []
        with tempfile.TemporaryDirectory(prefix="tfs_benchmark_") as work:
            self.work = work
            limit = self.measure_limit("round1" if a.rounds > 1 else "before")
            self.payloads = limit["payloads"]
            floor_spec = {
                "model_name": a.model_name,
                "signature": a.signature_name,
                "inputs": {i["alias"]: i["dtype"] for i in limit["inputs"]},
                "outputs": limit["output_rows"],
            }
            passes = [limit["limits"]]
            # per round: (floors, minimal servers, stand-ins, servers, limits with idle gaps,
            # model floors)
            measured = []
            in_order = self.scenarios
            for index in range(a.rounds):
                # Every other round runs the scenarios backwards, so that no scenario
                # always comes last in a party's pass, when the host may have drifted.
                self.scenarios = report.round_order(in_order, index)
                if index:
                    backwards = ", scenarios in reverse order" if index % 2 else ""
                    say(f"round {index + 1} of {a.rounds}{backwards}")
                    if "limit" in self.parties:
                        passes.append(self.measure_limit(f"round{index + 1}")["limits"])
                floors = self.measure_floors(floor_spec) if "floor" in self.parties else {}
                minimal = self.measure_minimal() if "minimal" in self.parties else {}
                stand_in = {}
                if "standin" in self.parties and "limit" in self.parties:
                    stand_in = self.measure_stand_in(passes[-1])
                model_floors = {}
                if "modelfloor" in self.parties:
                    model_floors = self.measure_model_floors(floor_spec)
                servers = {}
                if "server" in self.parties:
                    servers, server_cmd = self.measure_server(self.setups[0])
                gapped = {}
                if "limit" in self.parties and a.limit_idle_gaps:
                    gapped = self.measure_gapped_limits(floors)
                measured.append((floors, minimal, stand_in, servers, gapped, model_floors))
            self.scenarios = in_order
            if "limit" in self.parties and a.limit_passes > 1:
                # Bracket the load runs: the host's speed drifts, and the limit is
                # the best the same core showed in the same minutes.
                passes.append(self.measure_limit("after")["limits"])
        max_batch = self.settings["max_batch_size"]
        cpus = sorted(self.server_cpus) if self.server_cpus else None
        rounds = [
            [
                report.scenario_summary(
                    s,
                    max_batch,
                    report.round_limits(passes, index),
                    floors.get(s.name),
                    servers.get(s.name),
                    cpus,
                    gapped.get(s.name),
                    minimal.get(s.name),
                    stand_in.get(s.name),
                    model_floors.get(s.name),
                )
                for s in self.scenarios
            ]
            for index, (floors, minimal, stand_in, servers, gapped, model_floors) in enumerate(
                measured
            )
        ]
        summaries = rounds[0] if len(rounds) == 1 else report.median_rounds(rounds)
        limit["limits"] = report.merge_limit_passes(passes)
        idle = host_idle.read_idle_settings()
        return {
            "started": started,
            "argv": sys.argv,
            "model_base_path": self.model_base_path,
            "model_dir": self.model_dir,
            "limit_runtime": "tflite" if self.serves_tflite() else "tensorflow",
            "signature": a.signature_name,
            "server_command": server_cmd,
            "server_settings": self.settings,
            "engines": self.engines,
            "server_cpus": sorted(self.server_cpus) if self.server_cpus else None,
            "client_cpus": sorted(self.client_cpus) if self.client_cpus else None,
            "load": {
                "duration_s": None if a.requests else a.duration,
                "requests": a.requests or None,
                "warmup_s": a.warmup,
                "data": a.data,
                "rest_format": a.rest_format,
            },
            "signature_inputs": limit["inputs"],
            "signature_outputs": limit["outputs"],
            "limits": limit["limits"],
            "scenarios": summaries,
            "noisy": report.noisy_parties(summaries),
            "host_idle": idle,
            "host_warning": host_idle.one_client_warning(
                idle, [s.concurrency for s in self.scenarios]
            ),
            "table": report.render_table(summaries),
            "sweep_tables": report.render_sweep_tables(summaries) if self.sweep else None,
            "protocol_ratios": report.render_protocol_ratios(summaries),
        }

    def measure_machine(self) -> dict[str, Any]:
        """The model alone, without any server: one copy on the one-core setup's CPU, then
        one copy per worker on the CPUs a pinned all-cores server gives its workers, at the
        batches each setup's server would run; scaling.machine_ratio reads it. Run once
        per round, so that the machine's drift shows in it as in the servers' rounds."""
        one, every = self.setups
        workers = self._expected_processes(every)
        cpu_sets = worker_cpu_sets(every.server_cpus or os.sched_getaffinity(0), workers)
        if cpu_sets is None:
            return {}
        max_batch = self.settings["max_batch_size"]
        batches = sorted(
            {b for s in self.scenarios for b in scaling.model_batches(s, workers, max_batch)}
        )
        [solo] = self.measure_limit_copies("machine_one", [one.server_cpus], batches)
        copies = self.measure_limit_copies("machine_all", cpu_sets, batches)
        return {
            "workers": workers,
            "one": {str(b): solo["limits"].get(str(b)) for b in batches},
            "all": [{str(b): c["limits"].get(str(b)) for b in batches} for c in copies],
        }

    def run_scaling(self) -> dict[str, Any]:
        """The scaling mode: every scenario against each setup, --rounds times, interleaved
        (scaling.py); the report with each scenario's median rounds and ratios."""
        a = self.args
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        commands: dict[str, list[str]] = {}
        rounds: list[dict[str, dict[str, dict]]] = []
        machines: list[dict[str, Any]] = []  # the model alone, one record per round
        with tempfile.TemporaryDirectory(prefix="tfs_benchmark_") as work:
            self.work = work
            payloads = self.measure_limit("payloads")  # parties: server only, so no timing
            self.payloads = payloads["payloads"]
            for index in range(a.rounds):
                measured = {}
                for setup in report.round_order(self.setups, index):
                    say(f"round {index + 1} of {a.rounds}: {setup.describe()}")
                    measured[setup.name], commands[setup.name] = self.measure_server(setup)
                rounds.append(measured)
                if a.limit_runs:
                    machines.append(self.measure_machine())
        summaries = scaling.summarize(
            self.scenarios, self.setups, rounds, machines, self.settings["max_batch_size"]
        )
        return {
            "started": started,
            "argv": sys.argv,
            "mode": "scaling",
            "model_base_path": self.model_base_path,
            "model_dir": self.model_dir,
            "signature": a.signature_name,
            "engines": self.engines,
            "setups": [
                {
                    "name": setup.name,
                    "server_cpus": sorted(setup.server_cpus or ()),
                    "client_cpus": sorted(setup.client_cpus) if setup.client_cpus else None,
                    "num_server_processes": setup.processes,
                    "server_command": commands.get(setup.name),
                }
                for setup in self.setups
            ],
            "server_settings": self.settings,
            "load": {"duration_s": a.duration, "warmup_s": a.warmup, "data": a.data},
            "signature_inputs": payloads["inputs"],
            "scaling": summaries,
            "machine": machines,
            "rounds": rounds,
            "table": scaling.render_table(summaries, self.setups),
        }

    def run_compare(self) -> dict[str, Any]:
        """The compare mode: our server (or --server_binary) and --compare_binary, both up,
        every scenario run against each in turn, --rounds times (ab_compare.round_turns);
        the report with each scenario's per-round and median ratio."""
        a = self.args
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        setup = self.setups[0]
        binaries = {ab_compare.BASE: None, ab_compare.COMPARED: a.compare_binary}
        rounds: list[dict[str, dict[str, dict]]] = []
        with tempfile.TemporaryDirectory(prefix="tfs_benchmark_") as work:
            self.work = work
            payloads = self.measure_limit("payloads")  # parties: server only, so no timing
            self.payloads = payloads["payloads"]
            with contextlib.ExitStack() as stack:
                running = {
                    name: stack.enter_context(self._started_server(setup, name, binary))
                    for name, binary in binaries.items()
                }
                for index in range(a.rounds):
                    say(f"round {index + 1} of {a.rounds}")
                    measured: dict[str, dict[str, dict]] = {name: {} for name in binaries}
                    for scenario, name in ab_compare.round_turns(self.scenarios, index):
                        measured[name][scenario.name] = self._drive_running(
                            running[name], setup, name, scenario
                        )
                    rounds.append(measured)
        summaries = ab_compare.summarize(self.scenarios, rounds)
        return {
            "started": started,
            "argv": sys.argv,
            "mode": "compare",
            "model_base_path": self.model_base_path,
            "model_dir": self.model_dir,
            "signature": a.signature_name,
            "engines": self.engines,
            "server_commands": {name: r.command for name, r in running.items()},
            "server_cpus": sorted(setup.server_cpus) if setup.server_cpus else None,
            "client_cpus": sorted(setup.client_cpus) if setup.client_cpus else None,
            "server_settings": self.settings,
            "load": {"duration_s": a.duration, "warmup_s": a.warmup, "data": a.data},
            "signature_inputs": payloads["inputs"],
            "compare": summaries,
            "rounds": rounds,
            "table": ab_compare.render_table(summaries),
        }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--model_base_path", required=True, help="the model's base path (version dirs below)")
    add("--model_name", default="model", help="name the server serves the model under")
    add("--model_version", type=int, default=None, help="version for the limit (default: latest)")
    add("--signature_name", default="serving_default")
    add("--saved_model_tags", default="serve")
    add(
        "--scenarios",
        default=None,
        help=f"comma list of protocol:batch:concurrency (protocol grpc or rest; default "
        f"{DEFAULT_SCENARIOS})",
    )
    add(
        "--concurrency",
        default="",
        help="a sweep instead of --scenarios: comma list of concurrencies (e.g. "
        "1,2,4,8,16,24,32,48,64), run for each of --protocols at --batch_size rows per "
        "request; adds one table per protocol",
    )
    add("--protocols", default=None, help="with --concurrency: grpc, rest or both (default)")
    add("--batch_size", type=int, default=None, help="with --concurrency: rows per request (1)")
    add("--duration", type=float, default=5.0, help="measured seconds per scenario and party")
    add("--requests", type=int, default=0, help="measure this many requests instead of --duration")
    add("--warmup", type=float, default=2.0, help="seconds of unrecorded load first")
    add("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    add("--server_flags", default="", help="extra flags for the server, one shell-quoted string")
    add("--server_binary", default="", help="another server command (default: ours)")
    add("--ready_timeout", type=float, default=180.0, help="seconds for the model to load")
    add(
        "--parties",
        default=",".join(PARTIES),
        help=f"what to measure ({','.join(PARTIES)}); minimal and standin: gRPC scenarios "
        "with one client (standin needs limit); modelfloor: the floors with the model run in "
        "a stand-in batch thread",
    )
    add("--server_cpus", default="auto", help="CPUs for limit, floors, server ('none': unpinned)")
    add("--client_cpus", default="auto", help="CPUs for the load generator ('none': unpinned)")
    add(
        "--client_procs",
        type=int,
        default=0,
        help="load processes, or the C engines' threads (0: min(2, concurrency))",
    )
    add(
        "--engine",
        default="",
        help="load generator: python (default), h2load (gRPC and REST) or wrk (REST), or a "
        "comma list, each protocol taking the first that speaks it (default with --scaling: "
        "wrk,h2load); the C engines open a connection per client",
    )
    add(
        "--scaling",
        action="store_true",
        help="the scaling mode: the server only, on one core with one process, then on "
        "every core with --num_server_processes=--scaling_processes, interleaved over "
        f"--rounds (default scenarios {scaling.DEFAULT_SCENARIOS})",
    )
    add(
        "--compare_binary",
        default="",
        help="the compare mode: this server command beside ours (or --server_binary), both "
        "on the server CPUs, every scenario run against each in turn, --rounds times; prints "
        "each round's ratio and their median (only the servers run)",
    )
    add(
        "--scaling_processes",
        type=int,
        default=0,
        help="with --scaling: --num_server_processes of the all-cores server (0: one per "
        "usable core)",
    )
    add("--floor_grpc_threads", type=int, default=8, help="handler threads of the gRPC floor")
    add(
        "--floor_hold_micros",
        type=int,
        default=0,
        help="the floors answer as a batching server does: held requests together, this long "
        "after the first, from a stand-in batch thread (0: each at once)",
    )
    add(
        "--floor_grpc_server",
        default="inline",
        choices=GRPC_SERVERS,
        help="the gRPC floor's server; keep it the same as the server's --grpc_server",
    )
    add(
        "--rounds",
        type=int,
        default=1,
        help="measure floor and server (and the limit before each) this many times, "
        "interleaved, and report each scenario's median round with the spread",
    )
    add("--limit_runs", type=int, default=3, help="timed in-process runs per batch (median)")
    add(
        "--limit_passes",
        type=int,
        choices=[1, 2],
        default=2,
        help="2: also measure the limit after the last round; each round keeps the better "
        "of the passes just before and after it",
    )
    add("--limit_seconds", type=float, default=1.0, help="seconds per in-process run")
    add(
        "--limit_idle_gaps",
        type=_bool,
        default=True,
        help="for concurrency-1 scenarios, also measure the limit with the floor's p50 of "
        "idle time before each call (the 'ceiling, idle gaps' row)",
    )
    add("--input_shape", action="append", default=[], help="alias=d1,d2: row shape of an input")
    add("--input_data", default="", help=".npz of input rows by alias (cycled to the batch)")
    add("--data", choices=["random", "sparse", "zeros"], default="random", help="synthetic values")
    add("--rest_format", choices=["instances", "inputs"], default="instances")
    add("--keep_server_log", action="store_true", help="print the server log's end when it stops")
    add("--out", default="", help="write the whole report as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.duration <= load_generator.MAX_DURATION_S:
        raise SystemExit(f"--duration must be in (0, {load_generator.MAX_DURATION_S}]")
    if not 1 <= args.rounds <= _MAX_ROUNDS:
        raise SystemExit(f"--rounds must be in [1, {_MAX_ROUNDS}], got {args.rounds}")
    if not 0 <= args.warmup <= load_generator.MAX_WARMUP_S:
        raise SystemExit(f"--warmup must be in [0, {load_generator.MAX_WARMUP_S}]")
    try:
        result = Benchmark(args).run()
    except ValueError as error:
        raise SystemExit(f"benchmark: {error}") from None
    if args.scaling:
        failed = _print_scaling(result)
    elif args.compare_binary:
        failed = _print_compare(result)
    else:
        failed = _print_tables(result)
    if args.out:
        out = _user_path(args.out)
        with open(out, "w") as handle:
            json.dump(result, handle, indent=1)
        say(f"wrote {out}")
    return 1 if failed else 0


def _print_engine_notes(results: list[dict | None]) -> None:
    for note in report.engine_notes(results):
        print(f"\nENGINE: {note}")


def _print_tables(result: dict[str, Any]) -> list[str]:
    """Prints the tables, legends and warnings of a run; returns the scenarios whose server
    measured nothing."""
    print(result["table"])
    print()
    print(report.LEGEND)
    if result["sweep_tables"]:
        print()
        print(result["sweep_tables"])
        print()
        print(report.SWEEP_LEGEND)
    if result["protocol_ratios"]:
        print()
        print(result["protocol_ratios"])
        print()
        print(report.PROTOCOL_RATIOS_LEGEND)
    _print_engine_notes(
        [
            s.get(party)
            for s in result["scenarios"]
            for party in ("floor", "minimal", "stand_in", "server")
        ]
    )
    if result["noisy"]:
        print(
            f"\nNOISY: other processes took >= {report.NOISE_CORES} cores of the server's CPU "
            f"during: {', '.join(result['noisy'])}. Those numbers are not the party's; rerun on "
            "a quieter machine."
        )
    if result["host_warning"]:
        print(f"\nHOST: {result['host_warning']}")
    return [
        s["scenario"]
        for s in result["scenarios"]
        if (s["server"] and (s["server"].get("failure") or s["server"].get("requests_ok", 0) == 0))
    ]


def _print_scaling(result: dict[str, Any]) -> list[str]:
    """Prints the scaling table and its legend; returns the scenarios (and setups) whose
    server measured nothing."""
    print(result["table"])
    print()
    print(scaling.LEGEND)
    _print_engine_notes(_round_results(result["rounds"]))
    return scaling.failed(result["scaling"])


def _print_compare(result: dict[str, Any]) -> list[str]:
    """Prints the compare table and its legend; returns what measured nothing."""
    print(result["table"])
    print()
    print(ab_compare.LEGEND)
    _print_engine_notes(_round_results(result["rounds"]))
    return ab_compare.failed(result["compare"])


def _round_results(rounds: list[dict[str, dict[str, dict]]]) -> list[dict]:
    """Every load result of rounds kept by setup or server name, then by scenario."""
    return [r for measured in rounds for by_name in measured.values() for r in by_name.values()]


if __name__ == "__main__":
    sys.exit(main())
