"""--num_server_processes: workers share the ports; a killed worker costs only the
connections it held and is replaced; SIGTERM stops them all; a bad start fails fast.

Which worker holds a connection is read from /proc (test_util/process_sockets),
so the test knows which connections a kill may break.
"""

import http.client
import json
import signal
import subprocess
import sys

import pytest

from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import process_sockets, testing
from tensorflow_serving.test_util.model_server_process import RunningServer, server_command

WORKERS = 2
CONNECTIONS = 8
BODY = b'{"instances": [1.0, 2.0]}'


@pytest.fixture
def server(tmp_path):
    hp.export_half_plus_two_tf1(str(tmp_path / "hp"), 1)  # y = 0.5x + 2
    running = RunningServer(
        tmp_path,
        "workers",
        [
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


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(server):
    pids = workers_listening(server)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(120) == 0
    assert not set(pids) & set(process_sockets.child_pids(server.process.pid))
    assert server.log_path.read_text().count("Server stopped") == WORKERS


def test_a_start_that_fails_in_every_worker_fails_with_the_lone_servers_message(tmp_path):
    flags = ["--port=0", "--model_config_file=/nonexistent/models.config"]
    alone = subprocess.run([*server_command(), *flags], capture_output=True, text=True, timeout=300)
    supervised = subprocess.run(
        [*server_command(), *flags, f"--num_server_processes={WORKERS}"],
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
