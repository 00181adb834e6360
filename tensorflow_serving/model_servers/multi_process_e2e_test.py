"""--num_server_processes: workers share the ports; a killed worker costs only the
connections it held and is replaced; SIGTERM stops them all; a bad start fails fast.

Which worker holds a connection is read from /proc (test_util/process_sockets),
so the test knows which connections a kill may break.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys

import grpc
import pytest

from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.model_servers import supervisor, worker_group
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import process_sockets, testing
from tensorflow_serving.test_util.model_server_process import RunningServer, server_command

WORKERS = 2
CONNECTIONS = 8
BODY = b'{"instances": [1.0, 2.0]}'


@pytest.fixture
def server(tmp_path):
    hp.export_half_plus_two_tf1(str(tmp_path / "hp"), 1)  # y = 0.5x + 2
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true }\n")
    running = RunningServer(
        tmp_path,
        "workers",
        [
            f"--monitoring_config_file={monitoring}",
            "--model_name=hp",
            f"--model_base_path={tmp_path / 'hp'}",
            f"--num_server_processes={WORKERS}",
        ],
    )
    try:
        running.wait_until_serving()
        assert testing.wait_for(lambda: len(workers_listening(running)) == WORKERS, timeout=120)
        yield running
    finally:
        running.stop()


def workers_listening(server: RunningServer) -> list[int]:
    """The supervisor's children that listen on both the gRPC and the REST port."""
    children = process_sockets.child_pids(server.process.pid)
    grpc = process_sockets.listeners(children, server.grpc_port)
    rest = process_sockets.listeners(children, server.rest_port)
    return [pid for pid in children if grpc[pid] and rest[pid]]


def predict(connection: http.client.HTTPConnection) -> int:
    connection.request("POST", "/v1/models/hp:predict", BODY)
    response = connection.getresponse()
    body = response.read()
    assert response.status != 200 or json.loads(body) == {"predictions": [2.5, 3.0]}
    return response.status


def open_connections(server: RunningServer, count: int) -> list[http.client.HTTPConnection]:
    connections = []
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        assert predict(connection) == 200
        connections.append(connection)
    return connections


def test_every_worker_listens_on_both_ports_and_answers(server):
    pids = workers_listening(server)
    assert len(pids) == WORKERS
    connections = open_connections(server, 16)
    owners = {
        process_sockets.connection_owner(pids, server.rest_port, c.sock.getsockname()[1])
        for c in connections
    }
    assert owners <= set(pids) and None not in owners
    assert "worker 0/2" in server.log_path.read_text() and "worker 1/2" in server.log_tail()


def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """The CPU sets the threads of process `pid` may run on (one per distinct set)."""
    return {
        frozenset(os.sched_getaffinity(int(thread))) for thread in os.listdir(f"/proc/{pid}/task")
    }


def test_each_worker_runs_every_thread_on_its_own_share_of_the_cpus(server):
    shares = supervisor.worker_cpu_sets(os.sched_getaffinity(server.process.pid), WORKERS)
    per_worker = [cpus_of_threads(pid) for pid in workers_listening(server)]
    if shares is None:  # fewer CPUs than workers: none is pinned
        everything = frozenset(os.sched_getaffinity(server.process.pid))
        assert per_worker == [{everything}] * WORKERS
    else:
        assert sorted(map(sorted, (one for [one] in per_worker))) == sorted(map(sorted, shares))


def test_the_metrics_page_counts_every_workers_requests_whichever_worker_serves_it(server):
    pids = workers_listening(server)
    connections = open_connections(server, 16)
    owners = {
        process_sockets.connection_owner(pids, server.rest_port, c.sock.getsockname()[1])
        for c in connections
    }
    for connection in connections:
        connection.close()
    assert len(owners) == WORKERS, "16 connections reached both workers"
    for _ in range(4):  # each page request may land on either worker
        count = server.metric(":tensorflow:serving:request_count", API="predict", status="OK")
        assert count == 16
        assert server.metric(":tensorflow:serving:loaded_versions", model_name="hp") == 1


