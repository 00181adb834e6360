"""The benchmark's arithmetic and its table: limit, floor, ceiling and server side by side.

Two costs no server avoids: the model's compute, measured in-process
(`compute_ips(b)`, inferences/s at batch b), and the transport's per-request
cost, measured with a no-work server under the same load (`floor_rps`).
Paying both on the same core gives the ceiling, in inferences/s:

    ceiling = 1 / (1 / (floor_rps * batch) + 1 / compute_ips(b_eff))

where b_eff is the batch the model actually runs: the request's batch at
concurrency 1 or without server batching, min(batch * concurrency,
max_batch_size) with server batching. At concurrency 1 the ideal latency is
floor p50 + compute p50 at the request's batch.

b_eff is what batching could reach; what the server reached is its mean
batch over the measured window (server_metrics), and its throughput over
the model's in-process rate at that batch (limit_ips_at) is how much of the
model's time for those batches the server delivered. A concurrency sweep
prints that per protocol (render_sweep_tables).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any, TypeVar


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One load point: protocol, rows per request, requests in flight."""

    protocol: str
    batch: int
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.protocol}:{self.batch}:{self.concurrency}"


PROTOCOLS = ("grpc", "rest")


def _scenario(protocol: str, batch: str, concurrency: str, item: str) -> Scenario:
    """One checked scenario; ValueError names `item`, the text it came from."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be grpc or rest in {item!r}")
    try:
        rows, clients = int(batch), int(concurrency)
    except ValueError:
        raise ValueError(f"batch and concurrency must be integers in {item!r}") from None
    if rows < 1 or clients < 1:
        raise ValueError(f"batch and concurrency must be >= 1 in {item!r}")
    return Scenario(protocol, rows, clients)


def _distinct(scenarios: list[Scenario]) -> list[Scenario]:
    unique = list(dict.fromkeys(scenarios))
    if not unique:
        raise ValueError("no scenarios given")
    return unique


def parse_scenarios(text: str) -> list[Scenario]:
    """'grpc:1:1,rest:1:32' -> scenarios; ValueError names the bad item."""
    scenarios = []
    for item in text.split(","):
        item = item.strip()
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(f"scenario must be grpc|rest:batch:concurrency, got {item!r}")
        scenarios.append(_scenario(*parts, item))
    return _distinct(scenarios)


def sweep_scenarios(protocols: str, batch: int, concurrencies: str) -> list[Scenario]:
    """A concurrency sweep: 'grpc,rest', 1, '1,2,4' -> every protocol at each concurrency.

    Concurrencies in the order given, the protocols of one concurrency one after
    the other, in the given order at the first, reversed at the second, and so on.
    Why: the report compares the protocols at each load, and a shared host's
    speed drifts within minutes, so the two runs it compares are adjacent and
    each protocol runs first as often. ValueError names the bad item.
    """
    names = [p.strip() for p in protocols.split(",") if p.strip()]
    levels = [c.strip() for c in concurrencies.split(",")]
    return _distinct(
        [
            _scenario(protocol, str(batch), level, f"{protocol}:{batch}:{level}")
            for index, level in enumerate(levels)
            for protocol in (names if index % 2 == 0 else names[::-1])
        ]
    )


def effective_batch(scenario: Scenario, max_batch_size: int | None) -> int:
    """The batch the model runs: merged up to max_batch_size when the server batches."""
    if max_batch_size is None or scenario.concurrency == 1:
        return scenario.batch
    return max(scenario.batch, min(scenario.batch * scenario.concurrency, max_batch_size))


def limit_batches(
    scenarios: list[Scenario], max_batch_size: int | None, between: bool = False
) -> list[int]:
    """Every batch size the in-process limit must be measured at.

    With `between`, also the powers of two between each scenario's batch and
    its b_eff, so that a batch size the server reached in between lies
    within 2x of a measured one on either side (see limit_ips_at).
    """
    sizes = {s.batch for s in scenarios} | {effective_batch(s, max_batch_size) for s in scenarios}
    if between:
        for s in scenarios:
            top = effective_batch(s, max_batch_size)
            power = 1
            while power < top:
                if power > s.batch:
                    sizes.add(power)
                power *= 2
    return sorted(sizes)


def merge_limit_passes(passes: list[dict[str, dict]]) -> dict[str, dict]:
    """Per batch size, the pass with the highest throughput, with every pass's value kept.

    Nothing runs the model faster than the hardware allows, so the best pass is
    the closest to the limit; slower passes met a busier host.
    """
    merged: dict[str, dict] = {}
    for limits in passes:
        for batch, record in limits.items():
            best = merged.get(batch)
            if best is None or record["inferences_per_s"] > best["inferences_per_s"]:
                merged[batch] = dict(record)
    for batch, record in merged.items():
        record["passes_inferences_per_s"] = [
            p[batch]["inferences_per_s"] for p in passes if batch in p
        ]
    return merged


def ceiling_ips(floor_rps: float | None, batch: int, compute_ips: float | None) -> float | None:
    """Inferences/s when each request pays its transport and its share of compute in series."""
    if not floor_rps or not compute_ips:
        return None
    return 1.0 / (1.0 / (floor_rps * batch) + 1.0 / compute_ips)


def limit_ips_at(limits: dict[str, dict], batch: float) -> float | None:
    """In-process inferences/s at `batch` rows per call, which may lie between measured sizes.

    A call's time is taken as linear in its rows between the two measured
    sizes around `batch`. Where a call costs a fixed part plus a part per
    row, a server that ran N rows in K batches of mixed sizes needs as much
    model time as K calls of N/K rows, so this rate at the mean batch is the
    model's rate for the mix the server ran. Outside the measured sizes, the
    nearest one's rate; None without measurements.
    """
    points = sorted(
        (int(size), int(size) / record["inferences_per_s"])
        for size, record in limits.items()
        if record.get("inferences_per_s")
    )
    if not points:
        return None
    if batch <= points[0][0]:
        return points[0][0] / points[0][1]
    for (low, low_s), (high, high_s) in itertools.pairwise(points):
        if batch <= high:
            seconds = low_s + (high_s - low_s) * (batch - low) / (high - low)
            return batch / seconds
    return points[-1][0] / points[-1][1]


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference to three decimals; None when either is missing or reference is 0."""
    if value is None or not reference:
        return None
    return round(value / reference, 3)


