"""A server's process tree from /proc: the CPU of every process in it, and who listens on a port."""

import os
import signal
import subprocess
import sys
import textwrap

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import processes

# A parent that idles while its two children each listen on PORT with SO_REUSEPORT; it
# prints READY and their pids once both listen. On SIGUSR1 a child spins for SPIN seconds
# of CPU.
_TREE = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    port, spin = int(sys.argv[1]), float(sys.argv[2])
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
            os.write(write, b"x")
            signal.sigwait([signal.SIGUSR1])
            end = time.process_time() + spin
            while time.process_time() < end:
                pass
            signal.pause()  # until the test kills the group
            os._exit(0)
        os.read(read, 1)
        children.append(pid)
    print("READY", *children, flush=True)
    signal.pause()  # until the test kills the group
    """
)


def _start_tree(port: int, spin_s: float) -> tuple[subprocess.Popen, set[int]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", _TREE, str(port), str(spin_s)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    words = parent.stdout.readline().split()
    assert words[0] == "READY", words
    return parent, {int(w) for w in words[1:]}


def _stop_tree(parent: subprocess.Popen) -> None:
    """Kills the tree's process group (its own session, started here) and reaps the parent."""
    os.killpg(parent.pid, signal.SIGKILL)
    parent.wait(10)
    parent.stdout.close()


def test_free_ports_are_distinct():
    ports = processes.free_ports(3)
    assert len(ports) == len(set(ports)) == 3
    assert all(0 < port < 65536 for port in ports)


def test_listening_processes_of_a_tree_that_shares_a_port():
    port = processes.free_port()
    parent, children = _start_tree(port, 0.0)
    try:
        assert processes.listening_pids(port, parent.pid) == children
        assert processes.with_descendants(parent.pid) >= children | {parent.pid}
        assert processes.listening_pids(processes.free_port(), parent.pid) == set()
    finally:
        _stop_tree(parent)


def test_cpu_of_a_tree_counts_every_process_in_it():
    """The parent idles, its two children spin 0.4 s of CPU each: the tree used 0.8 s."""
    parent, children = _start_tree(processes.free_port(), 0.4)
    try:
        meter = processes.CpuMeter(parent.pid)
        meter.start()
        before = {pid: processes.cpu_seconds(pid) for pid in children}
        for pid in children:
            os.kill(pid, signal.SIGUSR1)
        # /proc counts in ticks of 10 ms: 0.38 s is a spin of 0.4 s done.
        assert testing.wait_for(
            lambda: all(processes.cpu_seconds(pid) - before[pid] >= 0.38 for pid in children),
            timeout=60,
        )
        assert 0.75 <= meter.stop() < 1.5
    finally:
        _stop_tree(parent)
    assert processes.CpuMeter(None).stop() is None  # no pid, nothing measured


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
