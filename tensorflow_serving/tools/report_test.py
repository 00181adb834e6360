"""The benchmark's arithmetic and table: what a user reads off the report."""

import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import report
from tensorflow_serving.tools.report import Scenario


def test_scenarios_parse_in_order_without_duplicates():
    assert report.parse_scenarios("grpc:1:1, rest:1:32,grpc:1:1,grpc:32:1") == [
        Scenario("grpc", 1, 1),
        Scenario("rest", 1, 32),
        Scenario("grpc", 32, 1),
    ]


@pytest.mark.parametrize("text", ["grpc:1", "http:1:1", "grpc:a:1", "grpc:0:1", "rest:1:0", ""])
def test_bad_scenarios_are_refused_with_the_item(text):
    with pytest.raises(ValueError):
        report.parse_scenarios(text)


def test_a_sweep_runs_both_protocols_at_each_concurrency_each_first_in_turn():
    """The two runs the report compares are adjacent, and neither protocol always goes first."""
    assert report.sweep_scenarios("grpc, rest", 1, "1,4,2,8") == [
        Scenario("grpc", 1, 1),
        Scenario("rest", 1, 1),
        Scenario("rest", 1, 4),
        Scenario("grpc", 1, 4),
        Scenario("grpc", 1, 2),
        Scenario("rest", 1, 2),
        Scenario("rest", 1, 8),
        Scenario("grpc", 1, 8),
    ]
    assert report.sweep_scenarios("grpc,rest", 1, "1,4,1") == [
        Scenario("grpc", 1, 1),
        Scenario("rest", 1, 1),
        Scenario("rest", 1, 4),
        Scenario("grpc", 1, 4),
    ]
    assert report.sweep_scenarios("rest", 8, "16") == [Scenario("rest", 8, 16)]


@pytest.mark.parametrize(
    ("protocols", "batch", "levels", "named"),
    [
        ("grpc,http", 1, "1", "'http:1:1'"),
        ("grpc", 1, "1,x", "'grpc:1:x'"),
        ("grpc", 1, "0", "'grpc:1:0'"),
        ("grpc", 0, "1", "'grpc:0:1'"),
        ("grpc", 1, "1,,2", "'grpc:1:'"),
    ],
)
def test_bad_sweeps_are_refused_with_the_item(protocols, batch, levels, named):
    with pytest.raises(ValueError, match=named):
        report.sweep_scenarios(protocols, batch, levels)
    with pytest.raises(ValueError, match="no scenarios"):
        report.sweep_scenarios(" ", 1, "1")


def test_rounds_alternate_the_order_and_the_median_is_the_lower_middle():
    pair = ("one core", "all cores")
    assert report.round_order(pair, 0) == list(pair)
    assert report.round_order(pair, 1) == list(reversed(pair))
    assert report.round_order(pair, 2) == list(pair)
    assert report.lower_median([0.9, 1.2, 1.0]) == 1.0
    assert report.lower_median([1.1, 0.8]) == 0.8
    assert report.lower_median([1.1, None, 0.8]) is None
    assert report.lower_median([]) is None


def test_effective_batch_follows_server_batching():
    assert report.effective_batch(Scenario("grpc", 1, 32), None) == 1
    assert report.effective_batch(Scenario("grpc", 1, 32), 32) == 32
    assert report.effective_batch(Scenario("grpc", 1, 8), 32) == 8
    assert report.effective_batch(Scenario("grpc", 4, 32), 32) == 32
    assert report.effective_batch(Scenario("grpc", 32, 1), 32) == 32
    assert report.effective_batch(Scenario("grpc", 1, 1), 32) == 1
    # A request larger than the cap still runs at its own size.
    assert report.effective_batch(Scenario("grpc", 64, 4), 32) == 64
    assert report.limit_batches([Scenario("grpc", 1, 32), Scenario("rest", 1, 1)], 32) == [1, 32]


def test_a_sweep_measures_the_limit_at_powers_of_two_up_to_each_merged_batch():
    sweep = report.sweep_scenarios("grpc", 1, "1,64")
    assert report.limit_batches(sweep, 32) == [1, 32]
    assert report.limit_batches(sweep, 32, between=True) == [1, 2, 4, 8, 16, 32]
    assert report.limit_batches(report.sweep_scenarios("rest", 3, "1,8"), 1000, between=True) == [
        3,
        4,
        8,
        16,
        24,
    ]
    assert report.limit_batches(sweep, None, between=True) == [1], "no batching: one size"


