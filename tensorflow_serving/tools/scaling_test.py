"""The scaling mode's placement, process count, rounds, ratios and table, without a server."""

import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import scaling
from tensorflow_serving.tools.report import Scenario
from tensorflow_serving.tools.scaling import ALL_CORES, ONE_CORE, ServerSetup


def test_two_cpus_the_client_has_the_other_core_then_shares_both():
    one, every = scaling.setups([0, 1], "auto", "auto", 0)
    assert one == ServerSetup(ONE_CORE, frozenset({0}), frozenset({1}), processes=1)
    assert every == ServerSetup(ALL_CORES, frozenset({0, 1}), None, processes=0)
    assert one.server_flags() == ["--num_server_processes=1"]
    assert every.describe() == (
        "all cores: server on CPUs 0-1, --num_server_processes=0; "
        "client unpinned (shares the server's cores)"
    )


def test_more_cpus_the_client_keeps_the_last_one_in_both_setups():
    one, every = scaling.setups([2, 3, 4, 5], "auto", "auto", 3)
    assert one.server_cpus == {2} and one.client_cpus == {5}
    assert every.server_cpus == {2, 3, 4} and every.client_cpus == {5}
    assert every.processes == 3


def test_explicit_cpus():
    one, every = scaling.setups([0, 1, 2, 3], "1", "0", 0)
    assert one.server_cpus == {1} and one.client_cpus == {0}
    assert every.server_cpus == {1, 2, 3} and every.client_cpus == {0}
    # 'none': the client is never pinned.
    one, every = scaling.setups([0, 1], "auto", "none", 0)
    assert one.client_cpus is None and every.client_cpus is None
    # A client CPU that would leave the server one core: the server takes both, the client
    # is not pinned onto one of them.
    _, every = scaling.setups([0, 1], "auto", "1", 0)
    assert every.server_cpus == {0, 1} and every.client_cpus is None


def test_one_cpu_is_refused():
    with pytest.raises(ValueError, match="two or more CPUs"):
        scaling.setups([0], "auto", "auto", 0)


def test_expected_processes():
    every = ServerSetup(ALL_CORES, frozenset({0, 1, 2, 3}), None, processes=0)
    assert scaling.expected_processes(every, None) == 4
    assert scaling.expected_processes(every, 2.0) == 2  # a Kubernetes CPU limit of 2
    assert scaling.expected_processes(every, 1.5) == 2
    assert scaling.expected_processes(every, 0.5) == 1
    assert scaling.expected_processes(ServerSetup("x", None, None, processes=3), None) == 3
    assert scaling.expected_processes(ServerSetup("x", None, None), None) == 1


def test_cgroup_cpu_limit(tmp_path):
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert scaling.cgroup_cpu_limit(str(tmp_path)) == 2.0
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert scaling.cgroup_cpu_limit(str(tmp_path)) is None
    assert scaling.cgroup_cpu_limit(str(tmp_path / "absent")) is None


def _result(ips, p50=1.0, processes=1):
    return {
        "throughput_ips": ips,
        "requests_ok": int(ips),
        "errors": 0,
        "error_kinds": {},
        "latency_ms": {"p50": p50, "p99": 2 * p50},
        "server_cpu": {"cores": 1.0},
        "client_cpu": {"cores": 0.1, "saturated": False},
        "failure": None,
        "server_processes": processes,
    }


