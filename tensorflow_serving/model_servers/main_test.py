"""The command line behaves like the stock server's."""

import sys

import pytest

from tensorflow_serving.model_servers import main
from tensorflow_serving.model_servers.server import (
    http_options,
    parse_channel_arguments,
    server_core_options,
)
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


def test_unknown_flag_is_an_error_with_usage(capsys):
    with pytest.raises(SystemExit) as raised:
        main.parse_options(["--no_such_flag=1"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "usage: tensorflow_model_server" in err and "--no_such_flag" in err


def test_unsupported_hardware_flag_is_refused_not_ignored(capsys):
    with pytest.raises(SystemExit):
        main.parse_options(["--per_process_gpu_memory_fraction=0.5"])
    assert "not supported" in capsys.readouterr().err
    main.parse_options(["--per_process_gpu_memory_fraction=0"])  # the default is fine


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