def test_ceiling_serialises_transport_and_compute():
    # The numbers: floor 2,150 rps and compute 1,640 inf/s at batch 1.
    assert report.ceiling_ips(2150, 1, 1640) == pytest.approx(930, abs=1)
    # Batch 32 at concurrency 1: floor 2,090 rps carries 32 rows each.
    assert report.ceiling_ips(2090, 32, 3670) == pytest.approx(3480, abs=5)
    assert report.ceiling_ips(None, 1, 1640) is None
    assert report.ceiling_ips(2150, 1, None) is None


def test_limit_passes_keep_the_best_per_batch():
    before = {"1": {"inferences_per_s": 900.0, "p50_ms": 1.0}, "32": {"inferences_per_s": 3600.0}}
    after = {"1": {"inferences_per_s": 1400.0, "p50_ms": 0.7}, "32": {"inferences_per_s": 2800.0}}
    merged = report.merge_limit_passes([before, after])
    assert merged["1"]["inferences_per_s"] == 1400.0 and merged["1"]["p50_ms"] == 0.7
    assert merged["32"]["inferences_per_s"] == 3600.0
    assert merged["1"]["passes_inferences_per_s"] == [900.0, 1400.0]
    assert "passes_inferences_per_s" not in before["1"]


def _load(ips, p50, errors=0, saturated=False, batch=1):
    return {
        "throughput_ips": ips,
        "throughput_rps": ips / batch,
        "requests_ok": 100,
        "errors": errors,
        "error_kinds": {"grpc:UNAVAILABLE": errors} if errors else {},
        "latency_ms": {"p50": p50, "p90": p50 * 1.5, "p99": p50 * 3},
        "client_cpu": {"cores": 0.95 if saturated else 0.4, "saturated": saturated},
        "server_cpu": {"us_per_inference": 500.0, "cores": 0.9},
    }


LIMITS = {
    "1": {
        "inferences_per_s": 1640.0,
        "p50_ms": 0.6,
        "p99_ms": 0.9,
        "cpu_us_per_inference": 600.0,
        "cpu_cores": 1.0,
    },
    "32": {
        "inferences_per_s": 3670.0,
        "p50_ms": 8.7,
        "p99_ms": 9.5,
        "cpu_us_per_inference": 270.0,
        "cpu_cores": 1.0,
    },
}


def test_summary_has_ratios_and_ideal_latency_at_concurrency_one():
    s = report.scenario_summary(
        Scenario("grpc", 1, 1), 32, LIMITS, _load(2150, 0.45), _load(837, 1.1)
    )
    assert s["b_eff"] == 1
    assert s["ceiling_ips"] == pytest.approx(930, abs=1)
    assert s["ideal_p50_ms"] == pytest.approx(1.05)
    assert s["server_vs_ceiling"] == pytest.approx(0.9, abs=0.01)
    assert s["server_vs_limit"] == pytest.approx(837 / 1640, abs=0.001)


def test_idle_gap_limit_gives_a_second_lower_ceiling_at_concurrency_one():
    """One client: the limit measured after idle gaps (halted core, cooler caches) sets what is reachable."""
    gapped = {**LIMITS["1"], "inferences_per_s": 720.0, "p50_ms": 1.38, "idle_gap_us": 450.0}
    s = report.scenario_summary(
        Scenario("grpc", 1, 1), 32, LIMITS, _load(2150, 0.45), _load(540, 1.9), None, gapped
    )
    assert s["ceiling_ips"] == pytest.approx(930, abs=1)
    assert s["gapped_ceiling_ips"] == pytest.approx(1 / (1 / 2150 + 1 / 720), abs=1)
    assert s["gapped_ideal_p50_ms"] == pytest.approx(0.45 + 1.38)
    assert s["server_vs_gapped_ceiling"] == pytest.approx(540 / s["gapped_ceiling_ips"], abs=0.001)
    table = report.render_table([s])
    assert all(line.count("|") == 13 for line in table.splitlines()), table
    assert "ceiling, idle gaps (limit p50 1.38 ms after 450 us idle) | 539 |" in table
    assert "server 1.00 |" in table
    # Not at higher concurrency, where the server never idles.
    busy = report.scenario_summary(
        Scenario("grpc", 1, 32), 32, LIMITS, _load(7700, 4), _load(2300, 13), None, gapped
    )
    assert busy["gapped_ceiling_ips"] is None
    assert "idle gaps" not in report.render_table([busy])


