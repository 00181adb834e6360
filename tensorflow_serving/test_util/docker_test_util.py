"""What the docker/ tests share: the repo's files, a tiny model, the serving
images' entrypoint run outside a container, and clients of a running server.

docker/entrypoint_test.py and docker/k8s_test.py run the images' own
entrypoint script (docker/tf_serving_entrypoint.sh) with the environment the
image or the Kubernetes manifest gives it, against a temp folder laid out like
the container's /models; docker/image_test.py builds and runs the images
themselves with podman.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

import grpc

from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
)

# The tests read the checkout itself (Bazel's runfiles are symlinks into it):
# the Dockerfiles name repo files that no Bazel target exports.
REPO_ROOT = Path(os.path.realpath(__file__)).parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
ENTRYPOINT = DOCKER_DIR / "tf_serving_entrypoint.sh"
HEALTHCHECK = DOCKER_DIR / "tf_serving_healthcheck.py"
SERVER_TARGET = "tensorflow_serving/model_servers/tensorflow_model_server"

START_TIMEOUT_SECONDS = 180.0


def export_half_plus_two(base_path: Path, version: int, a: float = 0.5, b: float = 2.0) -> Path:
    """Writes SavedModel version `version` of y = a*x + b (x, y: float [None]).

    tf.saved_model.save's own layout, under base_path/<version>; written to a
    temp name first and renamed, so a polling server never sees half of it.
    """
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(a, dtype=tf.float32)
            self.b = tf.Variable(b, dtype=tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.a * x + self.b}

    base_path.mkdir(parents=True, exist_ok=True)
    final = base_path / str(version)
    partial = base_path / f".partial-{version}"
    module = HalfPlusTwo()
    tf.saved_model.save(module, str(partial), signatures={"serving_default": module.serve})
    partial.rename(final)
    return final


def server_bin_dir(tmp_dir: Path) -> Path:
    """A folder holding a `tensorflow_model_server`, to put first on PATH.

    Under Bazel it is laid out as docker/Dockerfile lays it out: the
    py_binary's launcher beside a dereferenced copy (`cp -rL`) of its
    runfiles, so the test runs what the image runs. From a plain `pytest` run
    there is no built binary: a shim runs the same main().
    """
    bin_dir = tmp_dir / "opt" / "tensorflow_serving" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    server = bin_dir / "tensorflow_model_server"
    runfiles = os.environ.get("TEST_SRCDIR")
    if runfiles:
        built = Path(runfiles, os.environ.get("TEST_WORKSPACE", ""), SERVER_TARGET)
        assert built.exists(), f"{built}: the test needs the server binary as data"
        shutil.copy(built, server)
        # The test's runfiles hold the server's (it is a data dependency).
        shutil.copytree(runfiles, bin_dir / "tensorflow_model_server.runfiles", symlinks=False)
    else:
        server.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f"exec {shlex.quote(sys.executable)} -m tensorflow_serving.model_servers.main "
            '"$@"\n'
        )
        server.chmod(0o755)
    return bin_dir


# What Bazel gives a test process but a container does not: the server must
# find its code through its own runfiles, as in the image.
_TEST_ONLY_ENV = ("PYTHONPATH", "RUNFILES_DIR", "RUNFILES_MANIFEST_FILE", "JAVA_RUNFILES")


@dataclasses.dataclass
class EntrypointServer:
    """tf_serving_entrypoint.sh running our server, as a container would."""

    proc: subprocess.Popen
    env: dict[str, str]
    grpc_port: int
    rest_port: int
    log_path: Path

    def exit_status(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def rest_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.rest_port}{path}"

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as `docker stop` sends it; kills after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_entrypoint(
    tmp_dir: Path, env: dict[str, str], args: list[str] | None = None
) -> EntrypointServer:
    """Runs the entrypoint script with `env` added to ours and our server on PATH."""
    full_env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY_ENV}
    full_env.update(env)
    full_env["PATH"] = f"{server_bin_dir(tmp_dir)}{os.pathsep}{full_env.get('PATH', '')}"
    log_path = tmp_dir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(ENTRYPOINT), *(args or [])],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return EntrypointServer(
        proc=proc,
        env=full_env,
        grpc_port=int(full_env["GRPC_PORT"]),
        rest_port=int(full_env["PORT"]),
        log_path=log_path,
    )


def grpc_model_states(port: int, model_name: str, timeout: float = 5.0) -> dict[int, str]:
    """{version: state name} from ModelService.GetModelStatus."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        response = stub.GetModelStatus(request, timeout=timeout)
    return {
        s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
        for s in response.model_version_status
    }


class Server(Protocol):
    """A model server a test waits for: a process or a container."""

    grpc_port: int

    def exit_status(self) -> int | None:
        """The exit status once it has ended, else None."""

    def log_tail(self, chars: int = 4000) -> str:
        """The end of its log, to show when a check fails."""


def every_worker_serves(log: str) -> bool:
    """Whether each worker named in a supervisor's `log` ("[worker i/N]") has logged
    "Worker i/N (pid ...) serves"; True for a server of one process."""
    counts = {int(n) for n in re.findall(r"\[worker \d+/(\d+)\]", log)}
    if not counts:
        return True
    serving = {
        tuple(map(int, m)) for m in re.findall(r"Worker (\d+)/(\d+) \(pid \d+\) serves", log)
    }
    return all((index, n) in serving for n in counts for index in range(n))


def wait_until_available(
    server: Server, model_name: str, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Returns once `model_name` has an AVAILABLE version over gRPC and, under a
    supervisor (--num_server_processes), every worker has logged that it serves:
    only then is the server ready (a Kubernetes replica, say).

    Fails with the server's log if the server ends first or `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        status = server.exit_status()
        if status is not None:
            raise AssertionError(
                f"server exited with {status} before serving:\n" + server.log_tail()
            )
        try:
            available = "AVAILABLE" in grpc_model_states(server.grpc_port, model_name).values()
            if available and every_worker_serves(server.log_tail(chars=1 << 20)):
                return
        except grpc.RpcError as error:
            last_error = f"{error.code()}: {error.details()}"
        time.sleep(0.5)
    raise AssertionError(
        f"no AVAILABLE version of {model_name} on every worker after {timeout:.0f} s "
        f"({last_error}):\n{server.log_tail()}"
    )


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body), for any status; connection errors raise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_post_json(url: str, payload: object, timeout: float = 10.0) -> tuple[int, object]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_http(url: str, timeout: float = 15.0) -> tuple[int, bytes]:
    """The first answer from `url` (any HTTP status), retrying while nothing listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit("docker_test_util.py is a library for the docker/ tests, not a program")
