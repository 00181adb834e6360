"""The whole benchmark, a couple of seconds per scenario, on half_plus_two made here.

No timing assertions: the checks are that every party was measured, nothing
failed, and the report carries the numbers and ratios a user reads.
"""

import json
import os
import re
import sys

import pytest

from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two
from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import benchmark, host_idle, scaling
from tensorflow_serving.tools import report as report_lib

SHORT = ["--duration=1.5", "--warmup=0.5", "--limit_runs=1", "--limit_seconds=0.5"]


def _run(capsys, argv):
    code = benchmark.main(argv)
    return code, capsys.readouterr().out


def _server_runs(progress: str) -> list[str]:
    """The scenarios the server ran, in order, from the benchmark's progress lines."""
    return re.findall(r"^\[benchmark\] server (\S+): [\d,]+ inf/s", progress, re.MULTILINE)


def test_full_run_reports_limit_floor_ceiling_and_server(tmp_path, capsys):
    base = tmp_path / "half_plus_two"
    export_half_plus_two.export_half_plus_two_tf1(str(base), 123)
    batching = tmp_path / "batching.txt"
    batching.write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 0 }\n"
        "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 100 }\n"
    )
    out = tmp_path / "report.json"
    code, stdout = _run(
        capsys,
        [
            f"--model_base_path={base}",
            "--model_name=hpt",
            "--scenarios=grpc:1:1,grpc:1:4,rest:2:2",
            f"--server_flags=--enable_batching --batching_parameters_file={batching} "
            "--tensorflow_intra_op_parallelism=1 --tensorflow_inter_op_parallelism=1",
            f"--out={out}",
            *SHORT,
        ],
    )
    assert code == 0, stdout
    report = json.loads(out.read_text())
    assert report["server_settings"] == {
        "intra_op_threads": 1,
        "inter_op_threads": 1,
        "max_batch_size": 8,
        "keep_model_warm_micros": 0,
        "monitoring_config_file": "",
        "metrics_path": None,
        "num_server_processes": None,
        "prefer_tflite_model": False,
    }
    assert report["limit_runtime"] == "tensorflow"
    # The server batches: the benchmark turned its Prometheus page on to count the batches.
    assert any(flag.startswith("--monitoring_config_file=") for flag in report["server_command"])
    assert report["model_dir"].endswith(os.path.join("half_plus_two", "123"))
    assert [i["alias"] for i in report["signature_inputs"]] == ["x"]
    assert sorted(report["limits"]) == ["1", "2", "4"]  # b_eff of grpc:1:4 is 4
    # Measured before and after the load runs; the better pass is kept.
    for record in report["limits"].values():
        assert len(record["passes_inferences_per_s"]) == 2
        assert record["inferences_per_s"] == max(record["passes_inferences_per_s"])
    by_name = {s["scenario"]: s for s in report["scenarios"]}
    assert list(by_name) == ["grpc:1:1", "grpc:1:4", "rest:2:2"]
    assert by_name["grpc:1:4"]["b_eff"] == 4 and by_name["rest:2:2"]["b_eff"] == 4
    for name, s in by_name.items():
        assert s["limit"]["inferences_per_s"] > 0, name
        for party in ("floor", "server"):
            result = s[party]
            assert result["failure"] is None, (name, party, result)
            assert result["errors"] == 0, (name, party, result["error_kinds"])
            assert result["throughput_ips"] > 0 and result["requests_ok"] > 0, (name, party)
            lat = result["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], (name, party)
            assert result["server_cpu"]["us_per_inference"] > 0, (name, party)
            assert result["client_cpu"]["cores"] > 0, (name, party)
        assert s["ceiling_ips"] > 0 and s["server_vs_ceiling"] > 0 and s["server_vs_limit"] > 0
        batches = s["server"]["server_batches"]
        assert batches["batches"] > 0 and batches["mean"] == s["mean_batch"], (name, batches)
        assert s["batch"] <= s["mean_batch"] <= s["b_eff"], (name, s["mean_batch"])
        assert s["server_vs_limit_at_mean_batch"] > 0, name
    assert by_name["grpc:1:1"]["ideal_p50_ms"] > 0
    # One client: a second ceiling from the limit measured with the floor's p50 of idle time.
    gap = by_name["grpc:1:1"]["gapped_limit"]
    assert gap["idle_gap_us"] == pytest.approx(
        by_name["grpc:1:1"]["floor"]["latency_ms"]["p50"] * 1000, rel=0.01
    )
    assert by_name["grpc:1:1"]["gapped_ceiling_ips"] > 0
    assert by_name["grpc:1:4"]["gapped_ceiling_ips"] is None
    # One gRPC client: the minimal server (only the model call) under the same load.
    minimal = by_name["grpc:1:1"]["minimal"]
    assert minimal["failure"] is None and minimal["errors"] == 0, minimal
    assert minimal["requests_ok"] > 0 and minimal["server_cpu"]["us_per_inference"] > 0
    assert by_name["grpc:1:1"]["minimal_vs_ceiling"] > 0
    assert by_name["grpc:1:1"]["server_vs_minimal"] > 0
    assert by_name["grpc:1:4"]["minimal"] is None and by_name["rest:2:2"]["minimal"] is None
    # And the stand-in: the minimal server with a busy loop as long as the limit's call at b1.
    stand_in = by_name["grpc:1:1"]["stand_in"]
    assert stand_in["failure"] is None and stand_in["errors"] == 0, stand_in
    assert stand_in["stand_in_us"] == pytest.approx(
        1e6 / report["limits"]["1"]["passes_inferences_per_s"][0]
    )
    assert by_name["grpc:1:1"]["stand_in_vs_ceiling"] > 0
    assert by_name["grpc:1:4"]["stand_in"] is None and by_name["rest:2:2"]["stand_in"] is None
    # Every scenario: the floor with the model in a batch thread of at most 8 rows.
    for name, s in by_name.items():
        model_floor = s["model_floor"]
        assert model_floor["failure"] is None and model_floor["errors"] == 0, (name, model_floor)
        assert model_floor["requests_ok"] > 0 and s["server_vs_model_floor"] > 0, name
    assert report["protocol_ratios"] is None, "no load ran with both protocols"
    assert by_name["rest:2:2"]["server"]["throughput_ips"] == pytest.approx(
        2 * by_name["rest:2:2"]["server"]["throughput_rps"], rel=0.01
    )
    if len(os.sched_getaffinity(0)) >= 2:
        assert report["server_cpus"] != report["client_cpus"]
    # The printed table has the limit, floor, ceiling and server rows of every scenario.
    assert any(
        "grpc:1:1" in line and "minimal server" in line and "server/minimal" in line
        for line in stdout.splitlines()
    )
    assert any(
        "grpc:1:1" in line and "stand-in server" in line and "minimal/stand-in" in line
        for line in stdout.splitlines()
    )
    for name in by_name:
        for party in ("limit (in-process", "floor (no-work", "ceiling", "**server**"):
            assert any(name in line and party in line for line in stdout.splitlines()), (
                name,
                party,
            )
    assert report["table"] in stdout
    assert report["sweep_tables"] is None, "no --concurrency, no sweep tables"
    assert isinstance(report["noisy"], list)  # noise is reported, never asserted away
    # How idle vCPUs wait is reported with every run; the note only where they halt at once.
    idle = host_idle.read_idle_settings()
    assert report["host_idle"] == idle
    assert report["host_warning"] == host_idle.one_client_warning(idle, [1])  # grpc:1:1 ran
    assert (report["host_warning"] is not None) == ("HOST: " in stdout)


def test_tf2_model_server_only_with_a_request_count_in_two_rounds(tmp_path, capsys):
    """A TF2 export (x is [None]: rows are scalars), only limit and server, counted requests,
    measured twice: the report is the median round, with both rounds' numbers."""
    base = tmp_path / "hpt2"
    export_half_plus_two.export_half_plus_two_tf2(str(base), 1)
    export_half_plus_two.export_half_plus_two_tf2(str(base), 2, a=1.0)
    out = tmp_path / "report.json"
    code = benchmark.main(
        [
            f"--model_base_path={base}",
            "--model_name=hpt2",
            "--scenarios=rest:3:1,grpc:3:2",
            "--parties=limit,server",
            "--requests=200",
            "--warmup=0.3",
            "--limit_runs=1",
            "--limit_seconds=0.3",
            "--rest_format=inputs",
            "--rounds=2",
            f"--out={out}",
        ],
    )
    stdout, progress = capsys.readouterr()
    assert code == 0, stdout
    # The second round runs the scenarios backwards: neither always runs last.
    assert _server_runs(progress) == ["rest:3:1", "grpc:3:2", "grpc:3:2", "rest:3:1"]
    report = json.loads(out.read_text())
    assert report["model_dir"].endswith(os.path.join("hpt2", "2"))
    assert report["signature_inputs"][0]["row_shape"] == []
    # A limit before each round and one after the last.
    for record in report["limits"].values():
        assert len(record["passes_inferences_per_s"]) == 3
    for s in report["scenarios"]:
        assert s["floor"] is None and s["ceiling_ips"] is None
        assert s["server"]["requests_ok"] == 200 and s["server"]["errors"] == 0
        assert s["server_vs_limit"] > 0
        assert len(s["rounds"]) == 2 and s["round"] in (1, 2)
        assert s["rounds"][s["round"] - 1]["server_ips"] == s["server"]["throughput_ips"]
        assert all(r["server_ips"] > 0 and r["server_vs_limit"] > 0 for r in s["rounds"])
        assert f"| {s['scenario']} | all 2 rounds (median: round {s['round']}) |" in stdout


def test_a_concurrency_sweep_prints_a_table_per_protocol_with_the_servers_mean_batch(
    tmp_path, capsys
):
    base = tmp_path / "half_plus_two"
    export_half_plus_two.export_half_plus_two_tf1(str(base), 1)
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }\nnum_batch_threads { value: 1 }\n")
    out = tmp_path / "report.json"
    code, stdout = _run(
        capsys,
        [
            f"--model_base_path={base}",
            "--model_name=hpt",
            "--concurrency=1,6",
            "--protocols=grpc,rest",
            "--batch_size=1",
            "--parties=limit,server",
            "--requests=300",
            "--warmup=0.3",
            "--limit_runs=1",
            "--limit_seconds=0.3",
            "--limit_passes=1",
            f"--server_flags=--enable_batching --batching_parameters_file={batching}",
            f"--out={out}",
        ],
    )
    assert code == 0, stdout
    report = json.loads(out.read_text())
    # The protocols one after the other at each load, each first in turn.
    assert [s["scenario"] for s in report["scenarios"]] == [
        "grpc:1:1",
        "rest:1:1",
        "rest:1:6",
        "grpc:1:6",
    ]
    # Powers of two up to each merged batch, so every mean batch lies between measured sizes.
    assert sorted(report["limits"], key=int) == ["1", "2", "4", "6"]
    for s in report["scenarios"]:
        assert s["server"]["errors"] == 0 and s["server"]["server_batches"]["batches"] > 0
        assert 1 <= s["mean_batch"] <= 6, s["mean_batch"]
        assert s["limit_at_mean_batch_ips"] > 0 and s["server_vs_limit_at_mean_batch"] > 0
        assert s["server"]["server_cpu"]["cores"] > 0
    one_client = [s for s in report["scenarios"] if s["concurrency"] == 1]
    assert all(s["mean_batch"] == 1.0 for s in one_client), "one client: batches of one"
    assert report["sweep_tables"] in stdout
    assert report["sweep_tables"].startswith("gRPC, 1 row per request:")
    assert "\n\nREST, 1 row per request:" in report["sweep_tables"]
    assert report["sweep_tables"].count(report_lib.SWEEP_HEADER) == 2
    # Both protocols at each concurrency: gRPC over REST, the server's only (no floors ran).
    ratios = report["protocol_ratios"]
    assert ratios in stdout and report_lib.PROTOCOL_RATIOS_HEADER in ratios
    for clients in (1, 6):
        [row] = [line for line in ratios.splitlines() if line.startswith(f"| 1 | {clients} | ")]
        server, bound, model_floor, floor = row.strip("|").split("|")[2:]
        assert float(server) > 0 and bound.strip() == model_floor.strip() == floor.strip() == "-"