def test_each_setup_reports_its_median_round_and_the_ratio():
    pair = scaling.setups([0, 1], "auto", "auto", 0)
    scenario = Scenario("grpc", 1, 32)
    rounds = [
        {
            ONE_CORE: {"grpc:1:32": _result(5000, 4.0)},
            ALL_CORES: {"grpc:1:32": _result(9000, 3.0, 2)},
        },
        {
            ONE_CORE: {"grpc:1:32": _result(4800, 4.2)},
            ALL_CORES: {"grpc:1:32": _result(8000, 3.5, 2)},
        },
        {
            ONE_CORE: {"grpc:1:32": _result(5200, 3.9)},
            ALL_CORES: {"grpc:1:32": _result(8600, 3.2, 2)},
        },
    ]
    (summary,) = scaling.summarize([scenario], pair, rounds)
    assert summary["setups"][ONE_CORE]["round"] == 1  # 5,000: the middle of 4,800-5,200
    assert summary["setups"][ALL_CORES]["round"] == 3  # 8,600
    assert summary["setups"][ALL_CORES]["rounds_ips"] == [9000, 8000, 8600]
    assert summary["ips_ratio"] == round(8600 / 5000, 3)
    assert summary["p50_ratio"] == round(3.2 / 4.0, 3)
    assert summary["rounds_ips_ratio"] == [1.8, round(8000 / 4800, 3), round(8600 / 5200, 3)]
    assert scaling.failed([summary]) == []
    table = scaling.render_table([summary], pair)
    assert "| grpc:1:32 | one core | 1 | 5,000 (5,000 / 4,800 / 5,200) | 4.00/8.00 | 0 |" in table
    assert "| grpc:1:32 | all cores | 2 | 8,600 (9,000 / 8,000 / 8,600) |" in table
    assert "**1.72** (1.80 / 1.67 / 1.65) | 0.80 | - |" in table  # no model-alone run


def test_a_failed_setup_is_reported():
    pair = scaling.setups([0, 1], "auto", "auto", 0)
    failure = {"failure": "request rejected: HTTP 404", "requests_ok": 0}
    rounds = [{ONE_CORE: {"rest:1:2": _result(100)}, ALL_CORES: {"rest:1:2": failure}}]
    (summary,) = scaling.summarize([Scenario("rest", 1, 2)], pair, rounds)
    assert summary["ips_ratio"] is None
    assert scaling.failed([summary]) == ["rest:1:2 (all cores)"]
    assert "FAILED: request rejected: HTTP 404" in scaling.render_table([summary], pair)


@pytest.mark.parametrize(
    "scenario, workers, max_batch, batches",
    [
        (Scenario("grpc", 1, 32), 2, 32, (32, 16)),  # each worker gets half the clients
        (Scenario("rest", 1, 3), 2, 32, (3, 2)),  # an odd client lands on one of them
        (Scenario("grpc", 32, 8), 2, 32, (32, 32)),  # one request fills a batch
        (Scenario("grpc", 1, 32), 2, None, (1, 1)),  # no batching: each request alone
    ],
)
def test_model_batches_one_core_and_per_worker(scenario, workers, max_batch, batches):
    assert scaling.model_batches(scenario, workers, max_batch) == batches


def test_the_model_alone_ratio_is_the_copies_sum_at_the_worker_batch_over_one_copy():
    machine = {
        "workers": 2,
        "one": {"16": {"inferences_per_s": 7700.0}, "32": {"inferences_per_s": 8300.0}},
        "all": [
            {"16": {"inferences_per_s": 6500.0}, "32": {"inferences_per_s": 7400.0}},
            {"16": {"inferences_per_s": 6400.0}, "32": {"inferences_per_s": 7100.0}},
        ],
    }
    c32 = Scenario("grpc", 1, 32)
    assert scaling.machine_ratio(c32, machine, 32) == round((6500 + 6400) / 8300, 3)
    assert scaling.machine_ratio(Scenario("rest", 32, 8), machine, 32) == round(14500 / 8300, 3)
    assert scaling.machine_ratio(c32, {}, 32) is None
    pair = scaling.setups([0, 1], "auto", "auto", 0)
    rounds = [{ONE_CORE: {"grpc:1:32": _result(5000)}, ALL_CORES: {"grpc:1:32": _result(8000)}}]
    (summary,) = scaling.summarize([c32], pair, rounds, [machine], 32)
    assert summary["machine_ratio"] == 1.554
    assert "| 1.55 |" in scaling.render_table([summary], pair)
    slower = {**machine, "one": {"32": {"inferences_per_s": 6450.0}}}  # 2.0x
    (summary,) = scaling.summarize([c32], pair, rounds, [machine, slower, {}], 32)
    assert summary["rounds_machine_ratio"] == [1.554, 2.0, None]
    assert summary["machine_ratio"] == round((1.554 + 2.0) / 2, 3)
    assert "| 1.78 (1.55 / 2.00 / -) |" in scaling.render_table([summary], pair)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
