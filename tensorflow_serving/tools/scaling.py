"""The benchmark's scaling mode: one core and one process against every core and N processes.

The same scenarios run against two setups of the model server, in every
round (`--rounds`), the setups' order alternating from round to round so
that a host slowing down or speeding up within a run does not favour
either:

  one core   the server pinned to one CPU (`--server_cpus`, by default the
             first this process may use) with `--num_server_processes=1`;
  all cores  the server on every CPU left (`--num_server_processes=N`,
             `--scaling_processes`, 0 = one per usable core, the server's
             own rule).

The load generator must not be pinned to a core the server uses. With three
or more CPUs it keeps the last one for itself in both setups; with two it
has the other CPU while the server has one core, and runs unpinned,
sharing the server's cores, while the server has both: there use a C engine
(h2load, wrk: about a tenth of a core), not the Python one.

Per scenario the table gives each setup's median round (by inferences/s)
with every round's value, the server processes that listened on the
scenario's port, the server's cores busy (its whole process tree), the
client's, and the ratio all cores / one core.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from tensorflow_serving.tools import processes
from tensorflow_serving.tools.report import Scenario, ratio, throughput_ips, usable

# `--scenarios` by default: batch-1 requests from 32 clients on both transports, the
# kernel's spread over few connections (1, 2, 4), and batch-32 requests from 8 clients.
DEFAULT_SCENARIOS = "grpc:1:1,grpc:1:2,grpc:1:4,grpc:1:32,rest:1:2,rest:1:4,rest:1:32,grpc:32:8"
ONE_CORE = "one core"
ALL_CORES = "all cores"


@dataclasses.dataclass(frozen=True)
class ServerSetup:
    """Where the server runs, with how many processes, and where its load generator runs."""

    name: str
    server_cpus: frozenset[int] | None
    client_cpus: frozenset[int] | None
    processes: int | None = None  # --num_server_processes; None: the flag is not given

    def server_flags(self) -> list[str]:
        if self.processes is None:
            return []
        return [f"--num_server_processes={self.processes}"]

    def describe(self) -> str:
        """'server on CPUs 0-1, --num_server_processes=0; client unpinned (...)'."""
        server = f"server on {_cpus(self.server_cpus)}"
        if self.processes is not None:
            server += f", --num_server_processes={self.processes}"
        if self.client_cpus is None:
            client = "client unpinned (shares the server's cores)"
        else:
            client = f"client on {_cpus(self.client_cpus)}"
        return f"{self.name}: {server}; {client}"


def _cpus(cpus: Iterable[int] | None) -> str:
    if not cpus:
        return "every CPU"
    ordered = sorted(cpus)
    if len(ordered) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"CPUs {ordered[0]}-{ordered[-1]}"
    return ("CPU " if len(ordered) == 1 else "CPUs ") + ",".join(map(str, ordered))


def setups(
    allowed: Iterable[int], server_cpus: str, client_cpus: str, scaling_processes: int
) -> tuple[ServerSetup, ServerSetup]:
    """The one-core and the all-cores setups on the CPUs `allowed` to this process.

    `server_cpus` ('auto' or a CPU list): the one-core setup's CPUs, by
    default the first allowed CPU the client does not have. `client_cpus`
    ('auto', 'none' or a list): by default the last allowed CPU with three
    or more; with two, the other CPU while the server has one core. The
    all-cores server gets every allowed CPU but the client's, or all of them
    when that would leave fewer than two, and then the client runs unpinned
    rather than on a core of the server's. Raises ValueError with fewer than
    two CPUs.
    """
    cpus = sorted(allowed)
    if len(cpus) < 2:
        raise ValueError(f"--scaling needs two or more CPUs; this process may use {cpus}")
    if client_cpus == "auto":
        client = frozenset(cpus[-1:]) if len(cpus) >= 3 else None
    else:
        parsed = processes.parse_cpus(client_cpus)
        client = frozenset(parsed) if parsed else None
    if server_cpus == "auto":
        one = frozenset([next(c for c in cpus if c not in (client or ()))])
    else:
        one = frozenset(processes.parse_cpus(server_cpus) or cpus[:1])
    rest = frozenset(cpus) - (client or frozenset())
    shared = len(rest) < 2
    every = frozenset(cpus) if shared else rest
    one_client = client
    if client_cpus == "auto" and client is None:
        one_client = frozenset(cpus) - one or None
    return (
        ServerSetup(ONE_CORE, one, one_client, processes=1),
        ServerSetup(ALL_CORES, every, None if shared else client, processes=scaling_processes),
    )


def cgroup_cpu_limit(cgroup_root: str = "/sys/fs/cgroup") -> float | None:
    """The cores this process's cgroup (v2) may use (`cpu.max` quota / period); None: no limit."""
    relative = ""
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                if line.startswith("0::"):
                    relative = line[3:].strip().lstrip("/")
    except OSError:
        pass
    for path in (os.path.join(cgroup_root, relative, "cpu.max"), f"{cgroup_root}/cpu.max"):
        try:
            with open(path) as handle:
                quota, period = handle.read().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    return None


