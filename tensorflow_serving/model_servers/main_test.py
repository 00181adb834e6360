"""The command line behaves like the stock server's."""

import sys

import pytest

from tensorflow_serving.model_servers import main
from tensorflow_serving.model_servers.server import (
    Server,
    http_options,
    parse_channel_arguments,
    server_core_options,
)
from tensorflow_serving.model_servers.server_options import check_start_up_options, serves_rest
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import open_files, status


def test_defaults_are_upstreams():
    options, _ = main.parse_options([])
    assert options.port == 8500
    assert options.rest_api_port == 0
    assert options.rest_api_timeout_in_ms == 30000
    assert options.model_name == "default"
    assert options.file_system_poll_wait_seconds == 1
    assert options.max_num_load_retries == 5
    assert options.load_retry_interval_micros == 60_000_000
    assert options.saved_model_tags == "serve"
    assert options.enable_model_warmup is True
    assert options.enable_batching is False


def test_tflite_pools_default_to_the_cpus_this_process_may_use_when_parsed(monkeypatch):
    """A pinned worker parses its flags after keeping to its CPUs: its pools follow them."""
    monkeypatch.setattr(main.os, "sched_getaffinity", lambda pid: {3})
    options, _ = main.parse_options([])
    assert options.num_tflite_pools == 1


def test_chapter_command_line():
    options, _ = main.parse_options(
        ["--port=8000", "--model_name=mnist", "--model_base_path=/tmp/mnist_model/"]
    )
    assert (options.port, options.model_name) == (8000, "mnist")
    core = server_core_options(options)
    model = core.model_server_config.model_config_list.config[0]
    assert (model.name, model.base_path) == ("mnist", "/tmp/mnist_model/")


@pytest.mark.parametrize(
    "flag,expected", [("--enable_batching", True), ("--enable_batching=false", False)]
)
def test_boolean_flags_take_upstream_spellings(flag, expected):
    options, _ = main.parse_options([flag])
    assert options.enable_batching is expected


def test_cpu_scheduling_policy_defaults_to_batch_and_refuses_unknown_names(capsys):
    assert main.parse_options([])[0].cpu_scheduling_policy == "batch"
    assert main.parse_options(["--cpu_scheduling_policy=normal"])[0].cpu_scheduling_policy == (
        "normal"
    )
    with pytest.raises(SystemExit) as raised:
        main.parse_options(["--cpu_scheduling_policy=realtime"])
    assert raised.value.code == 2
    assert "'realtime'" in capsys.readouterr().err


def test_grpc_server_defaults_to_inline_and_refuses_unknown_names(capsys):
    assert main.parse_options([])[0].grpc_server == "inline"
    assert main.parse_options(["--grpc_server=grpcio"])[0].grpc_server == "grpcio"
    with pytest.raises(SystemExit) as raised:
        main.parse_options(["--grpc_server=aio"])
    assert raised.value.code == 2
    assert "--grpc_server must be one of inline, grpcio, got 'aio'" in capsys.readouterr().err


def test_keep_model_warm_needs_one_thread_per_graph_run(capsys, monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert main.parse_options([])[0].keep_model_warm_micros == 0
    one_thread = ["--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"]
    options, _ = main.parse_options(["--keep_model_warm_micros=100000", *one_thread])
    assert options.keep_model_warm_micros == 100000
    for argv, message in [
        (["--keep_model_warm_micros=100000"], "needs every graph run on one thread"),
        (["--keep_model_warm_micros=-1", *one_thread], "must be >= 0, got -1"),
    ]:
        with pytest.raises(SystemExit) as raised:
            main.parse_options(argv)
        assert raised.value.code == 2
        assert message in capsys.readouterr().err
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})  # a server pinned to one CPU
    assert main.parse_options(["--keep_model_warm_micros=1"])[0].keep_model_warm_micros == 1


def test_rest_connection_limits_come_from_their_flags():
    options, _ = main.parse_options(
        [
            "--rest_api_max_header_bytes=1000",
            "--rest_api_header_timeout_in_ms=1500",
            "--rest_api_body_timeout_in_ms=2500",
            "--rest_api_keep_alive_timeout_in_ms=500",
            "--rest_api_max_connections=7",
        ]
    )
    rest = http_options(options, num_threads=4, prometheus_path=None)
    assert rest.max_header_bytes == 1000
    assert (rest.header_timeout_seconds, rest.body_timeout_seconds) == (1.5, 2.5)
    assert (rest.keep_alive_seconds, rest.max_connections) == (0.5, 7)


def test_the_rest_connection_cap_defaults_to_a_share_of_the_open_file_limit():
    rest = http_options(main.parse_options([])[0], num_threads=4, prometheus_path=None)
    assert rest.max_connections == open_files.default_max_connections(open_files.soft_limit())


def test_unknown_argument_is_reported_with_usage_and_ignored_as_upstream(capsys):
    options, _ = main.parse_options(["--no_such_flag=1", "--port=9000", "stray"])
    assert options.port == 9000, "the flags around it still count"
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["unknown argument: --no_such_flag=1", "unknown argument: stray"]
    assert lines[2].startswith("usage: tensorflow_model_server")


def test_a_worker_does_not_repeat_its_supervisors_report(capsys):
    main.parse_options(["--no_such_flag=1"], report_unknown=False)
    assert capsys.readouterr().err == ""


