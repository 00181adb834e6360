"""docker/'s images built from this checkout and run for real, with podman.

The serving image (docker/Dockerfile) serves the chapter's export to the
chapter's mnist_client, answers REST, turns healthy by its own HEALTHCHECK,
takes the stock image's overrides (MODEL_NAME, MODEL_BASE_PATH, server flags
after the image name such as --model_config_file) and stops with exit 0. The
devel image (docker/Dockerfile.devel) runs the test suite's quick part.

tools/run_tests.sh runs tools/container_engine.sh (podman and the local debian
base images) and then this test; `bazel test //...` leaves it out (tag
manual). It reports itself skipped only when podman cannot be installed here
or IMAGE_TESTS=0 says no container engine runs here (inside the devel image).
Images keep their tags (`*:image-test`), so the next run builds from the
engine's layer cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.example import mnist_client
from tensorflow_serving.test_util import docker_test_util as util
from tensorflow_serving.test_util import testing

PODMAN = shutil.which("podman") or "podman"
SERVING_TAG = "localhost/tf_serving_py:image-test"
DEVEL_TAG = "localhost/tf_serving_py_devel:image-test"
BASE_IMAGES = ("docker.io/library/debian:bookworm", "docker.io/library/debian:bookworm-slim")
BUILD_TIMEOUT_SECONDS = 1800.0
DEVEL_TESTS_TIMEOUT_SECONDS = 1200.0
STOP_TIMEOUT_SECONDS = 60
# The chapter trains 1000 iterations: 4.9% and 5.8% error on the fallback
# digits in two trainings. 2000 gave 3.4%, under the 5% the check asks for.
TRAINING_ITERATIONS = 2000
MAX_ERROR_RATE_PERCENT = 5.0


def _skip_reason() -> str | None:
    """Why the images cannot be tested here, or None when they can."""
    if os.environ.get("IMAGE_TESTS") == "0":
        return "IMAGE_TESTS=0: no container engine runs here (e.g. inside the devel image)"
    if os.environ.get("CONTAINER_ENGINE_STATUS") == "2":
        return "podman cannot be installed here (see tools/container_engine.sh's output)"
    if shutil.which("podman") is None:
        return "podman is not installed: run tools/container_engine.sh as root"
    return None


_SKIP_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")


# --- podman -------------------------------------------------------------------


def podman(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Runs `podman ARGS`; fails the test with podman's output if it exits non-zero."""
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"podman {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def _image_id(tag: str) -> str | None:
    result = subprocess.run(
        [PODMAN, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def build_image(dockerfile: str, tag: str, log_path: Path) -> str:
    """Builds docker/`dockerfile` from the checkout as docker/README.md says; returns `tag`.

    The image this tag named before is removed once nothing else names it, so
    repeated runs do not pile up images.
    """
    previous = _image_id(tag)
    command = [
        PODMAN, "build", "--network=host", "--format", "docker", "--pull=never",
        "-f", f"docker/{dockerfile}", "-t", tag, ".",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        result = subprocess.run(
            command,
            cwd=util.REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=BUILD_TIMEOUT_SECONDS,
        )
    assert result.returncode == 0, f"{' '.join(command)}:\n{log_path.read_text()[-6000:]}"
    if previous is not None and previous != _image_id(tag):
        subprocess.run([PODMAN, "rmi", previous], capture_output=True)
    return tag


@dataclasses.dataclass
class Container:
    """A detached container of the serving image, its ports published on 127.0.0.1."""

    name: str
    grpc_port: int
    rest_port: int

    def inspect(self, template: str) -> str:
        return podman("container", "inspect", "--format", template, self.name).stdout.strip()

    def exit_status(self) -> int | None:
        if self.inspect("{{.State.Running}}") == "true":
            return None
        return int(self.inspect("{{.State.ExitCode}}"))

    def log_tail(self, chars: int = 4000) -> str:
        result = subprocess.run([PODMAN, "logs", self.name], capture_output=True, text=True)
        return (result.stdout + result.stderr)[-chars:]

    def rest_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.rest_port}{path}"

    def stop(self) -> subprocess.CompletedProcess[str]:
        """`podman stop`: SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS."""
        return subprocess.run(
            [PODMAN, "stop", "--time", str(STOP_TIMEOUT_SECONDS), self.name],
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT_SECONDS + 60,
        )

    def remove(self) -> None:
        subprocess.run([PODMAN, "rm", "--force", "--time", "0", self.name], capture_output=True)


@dataclasses.dataclass
class ServingRun:
    """What `podman run -d IMAGE ...` is given: environment, read-only volumes, arguments."""

    env: dict[str, str] = dataclasses.field(default_factory=dict)
    volumes: dict[Path, str] = dataclasses.field(default_factory=dict)
    args: list[str] = dataclasses.field(default_factory=list)
    grpc_port_inside: int = 8000
    rest_port_inside: int = 8501


# Ports are picked free, then bound by podman: another process may take one between.
_PORT_ATTEMPTS = 3


def run_serving(image: str, run: ServingRun) -> Container:
    """Starts the image detached; the caller removes the container.

    A host port taken between picking and binding gets new ports (podman
    leaves no container behind when it cannot bind).
    """
    for attempt in range(_PORT_ATTEMPTS):
        container = Container(
            name=f"tf-serving-image-test-{uuid.uuid4().hex[:10]}",
            grpc_port=testing.free_port(),
            rest_port=testing.free_port(),
        )
        command = ["run", "-d", "--name", container.name]
        command += ["-p", f"127.0.0.1:{container.grpc_port}:{run.grpc_port_inside}"]
        command += ["-p", f"127.0.0.1:{container.rest_port}:{run.rest_port_inside}"]
        for key, value in run.env.items():
            command += ["-e", f"{key}={value}"]
        for host, inside in run.volumes.items():
            command += ["-v", f"{host}:{inside}:ro"]
        result = subprocess.run(
            [PODMAN, *command, image, *run.args],
            capture_output=True,
            text=True,
            timeout=120.0,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode == 0:
            return container
        taken = "address already in use" in result.stderr
        subprocess.run([PODMAN, "rm", "-f", container.name], capture_output=True)
        if not taken or attempt == _PORT_ATTEMPTS - 1:
            pytest.fail(f"podman {' '.join(command)}: {result.stdout}{result.stderr}")
    raise AssertionError("unreachable")


@pytest.fixture
def serving_container(serving_image: str) -> Iterator[Callable[[ServingRun], Container]]:
    """Starts containers of the serving image (run_serving's arguments); removes them after."""
    started: list[Container] = []

    def start(run: ServingRun) -> Container:
        container = run_serving(serving_image, run)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


# --- images and models ------------------------------------------------------------


@pytest.fixture(scope="module")
def build_logs(tmp_path_factory) -> Path:
    """Where the build and devel-test logs go: Bazel keeps this test's undeclared
    outputs (bazel-testlogs/docker/image_test/test.outputs/), pytest alone a temp folder."""
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    return Path(outputs) if outputs else tmp_path_factory.mktemp("build_logs")


@pytest.fixture(scope="module")
def serving_image(build_logs: Path) -> str:
    return build_image("Dockerfile", SERVING_TAG, build_logs / "serving.log")


@pytest.fixture(scope="module")
def devel_image(build_logs: Path) -> str:
    return build_image("Dockerfile.devel", DEVEL_TAG, build_logs / "devel.log")


def _readable_by_the_image(root: Path) -> Path:
    """Makes `root` and all in it readable by the image's uid 1000; returns `root`.

    A volume keeps the host's modes, and pytest's temp folders are 0700.
    """
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.fixture(scope="module")
def mnist_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mnist_data")


@pytest.fixture(scope="module")
def mnist_export(tmp_path_factory, mnist_data_dir: Path) -> Path:
    """The chapter's CNN, trained and exported by serving_model_ch4 as version 1."""
    base = tmp_path_factory.mktemp("exports") / "mnist_model"
    result = _run_module(
        "tensorflow_serving.example.serving_model_ch4",
        f"--training_iteration={TRAINING_ITERATIONS}",
        "--model_version=1",
        f"--work_dir={mnist_data_dir}",
        str(base),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return _readable_by_the_image(base)


@pytest.fixture(scope="module")
def half_plus_models(tmp_path_factory) -> Path:
    """A models folder: half_plus_two (y = x/2 + 2), half_plus_three, and models.config for both."""
    models = tmp_path_factory.mktemp("models")
    util.export_half_plus_two(models / "half_plus_two", version=1)
    util.export_half_plus_two(models / "half_plus_three", version=1, b=3.0)
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "/models/{name}" model_platform: "tensorflow" }}\n'
        for name in ("half_plus_two", "half_plus_three")
    )
    (models / "models.config").write_text(f"model_config_list {{\n{entries}}}\n")
    return _readable_by_the_image(models)


def _run_module(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Runs one of the chapter's programs as `python -m`, with this test's imports."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=testing.child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _predict_half_plus(port: int, model: str) -> list[float]:
    """y for x = [1, 2, 5] from `model` over gRPC."""
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([1.0, 2.0, 5.0], np.float32)))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return list(stub.Predict(request, timeout=30).outputs["y"].float_val)


