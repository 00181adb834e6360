"""The benchmark's compare mode: two servers under the same loads, turn by turn.

A shared host's speed drifts by tens of percent within a minute, so two
servers measured one after the other, even a round apart, differ by as much
as a change to a server does. The compare mode keeps both servers up on the
same CPUs and drives every scenario against one, then at once against the
other, the first of the two alternating from scenario to scenario and from
round to round; every other round also runs the scenarios backwards. Each
round's ratio then compares two runs seconds apart, and the report is the
median of those ratios with every round's shown.

This module holds the order of the turns and the report; benchmark.py starts
the servers and drives the loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tensorflow_serving.tools.report import (
    Scenario,
    lower_median,
    ratio,
    round_order,
    throughput_ips,
    usable,
)

BASE = "server"
COMPARED = "compared"
NAMES = (BASE, COMPARED)


def round_turns(scenarios: Sequence[Scenario], index: int) -> list[tuple[Scenario, str]]:
    """The (scenario, server name) runs of round `index` (from 0), in order.

    Every other round runs the scenarios backwards; within a round the server
    that runs a scenario first alternates from one scenario to the next, and
    each scenario's first server alternates from one round to the next.
    """
    return [
        (scenario, name)
        for number, scenario in round_order(list(enumerate(scenarios)), index)
        for name in round_order(NAMES, index + number)
    ]


def summarize(
    scenarios: Sequence[Scenario], rounds: Sequence[dict[str, dict[str, dict]]]
) -> list[dict[str, Any]]:
    """Per scenario: both servers' inf/s and mean batch per round, the compared server's
    inf/s over the base server's per round, and the median of those (the lower middle
    with an even count; None if a round of either failed).

    `rounds[i][name][scenario.name]` is a load result (load_generator's to_dict).
    """
    summaries = []
    for scenario in scenarios:
        results = {name: [measured[name][scenario.name] for measured in rounds] for name in NAMES}
        ips = {name: [throughput_ips(r) for r in results[name]] for name in NAMES}
        ratios = [
            ratio(compared, base) for base, compared in zip(ips[BASE], ips[COMPARED], strict=True)
        ]
        summaries.append(
            {
                "scenario": scenario.name,
                "inferences_per_s": ips,
                "mean_batch": {
                    name: [(r.get("server_batches") or {}).get("mean") for r in results[name]]
                    for name in NAMES
                },
                "ratios": ratios,
                "median_ratio": lower_median(ratios),
                "failed": [
                    f"{scenario.name} {name} round {index + 1}"
                    for name in NAMES
                    for index, r in enumerate(results[name])
                    if not usable(r)
                ],
            }
        )
    return summaries


def failed(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """Every (scenario, server, round) that measured nothing."""
    return [item for s in summaries for item in s["failed"]]


HEADER = (
    "| scenario | server inf/s (rounds) | compared inf/s (rounds) | "
    "compared/server (rounds) | compared/server, median |"
)

LEGEND = (
    "server: ours (or --server_binary); compared: --compare_binary. Both up at once on the "
    "server CPUs, each scenario run against one and at once against the other, the first "
    "alternating by scenario and by round. compared/server: each round's ratio of the two "
    "runs; the median of the rounds' ratios (the lower middle with an even count)."
)


def render_table(summaries: Sequence[dict[str, Any]]) -> str:
    """A Markdown table, a row per scenario in the order given."""
    lines = [HEADER, "|" + "---|" * 5]
    for s in summaries:
        cells = [
            " / ".join(_number(v) for v in s["inferences_per_s"][BASE]),
            " / ".join(_number(v) for v in s["inferences_per_s"][COMPARED]),
            " / ".join(_ratio_text(r) for r in s["ratios"]),
            _ratio_text(s["median_ratio"]),
        ]
        lines.append(f"| {s['scenario']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
