"""Child processes for the benchmark: pinned to CPUs, on loopback ports, stopped by pid.

Every party the benchmark measures (in-process limit, floor servers, the model
server) runs in its own process so that it can be pinned to the server's core
and its CPU time read from /proc. Nothing here stops a process it did not
start: `stop` signals the pid of a child it was handed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence

# Sets the CPU affinity, then execs the real command: same pid, so it can be
# accounted and stopped; no dependency on util-linux's taskset.
_PIN_AND_EXEC = (
    "import os, sys; "
    "os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)

# The directory holding our `tensorflow_serving` package (the repo root, or the
# workspace directory of a Bazel runfiles tree).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for children: our package importable, TensorFlow quiet, no GPU."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PACKAGE_ROOT not in paths:
        paths.insert(0, PACKAGE_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    env.update(extra or {})
    return env


def python_module(module: str) -> list[str]:
    """The command that runs `module` with this interpreter."""
    return [sys.executable, "-m", module]


def pinned(cmd: Sequence[str], cpus: Iterable[int] | None) -> list[str]:
    """`cmd`, run with its affinity set to `cpus` (unchanged when cpus is None)."""
    if not cpus:
        return list(cmd)
    cpu_list = ",".join(str(c) for c in sorted(cpus))
    return [sys.executable, "-c", _PIN_AND_EXEC, cpu_list, *cmd]


def start(
    cmd: Sequence[str],
    cpus: Iterable[int] | None,
    log_path: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen:
    """Starts `cmd` pinned to `cpus`, stdout and stderr to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            pinned(cmd, cpus),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or child_env(),
            cwd=cwd,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, grace_seconds: float = 15.0) -> int | None:
    """SIGTERM to the child's pid, then SIGKILL to the session it leads; returns its code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            # start_new_session made the child a group leader: this group is ours.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return process.returncode


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> bool:
    """Whether 127.0.0.1:`port` accepts connections within `timeout_s` (False if the child dies)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def log_tail(path: str, chars: int = 3000) -> str:
    """The end of a child's log, for error messages."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- /proc accounting
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def with_descendants(pid: int) -> set[int]:
    """`pid` and every process below it (a launcher script may exec or fork the server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children.get(current, []))
    return found


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on `port` (any address), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def listening_pids(port: int, root_pid: int) -> set[int]:
    """The processes of `root_pid`'s tree that hold a socket listening on TCP `port`.

    Server workers that share a port (SO_REUSEPORT, or one socket inherited)
    each hold one; a worker still loading, or gone, holds none.
    """
    inodes = _listening_inodes(port)
    found = set()
    for pid in with_descendants(root_pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.add(pid)
                break
    return found


class CpuMeter:
    """CPU seconds used by a process tree between `start()` and `stop()`."""

    def __init__(self, pid: int | None):
        self.pid = pid
        self._before: dict[int, float] = {}

    def start(self) -> None:
        if self.pid is None:
            return
        self._before = {}
        for pid in with_descendants(self.pid):
            value = cpu_seconds(pid)
            if value is not None:
                self._before[pid] = value

    def stop(self) -> float | None:
        """Seconds used since start by the processes alive at start; None without a pid."""
        if self.pid is None:
            return None
        used = 0.0
        for pid, before in self._before.items():
            after = cpu_seconds(pid)
            if after is not None:
                used += after - before
        return used


def _per_cpu_ticks() -> dict[int, tuple[int, int]]:
    """{cpu: (busy ticks, all ticks)} from /proc/stat."""
    ticks = {}
    with open("/proc/stat") as handle:
        for line in handle:
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu") or name == "cpu":
                continue
            values = [int(v) for v in rest.split()]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            ticks[int(name[3:])] = (sum(values) - idle, sum(values))
    return ticks


class CpuBusyMeter:
    """How busy each CPU was between `start()` and `stop()`, whoever kept it busy.

    Next to a party's own CPU time this shows what other processes took from
    its core: on a shared machine that is the noise in the measurement.
    """

    def __init__(self) -> None:
        self._before: dict[int, tuple[int, int]] = {}

    def start(self) -> None:
        self._before = _per_cpu_ticks()

    def stop(self) -> dict[int, float]:
        """{cpu: busy fraction 0..1}."""
        after = _per_cpu_ticks()
        busy = {}
        for cpu, (b1, t1) in after.items():
            b0, t0 = self._before.get(cpu, (b1, t1))
            busy[cpu] = round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else 0.0
        return busy


def parse_cpus(text: str) -> set[int] | None:
    """'0', '0,1' or '0-3' -> a CPU set; '' or 'none' -> None (no pinning)."""
    text = text.strip().lower()
    if text in ("", "none"):
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus
