"""The serving images' entrypoint, run outside a container as the image runs it.

docker/tf_serving_entrypoint.sh is what `docker run tf_serving_py` starts.
These tests give it the image's environment variables and a temp folder laid
out like the container's /models, then talk to the server over gRPC and REST
as a client of the container would; and they check, with a stand-in server
that prints its command line, the flags the script hands to the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.test_util import docker_test_util as util
from tensorflow_serving.test_util import testing

MODEL = "half_plus_two"


# --- the command line the entrypoint builds ---------------------------------


def _fake_server_argv(tmp_path: Path, env: dict[str, str], args=()) -> tuple[list[str], str, int]:
    """Runs the entrypoint with a `tensorflow_model_server` that prints argv and its pid."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "tensorflow_model_server"
    fake.write_text('#!/bin/sh\necho "pid=$$"\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    image_vars = ("MODEL_NAME", "MODEL_BASE_PATH", "GRPC_PORT", "PORT")
    clean = {k: v for k, v in os.environ.items() if k not in image_vars}
    clean.update(env)
    clean["PATH"] = f"{bin_dir}{os.pathsep}{clean.get('PATH', '')}"
    proc = subprocess.Popen(
        [str(util.ENTRYPOINT), *args], env=clean, stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    lines = out.splitlines()
    return lines[1:], lines[0], proc.pid


def test_defaults_are_the_stock_images_with_the_chapters_grpc_port(tmp_path):
    argv, _, _ = _fake_server_argv(tmp_path, {})
    assert argv == [
        "--port=8000",
        "--rest_api_port=8501",
        "--model_name=model",
        "--model_base_path=/models/model",
    ]


def test_environment_sets_model_and_ports(tmp_path):
    env = {"MODEL_NAME": "mnist", "MODEL_BASE_PATH": "/mnt/exports", "GRPC_PORT": "9000"}
    env["PORT"] = "9001"
    argv, _, _ = _fake_server_argv(tmp_path, env)
    assert argv == [
        "--port=9000",
        "--rest_api_port=9001",
        "--model_name=mnist",
        "--model_base_path=/mnt/exports/mnist",
    ]


def test_docker_run_arguments_follow_and_override(tmp_path):
    from tensorflow_serving.model_servers import main

    argv, _, _ = _fake_server_argv(
        tmp_path, {"MODEL_NAME": "mnist"}, args=["--port=7000", "--enable_batching=true"]
    )
    assert argv[-2:] == ["--port=7000", "--enable_batching=true"]
    options, _ = main.parse_options(argv)
    assert options.port == 7000
    assert options.enable_batching is True
    assert options.model_name == "mnist"


def test_server_replaces_the_shell_so_docker_stop_reaches_it(tmp_path):
    _, pid_line, entrypoint_pid = _fake_server_argv(tmp_path, {})
    assert pid_line == f"pid={entrypoint_pid}"


# --- the real server behind the entrypoint ----------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("container")
    models = tmp / "models"  # the container's /models
    util.export_half_plus_two(models / MODEL, version=1)
    env = {
        "MODEL_NAME": MODEL,
        "MODEL_BASE_PATH": str(models),
        "GRPC_PORT": str(testing.free_port()),
        "PORT": str(testing.free_port()),
    }
    running = util.start_entrypoint(tmp, env, args=["--bind_address=127.0.0.1"])
    try:
        util.wait_until_available(running, MODEL)
        yield running
    finally:
        running.stop()


def test_grpc_predict(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(_float_tensor([1.0, 2.0, 5.0]))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    np.testing.assert_allclose(response.outputs["y"].float_val, [2.5, 3.0, 4.5])


def test_grpc_model_status(server):
    assert util.grpc_model_states(server.grpc_port, MODEL) == {1: "AVAILABLE"}


def test_rest_model_status(server):
    code, body = util.wait_for_http(server.rest_url(f"/v1/models/{MODEL}"))
    assert code == 200, body
    statuses = json.loads(body)["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [("1", "AVAILABLE")]


def test_rest_predict(server):
    util.wait_for_http(server.rest_url(f"/v1/models/{MODEL}"))
    code, body = util.http_post_json(
        server.rest_url(f"/v1/models/{MODEL}:predict"), {"instances": [1.0, 2.0, 5.0]}
    )
    assert code == 200, body
    np.testing.assert_allclose(body["predictions"], [2.5, 3.0, 4.5])


def _healthcheck(server, **env) -> subprocess.CompletedProcess:
    full_env = {**server.env, **env}
    return subprocess.run(
        [sys.executable, str(util.HEALTHCHECK)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_is_healthy_when_the_model_is_available(server):
    util.wait_for_http(server.rest_url(f"/v1/models/{MODEL}"))
    result = _healthcheck(server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy: " in result.stdout and "version(s) 1 AVAILABLE" in result.stdout


def test_healthcheck_is_unhealthy_for_a_model_the_server_lacks(server):
    result = _healthcheck(server, MODEL_NAME="not_served")
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: ")


def test_healthcheck_is_unhealthy_when_nothing_listens(server):
    result = _healthcheck(server, PORT=str(testing.free_port()))
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: ")


def test_healthcheck_turns_unhealthy_when_the_last_version_is_removed(server):
    """The server still answers, but with no AVAILABLE version it cannot serve."""
    util.wait_for_http(server.rest_url(f"/v1/models/{MODEL}"))
    shutil.rmtree(Path(server.env["MODEL_BASE_PATH"], MODEL, "1"))
    deadline = time.monotonic() + 30
    while (result := _healthcheck(server)).returncode == 0:
        assert time.monotonic() < deadline, "still healthy 30 s after the version was removed"
        time.sleep(0.5)
    assert result.returncode == 1
    assert "no AVAILABLE version" in result.stdout, result.stdout


def test_docker_stop_ends_the_server_cleanly(server):
    """SIGTERM to the entrypoint's pid (PID 1 in a container) stops the server."""
    assert server.proc.poll() is None, server.log_tail()
    assert server.stop(timeout=60) == 0, server.log_tail()


def _float_tensor(values):
    import tensorflow as tf

    return tf.make_tensor_proto(np.asarray(values, dtype=np.float32))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
