"""The Linux CPU scheduling policy of the server's threads (--cpu_scheduling_policy).

Why: when the model and the transport share a core, every network event wakes
a transport thread, and under Linux's default policy (SCHED_OTHER) a woken
thread usually preempts the running one at once. A batch of the model is
then cut into slices by each incoming request, and every slice costs a
context switch and refills the caches of both sides. Under SCHED_BATCH a
thread keeps its fair share of the CPU (no priority change, no privilege
needed), but a woken thread waits for the running one's time slice instead
of preempting it: the model runs its batch in longer stretches and the
transport then handles what arrived in one go (measured in
docs/performance/2026-11-27-cpu-scheduling.md).

"normal" keeps the default policy, e.g. for a server sharing its cores with
latency-sensitive processes.
"""

from __future__ import annotations

import logging
import os

from tensorflow_serving.util import status

_LOG = logging.getLogger(__name__)

POLICIES = ("batch", "normal")


def _policy_number(name: str) -> int:
    if name not in POLICIES:
        raise status.invalid_argument(
            f"--cpu_scheduling_policy must be one of {', '.join(POLICIES)}, got {name!r}"
        )
    return os.SCHED_BATCH if name == "batch" else os.SCHED_OTHER


def check_policy(name: str) -> None:
    """Raises INVALID_ARGUMENT unless `name` is a policy this module knows."""
    _policy_number(name)


def apply_to_process(name: str) -> int:
    """Puts every thread of this process under policy `name`; returns how many changed.

    Threads started later inherit the policy of the thread that starts them,
    so calling this once at start-up covers the threads TensorFlow and gRPC
    create afterwards. A thread that ended meanwhile is skipped. If the system
    refuses (a sandbox without the call, say), the server keeps the policy it
    has: this is a speed hint, not a reason to stop serving.
    """
    policy = _policy_number(name)
    changed = 0
    for entry in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(entry), policy, os.sched_param(0))
            changed += 1
        except ProcessLookupError:
            continue
        except OSError as error:
            _LOG.warning(
                "Could not set CPU scheduling policy %s (%s); threads keep their policy",
                name,
                error,
            )
            break
    return changed


def apply_to_this_thread(name: str) -> bool:
    """Puts the calling thread (only) under policy `name`; False if the system refuses.

    For threads whose answers must not wait for a running batch's time slice
    (the control calls' threads run "normal" under a "batch" server).
    """
    try:
        os.sched_setscheduler(0, _policy_number(name), os.sched_param(0))
    except OSError as error:
        _LOG.warning("Could not set CPU scheduling policy %s for this thread (%s)", name, error)
        return False
    return True


def thread_policies(pid: int) -> dict[int, int]:
    """The scheduling policy number of each thread of process `pid` (from /proc)."""
    policies = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        # Field 41 of proc(5) is the policy; fields[0] here is field 3 (state).
        policies[int(entry)] = int(fields[41 - 3])
    return policies
