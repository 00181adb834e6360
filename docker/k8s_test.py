"""The Kubernetes manifests in docker/k8s/: they parse, fit together, and
their probes ask for endpoints our server really serves.

The probe check starts the server the way the Deployment's container does
(the image's entrypoint with the container's env and args, the model volume
replaced by a temp folder) and sends each probe's request to it; then it
takes the model's only version away and checks that readiness turns the
replica out of the Service while liveness keeps it from being restarted.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from tensorflow_serving.test_util import docker_test_util as util
from tensorflow_serving.test_util import testing

K8S = util.DOCKER_DIR / "k8s"
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
UNLOAD_TIMEOUT_SECONDS = 30.0
# How long a probe of a replica that serves may keep failing (the kubelet retries).
PROBE_RETRY_SECONDS = 10.0


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _applied() -> list[dict]:
    """What `kubectl apply -k docker/k8s` creates."""
    (kustomization,) = _documents(K8S / "kustomization.yaml")
    return [doc for name in kustomization["resources"] for doc in _documents(K8S / name)]


def _one(kind: str) -> dict:
    found = [doc for doc in _applied() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _deployment() -> dict:
    return _one("Deployment")


def _container() -> dict:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container.get("env", [])}


def _container_port(container: dict, port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as a number."""
    if isinstance(port, int):
        return port
    names = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    assert port in names, f"port {port!r} is not a named port of the container ({names})"
    return names[port]


def _pod_labels() -> dict[str, str]:
    return _deployment()["spec"]["template"]["metadata"]["labels"]


# --- the manifests ------------------------------------------------------------


def test_every_manifest_parses_with_kind_and_name():
    files = sorted(K8S.glob("*.yaml"))
    assert files
    for path in files:
        for doc in _documents(path):
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: {doc}"
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path.name


def test_kustomization_applies_deployment_service_and_model_volume():
    kinds = sorted(doc["kind"] for doc in _applied())
    assert kinds == ["Deployment", "PersistentVolumeClaim", "Service", "Service"]


def test_deployment_runs_several_replicas_of_the_runtime_image():
    deployment = _deployment()
    assert deployment["spec"]["replicas"] >= 2
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= _pod_labels().items()
    # Never fewer ready replicas than asked for during a rolling update.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = _env(_container())
    assert {"MODEL_NAME", "MODEL_BASE_PATH"} <= env.keys()


def test_the_server_runs_one_worker_per_core_of_its_cpu_limit():
    container = _container()
    assert "--num_server_processes=0" in container["args"]
    limits = container["resources"]["limits"]
    assert int(limits["cpu"]) >= 2, "a CPU limit the workers are counted from"


def test_services_reach_the_pods_grpc_and_rest_ports():
    container = _container()
    env = _env(container)
    services = [doc for doc in _applied() if doc["kind"] == "Service"]
    for service in services:
        assert service["spec"]["selector"].items() <= _pod_labels().items()
    (main,) = [s for s in services if s["spec"].get("clusterIP") != "None"]
    targets = {_container_port(container, p["targetPort"]) for p in main["spec"]["ports"]}
    assert targets == {int(env["GRPC_PORT"]), int(env["PORT"])}
    # The chapter's client talks to port 8000.
    assert {p["port"] for p in main["spec"]["ports"]} == {8000, 8501}


def test_models_come_from_a_shared_volume_at_the_model_base_path():
    spec = _deployment()["spec"]["template"]["spec"]
    container = _container()
    claim = _one("PersistentVolumeClaim")
    # Replicas on different nodes mount it at once.
    assert {"ReadWriteMany", "ReadOnlyMany"} & set(claim["spec"]["accessModes"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    (mount,) = container["volumeMounts"]
    volume = volumes[mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert mount["mountPath"] == _env(container)["MODEL_BASE_PATH"]
    assert mount.get("readOnly") is True


def test_probes_are_http_gets_on_the_rest_port():
    container = _container()
    rest_port = int(_env(container)["PORT"])
    for probe in PROBES:
        http_get = container[probe]["httpGet"]
        assert _container_port(container, http_get["port"]) == rest_port, probe
        assert http_get["path"].startswith("/v1/"), probe


def test_model_loader_mounts_the_same_volume():
    (loader,) = _documents(K8S / "model-loader.yaml")
    (volume,) = loader["spec"]["volumes"]
    assert (
        volume["persistentVolumeClaim"]["claimName"]
        == (_one("PersistentVolumeClaim")["metadata"]["name"])
    )


# --- the probes against a running server ------------------------------------------


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    """One replica's container, run outside Kubernetes."""
    container = _container()
    env = _env(container)
    tmp = tmp_path_factory.mktemp("replica")
    models = tmp / "models"  # the PVC, mounted at MODEL_BASE_PATH
    util.export_half_plus_two(models / env["MODEL_NAME"], version=1)
    env.update(
        MODEL_BASE_PATH=str(models),
        GRPC_PORT=str(testing.free_port()),
        PORT=str(testing.free_port()),
    )
    args = [*container.get("args", []), "--bind_address=127.0.0.1"]
    server = util.start_entrypoint(tmp, env, args)
    try:
        util.wait_until_available(server, env["MODEL_NAME"])
        yield server, models / env["MODEL_NAME"]
    finally:
        server.stop()


def _probe(server, name: str) -> tuple[int, bytes]:
    path = _container()[name]["httpGet"]["path"]
    return util.wait_for_http(server.rest_url(path))


@pytest.mark.parametrize("name", PROBES)
def test_probe_succeeds_on_a_replica_serving_its_model(replica, name):
    # As the kubelet does, the probe is repeated: the workers of a replica that
    # just started may take a moment to reach each other.
    server, _ = replica
    answers = []

    def succeeds() -> bool:
        answers.append(_probe(server, name))
        return 200 <= answers[-1][0] < 400

    testing.wait_for(succeeds, timeout=PROBE_RETRY_SECONDS, interval=0.5)
    code, body = answers[-1]
    assert 200 <= code < 400, f"{name} {code}: {body[:300]!r}\n{server.log_tail()}"


def test_without_a_model_version_readiness_fails_and_liveness_holds(replica):
    """The Service stops sending requests to it; Kubernetes does not restart it."""
    server, model_dir = replica
    shutil.rmtree(model_dir / "1")
    deadline = time.monotonic() + UNLOAD_TIMEOUT_SECONDS
    while True:
        code, body = _probe(server, "readinessProbe")
        if not 200 <= code < 400:
            break
        assert time.monotonic() < deadline, (
            f"readiness still {code} {UNLOAD_TIMEOUT_SECONDS:.0f} s after the only version "
            f"was removed: {body[:300]!r}"
        )
        time.sleep(0.5)
    for name in ("livenessProbe", "startupProbe"):
        code, body = _probe(server, name)
        assert 200 <= code < 400, f"{name} {code}: {body[:300]!r}"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