# 1 ms a call at b1, 4 ms at b32: 1,000 and 8,000 inferences/s.
LINEAR_LIMITS = {
    "1": {**LIMITS["1"], "inferences_per_s": 1000.0},
    "32": {**LIMITS["32"], "inferences_per_s": 8000.0},
}


def test_the_limit_between_measured_batches_interpolates_the_call_time():
    assert report.limit_ips_at(LINEAR_LIMITS, 1) == pytest.approx(1000)
    assert report.limit_ips_at(LINEAR_LIMITS, 32) == pytest.approx(8000)
    # 16.5 rows: 2.5 ms a call.
    assert report.limit_ips_at(LINEAR_LIMITS, 16.5) == pytest.approx(16.5 / 0.0025)
    # Outside the measured sizes, the nearest one's rate; nothing measured, nothing known.
    assert report.limit_ips_at(LINEAR_LIMITS, 40) == pytest.approx(8000)
    assert report.limit_ips_at(LINEAR_LIMITS, 0.5) == pytest.approx(1000)
    assert report.limit_ips_at({}, 4) is None


def _one_client(stand_in: dict | None = None) -> dict:
    """grpc:1:1 with floor 2150/s, server 600/s and the minimal server 750/s."""
    return report.scenario_summary(
        Scenario("grpc", 1, 1),
        32,
        LIMITS,
        _load(2150, 0.45),
        _load(600, 1.6),
        None,
        None,
        _load(750, 1.3),
        stand_in,
    )


def test_minimal_server_tells_the_servers_own_cost_from_the_machines():
    """The minimal server's ratios, and the server's throughput over it, in the summary and table."""
    s = _one_client()
    assert s["minimal_vs_ceiling"] == pytest.approx(750 / s["ceiling_ips"], abs=0.001)
    assert s["minimal_vs_limit"] == pytest.approx(750 / 1640, abs=0.001)
    assert s["server_vs_minimal"] == pytest.approx(0.8)
    assert s["server_vs_ceiling"] == pytest.approx(600 / s["ceiling_ips"], abs=0.001)
    table = report.render_table([s])
    assert all(line.count("|") == 13 for line in table.splitlines()), table
    row = next(line for line in table.splitlines() if "minimal server" in line)
    assert "| 750 |" in row and "| 0.46 |" in row and "0.81 (server/minimal 0.80) |" in row
    # Without a minimal server (other scenarios, or not measured): no row, no ratios.
    none = report.scenario_summary(Scenario("grpc", 1, 1), 32, LIMITS, _load(2150, 0.45), None)
    assert none["minimal"] is None and none["server_vs_minimal"] is None
    assert "minimal server" not in report.render_table([none])


def test_stand_in_shares_the_ceiling_and_shows_what_the_real_model_costs():
    """The stand-in's ratio to the same ceiling, minimal over stand-in, and its row."""
    stand_in = _load(900, 1.1)
    stand_in["stand_in_us"] = 609.8
    s = _one_client(stand_in)
    assert s["stand_in_vs_ceiling"] == pytest.approx(900 / s["ceiling_ips"], abs=0.001)
    assert s["minimal_vs_stand_in"] == pytest.approx(750 / 900, abs=0.001)
    table = report.render_table([s])
    assert all(line.count("|") == 13 for line in table.splitlines()), table
    lines = table.splitlines()
    row = next(line for line in lines if "stand-in server" in line)
    assert "a 610 us busy loop" in row and "| 900 |" in row
    assert f"| {900 / s['ceiling_ips']:.2f} (minimal/stand-in 0.83) |" in row
    # Between the minimal server's row and the server's.
    names = [line.split("|")[2].strip() for line in lines[2:]]
    assert names.index("**server**") - 1 == next(
        i for i, n in enumerate(names) if n.startswith("stand-in")
    )
    # Not measured: no row, no ratios.
    none = report.scenario_summary(Scenario("grpc", 1, 1), 32, LIMITS, _load(2150, 0.45), None)
    assert none["stand_in"] is None and none["minimal_vs_stand_in"] is None
    assert "stand-in" not in report.render_table([none])