STAND_IN = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "testdata", "reuseport_server.py"
)


def test_compare_mode_runs_each_scenario_against_both_servers_in_turn(tmp_path, capsys):
    """Our server and a stand-in (testdata/reuseport_server.py), both up: each scenario runs
    against one and then the other, the first alternating; each round's ratio is reported."""
    base = tmp_path / "half_plus_two"
    export_half_plus_two.export_half_plus_two_tf1(str(base), 1)
    out = tmp_path / "report.json"
    code = benchmark.main(
        [
            f"--model_base_path={base}",
            f"--compare_binary={sys.executable} {STAND_IN}",
            f"--out={out}",
            *"--model_name=hpt --engine=python --scenarios=grpc:1:2,rest:1:2".split(),
            *"--requests=60 --warmup=0.3 --rounds=2 --limit_runs=1 --limit_seconds=0.3".split(),
        ]
    )
    stdout, progress = capsys.readouterr()
    assert code == 0, stdout
    runs = re.findall(r"^\[benchmark\] (server|compared) (\S+): [\d,]+ inf/s", progress, re.M)
    assert runs == [
        ("server", "grpc:1:2"),
        ("compared", "grpc:1:2"),
        ("compared", "rest:1:2"),
        ("server", "rest:1:2"),
        ("server", "rest:1:2"),
        ("compared", "rest:1:2"),
        ("compared", "grpc:1:2"),
        ("server", "grpc:1:2"),
    ]
    report = json.loads(out.read_text())
    assert report["mode"] == "compare"
    assert "--bind_address=127.0.0.1" in report["server_commands"]["server"]
    assert STAND_IN in report["server_commands"]["compared"]
    for summary in report["compare"]:
        for name in ("server", "compared"):
            assert all(ips > 0 for ips in summary["inferences_per_s"][name]), name
        assert len(summary["ratios"]) == 2 and summary["median_ratio"] in summary["ratios"]
    assert report["table"] in stdout and report_lib.PROTOCOL_RATIOS_HEADER not in stdout
    with pytest.raises(SystemExit, match="not both"):
        benchmark.main([f"--model_base_path={base}", "--scaling", "--compare_binary=x"])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the scaling mode needs 2 CPUs")