def test_a_killed_worker_breaks_only_its_own_connections_and_is_replaced(server):
    pids = workers_listening(server)
    connections = open_connections(server, CONNECTIONS)
    owner = {
        c: process_sockets.connection_owner(pids, server.rest_port, c.sock.getsockname()[1])
        for c in connections
    }
    victim = pids[0]
    subprocess.run(["kill", "-9", str(victim)], check=True)
    for connection in connections:
        if owner[connection] == victim:
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                predict(connection)
        else:
            assert predict(connection) == 200, "a survivor's connection keeps working"
    assert testing.wait_for(
        lambda: (
            len(workers_listening(server)) == WORKERS and victim not in workers_listening(server)
        ),
        timeout=120,
    ), server.log_tail()
    assert "exited with signal SIGKILL" in server.log_path.read_text()
    for connection in open_connections(server, CONNECTIONS):
        connection.close()


def own_status(directory: str, index: int, model: str):
    """Worker `index`'s own state of `model`, from its private control socket."""
    # A channel of its own: the process-wide subchannel to a worker that was
    # killed may still be backing off from the refused reconnects.
    channel = grpc.insecure_channel(
        f"unix:{worker_group.control_socket(directory, index)}",
        options=[("grpc.use_local_subchannel_pool", 1)],
    )
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": model})
    try:
        return stub.GetModelStatus(
            request, timeout=30, metadata=(worker_group.LOCAL_ONLY,), wait_for_ready=True
        )
    finally:
        channel.close()


def group_directory(server: RunningServer) -> str:
    match = re.search(r"their control sockets in (\S+)\)", server.log_path.read_text())
    assert match, server.log_tail()
    return match.group(1)


def test_a_reload_sent_to_one_worker_reaches_every_worker_and_later_ones(server, tmp_path):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(
        name="hp2", base_path=str(tmp_path / "hp"), model_platform="tensorflow"
    )
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    stub.HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=config), timeout=120
    )
    directory = group_directory(server)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    for index in range(WORKERS):
        states = [v.state for v in own_status(directory, index, "hp2").model_version_status]
        assert states == [available], f"worker {index} applied the reload before the answer"
    victim = workers_listening(server)[0]
    subprocess.run(["kill", "-9", str(victim)], check=True)
    assert testing.wait_for(
        lambda: (
            len(workers_listening(server)) == WORKERS and victim not in workers_listening(server)
        ),
        timeout=120,
    ), server.log_tail()
    for index in range(WORKERS):
        states = [v.state for v in own_status(directory, index, "hp2").model_version_status]
        assert states == [available], f"worker {index} serves the reloaded config after a restart"


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(server):
    pids = workers_listening(server)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(120) == 0
    assert not set(pids) & set(process_sockets.child_pids(server.process.pid))
    assert server.log_path.read_text().count("Server stopped") == WORKERS


def test_a_start_that_fails_in_every_worker_fails_with_the_lone_servers_message(tmp_path):
    config = "--model_config_file=/nonexistent/models.config"
    alone = subprocess.run(
        [*server_command(), f"--port={testing.free_port()}", config],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A port of its own, picked just before: tests running beside this one pick ports too.
    supervised = subprocess.run(
        [
            *server_command(),
            f"--port={testing.free_port()}",
            config,
            f"--num_server_processes={WORKERS}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert alone.returncode == supervised.returncode == 1
    message = [line for line in alone.stderr.splitlines() if "Failed to start server" in line]
    assert len(message) == 1
    assert message[0] in supervised.stderr.splitlines()


def test_a_port_in_use_is_refused_before_any_worker_starts(server, tmp_path):
    result = subprocess.run(
        [
            *server_command(),
            f"--port={server.grpc_port}",
            "--model_name=hp",
            f"--model_base_path={tmp_path / 'hp'}",
            f"--num_server_processes={WORKERS}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert f"Failed to reserve port {server.grpc_port}" in result.stderr
    assert "Started worker" not in result.stderr


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