def test_summary_with_batching_uses_the_merged_batch_and_no_ideal_latency():
    s = report.scenario_summary(
        Scenario("grpc", 1, 32), 32, LIMITS, _load(7700, 4), _load(2300, 13)
    )
    assert s["b_eff"] == 32
    assert s["ideal_p50_ms"] is None
    assert s["server_vs_limit"] == pytest.approx(2300 / 3670, abs=0.001)


def test_the_servers_mean_batch_is_its_own_count_and_its_limit_is_taken_there():
    server = {**_load(2300, 13), "server_batches": {"batches": 100, "rows": 1650, "mean": 16.5}}
    s = report.scenario_summary(Scenario("grpc", 1, 32), 32, LINEAR_LIMITS, None, server)
    assert s["mean_batch"] == 16.5
    assert s["limit_at_mean_batch_ips"] == pytest.approx(6600)
    assert s["server_vs_limit_at_mean_batch"] == pytest.approx(2300 / 6600, abs=0.001)
    # Without server batching every request runs alone, at its own batch.
    alone = report.scenario_summary(
        Scenario("grpc", 1, 32), None, LINEAR_LIMITS, None, _load(900, 30)
    )
    assert alone["mean_batch"] == 1.0 and alone["limit_at_mean_batch_ips"] == pytest.approx(1000)
    # Batching on but no count from the server: unknown, not guessed.
    unknown = report.scenario_summary(
        Scenario("grpc", 1, 32), 32, LINEAR_LIMITS, None, _load(2300, 13)
    )
    assert unknown["mean_batch"] is None and unknown["server_vs_limit_at_mean_batch"] is None


def test_sweep_tables_one_per_protocol_a_row_per_concurrency():

    def summary(protocol, clients, ips, mean):
        server = {
            **_load(ips, 2.0),
            "server_batches": {"batches": 10, "rows": 10 * mean, "mean": mean},
        }
        return report.scenario_summary(
            Scenario(protocol, 1, clients), 32, LINEAR_LIMITS, None, server
        )

    summaries = [
        summary("grpc", 1, 800, 1.0),
        summary("grpc", 16, 3300, 16.5),
        summary("rest", 1, 700, 1.0),
        report.scenario_summary(
            Scenario("rest", 1, 16),
            32,
            LINEAR_LIMITS,
            None,
            {"failure": "workers died", "requests_ok": 0},
        ),
    ]
    tables = report.render_sweep_tables(summaries)
    grpc, rest = tables.split("\n\nREST, ")
    assert grpc.startswith("gRPC, 1 row per request:")
    assert "REST" not in grpc
    assert "| 16 | 3,300 | 2.00/6.00 | 0 | 16.5 | 0.90 | 0.40 | 6,600 | 0.50 | 4.12 |" in grpc
    assert "| 1 | 800 | 2.00/6.00 | 0 | 1.0 | 0.90 | 0.40 | 1,000 | 0.80 | - |" in grpc
    assert "| 16 | FAILED: workers died | -/- | - | - | - | - | - | - | - |" in rest
    lines = tables.splitlines()
    assert lines.count(report.SWEEP_HEADER) == 2
    assert all(line.count("|") == 11 for line in lines if line.startswith("|")), tables
    assert report.render_sweep_tables([summary("rest", 4, 900, 3.0) | {"batch": 2}]).startswith(
        "REST, 2 rows per request:"
    )