# --- the serving image with the chapter's export ------------------------------------


@pytest.fixture(scope="module")
def chapter(serving_image: str, mnist_export: Path) -> Iterator[Container]:
    """`podman run -d -p 8000:8000 -p 8501:8501 -v <export>:/models/mnist -e MODEL_NAME=mnist`."""
    container = run_serving(
        serving_image,
        ServingRun(env={"MODEL_NAME": "mnist"}, volumes={mnist_export: "/models/mnist"}),
    )
    try:
        util.wait_until_available(container, "mnist")
        yield container
    finally:
        container.remove()


def test_container_engine_is_set_up():
    status = os.environ.get("CONTAINER_ENGINE_STATUS", "0")
    assert status == "0", f"tools/container_engine.sh exited with {status}"
    for image in BASE_IMAGES:
        assert _image_id(image), f"{image} missing: run tools/container_engine.sh"


def test_mnist_client_gets_the_chapters_error_rate(chapter: Container, mnist_data_dir: Path):
    result = _run_module(
        "tensorflow_serving.example.mnist_client",
        "--num_tests=1000",
        f"--server=127.0.0.1:{chapter.grpc_port}",
        f"--work_dir={mnist_data_dir}",
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Inference error rate: ([\d.]+)%", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) < MAX_ERROR_RATE_PERCENT, result.stdout


def test_rest_port_answers_status_and_predict(chapter: Container):
    code, body = util.wait_for_http(chapter.rest_url("/v1/models/mnist"))
    assert code == 200, body
    statuses = json.loads(body)["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [("1", "AVAILABLE")]
    blank_digit = [0.0] * 784
    code, answer = util.http_post_json(
        chapter.rest_url("/v1/models/mnist:predict"),
        {"signature_name": "predict_images", "instances": [blank_digit]},
    )
    assert code == 200, answer
    (scores,) = answer["predictions"]
    assert len(scores) == 10
    np.testing.assert_allclose(sum(scores), 1.0, rtol=1e-4)


def test_healthcheck_says_healthy(chapter: Container):
    """The image's own HEALTHCHECK, run by podman (no systemd timer runs it here)."""

    def healthy() -> bool:
        result = subprocess.run([PODMAN, "healthcheck", "run", chapter.name], capture_output=True)
        return result.returncode == 0

    assert testing.wait_for(healthy, timeout=120, interval=1.0), chapter.log_tail()
    assert chapter.inspect("{{.State.Health.Status}}") == "healthy"


def test_server_is_pid_1_as_uid_1000(chapter: Container):
    """So `podman stop` signals the server itself, and the server cannot write the image."""
    status = podman("exec", chapter.name, "cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+1000\s", status, re.MULTILINE), status
    cmdline = podman("exec", chapter.name, "cat", "/proc/1/cmdline").stdout
    assert "tensorflow_model_server" in cmdline, cmdline


def test_stop_drains_and_exits_0(chapter: Container):
    """Requests running when `podman stop` comes are answered; the server exits 0 on SIGTERM."""
    outcomes: list[grpc.StatusCode] = []
    stopping = threading.Event()
    client = threading.Thread(
        target=_predict_until, args=(chapter.grpc_port, stopping, outcomes), daemon=True
    )
    client.start()
    assert testing.wait_for(lambda: len(outcomes) >= 5, timeout=60), outcomes
    stopped = chapter.stop()
    stopping.set()
    client.join(120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert chapter.exit_status() == 0, chapter.log_tail()
    assert "Received SIGTERM" in chapter.log_tail(100_000)
    # Answered until the server stopped listening, refused after. The one call
    # that reaches the server after its gRPC shutdown began, before the client
    # saw the GOAWAY, is cancelled inside gRPC core: CANCELLED rather than
    # UNAVAILABLE (issue 36, item 5); allowed there only, never before an OK.
    first_refused = next(
        (i for i, code in enumerate(outcomes) if code != grpc.StatusCode.OK), len(outcomes)
    )
    assert grpc.StatusCode.OK not in outcomes[first_refused:], outcomes
    refused = outcomes[first_refused:]
    assert set(refused[1:]) <= {grpc.StatusCode.UNAVAILABLE}, outcomes
    assert set(refused[:1]) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, outcomes


def _predict_until(port: int, stopping: threading.Event, outcomes: list[grpc.StatusCode]) -> None:
    """Sends blank-digit Predicts one after another until `stopping`, recording each status."""
    request = mnist_client.make_request(np.zeros(784, np.float32))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while not stopping.is_set():
            try:
                stub.Predict(request, timeout=10)
                outcomes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                outcomes.append(error.code())


# --- the stock image's overrides -------------------------------------------------------


def test_model_name_base_path_and_flags_after_the_image_name(serving_container, half_plus_models):
    """-e MODEL_NAME -e MODEL_BASE_PATH pick the model; a later --port wins over the image's."""
    container = serving_container(
        ServingRun(
            env={"MODEL_NAME": "half_plus_two", "MODEL_BASE_PATH": "/srv/exports"},
            volumes={half_plus_models: "/srv/exports"},
            args=["--port=9000"],
            grpc_port_inside=9000,
        )
    )
    util.wait_until_available(container, "half_plus_two")
    assert _predict_half_plus(container.grpc_port, "half_plus_two") == [2.5, 3.0, 4.5]
    assert util.grpc_model_states(container.grpc_port, "half_plus_two") == {1: "AVAILABLE"}


def test_model_config_file_after_the_image_name_serves_every_model(
    serving_container, half_plus_models
):
    """As with the stock image: --model_config_file wins over MODEL_NAME."""
    container = serving_container(
        ServingRun(
            volumes={half_plus_models: "/models"},
            args=["--model_config_file=/models/models.config"],
        )
    )
    util.wait_until_available(container, "half_plus_two")
    util.wait_until_available(container, "half_plus_three")
    assert _predict_half_plus(container.grpc_port, "half_plus_two") == [2.5, 3.0, 4.5]
    assert _predict_half_plus(container.grpc_port, "half_plus_three") == [3.5, 4.0, 5.5]
    code, _ = util.http_get(container.rest_url("/v1/models/model"))
    assert code == 404


# --- the devel image ----------------------------------------------------------------


def test_devel_image_runs_the_quick_tests(devel_image: str, build_logs: Path):
    """`podman run --rm IMAGE bash tools/run_tests.sh --test_size_filters=small`, green."""
    log_path = build_logs / "devel_tests.log"
    with open(log_path, "w") as log:
        result = subprocess.run(
            [PODMAN, "run", "--rm", devel_image, "bash", "tools/run_tests.sh",
             "--test_size_filters=small"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=DEVEL_TESTS_TIMEOUT_SECONDS,
        )  # fmt: skip
    output = log_path.read_text()
    assert result.returncode == 0, _failures_in(output)
    summary = re.findall(r"^(\d+) passed, (\d+) failed", output, re.MULTILINE)
    assert summary, output[-6000:]
    passed, failed = map(int, summary[-1])
    assert failed == 0 and passed > 0, _failures_in(output)


def _failures_in(output: str) -> str:
    """pytest's failure lines (`E ...`, `FAILED ...`) from a run_tests.sh log, then its end."""
    lines = [line for line in output.splitlines() if re.match(r"(E |FAILED |ERROR )", line)]
    return "\n".join(lines[:200]) + "\n...\n" + output[-3000:]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
