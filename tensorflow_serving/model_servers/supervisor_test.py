"""The supervisor's pieces that need no worker: usable cores from affinity and cgroup
quota, port reservation, and the worker's start-up report."""

import os
import socket
import sys

import grpc
import pytest

from tensorflow_serving.model_servers import supervisor
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def fake_proc(tmp_path, cgroup_line: str):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup_line + "\n")
    return str(proc)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_no_quota_means_every_core_of_the_affinity(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "kubepods" / "pod1" / "cpu.max", "max 100000\n")
    proc = fake_proc(tmp_path, "0::/kubepods/pod1")
    assert supervisor.usable_cores(str(root), proc) == affinity()


def test_a_cgroup_v2_quota_caps_the_cores_rounded_up(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "kubepods" / "pod1" / "cpu.max", "max 100000\n")
    write(root / "kubepods" / "cpu.max", "50000 100000\n")  # a parent's half core
    proc = fake_proc(tmp_path, "0::/kubepods/pod1")
    assert supervisor.usable_cores(str(root), proc) == 1


def test_a_cgroup_v1_quota_counts_too(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_quota_us", "150000\n")
    write(root / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_period_us", "100000\n")
    proc = fake_proc(tmp_path, "4:cpu,cpuacct:/docker/c1")
    assert supervisor.usable_cores(str(root), proc) == min(affinity(), 2)


def test_unreadable_cgroups_leave_the_affinity(tmp_path):
    assert supervisor.usable_cores(str(tmp_path / "none"), str(tmp_path / "none")) == affinity()


def test_a_port_another_process_listens_on_is_refused():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with pytest.raises(status.ServingError) as refused:
        supervisor.reserve_port("127.0.0.1", port)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert f"Failed to reserve port {port}" in refused.value.message
    taken.close()


def test_a_reserved_port_takes_listeners_with_reuseport_beside_it():
    port = testing.free_port()
    reservation = supervisor.reserve_port("127.0.0.1", port)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    accepted, _ = listener.accept()
    for sock in (accepted, client, listener, reservation):
        sock.close()


def test_a_worker_reports_its_start_once_on_the_inherited_pipe(monkeypatch):
    read_fd, write_fd = os.pipe()
    monkeypatch.setenv(supervisor.STATUS_FD_ENV, str(write_fd))
    supervisor.report_started(error="INVALID_ARGUMENT: bad\nconfig")
    supervisor.report_started()  # nobody to tell any more: no effect
    assert os.read(read_fd, 1024) == b"failed INVALID_ARGUMENT: bad config\n"
    os.close(read_fd)


def test_worker_identity_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(supervisor.WORKER_ENV, raising=False)
    assert supervisor.worker_identity() is None
    monkeypatch.setenv(supervisor.WORKER_ENV, "1/4")
    assert str(supervisor.worker_identity()) == "worker 1/4"


def test_a_negative_count_is_refused():
    with pytest.raises(status.ServingError):
        supervisor.check_num_server_processes(-1)


@pytest.mark.parametrize(
    "cpus, count, shares",
    [
        ({0, 1}, 2, [{0}, {1}]),
        ({0, 1, 2, 3, 4}, 2, [{0, 1, 2}, {3, 4}]),
        ({2, 5, 7}, 3, [{2}, {5}, {7}]),
        ({0, 1, 2, 3}, 1, [{0, 1, 2, 3}]),
        ({0, 1}, 3, None),
    ],
)
def test_worker_cpu_sets_splits_the_cpus_into_disjoint_neighbouring_shares(cpus, count, shares):
    got = supervisor.worker_cpu_sets(cpus, count)
    assert got == (None if shares is None else [frozenset(share) for share in shares])


def test_a_worker_keeps_to_the_cpus_its_supervisor_named(monkeypatch):
    chosen = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: chosen.append((pid, cpus)))
    monkeypatch.delenv(supervisor.CPUS_ENV, raising=False)
    supervisor.keep_to_worker_cpus()
    monkeypatch.setenv(supervisor.CPUS_ENV, "1,3")
    supervisor.keep_to_worker_cpus()
    assert chosen == [(0, {1, 3})]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