def test_versus_fewer_clients_pairs_each_round_with_the_best_of_its_own_round():
    """The host is twice as fast in round 2. Paired by round, 64 clients do 0.96 and 0.95 of
    the best with fewer (32 clients), where the medians across rounds would say 0.5."""

    def rounds_of(clients, ips_by_round):
        return [
            [
                report.scenario_summary(
                    Scenario("grpc", 1, clients), 32, LINEAR_LIMITS, None, _load(ips, 5)
                )
            ]
            for ips in ips_by_round
        ]

    loads = {8: [1000, 2000, 1000], 32: [1500, 3000, 1600], 64: [1440, 2850, 750]}
    by_round = [rounds_of(clients, ips) for clients, ips in loads.items()]
    summaries = [report.median_rounds(rounds)[0] for rounds in by_round]
    ratios = report.versus_fewer_clients(summaries)
    assert ratios[8] is None, "nothing ran with fewer clients"
    assert ratios[32] == pytest.approx(1.5, abs=0.001)
    # Round ratios 0.96, 0.95 and 750/1600 = 0.47: the median is 0.95.
    assert ratios[64] == pytest.approx(0.95, abs=0.001)
    assert "| 64 | 1,440 |" in report.render_sweep_tables(summaries)
    # A lower load that measured nothing leaves the best to the others.
    failed = report.scenario_summary(
        Scenario("grpc", 1, 16), 32, LINEAR_LIMITS, None, {"failure": "x", "requests_ok": 0}
    )
    single = [s | {"rounds": None} for s in summaries]
    ratios = report.versus_fewer_clients([single[0], failed, single[1]])
    assert ratios[16] is None
    assert ratios[32] == pytest.approx(single[1]["server"]["throughput_ips"] / 1000, abs=0.001)


def test_summary_without_a_usable_server_has_no_ratios():
    failed = {"failure": "request rejected: gRPC NOT_FOUND", "requests_ok": 0}
    s = report.scenario_summary(Scenario("rest", 1, 1), None, LIMITS, _load(4000, 0.2), failed)
    assert s["server_vs_ceiling"] is None and s["server_vs_limit"] is None
    assert s["ceiling_ips"] is not None


def test_noise_is_what_others_took_from_the_server_cpu():
    server = {**_load(900, 1.0), "cpu_busy": {"0": 0.95, "1": 0.5}}
    server["server_cpu"]["cores"] = 0.6
    assert report.others_on_cpus(server, [0]) == pytest.approx(0.35)
    assert report.others_on_cpus(server, None) is None
    s = report.scenario_summary(Scenario("grpc", 1, 1), None, LIMITS, None, server, [0])
    assert s["server"]["others_on_server_cpus"] == pytest.approx(0.35)
    assert "| 0.35 |" in report.render_table([s])
    assert report.noisy_parties([s]) == ["grpc:1:1 server"]
    quiet = {**server, "cpu_busy": {"0": 0.62}}
    s = report.scenario_summary(Scenario("grpc", 1, 1), None, LIMITS, None, quiet, [0])
    assert report.noisy_parties([s]) == []


def test_table_shows_every_party_errors_and_a_saturated_client():
    summaries = [
        report.scenario_summary(
            Scenario("grpc", 1, 1), 32, LIMITS, _load(2150, 0.45), _load(837, 1.1, errors=3)
        ),
        report.scenario_summary(
            Scenario("rest", 1, 32),
            32,
            LIMITS,
            _load(13000, 2.0, saturated=True),
            {"failure": "load workers did not start | bad", "requests_ok": 0},
        ),
    ]
    table = report.render_table(summaries)
    lines = table.splitlines()
    assert lines[0] == report.HEADER
    assert all(line.count("|") == 13 for line in lines), table
    assert "limit (in-process, b1)" in table and "limit (in-process, b32)" in table
    assert "3 (grpc:UNAVAILABLE=3)" in table
    assert "0.95 SAT" in table
    assert "FAILED: load workers did not start / bad" in table
    assert "**0.90**" in table
    assert "1.05 (ideal p50)" in table


def test_each_round_keeps_the_better_limit_of_the_passes_around_it():
    slow = {"1": {**LIMITS["1"], "inferences_per_s": 800.0}}
    fast = {"1": {**LIMITS["1"], "inferences_per_s": 1600.0}}
    passes = [slow, fast, slow]  # before round 1, before round 2, after round 2
    assert report.round_limits(passes, 0)["1"]["inferences_per_s"] == 1600.0
    assert report.round_limits(passes, 1)["1"]["inferences_per_s"] == 1600.0
    assert report.round_limits([slow, slow, fast], 0)["1"]["inferences_per_s"] == 800.0
    # Without an after-pass the last round has only its own; without a limit party, the one.
    assert report.round_limits([slow, fast], 1)["1"]["inferences_per_s"] == 1600.0
    assert report.round_limits([slow], 2)["1"]["inferences_per_s"] == 800.0


