"""The compare mode's order of runs and its report: what a user reads off a comparison."""

import sys

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import ab_compare
from tensorflow_serving.tools.report import Scenario

G1, R1, G8 = Scenario("grpc", 1, 1), Scenario("rest", 1, 1), Scenario("grpc", 1, 8)


def test_each_scenario_runs_against_both_servers_back_to_back_first_in_turn():
    """Within a round the first server alternates by scenario, and from one round to the
    next for each scenario; every other round runs the scenarios backwards."""
    first = ab_compare.round_turns([G1, R1, G8], 0)
    second = ab_compare.round_turns([G1, R1, G8], 1)
    assert first == [
        (G1, "server"),
        (G1, "compared"),
        (R1, "compared"),
        (R1, "server"),
        (G8, "server"),
        (G8, "compared"),
    ]
    assert second == [
        (G8, "compared"),
        (G8, "server"),
        (R1, "server"),
        (R1, "compared"),
        (G1, "compared"),
        (G1, "server"),
    ]
    # Over two rounds each scenario ran first against each server once.
    for scenario in (G1, R1, G8):
        firsts = [next(name for s, name in turns if s == scenario) for turns in (first, second)]
        assert sorted(firsts) == ["compared", "server"]


def _load(ips: float) -> dict:
    return {"throughput_ips": ips, "requests_ok": 100, "server_batches": {"mean": 4.0}}


def test_the_report_is_the_median_of_each_rounds_ratio():
    """The host halves its speed in round 2: each round's pair still compares like with
    like (1.1, 1.2, 0.9), where the servers' own medians (1,000 and 1,100) would not."""
    base = [1000.0, 500.0, 2000.0]
    compared = [1100.0, 600.0, 1800.0]
    rounds = [
        {"server": {"grpc:1:1": _load(b)}, "compared": {"grpc:1:1": _load(c)}}
        for b, c in zip(base, compared, strict=True)
    ]
    [summary] = ab_compare.summarize([G1], rounds)
    assert summary["ratios"] == [1.1, 1.2, 0.9]
    assert summary["median_ratio"] == 1.1
    assert summary["inferences_per_s"] == {"server": base, "compared": compared}
    assert summary["mean_batch"]["compared"] == [4.0, 4.0, 4.0]
    assert ab_compare.failed([summary]) == []
    table = ab_compare.render_table([summary])
    assert table.splitlines()[0] == ab_compare.HEADER
    row = "| grpc:1:1 | 1,000 / 500 / 2,000 | 1,100 / 600 / 1,800 | 1.10 / 1.20 / 0.90 | 1.10 |"
    assert row in table.splitlines()
    # An even count takes the lower middle.
    [two] = ab_compare.summarize([G1], rounds[:2])
    assert two["median_ratio"] == 1.1


def test_a_failed_run_leaves_its_round_without_a_ratio_and_is_named():
    rounds = [
        {"server": {"rest:1:1": _load(900.0)}, "compared": {"rest:1:1": _load(990.0)}},
        {
            "server": {"rest:1:1": _load(800.0)},
            "compared": {"rest:1:1": {"failure": "refused", "requests_ok": 0}},
        },
    ]
    [summary] = ab_compare.summarize([R1], rounds)
    assert summary["ratios"] == [1.1, None]
    assert summary["median_ratio"] is None, "a median over the rounds that ran would mislead"
    assert ab_compare.failed([summary]) == ["rest:1:1 compared round 2"]
    assert "| 1.10 / - | - |" in ab_compare.render_table([summary])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