def test_scaling_mode_runs_one_core_and_all_cores_with_their_processes(tmp_path, capsys):
    """A stand-in server with worker processes on SO_REUSEPORT (testdata/reuseport_server.py):
    one process on one core, then two on every core, interleaved over two rounds."""
    base = tmp_path / "half_plus_two"
    export_half_plus_two.export_half_plus_two_tf1(str(base), 1)
    out = tmp_path / "report.json"
    code, stdout = _run(
        capsys,
        [
            f"--model_base_path={base}",
            f"--server_binary={sys.executable} {STAND_IN}",
            f"--out={out}",
            *"--model_name=hpt --scaling --scaling_processes=2 --engine=python".split(),
            *"--scenarios=grpc:1:4,rest:1:4 --duration=1 --warmup=0.3 --rounds=2".split(),
            *"--limit_runs=1 --limit_seconds=0.3".split(),
        ],
    )
    assert code == 0, stdout
    report = json.loads(out.read_text())
    # The model alone, every round: one copy on the one-core CPU, then one per worker at once.
    assert len(report["machine"]) == 2
    for machine in report["machine"]:
        assert machine["workers"] == 2 and len(machine["all"]) == 2
    assert all(summary["machine_ratio"] > 0 for summary in report["scaling"])
    one, every = report["setups"]
    assert one["num_server_processes"] == 1 and len(one["server_cpus"]) == 1
    assert every["num_server_processes"] == 2 and len(every["server_cpus"]) >= 2
    assert "--num_server_processes=2" in every["server_command"]
    assert not set(one["server_cpus"]) & set(one["client_cpus"] or ())
    assert [s["scenario"] for s in report["scaling"]] == ["grpc:1:4", "rest:1:4"]
    for summary in report["scaling"]:
        for name, processes in (("one core", 1), ("all cores", 2)):
            chosen = summary["setups"][name]
            result = chosen["result"]
            assert result["errors"] == 0 and result["requests_ok"] > 0, (name, result)
            assert result["server_processes"] == processes, (name, summary["scenario"])
            # The supervisor idles: the cores busy are its workers'.
            assert result["server_cpu"]["cores"] > 0, name
            assert len(chosen["rounds_ips"]) == 2 and all(chosen["rounds_ips"])
        assert summary["ips_ratio"] > 0 and len(summary["rounds_ips_ratio"]) == 2
    assert report["table"] in stdout
    assert "| grpc:1:4 | all cores | 2 |" in stdout