def usable(result: dict | None) -> bool:
    """A load result that measured something (no failure, some requests answered)."""
    return bool(result) and not result.get("failure") and result.get("requests_ok", 0) > 0


_T = TypeVar("_T")


def round_order(items: Sequence[_T], index: int) -> list[_T]:
    """`items` in round `index`'s order: as given in even rounds, reversed in odd ones, so
    that nothing always runs first or last while the host drifts."""
    return list(items) if index % 2 == 0 else list(reversed(items))


def lower_median(values: Sequence[float | None]) -> float | None:
    """The median, the lower middle with an even count; None if empty or any is None
    (a median over the rounds that ran would mislead)."""
    if not values or None in values:
        return None
    return sorted(values)[(len(values) - 1) // 2]


def throughput_ips(result: dict | None) -> float | None:
    """A load result's inferences/s; None when it is not usable."""
    return result["throughput_ips"] if usable(result) else None


def mean_batch(scenario: Scenario, max_batch_size: int | None, server: dict | None) -> float | None:
    """Rows per model run the server averaged over its measured window.

    Without server batching each request runs alone, at its own batch; with
    it, the server's count of its batches (`server_batches` of the load
    result, from its Prometheus page); None when that could not be read.
    """
    if not usable(server):
        return None
    if max_batch_size is None:
        return float(scenario.batch)
    return (server.get("server_batches") or {}).get("mean")


def others_on_cpus(result: dict | None, cpus: list[int] | None) -> float | None:
    """Cores of `cpus` that processes other than the measured server kept busy."""
    if not usable(result) or not cpus or not result.get("cpu_busy"):
        return None
    busy = sum(result["cpu_busy"].get(str(c), 0.0) for c in cpus)
    own = (result.get("server_cpu") or {}).get("cores", 0.0)
    return round(max(0.0, busy - own), 3)


def scenario_summary(
    scenario: Scenario,
    max_batch_size: int | None,
    limits: dict[str, dict],
    floor: dict | None,
    server: dict | None,
    server_cpus: list[int] | None = None,
    gapped_limit: dict | None = None,
    minimal: dict | None = None,
    stand_in: dict | None = None,
    model_floor: dict | None = None,
) -> dict[str, Any]:
    """One scenario's record: the measurements and the derived ceiling and ratios.

    With `server_cpus` (the pinned server side), each load result also gets
    `others_on_server_cpus`: what other processes took from the server's core.
    With `gapped_limit` (the limit at b_eff measured with idle gaps, for
    concurrency 1) a second ceiling is derived from it the same way. With
    `minimal` (the minimal server's load result) its ratios come too, and the
    server's throughput over the minimal server's. With `stand_in` (the
    stand-in's load result: the minimal server with a busy loop as long as
    the limit's time per call) its ratio to the same ceiling, and the
    minimal server's throughput over it. With `model_floor` (the floor with the
    model in a stand-in batch thread) the server's throughput over it.
    `mean_batch` and the server's ratio to the limit at that batch
    (limit_ips_at) come with every server result.
    """
    for result in (floor, minimal, stand_in, model_floor, server):
        if result is not None and usable(result):
            result["others_on_server_cpus"] = others_on_cpus(result, server_cpus)
    b_eff = effective_batch(scenario, max_batch_size)
    limit = limits.get(str(b_eff))
    limit_at_batch = limits.get(str(scenario.batch))
    compute = limit["inferences_per_s"] if limit else None
    floor_rps = floor["throughput_rps"] if usable(floor) else None
    ceiling = ceiling_ips(floor_rps, scenario.batch, compute)
    ideal_p50 = None
    if scenario.concurrency == 1 and floor_rps and limit_at_batch:
        ideal_p50 = round(floor["latency_ms"]["p50"] + limit_at_batch["p50_ms"], 3)
    server_ips = throughput_ips(server)
    server_batch = mean_batch(scenario, max_batch_size, server)
    limit_at_mean = limit_ips_at(limits, server_batch) if server_batch else None
    minimal_ips = throughput_ips(minimal)
    stand_in_ips = throughput_ips(stand_in)
    model_floor_ips = throughput_ips(model_floor)
    gapped_ceiling = gapped_ideal_p50 = None
    if gapped_limit and floor_rps and scenario.concurrency == 1:
        gapped_ceiling = ceiling_ips(floor_rps, scenario.batch, gapped_limit["inferences_per_s"])
        gapped_ideal_p50 = round(floor["latency_ms"]["p50"] + gapped_limit["p50_ms"], 3)
    return {
        "scenario": scenario.name,
        "protocol": scenario.protocol,
        "batch": scenario.batch,
        "concurrency": scenario.concurrency,
        "b_eff": b_eff,
        "limit": limit,
        "floor": floor,
        "server": server,
        "ceiling_ips": round(ceiling, 1) if ceiling else None,
        "ideal_p50_ms": ideal_p50,
        "server_vs_limit": ratio(server_ips, compute),
        "server_vs_ceiling": ratio(server_ips, ceiling),
        "mean_batch": server_batch,
        "limit_at_mean_batch_ips": round(limit_at_mean, 1) if limit_at_mean else None,
        "server_vs_limit_at_mean_batch": ratio(server_ips, limit_at_mean),
        "gapped_limit": gapped_limit,
        "gapped_ceiling_ips": round(gapped_ceiling, 1) if gapped_ceiling else None,
        "gapped_ideal_p50_ms": gapped_ideal_p50,
        "server_vs_gapped_ceiling": ratio(server_ips, gapped_ceiling),
        "minimal": minimal,
        "minimal_vs_limit": ratio(minimal_ips, compute),
        "minimal_vs_ceiling": ratio(minimal_ips, ceiling),
        "server_vs_minimal": ratio(server_ips, minimal_ips),
        "stand_in": stand_in,
        "stand_in_vs_ceiling": ratio(stand_in_ips, ceiling),
        "minimal_vs_stand_in": ratio(minimal_ips, stand_in_ips),
        "model_floor": model_floor,
        "server_vs_model_floor": ratio(server_ips, model_floor_ips),
    }


def round_limits(passes: list[dict[str, dict]], index: int) -> dict[str, dict]:
    """The limit of round `index`: the better of the passes measured just before and after it.

    passes[i] is measured before round i's load runs; a last extra pass (if
    any) after the final round. Bracketing each round keeps its limit from
    the same minutes as its floor and server.
    """
    start = min(index, len(passes) - 1)  # no limit party: the one pass of payloads
    return merge_limit_passes(passes[start : index + 2])


def _round_key(summary: dict[str, Any]) -> float:
    """What ranks one scenario's rounds: server/ceiling, else server/limit, else server inf/s."""
    for key in ("server_vs_ceiling", "server_vs_limit"):
        if summary.get(key) is not None:
            return summary[key]
    server = summary.get("server")
    return throughput_ips(server) or 0.0


def median_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per scenario, the summary of its median round, with every round's numbers kept.

    A shared machine's speed drifts by tens of percent within minutes, so one
    round's ratio says as much about the host as about the server. Repeated
    rounds, each with its own limit and floor, and the median of their
    ratios make the number a user compares steadier; `rounds` shows the spread.
    With an even count the lower middle round is taken.
    """
    chosen = []
    for by_round in zip(*rounds, strict=True):
        ranked = sorted(range(len(by_round)), key=lambda i: _round_key(by_round[i]))
        pick = ranked[(len(ranked) - 1) // 2]
        summary = dict(by_round[pick])
        summary["round"] = pick + 1
        summary["rounds"] = [
            {
                **_parties_ips(s),
                "ceiling_ips": s["ceiling_ips"],
                "server_vs_limit": s["server_vs_limit"],
                "server_vs_ceiling": s["server_vs_ceiling"],
            }
            for s in by_round
        ]
        chosen.append(summary)
    return chosen


NOISE_CORES = 0.1


def noisy_parties(summaries: list[dict[str, Any]], threshold: float = NOISE_CORES) -> list[str]:
    """'scenario party' for every measurement during which other processes took at
    least `threshold` cores from the server's CPU: those numbers are not the party's."""
    noisy = []
    for s in summaries:
        limit = s.get("limit") or {}
        if (limit.get("others_cores") or 0.0) >= threshold:
            noisy.append(f"{s['scenario']} limit")
        for party in ("floor", "minimal", "stand_in", "model_floor", "server"):
            if ((s.get(party) or {}).get("others_on_server_cpus") or 0.0) >= threshold:
                noisy.append(f"{s['scenario']} {party}")
    return noisy


def engine_notes(results: list[dict | None]) -> list[str]:
    """What the load generators of these results did not measure or check, once each."""
    notes = [r.get("engine_note") for r in results if r]
    return list(dict.fromkeys(n for n in notes if n))


def _fmt(value, pattern: str = "{:,.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def _load_cells(result: dict | None) -> list[str]:
    if not result:
        return ["-"] * 8
    if result.get("failure"):
        return ["FAILED: " + result["failure"][:80].replace("|", "/")] + ["-"] * 7
    lat = result.get("latency_ms", {})
    errors = result.get("errors", 0)
    kinds = result.get("error_kinds") or {}
    error_cell = f"{errors}" + (
        f" ({', '.join(f'{k}={v}' for k, v in kinds.items())})" if errors else ""
    )
    client = result.get("client_cpu") or {}
    client_cell = _fmt(client.get("cores"), "{:.2f}") + (" SAT" if client.get("saturated") else "")
    server_cpu = result.get("server_cpu") or {}
    return [
        _fmt(result.get("throughput_ips")),
        _fmt(result.get("throughput_rps")),
        "/".join(_fmt(lat.get(q), "{:.2f}") for q in ("p50", "p90", "p99")),
        error_cell,
        _fmt(server_cpu.get("us_per_inference")),
        _fmt(server_cpu.get("cores"), "{:.2f}"),
        _fmt(result.get("others_on_server_cpus"), "{:.2f}"),
        client_cell,
    ]


HEADER = (
    "| scenario | party | inf/s | req/s | p50/p90/p99 ms | errors | server CPU us/inf "
    "| server cores | others on server CPU | client cores | vs limit | vs ceiling |"
)


def render_table(summaries: list[dict[str, Any]]) -> str:
    """A Markdown table: per scenario the limit, floor, ceiling and server rows."""
    lines = [HEADER, "|" + "---|" * 12]
    for s in summaries:
        name = s["scenario"]
        limit = s["limit"]
        if limit:
            lines.append(
                f"| {name} | limit (in-process, b{s['b_eff']}) | "
                f"{_fmt(limit['inferences_per_s'])} | {_fmt(limit['inferences_per_s'] / s['b_eff'])} "
                f"| {limit['p50_ms']:.2f}/-/{limit['p99_ms']:.2f} | - | "
                f"{_fmt(limit['cpu_us_per_inference'])} | {limit['cpu_cores']:.2f} | "
                f"{_fmt(limit.get('others_cores'), '{:.2f}')} | - | - | - |"
            )
        if s["floor"] is not None:
            cells = _load_cells(s["floor"])
            lines.append(
                f"| {name} | floor (no-work {s['protocol']}) | " + " | ".join(cells) + " | - | - |"
            )
        if s["ceiling_ips"] is not None:
            ideal = _fmt(s["ideal_p50_ms"], "{:.2f}")
            lines.append(
                f"| {name} | ceiling | {_fmt(s['ceiling_ips'])} | - | {ideal} (ideal p50) "
                "| - | - | - | - | - | - | - |"
            )
        if s.get("gapped_ceiling_ips") is not None:
            gap = s["gapped_limit"]
            lines.append(
                f"| {name} | ceiling, idle gaps (limit p50 {gap['p50_ms']:.2f} ms after "
                f"{_fmt(gap.get('idle_gap_us'))} us idle) | {_fmt(s['gapped_ceiling_ips'])} | - "
                f"| {_fmt(s['gapped_ideal_p50_ms'], '{:.2f}')} (ideal p50) | - | - | - | - | - "
                f"| - | server {_fmt(s['server_vs_gapped_ceiling'], '{:.2f}')} |"
            )
        if s.get("minimal") is not None:
            lines.append(
                f"| {name} | minimal server (decode, model call, encode) | "
                + " | ".join(_load_cells(s["minimal"]))
                + f" | {_fmt(s['minimal_vs_limit'], '{:.2f}')} "
                f"| {_fmt(s['minimal_vs_ceiling'], '{:.2f}')} "
                f"(server/minimal {_fmt(s['server_vs_minimal'], '{:.2f}')}) |"
            )
        if s.get("stand_in") is not None:
            busy = _fmt(s["stand_in"].get("stand_in_us"))
            lines.append(
                f"| {name} | stand-in server (minimal, a {busy} us busy loop for the model) | "
                + " | ".join(_load_cells(s["stand_in"]))
                + f" | - | {_fmt(s['stand_in_vs_ceiling'], '{:.2f}')} "
                f"(minimal/stand-in {_fmt(s['minimal_vs_stand_in'], '{:.2f}')}) |"
            )
        if s.get("model_floor") is not None:
            lines.append(
                f"| {name} | model floor (floor + the model in a batch thread) | "
                + " | ".join(_load_cells(s["model_floor"]))
                + f" | - | (server/model floor {_fmt(s['server_vs_model_floor'], '{:.2f}')}) |"
            )
        if s["server"] is not None:
            cells = _load_cells(s["server"])
            lines.append(
                f"| **{name}** | **server** | "
                + " | ".join(cells)
                + f" | {_fmt(s['server_vs_limit'], '{:.2f}')} "
                f"| **{_fmt(s['server_vs_ceiling'], '{:.2f}')}** |"
            )
        if len(s.get("rounds") or []) > 1:
            lines.append(_rounds_row(s))
    return "\n".join(lines)


def _rounds_row(s: dict[str, Any]) -> str:
    """Every round's server inf/s and ratios; the rows above are round `s['round']`, the median."""
    rounds = s["rounds"]

    def each(key: str, pattern: str) -> str:
        return " / ".join(_fmt(r[key], pattern) for r in rounds)

    return (
        f"| {s['scenario']} | all {len(rounds)} rounds (median: round {s['round']}) "
        f"| {each('server_ips', '{:,.0f}')} | - | - | - | - | - | - | - "
        f"| {each('server_vs_limit', '{:.2f}')} | {each('server_vs_ceiling', '{:.2f}')} |"
    )


_PROTOCOL_NAMES = {"grpc": "gRPC", "rest": "REST"}
SWEEP_HEADER = (
    "| clients | inf/s | p50/p99 ms | errors | mean batch | server cores | client cores "
    "| limit at mean batch | vs limit | vs fewer clients |"
)


def render_sweep_tables(summaries: list[dict[str, Any]]) -> str:
    """Markdown tables of the server alone, one per protocol and request batch, a row per
    concurrency in the order run."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for s in summaries:
        groups.setdefault((s["protocol"], s["batch"]), []).append(s)
    blocks = []
    for (protocol, batch), rows in groups.items():
        title = f"{_PROTOCOL_NAMES[protocol]}, {batch} row{'s' if batch > 1 else ''} per request:"
        lines = [title, "", SWEEP_HEADER, "|" + "---|" * 10]
        fewer = versus_fewer_clients(rows)
        lines.extend(f"{_sweep_row(s)} {_fmt(fewer[s['concurrency']], '{:.2f}')} |" for s in rows)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def versus_fewer_clients(summaries: list[dict[str, Any]]) -> dict[int, float | None]:
    """By concurrency, the server's inf/s over the best it reached with fewer clients, for the
    summaries of one protocol and request batch: below 1, more clients got less done.

    With rounds (median_rounds), the median of each round's own ratio, as in
    protocol_ratios: the loads of one round ran minutes apart at most, its rounds
    further apart. None for the lowest concurrency, or where a round of this load
    measured nothing; a lower load that measured nothing is left out of the best.
    """
    by_clients = sorted(summaries, key=lambda s: s["concurrency"])
    rounds = [s.get("rounds") or [_parties_ips(s)] for s in by_clients]
    if len({len(r) for r in rounds}) > 1:  # not rounds of one run: compare the medians
        rounds = [[_parties_ips(s)] for s in by_clients]
    ratios: dict[int, float | None] = {}
    for index, s in enumerate(by_clients):
        per_round = []
        for round_index, this_round in enumerate(rounds[index]):
            fewer = [r[round_index]["server_ips"] for r in rounds[:index]]
            measured = [ips for ips in fewer if ips is not None]
            best = max(measured) if measured else None
            per_round.append(ratio(this_round["server_ips"], best))
        ratios[s["concurrency"]] = lower_median(per_round)
    return ratios


def _sweep_row(s: dict[str, Any]) -> str:
    server = s["server"]
    cells = _load_cells(server)  # inf/s, req/s, latencies, errors, us/inf, cores, others, client
    lat = (server or {}).get("latency_ms") or {}
    return (
        "| "
        + " | ".join(
            [
                str(s["concurrency"]),
                cells[0],
                "/".join(_fmt(lat.get(q), "{:.2f}") for q in ("p50", "p99")),
                cells[3],
                _fmt(s["mean_batch"], "{:.1f}"),
                cells[5],
                cells[7],
                _fmt(s["limit_at_mean_batch_ips"]),
                _fmt(s["server_vs_limit_at_mean_batch"], "{:.2f}"),
            ]
        )
        + " |"
    )


PROTOCOL_RATIOS_HEADER = (
    "| rows per request | clients | server gRPC/REST | gRPC model floor/REST server "
    "| model floor gRPC/REST | floor gRPC/REST |"
)


def protocol_ratios(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """gRPC inf/s over REST inf/s for every (batch, concurrency) run with both protocols:
    the server's, the model floor's and the no-work floor's, and the gRPC model floor's
    over the REST server's (`grpc_bound`: no gRPC server doing at least the model floor's
    work beats it). None where not measured.

    With rounds (median_rounds), each ratio is the median of the rounds' own ratios:
    a round's two runs are adjacent in time (sweep_scenarios), so its ratio is free of
    the host's drift between rounds, which comparing each protocol's median round is not.
    """
    by_load: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for s in summaries:
        by_load.setdefault((s["batch"], s["concurrency"]), {})[s["protocol"]] = s
    ratios = []
    for (batch, concurrency), pair in by_load.items():
        if set(pair) != {"grpc", "rest"}:
            continue
        row: dict[str, Any] = {"batch": batch, "concurrency": concurrency}
        grpc, rest = pair["grpc"], pair["rest"]
        grpc_rounds = grpc.get("rounds") or [_parties_ips(grpc)]
        rest_rounds = rest.get("rounds") or [_parties_ips(rest)]
        if len(grpc_rounds) != len(rest_rounds):  # not rounds of one run: no pairs
            grpc_rounds, rest_rounds = [_parties_ips(grpc)], [_parties_ips(rest)]
        for party in ("server", "model_floor", "floor"):
            row[party] = _median_ratio(grpc_rounds, party, rest_rounds, party)
        row["grpc_bound"] = _median_ratio(grpc_rounds, "model_floor", rest_rounds, "server")
        ratios.append(row)
    return ratios


def _parties_ips(summary: dict[str, Any]) -> dict[str, float | None]:
    """The summary's inf/s by party, keyed as a round of median_rounds' `rounds`."""
    return {
        f"{party}_ips": throughput_ips(summary.get(party))
        for party in ("server", "model_floor", "floor")
    }


def _median_ratio(
    numerators: list[dict[str, Any]], top: str, denominators: list[dict[str, Any]], bottom: str
) -> float | None:
    """The median over rounds of numerator round's `top` inf/s over the same round's
    `bottom`; the lower middle with an even count; None if any round lacks one."""
    return lower_median(
        [
            ratio(n.get(f"{top}_ips"), d.get(f"{bottom}_ips"))
            for n, d in zip(numerators, denominators, strict=True)
        ]
    )


def render_protocol_ratios(summaries: list[dict[str, Any]]) -> str | None:
    """A Markdown table of protocol_ratios, in the order run; None without both protocols."""
    ratios = protocol_ratios(summaries)
    if not ratios:
        return None
    lines = ["gRPC over REST, same rows and clients:", "", PROTOCOL_RATIOS_HEADER]
    lines.append("|" + "---|" * 6)
    for r in ratios:
        parties = ("server", "grpc_bound", "model_floor", "floor")
        cells = [_fmt(r[p], "{:.2f}") for p in parties]
        lines.append(f"| {r['batch']} | {r['concurrency']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PROTOCOL_RATIOS_LEGEND = (
    "gRPC inf/s over REST inf/s of the same party under the same load (with rounds, the "
    "median of each round's ratio); gRPC model floor/REST server: the gRPC floor that also runs the model "
    "in a stand-in batch thread, over the REST server: a gRPC server on this transport "
    "does at least that floor's work, so its ratio to the REST server stays below this one."
)


SWEEP_LEGEND = (
    "mean batch: rows per batch the server ran in the measured window (its batch-size "
    "histogram's sum/count over the window, padded sizes; without batching, the request's "
    "batch); server cores: the server's CPU time over the window's wall time; limit at mean "
    "batch: the model's in-process inf/s at that batch, the call time interpolated linearly "
    "between the measured batch sizes around it; vs limit: server inf/s over it; vs fewer "
    "clients: server inf/s over the best with fewer clients (with rounds, the median of each "
    "round's own ratio)."
)


LEGEND = (
    "limit: the signature called in-process (Session callable, server's thread settings, "
    "server's cores) at the batch the server runs (b_eff); floor: a no-work server on the "
    "same transport answering a fixed response, same load; ceiling = 1/(1/(floor_rps*batch) "
    "+ 1/limit_ips(b_eff)); ceiling, idle gaps (concurrency 1): the same with the limit "
    "measured after the floor's p50 of idle time before each call, as a one-client server "
    "idles (the core may halt and its caches cool meanwhile); minimal server (gRPC, one "
    "client): parses, decodes, calls the model as the limit does and encodes, nothing else "
    "(no batching, checks or metrics), so its distance to the ceiling is the machine's and "
    "server/minimal is what the server's own code costs; stand-in server: the minimal server "
    "with the model call replaced by a busy loop as long as the limit's time per call (same "
    "ceiling), so it shows what transport and handler reach when the model's cost does not "
    "change between requests, and minimal/stand-in what running the real model between "
    "requests costs; model floor: the floor whose stand-in batch thread runs the model on "
    "each batch of held requests (at most max_batch_size rows, started as soon as the "
    "thread is free and, on gRPC, the requests being read are in, as the server's "
    "scheduler does) before answering them, so server/model floor is what the server's own "
    "code costs at that load; vs limit/ceiling: inf/s over them. "
    "Latency: per request "
    "(limit: per call). others on server CPU: cores of the server's CPU other processes "
    "kept busy meanwhile (noise on a shared machine). client cores SAT: the load generator "
    "used >= 90% of its cores, so that row may measure the client."
)
