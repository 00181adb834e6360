"""Supervisor: --num_server_processes worker processes serving the same ports.

One interpreter runs every request's Python under one lock, so one server
process can use about one core. With `--num_server_processes=N` (not
upstream) the process the user starts becomes a supervisor: it starts N
workers, each a whole tensorflow_model_server with its own copy of every
model, listening on the same gRPC and REST ports with SO_REUSEPORT (the
kernel hands each new connection to one of them), and

  - reserves the ports first (a port in use fails at once; port 0 picks one
    port for all) and keeps them reserved while workers come and go;
  - restarts a worker that dies, after a back-off that grows while it keeps
    dying at start; exits 1 with the workers' start-up error when none ever
    started;
  - on SIGTERM or SIGINT, stops every worker as a lone server stops (drain,
    then exit) and exits 0 when they all did;
  - with --pin_server_processes, gives each worker its own share of its
    CPUs (worker_cpu_sets), which the worker applies before its first thread.

No request passes through the supervisor, and it does not import
TensorFlow. gRPC on --grpc_socket_path is served by worker 0 only (a UNIX
socket cannot be shared). Each worker's log lines name it ("worker 1/4").

A worker learns it is one from the environment (WORKER_ENV) and tells the
supervisor that it started, or why it could not, on an inherited pipe
(STATUS_FD_ENV).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence

from tensorflow_serving.model_servers.server_options import check_start_up_options, serves_rest
from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)

# "index/count" in a worker's environment.
WORKER_ENV = "TFS_PY_WORKER"
# The group's private directory (control sockets, the reloaded config).
DIRECTORY_ENV = "TFS_PY_WORKER_DIR"
# The write end of the worker's status pipe: "ready\n", or "failed <message>\n".
STATUS_FD_ENV = "TFS_PY_WORKER_STATUS_FD"
# The CPUs the worker keeps to ("0,1"), with --pin_server_processes.
CPUS_ENV = "TFS_PY_WORKER_CPUS"
# Restart back-off: doubles from the first to the last while a worker dies
# within _STABLE_SECONDS of its start; a worker that lived longer restarts at once.
_FIRST_BACKOFF_SECONDS = 0.5
_MAX_BACKOFF_SECONDS = 30.0
_STABLE_SECONDS = 60.0
# How long stopping workers may take before they are killed: the lone
# server's drain and its slack (main.py), plus a margin.
_STOP_SECONDS = 95.0

_ENTRY_MODULE = "tensorflow_serving.model_servers.tensorflow_model_server"


def check_num_server_processes(count: int) -> None:
    if count < 0:
        raise status.invalid_argument(f"--num_server_processes must be >= 0, got {count}")


def usable_cores(cgroup_root: str = "/sys/fs/cgroup", proc_self: str = "/proc/self") -> int:
    """Cores this process may use: its CPU affinity, capped by its cgroup's CPU quota.

    The quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`)
    is what a container's CPU limit sets: a Kubernetes limit of 2 gives 2,
    rounded up. The tightest quota on the way from the process's cgroup to the
    root counts. At least 1.
    """
    cores = len(os.sched_getaffinity(0))
    quota = _cgroup_quota(cgroup_root, proc_self)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota(cgroup_root: str, proc_self: str) -> float | None:
    """The process's CPU quota in cores, or None when it has none."""
    quotas = []
    for directory in _cgroup_dirs(cgroup_root, proc_self):
        quota = _read_quota(directory)
        if quota is not None:
            quotas.append(quota)
    return min(quotas) if quotas else None


def _cgroup_dirs(cgroup_root: str, proc_self: str) -> list[str]:
    """The process's cgroup directories (v2 unified, v1 cpu), from its own up to the root."""
    try:
        with open(os.path.join(proc_self, "cgroup")) as lines:
            entries = [line.rstrip("\n").split(":", 2) for line in lines]
    except OSError:
        return []
    directories = []
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, path = entry
        if controllers == "":
            base = cgroup_root
        elif "cpu" in controllers.split(","):
            base = os.path.join(cgroup_root, controllers)
            if not os.path.isdir(base):
                base = os.path.join(cgroup_root, "cpu")
        else:
            continue
        parts = [part for part in path.split("/") if part]
        for depth in range(len(parts), -1, -1):
            directories.append(os.path.join(base, *parts[:depth]))
    return directories


def _read_quota(directory: str) -> float | None:
    v2 = _read(os.path.join(directory, "cpu.max"))
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2 and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        return None
    quota = _read(os.path.join(directory, "cpu.cfs_quota_us"))
    period = _read(os.path.join(directory, "cpu.cfs_period_us"))
    if quota is None or period is None or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except (OSError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class WorkerIdentity:
    index: int
    count: int
    directory: str

    def __str__(self) -> str:
        return f"worker {self.index}/{self.count}"


def worker_identity() -> WorkerIdentity | None:
    """This process's place among a supervisor's workers; None when it serves alone."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return None
    index, count = value.split("/")
    return WorkerIdentity(int(index), int(count), os.environ.get(DIRECTORY_ENV, ""))


def worker_cpu_sets(cpus: Iterable[int], count: int) -> list[frozenset[int]] | None:
    """Splits `cpus` into `count` disjoint runs of neighbouring CPUs, as even as can be.

    None when there are fewer CPUs than workers: they cannot each have one,
    so none is pinned. Why pin: a worker's threads take turns at one
    interpreter lock, and a lock passed between threads on two cores costs
    a cross-core wake-up each time, where on one core it is a plain switch.
    """
    ordered = sorted(cpus)
    if count < 1 or len(ordered) < count:
        return None
    share, extra = divmod(len(ordered), count)
    sets, start = [], 0
    for index in range(count):
        end = start + share + (index < extra)
        sets.append(frozenset(ordered[start:end]))
        start = end
    return sets


def keep_to_worker_cpus() -> None:
    """In a worker the supervisor pinned: confines this process to its CPUs.

    Call first in the worker's main, before any thread starts: a thread
    inherits the CPUs of the thread that starts it, and only those.
    """
    value = os.environ.get(CPUS_ENV)
    if value:
        os.sched_setaffinity(0, {int(cpu) for cpu in value.split(",")})


def report_started(error: str | None = None) -> None:
    """Tells the supervisor (if any) that this worker serves, or why it cannot. Once."""
    fd = os.environ.pop(STATUS_FD_ENV, None)
    if fd is None:
        return
    line = "ready\n" if error is None else "failed " + error.replace("\n", " ") + "\n"
    try:
        os.write(int(fd), line.encode())
        os.close(int(fd))
    except OSError:
        pass  # the supervisor is gone; it cannot use the answer


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket holding `port` for the workers, bound but not listening.

    A port another process listens on is refused (UNAVAILABLE), as a lone
    server refuses it. The reservation is bound with SO_REUSEPORT, so that
    workers (same user) can listen on the port beside it; it takes no
    connections itself.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise status.unavailable(
                f"Failed to reserve port {port} on {host} for the workers: "
                f"{error.strerror or error}"
            ) from None
        finally:
            probe.close()
    reservation = socket.socket(family, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind((host, port))
    return reservation


def rss_megabytes(pid: int) -> float | None:
    """The resident memory of process `pid` in MB (/proc), or None if unreadable."""
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


class _Worker:
    """One worker slot: its current process, and how its recent starts went."""

    def __init__(self, index: int):
        self.index = index
        self.process: subprocess.Popen | None = None
        self.status_fd: int | None = None
        self.started_at = 0.0
        self.ready = False
        self.ever_ready = False
        self.start_error = ""
        self.failures_in_a_row = 0
        self.restart_at: float | None = None

    def backoff(self) -> float:
        return min(_MAX_BACKOFF_SECONDS, _FIRST_BACKOFF_SECONDS * 2 ** (self.failures_in_a_row - 1))


class Supervisor:
    """Runs the workers until a stop signal; see the module docstring.

    `argv` is the server's command line as given; each worker gets it with
    the ports resolved and --num_server_processes=1. Call run() once, from
    the main thread (it installs the SIGTERM/SIGINT handlers).
    """

    def __init__(
        self,
        options,
        argv: Sequence[str],
        count: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._options = options
        self._argv = list(argv)
        self._count = count or options.num_server_processes or usable_cores()
        self._clock = clock
        self._workers = [_Worker(index) for index in range(self._count)]
        self._cpu_sets = (
            worker_cpu_sets(os.sched_getaffinity(0), self._count)
            if options.pin_server_processes
            else None
        )
        self._reservations: list[socket.socket] = []
        self._worker_argv: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._stop_requested = ""
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._directory = ""

    def run(self) -> int:
        try:
            check_start_up_options(self._options)
            self._reserve_ports()
            self._worker_argv = [*self._argv, "--num_server_processes=1"]
        except status.ServingError as error:
            print(
                f"Failed to start server. Error: {error.code.name}: {error.message}",
                file=sys.stderr,
            )
            return 1
        self._install_signals()
        self._directory = tempfile.mkdtemp(prefix="tensorflow_model_server-workers-")
        _LOG.info(
            "Supervising %d server processes (their control sockets in %s)",
            self._count,
            self._directory,
        )
        try:
            for worker in self._workers:
                self._start(worker)
            return self._supervise()
        finally:
            for reservation in self._reservations:
                reservation.close()
            shutil.rmtree(self._directory, ignore_errors=True)

    # -- Set-up ------------------------------------------------------------

    def _reserve_ports(self) -> None:
        """Reserves the TCP ports the workers will share (0 keeps a listener off)."""
        rest_port = self._options.rest_api_port if serves_rest(self._options) else 0
        for port in (self._options.port, rest_port):
            if port:
                self._reservations.append(reserve_port(self._options.bind_address, port))

    def _install_signals(self) -> None:
        os.set_blocking(self._wakeup_w, False)
        os.set_blocking(self._wakeup_r, False)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the loop
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, None)

    def _on_stop_signal(self, signum, frame) -> None:
        self._stop_requested = signal.Signals(signum).name

    # -- Workers -----------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[WORKER_ENV] = f"{worker.index}/{self._count}"
        env[STATUS_FD_ENV] = str(write_fd)
        env[DIRECTORY_ENV] = self._directory
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        env.pop(CPUS_ENV, None)
        if self._cpu_sets is not None:
            env[CPUS_ENV] = ",".join(map(str, sorted(self._cpu_sets[worker.index])))
        argv = list(self._worker_argv)
        if worker.index and self._options.grpc_socket_path:
            argv.append("--grpc_socket_path=")  # one listener for a UNIX socket
        worker.process = subprocess.Popen(
            [sys.executable, "-m", _ENTRY_MODULE, *argv], env=env, pass_fds=(write_fd,)
        )
        os.close(write_fd)
        worker.status_fd = read_fd
        worker.started_at = self._clock()
        worker.ready = False
        worker.restart_at = None
        self._selector.register(read_fd, selectors.EVENT_READ, worker)
        _LOG.info(
            "Started worker %d/%d (pid %d%s)",
            worker.index,
            self._count,
            worker.process.pid,
            f", CPUs {env[CPUS_ENV]}" if CPUS_ENV in env else "",
        )

    def _on_status(self, worker: _Worker) -> None:
        """Reads the worker's start-up report (or EOF, when it died without one)."""
        try:
            text = os.read(worker.status_fd, 65536).decode(errors="replace")
        except OSError:
            text = ""
        self._close_status(worker)
        if text.startswith("ready"):
            worker.ready = worker.ever_ready = True
            rss = rss_megabytes(worker.process.pid)
            _LOG.info(
                "Worker %d/%d (pid %d) serves; RSS %s MB (each worker holds every model)",
                worker.index,
                self._count,
                worker.process.pid,
                "?" if rss is None else f"{rss:.0f}",
            )
        elif text.startswith("failed "):
            worker.start_error = text[len("failed ") :].strip()

    def _close_status(self, worker: _Worker) -> None:
        if worker.status_fd is not None:
            self._selector.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = None

    def _reap(self) -> None:
        """Schedules the restart of each worker that exited."""
        now = self._clock()
        for worker in self._workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            self._close_status(worker)
            lived = now - worker.started_at
            if worker.ready and lived >= _STABLE_SECONDS:
                worker.failures_in_a_row = 0
            worker.failures_in_a_row += 1
            delay = 0.0 if worker.ready and worker.failures_in_a_row == 1 else worker.backoff()
            _LOG.warning(
                "Worker %d/%d (pid %d) exited with %s after %.1f s%s; restarting in %.1f s",
                worker.index,
                self._count,
                process.pid,
                _exit_text(process.returncode),
                lived,
                "" if worker.ready else " before serving",
                delay,
            )
            worker.process = None
            worker.ready = False
            worker.restart_at = now + delay

    def _none_can_start(self) -> bool:
        """True once every worker failed at start and none ever served."""
        return all(
            not worker.ever_ready and worker.process is None and worker.failures_in_a_row
            for worker in self._workers
        )

    # -- The loop ----------------------------------------------------------

    def _supervise(self) -> int:
        while not self._stop_requested:
            for key, _ in self._selector.select(self._next_timeout()):
                if key.data is None:
                    _drain(self._wakeup_r)
                else:
                    self._on_status(key.data)
            self._reap()
            if self._none_can_start():
                errors = sorted({w.start_error for w in self._workers if w.start_error})
                print(
                    "Failed to start server. Error: "
                    + ("; ".join(errors) or "every worker exited at start"),
                    file=sys.stderr,
                )
                return 1
            now = self._clock()
            for worker in self._workers:
                if worker.process is None and worker.restart_at is not None:
                    if worker.restart_at <= now:
                        self._start(worker)
        _LOG.info("Received %s: stopping %d workers", self._stop_requested, self._count)
        return self._stop_all()

    def _next_timeout(self) -> float | None:
        due = [w.restart_at for w in self._workers if w.process is None and w.restart_at]
        if not due:
            return None
        return max(0.0, min(due) - self._clock())

    def _stop_all(self) -> int:
        live = [w.process for w in self._workers if w.process is not None]
        for process in live:
            _signal(process, signal.SIGTERM)
        deadline = self._clock() + _STOP_SECONDS
        code = 0
        for process in live:
            try:
                process.wait(timeout=max(0.0, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                _LOG.error("Worker pid %d did not stop in time; killing it", process.pid)
                _signal(process, signal.SIGKILL)
                process.wait()
            if process.returncode != 0:
                code = 1
        _LOG.info("All workers stopped")
        return code


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _signal(process: subprocess.Popen, signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"