def test_rounds_report_the_median_round_and_every_rounds_ratio():
    """Three rounds on a drifting host: the report is the middle one, the spread is shown."""
    floor = _load(2150, 0.45)
    rounds = [
        [
            report.scenario_summary(Scenario("grpc", 1, 1), 32, LIMITS, floor, _load(ips, 1.1)),
            report.scenario_summary(Scenario("grpc", 1, 32), 32, LIMITS, floor, _load(2000, 9)),
        ]
        for ips in (600.0, 900.0, 750.0)
    ]
    chosen = report.median_rounds(rounds)
    assert [s["scenario"] for s in chosen] == ["grpc:1:1", "grpc:1:32"]
    c1 = chosen[0]
    assert c1["round"] == 3 and c1["server"]["throughput_ips"] == 750.0
    assert [r["server_ips"] for r in c1["rounds"]] == [600.0, 900.0, 750.0]
    assert c1["server_vs_ceiling"] == c1["rounds"][2]["server_vs_ceiling"]
    # An even count takes the lower middle.
    assert report.median_rounds(rounds[:2])[0]["round"] == 1
    table = report.render_table(chosen)
    assert all(line.count("|") == 13 for line in table.splitlines()), table
    row = next(line for line in table.splitlines() if "all 3 rounds" in line)
    assert "(median: round 3)" in row and "| 600 / 900 / 750 |" in row
    assert "0.65 / 0.97 / 0.81 |" in row
    # One round: no rounds row.
    assert "all 1 rounds" not in report.render_table(report.median_rounds(rounds[:1]))


def test_protocol_ratios_compare_each_party_and_bound_grpc_by_its_model_floor():
    """gRPC over REST per load, for the server and each floor; and the gRPC model floor over
    the REST server, which no gRPC server doing the model floor's work can beat."""
    summaries = [
        report.scenario_summary(
            Scenario(protocol, 1, 32),
            32,
            LIMITS,
            _load(floor, 0.5),
            _load(server, 8),
            model_floor=_load(model_floor, 7),
        )
        for protocol, floor, server, model_floor in (
            ("grpc", 20000, 3000, 3200),
            ("rest", 35000, 4000, 4400),
        )
    ]
    # One client ran gRPC only: no pair, no row.
    summaries.append(
        report.scenario_summary(Scenario("grpc", 1, 1), 32, LIMITS, None, _load(800, 1.2))
    )
    assert summaries[0]["server_vs_model_floor"] == pytest.approx(3000 / 3200, abs=0.001)
    [row] = report.protocol_ratios(summaries)
    assert row["batch"] == 1 and row["concurrency"] == 32
    assert row["server"] == pytest.approx(0.75, abs=0.001)
    assert row["grpc_bound"] == pytest.approx(0.8, abs=0.001)
    assert row["model_floor"] == pytest.approx(3200 / 4400, abs=0.001)
    assert row["floor"] == pytest.approx(20000 / 35000, abs=0.001)
    table = report.render_protocol_ratios(summaries)
    assert "| 1 | 32 | 0.75 | 0.80 | 0.73 | 0.57 |" in table.splitlines()
    assert "model floor (floor + the model in a batch thread)" in report.render_table(summaries)
    # Without both protocols there is nothing to compare.
    assert report.render_protocol_ratios(summaries[:1]) is None


def test_protocol_ratios_over_rounds_pair_each_round_and_take_the_median():
    """The host slows down in round 2: each round's pair gives 1.0, 0.9 and 0.8, while the
    protocols' median rounds (gRPC's round 3, REST's round 1 or 3) would give 0.8."""

    def summaries(protocol, servers, model_floors):
        return [
            [
                report.scenario_summary(
                    Scenario(protocol, 1, 32),
                    32,
                    LIMITS,
                    None,
                    _load(ips, 8),
                    model_floor=_load(floor, 7),
                )
            ]
            for ips, floor in zip(servers, model_floors, strict=True)
        ]

    grpc = report.median_rounds(summaries("grpc", [3000, 1000, 2400], [3300, 1100, 2700]))
    rest = report.median_rounds(summaries("rest", [3000, 1111, 3000], [3000, 1000, 3000]))
    [row] = report.protocol_ratios(grpc + rest)
    assert row["server"] == pytest.approx(0.9, abs=0.001)
    assert row["model_floor"] == pytest.approx(1.1, abs=0.001)
    assert row["grpc_bound"] == pytest.approx(0.99, abs=0.001)
    assert row["floor"] is None, "no floor ran"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