def test_a_malformed_value_of_a_known_flag_still_fails(capsys):
    with pytest.raises(SystemExit) as raised:
        main.parse_options(["--port=eighty"])
    assert raised.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_unsupported_hardware_flag_is_refused_not_ignored(capsys):
    with pytest.raises(SystemExit):
        main.parse_options(["--per_process_gpu_memory_fraction=0.5"])
    assert "not supported" in capsys.readouterr().err
    main.parse_options(["--per_process_gpu_memory_fraction=0"])  # the default is fine


@pytest.mark.parametrize(
    "flag",
    [
        "--xla_gpu_compilation_enabled=false",
        "--mixed_precision=",
        "--skip_initialize_tpu=false",
        "--skip_initialize_tpu=true",
        "--enable_serialization_as_tensor_content=false",
    ],
)
def test_upstreams_newer_flags_are_accepted_at_values_that_change_nothing_here(flag, capsys):
    main.parse_options([flag])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "flag,message",
    [
        ("--xla_gpu_compilation_enabled", "--xla_gpu_compilation_enabled=true is not supported"),
        ("--mixed_precision=bfloat16", "--mixed_precision=bfloat16 is not supported"),
    ],
)
def test_upstreams_hardware_flags_at_other_values_are_refused_by_name_and_value(
    flag, message, capsys
):
    with pytest.raises(SystemExit) as raised:
        main.parse_options([flag])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_help_says_of_every_flag_whether_it_is_upstreams_or_ours():
    for action in main.build_parser()._actions:
        if action.dest in ("help", "version"):
            continue
        text = action.help.lower()
        assert "upstream's flag" in text or "not upstream" in text, action.dest
    help_text = main.build_parser().format_help()
    for flag in (
        "tensorflow_session_config_file",
        "platform_config_file",
        "enable_per_model_batching_parameters",
        "enable_signature_method_name_check",
    ):
        action = next(a for a in main.build_parser()._actions if a.dest == flag)
        assert action.help.endswith("(Upstream's flag.)"), flag
        assert f"--{flag}" in help_text


def test_serialization_as_tensor_content_is_off_unless_asked_for():
    assert main.parse_options([])[0].enable_serialization_as_tensor_content is False
    options, _ = main.parse_options(["--enable_serialization_as_tensor_content"])
    assert options.enable_serialization_as_tensor_content is True


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--port=0"], "At least one of --port and --grpc_socket_path must be set"),
        (
            ["--batching_parameters_file=/tmp/batching.config"],
            "--batching_parameters_file=/tmp/batching.config is set without --enable_batching",
        ),
        (
            [
                "--tensorflow_session_parallelism=2",
                "--tensorflow_intra_op_parallelism=2",
                "--tensorflow_inter_op_parallelism=2",
            ],
            "not all three (got 2, 2 and 2)",
        ),
    ],
    ids=["nowhere_to_listen", "batching_file_without_batching", "all_three_parallelisms"],
)
def test_server_refuses_to_start_with_what_upstream_refuses(flags, message, tmp_path):
    options, _ = main.parse_options([*flags, f"--model_base_path={tmp_path}"])
    server = Server()
    with pytest.raises(status.ServingError) as raised:
        server.build_and_start(options)
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert message in raised.value.message
    assert server.core is None, "refused before any model is loaded"
    server.stop(grace_seconds=0)


@pytest.mark.parametrize(
    "flags",
    [
        ["--port=0", "--grpc_socket_path=/tmp/grpc.sock"],
        ["--batching_parameters_file=/tmp/batching.config", "--enable_batching"],
        ["--tensorflow_intra_op_parallelism=2", "--tensorflow_inter_op_parallelism=2"],
        ["--tensorflow_session_parallelism=2", "--tensorflow_intra_op_parallelism=2"],
    ],
)
def test_what_upstream_accepts_passes_the_start_up_checks(flags):
    check_start_up_options(main.parse_options(flags)[0])


def test_a_worker_without_a_listener_of_its_own_passes_the_start_up_checks():
    """The supervisor gives workers after the first no UNIX socket; it checked the flags."""
    check_start_up_options(main.parse_options(["--port=0"])[0], is_worker=True)


def test_rest_on_the_grpc_port_is_left_off_not_refused():
    assert not serves_rest(main.parse_options(["--port=8500", "--rest_api_port=8500"])[0])
    assert serves_rest(main.parse_options(["--port=8500", "--rest_api_port=8501"])[0])
    assert not serves_rest(main.parse_options([])[0])


def test_missing_model_is_a_clear_error():
    options, _ = main.parse_options([])
    with pytest.raises(status.ServingError, match="model_base_path"):
        server_core_options(options)


def test_channel_arguments_parse_ints_and_strings():
    assert parse_channel_arguments("grpc.max_connection_age_ms=2000,grpc.x=abc") == [
        ("grpc.max_connection_age_ms", 2000),
        ("grpc.x", "abc"),
    ]
    with pytest.raises(status.ServingError, match="key=value"):
        parse_channel_arguments("novalue")


def test_version_flag(capsys):
    assert main.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert "TensorFlow ModelServer:" in out and "TensorFlow Library: 2.21" in out


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