def expected_processes(setup: ServerSetup, cpu_limit: float | None) -> int:
    """The worker processes the server should start: one without the flag, as many as asked,
    and for 0 one per usable core (the CPUs it is pinned to, capped by the cgroup's quota
    `cpu_limit`)."""
    if setup.processes is None:
        return 1
    if setup.processes > 0:
        return setup.processes
    cores = len(setup.server_cpus or os.sched_getaffinity(0))
    if cpu_limit is not None:
        cores = min(cores, max(1, math.ceil(cpu_limit)))
    return cores


def _median_round(results: list[dict | None]) -> int:
    """The index of the median round by inferences/s (the lower middle one for an even count)."""
    ranked = sorted(
        range(len(results)),
        key=lambda i: throughput_ips(results[i]) or 0.0,
    )
    return ranked[(len(ranked) - 1) // 2]


def _p50(result: dict | None) -> float | None:
    return ((result or {}).get("latency_ms") or {}).get("p50") if usable(result) else None


def model_batches(scenario: Scenario, workers: int, max_batch: int | None) -> tuple[int, int]:
    """The batch the model runs at for `scenario`: on one core with one process, and in
    each of `workers` workers that share its clients evenly (batching merges the
    requests in flight, up to `max_batch`; without batching each request is a batch)."""
    if max_batch is None:
        return scenario.batch, scenario.batch
    per_worker = math.ceil(scenario.concurrency / workers)
    return (
        min(scenario.batch * scenario.concurrency, max_batch),
        min(scenario.batch * per_worker, max_batch),
    )


def machine_ratio(
    scenario: Scenario, machine: dict[str, Any] | None, max_batch: int | None
) -> float | None:
    """What the model alone gains from all cores for `scenario`: the summed inf/s of one
    copy per worker, all running at once at the per-worker batch, over one copy alone on
    one core at the one-core batch (Benchmark.measure_machine's record). None: not measured."""
    if not machine:
        return None
    one_batch, worker_batch = model_batches(scenario, machine["workers"], max_batch)
    solo = (machine["one"].get(str(one_batch)) or {}).get("inferences_per_s")
    copies = [(c.get(str(worker_batch)) or {}).get("inferences_per_s") for c in machine["all"]]
    if not solo or not all(copies):
        return None
    return round(sum(copies) / solo, 3)


def _machine_ratios(
    scenario: Scenario, machines: list[dict[str, Any]], max_batch: int | None
) -> dict[str, Any]:
    each = [machine_ratio(scenario, machine, max_batch) for machine in machines]
    measured = [value for value in each if value is not None]
    return {
        "machine_ratio": round(statistics.median(measured), 3) if measured else None,
        "rounds_machine_ratio": each,
    }


def summarize(
    scenarios: list[Scenario],
    pair: Sequence[ServerSetup],
    rounds: list[dict[str, dict[str, dict]]],
    machines: list[dict[str, Any]] | None = None,
    max_batch: int | None = None,
) -> list[dict[str, Any]]:
    """Per scenario, each setup's median round and every round's inf/s, and the ratios.

    `rounds[i][setup name][scenario name]` is a load result (a LoadResult's
    dict with `server_processes`). `ips_ratio` is the all-cores median over
    the one-core median, `p50_ratio` the same for p50 latency, and
    `rounds_ips_ratio` each round's own ratio. `machine_ratio`: the same
    ratio for the model alone (machine_ratio of each of `machines`, one per
    round: their median; `rounds_machine_ratio` each), the most any server
    can gain.
    """
    one, every = pair
    summaries = []
    for scenario in scenarios:
        by_setup = {}
        for setup in pair:
            results = [r.get(setup.name, {}).get(scenario.name) for r in rounds]
            pick = _median_round(results)
            by_setup[setup.name] = {
                "result": results[pick],
                "round": pick + 1,
                "rounds_ips": [throughput_ips(r) for r in results],
            }
        low, high = by_setup[one.name], by_setup[every.name]
        summaries.append(
            {
                "scenario": scenario.name,
                "protocol": scenario.protocol,
                "batch": scenario.batch,
                "concurrency": scenario.concurrency,
                "setups": by_setup,
                "ips_ratio": ratio(throughput_ips(high["result"]), throughput_ips(low["result"])),
                "p50_ratio": ratio(_p50(high["result"]), _p50(low["result"])),
                "rounds_ips_ratio": [
                    ratio(h, lo)
                    for h, lo in zip(high["rounds_ips"], low["rounds_ips"], strict=True)
                ],
                **_machine_ratios(scenario, machines or [], max_batch),
            }
        )
    return summaries


def failed(summaries: list[dict[str, Any]]) -> list[str]:
    """'scenario (setup)' for every median result that measured nothing."""
    return [
        f"{s['scenario']} ({name})"
        for s in summaries
        for name, chosen in s["setups"].items()
        if not usable(chosen["result"])
    ]


def _fmt(value, pattern: str = "{:,.0f}") -> str:
    return "-" if value is None else pattern.format(value)


HEADER = (
    "| scenario | server | processes | inf/s (every round) | p50/p99 ms | errors "
    "| server cores | client cores | all/one inf/s (every round) | all/one p50 "
    "| model alone all/one |"
)


def _row(summary: dict[str, Any], name: str, last: bool) -> str:
    chosen = summary["setups"][name]
    result = chosen["result"] or {}
    if result.get("failure"):
        cells = ["FAILED: " + result["failure"][:80].replace("|", "/")] + ["-"] * 5
    else:
        lat = result.get("latency_ms") or {}
        errors = result.get("errors", 0)
        kinds = result.get("error_kinds") or {}
        client = result.get("client_cpu") or {}
        rounds = " / ".join(_fmt(v) for v in chosen["rounds_ips"])
        cells = [
            _fmt(result.get("throughput_ips"))
            + (f" ({rounds})" if len(chosen["rounds_ips"]) > 1 else ""),
            "/".join(_fmt(lat.get(q), "{:.2f}") for q in ("p50", "p99")),
            f"{errors}"
            + (f" ({', '.join(f'{k}={v}' for k, v in kinds.items())})" if errors else ""),
            _fmt((result.get("server_cpu") or {}).get("cores"), "{:.2f}"),
            _fmt(client.get("cores"), "{:.2f}") + (" SAT" if client.get("saturated") else ""),
        ]
    ips_ratio = p50 = alone = "-"
    if last:
        each = summary.get("rounds_machine_ratio") or []
        alone = _fmt(summary.get("machine_ratio"), "{:.2f}") + (
            f" ({' / '.join(_fmt(r, '{:.2f}') for r in each)})" if len(each) > 1 else ""
        )
        each = " / ".join(_fmt(r, "{:.2f}") for r in summary["rounds_ips_ratio"])
        ips_ratio = f"**{_fmt(summary['ips_ratio'], '{:.2f}')}**" + (
            f" ({each})" if len(summary["rounds_ips_ratio"]) > 1 else ""
        )
        p50 = _fmt(summary["p50_ratio"], "{:.2f}")
    return (
        f"| {summary['scenario']} | {name} | {_fmt(result.get('server_processes'), '{}')} | "
        + " | ".join(cells)
        + f" | {ips_ratio} | {p50} | {alone} |"
    )


def render_table(summaries: list[dict[str, Any]], pair: Sequence[ServerSetup]) -> str:
    """The setups' placement, then a Markdown table: per scenario a row per setup."""
    lines = [setup.describe() for setup in pair]
    lines += ["", HEADER, "|" + "---|" * 11]
    for summary in summaries:
        for index, setup in enumerate(pair):
            lines.append(_row(summary, setup.name, last=index == len(pair) - 1))
    return "\n".join(lines)


LEGEND = (
    "Each setup's row is its median round by inf/s; in brackets every round's inf/s. "
    "processes: the server's processes listening on the scenario's port (its process tree, "
    "from /proc). server cores: the CPU time of the server's whole process tree (supervisor "
    "and workers) over the measured window's wall time. client cores: the load generator's "
    "(SAT: it used 90% or more of its cores, so the row may measure the client). all/one: "
    "the all-cores median over the one-core median (in brackets each round's own ratio); "
    "all/one p50 likewise for the median latency. model alone all/one: the model in "
    "process, no server: one copy per worker running at once, each on its worker's CPUs at "
    "the batch a worker would form, over one copy alone on the one-core CPU at the one-core "
    "batch, measured in every round (median, every round in brackets); the most any server "
    "could gain on this machine. Clients open a connection each, and the "
    "kernel hands each connection to one worker: with few connections some workers may get "
    "none."
)
