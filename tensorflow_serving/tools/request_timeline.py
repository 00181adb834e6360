"""Where a one-client request's time goes: the server's share and the client's.

Why: the benchmark's ceiling adds the model's cost to the no-work floor's
cost per request, and the floor's cost includes the client's own turn (read
the answer, build and send the next request) measured while the client waits
only a fraction of a millisecond for each answer. Whether a server below the
ceiling lost the time itself, or its client did, cannot be read off the
client's latency. The kernel's scheduler events can tell: with one client,
every request starts when a client thread wakes a server thread, and its
answer arrives when a server thread wakes a client thread.

From `perf record -e sched:sched_switch -e sched:sched_waking` on the server's
and the client's CPUs, this module takes, for each request:
- the server's share: from the client waking a server thread to a server
  thread waking a client thread (the answer leaving);
- the wake-up latency: from that first wake-up to the server thread running;
- the client's share: from the answer leaving to the client waking the
  server again (its wake-up, the answer's decoding, the next request).

    python -m tensorflow_serving.tools.request_timeline --server_pid PID \\
        --server_cpu 0 --client_cpu 1 --seconds 2

runs perf (root, or perf_event_paranoid <= 1) while a one-client load runs.
`parse_events()` and `split_requests()` work on the text of `perf script`
and need no perf.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable

# `perf script -F tid,cpu,time,event,trace` lines, e.g.
#   17022 [000] 84748.639310: sched:sched_waking: comm=python pid=17023 prio=120 target_cpu=000
_EVENT = re.compile(r"\s*(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)")
_WAKEE = re.compile(r"\bpid=(\d+)")
_NEXT = re.compile(r"\bnext_pid=(\d+)")
_TARGET_CPU = re.compile(r"\btarget_cpu=(\d+)")

PERF_FIELDS = "tid,cpu,time,event,trace"


@dataclasses.dataclass(frozen=True)
class Event:
    """One scheduler event: `tid` did `kind` on `cpu` at `micros`.

    `other` is the thread woken (to run on `target_cpu`) or switched to.
    """

    micros: float
    tid: int
    cpu: int
    kind: str  # "sched_waking" or "sched_switch"
    other: int
    target_cpu: int | None = None


@dataclasses.dataclass(frozen=True)
class Request:
    """One request's timeline, in microseconds."""

    server: float  # client wakes the server -> server wakes the client
    wake_latency: float | None  # client wakes the server -> that server thread runs
    client: float | None  # server wakes the client -> client wakes the server again


def parse_events(lines: Iterable[str]) -> list[Event]:
    """The sched_waking and sched_switch events of `perf script` output, in time order."""
    events = []
    for line in lines:
        match = _EVENT.match(line)
        if not match:
            continue
        tid, cpu, seconds, kind, rest = match.groups()
        if kind not in ("sched_waking", "sched_switch"):
            continue
        other = (_NEXT if kind == "sched_switch" else _WAKEE).search(rest)
        if other is None:
            continue
        target = _TARGET_CPU.search(rest)
        events.append(
            Event(
                float(seconds) * 1e6,
                int(tid),
                int(cpu),
                kind,
                int(other.group(1)),
                int(target.group(1)) if target else None,
            )
        )
    events.sort(key=lambda event: event.micros)
    return events


def split_requests(
    events: list[Event], server_tids: set[int], server_cpu: int, client_cpu: int
) -> list[Request]:
    """Cuts a one-client run into requests at the wake-ups that cross the two CPUs."""
    starts: list[tuple[float, int]] = []  # (when, server thread woken)
    answers: list[float] = []
    runs: dict[int, list[float]] = {}  # thread -> when it was switched in on the server CPU
    for event in events:
        if event.kind == "sched_switch":
            if event.cpu == server_cpu:
                runs.setdefault(event.other, []).append(event.micros)
        elif event.cpu == client_cpu and event.tid not in server_tids:
            if event.other in server_tids:
                starts.append((event.micros, event.other))
        elif event.cpu == server_cpu and event.tid in server_tids:
            if event.other not in server_tids and event.target_cpu == client_cpu:
                answers.append(event.micros)
    # A request begins at the first wake-up after the previous answer; more
    # wake-ups before its own answer (its message read in two parts) belong to it.
    firsts: list[tuple[float, int, float]] = []  # (start, woken thread, answer)
    for start, woken in starts:
        if firsts and start < firsts[-1][2]:
            continue
        answer_at = bisect.bisect_left(answers, start)
        if answer_at == len(answers):
            break
        firsts.append((start, woken, answers[answer_at]))
    requests = []
    for index, (start, woken, answer) in enumerate(firsts):
        switched_in = runs.get(woken, [])
        run_at = bisect.bisect_left(switched_in, start)
        latency = switched_in[run_at] - start if run_at < len(switched_in) else None
        client = firsts[index + 1][0] - answer if index + 1 < len(firsts) else None
        requests.append(Request(answer - start, latency, client))
    return requests


def summarize(requests: list[Request]) -> dict[str, object]:
    """Medians and means of each share, in microseconds."""

    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"median": statistics.median(values), "mean": statistics.fmean(values)}

    return {
        "requests": len(requests),
        "server_us": stats([r.server for r in requests]),
        "wake_latency_us": stats([r.wake_latency for r in requests if r.wake_latency is not None]),
        "client_us": stats([r.client for r in requests if r.client is not None]),
    }


def _record(pid: int, cpus: str, seconds: float) -> tuple[list[str], set[int]]:
    """Runs perf on `cpus` for `seconds`; the event lines and the server's thread ids."""
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.join(scratch, "perf.data")
        subprocess.run(
            ["perf", "record", "-q", "-o", data, "-e", "sched:sched_switch",
             "-e", "sched:sched_waking", "-C", cpus, "--", "sleep", str(seconds)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        tids = {int(name) for name in os.listdir(f"/proc/{pid}/task")}
        script = subprocess.run(
            ["perf", "script", "-i", data, "-F", PERF_FIELDS],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    return script.stdout.splitlines(), tids


def _format(summary: dict[str, object]) -> str:
    lines = [f"requests: {summary['requests']}"]
    for key, label in (
        ("server_us", "server's share"),
        ("wake_latency_us", "server wake-up latency"),
        ("client_us", "client's share"),
    ):
        value = summary[key]
        shown = (
            "-"
            if value is None
            else f"median {value['median']:.0f} us, mean {value['mean']:.0f} us"
        )
        lines.append(f"{label}: {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server_pid", type=int, required=True)
    parser.add_argument("--server_cpu", type=int, default=0)
    parser.add_argument("--client_cpu", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.server_cpu == args.client_cpu:
        parser.error("--server_cpu and --client_cpu must differ: pin server and client apart")
    if not os.path.isdir(f"/proc/{args.server_pid}"):
        parser.error(f"no process with --server_pid={args.server_pid}")
    try:
        lines, tids = _record(args.server_pid, f"{args.server_cpu},{args.client_cpu}", args.seconds)
    except FileNotFoundError:
        print("perf is not installed (Debian: apt-get install linux-perf)", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"perf failed: {error.stderr.strip() if error.stderr else error}", file=sys.stderr)
        return 1
    requests = split_requests(parse_events(lines), tids, args.server_cpu, args.client_cpu)
    print(_format(summarize(requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