def test_engines_are_chosen_per_protocol():
    args = benchmark.build_parser().parse_args
    assert benchmark.engine_text(args(["--model_base_path=m"])) == "python"
    assert benchmark.engine_text(args(["--model_base_path=m", "--scaling"])) == "wrk,h2load"
    assert benchmark.engine_text(args(["--model_base_path=m", "--engine=h2load"])) == "h2load"
    scaled = benchmark.scenarios_from_args(args(["--model_base_path=m", "--scaling"]))
    assert ",".join(s.name for s in scaled) == scaling.DEFAULT_SCENARIOS


def test_a_sweep_or_scenarios_not_both():
    args = benchmark.build_parser().parse_args
    sweep = benchmark.scenarios_from_args(args(["--model_base_path=m", "--concurrency=2,1"]))
    assert [s.name for s in sweep] == ["grpc:1:2", "rest:1:2", "rest:1:1", "grpc:1:1"]
    rest = args(["--model_base_path=m", "--concurrency=4", "--protocols=rest", "--batch_size=8"])
    assert [s.name for s in benchmark.scenarios_from_args(rest)] == ["rest:8:4"]
    default = benchmark.scenarios_from_args(args(["--model_base_path=m"]))
    assert ",".join(s.name for s in default) == benchmark.DEFAULT_SCENARIOS
    both = args(["--model_base_path=m", "--concurrency=4", "--scenarios=grpc:1:1"])
    with pytest.raises(SystemExit, match="not both"):
        benchmark.scenarios_from_args(both)
    with pytest.raises(SystemExit, match="go with --concurrency"):
        benchmark.scenarios_from_args(args(["--model_base_path=m", "--protocols=rest"]))
    with pytest.raises(ValueError, match="'grpc:1:x'"):
        benchmark.scenarios_from_args(args(["--model_base_path=m", "--concurrency=x,1"]))


@pytest.mark.parametrize("rounds", ["0", "10"])
def test_rounds_out_of_range_are_refused(rounds, tmp_path):
    with pytest.raises(SystemExit, match="--rounds"):
        benchmark.main([f"--model_base_path={tmp_path}", f"--rounds={rounds}"])


def test_flags_the_benchmark_owns_are_refused():
    with pytest.raises(SystemExit, match="--port"):
        benchmark.server_settings(["--port=9000", "--enable_batching"])


def test_batching_without_a_file_uses_upstreams_cap():
    settings = benchmark.server_settings(
        ["--enable_batching", "--tensorflow_session_parallelism=2"]
    )
    assert settings == {
        "intra_op_threads": 2,
        "inter_op_threads": 2,
        "max_batch_size": 1000,
        "keep_model_warm_micros": 0,
        "monitoring_config_file": "",
        "metrics_path": None,
        "num_server_processes": None,
        "prefer_tflite_model": False,
    }
    assert benchmark.server_settings(["--prefer_tflite_model"])["prefer_tflite_model"] is True
    warm = benchmark.server_settings(["--keep_model_warm_micros=100000"])
    assert warm["keep_model_warm_micros"] == 100000
    assert benchmark.server_settings([])["max_batch_size"] is None


def test_a_users_monitoring_config_names_the_page_the_batches_are_read_from(tmp_path):
    config = tmp_path / "monitoring.txt"
    config.write_text('prometheus_config { enable: true, path: "/metrics" }\n')
    settings = benchmark.server_settings(
        ["--enable_batching", f"--monitoring_config_file={config}"]
    )
    assert settings["metrics_path"] == "/metrics"
    config.write_text("prometheus_config { enable: false }\n")
    off = benchmark.server_settings(["--enable_batching", f"--monitoring_config_file={config}"])
    assert off["metrics_path"] is None, "the user's file turns the page off: it stays off"


def test_the_latest_version_is_benchmarked(tmp_path):
    for version in ("3", "20", "not_a_version"):
        (tmp_path / version).mkdir()
    assert benchmark.latest_version_dir(str(tmp_path), None) == str(tmp_path / "20")
    assert benchmark.latest_version_dir(str(tmp_path), 3) == str(tmp_path / "3")
    with pytest.raises(SystemExit):
        benchmark.latest_version_dir(str(tmp_path), 7)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
