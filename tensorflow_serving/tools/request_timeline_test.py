"""request_timeline: a one-client run cut into the server's and the client's shares."""

import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import request_timeline

SERVER_A, SERVER_B, CLIENT, CLIENT_IO, KWORKER = 100, 101, 200, 201, 7


def _waking(tid: int, cpu: int, seconds: float, wakee: int, target_cpu: int) -> str:
    return (
        f"  {tid} [{cpu:03d}] {seconds:.6f}: sched:sched_waking: comm=x pid={wakee} "
        f"prio=120 target_cpu={target_cpu:03d}"
    )


def _switch(tid: int, cpu: int, seconds: float, next_tid: int) -> str:
    return (
        f"  {tid} [{cpu:03d}] {seconds:.6f}: sched:sched_switch: prev_comm=x prev_pid={tid} "
        f"prev_prio=120 prev_state=S ==> next_comm=y next_pid={next_tid} next_prio=120"
    )


def _one_request(start: float, server_tid: int) -> list[str]:
    """Client wakes a server thread; 40 us later it runs; 1 ms later it answers."""
    return [
        _waking(CLIENT, 1, start, server_tid, 0),
        _switch(0, 0, start + 40e-6, server_tid),
        # The server kicks its other thread and a kernel worker: not answers.
        _waking(server_tid, 0, start + 50e-6, SERVER_A + SERVER_B - server_tid, 0),
        _waking(server_tid, 0, start + 60e-6, KWORKER, 0),
        _waking(server_tid, 0, start + 1040e-6, CLIENT_IO, 1),
        # The client's threads pass the answer along: not a new request.
        _waking(CLIENT_IO, 1, start + 1100e-6, CLIENT, 1),
    ]


def _run(requests: int, client_turn: float) -> list[str]:
    lines, start = [], 10.0
    for index in range(requests):
        lines += _one_request(start, SERVER_A if index % 2 == 0 else SERVER_B)
        start += 1040e-6 + client_turn
    return lines


def test_each_request_splits_into_server_wakeup_and_client_shares():
    events = request_timeline.parse_events(_run(5, client_turn=300e-6))
    requests = request_timeline.split_requests(events, {SERVER_A, SERVER_B}, 0, 1)
    assert len(requests) == 5
    for request in requests:
        assert request.server == pytest.approx(1040, abs=0.5)
        assert request.wake_latency == pytest.approx(40, abs=0.5)
    # The last request has no next one to end the client's turn.
    assert [r.client is None for r in requests] == [False] * 4 + [True]
    assert requests[0].client == pytest.approx(300, abs=0.5)


def test_summary_reports_medians_and_means_per_share():
    events = request_timeline.parse_events(_run(4, client_turn=500e-6))
    summary = request_timeline.summarize(
        request_timeline.split_requests(events, {SERVER_A, SERVER_B}, 0, 1)
    )
    assert summary["requests"] == 4
    assert summary["server_us"]["median"] == pytest.approx(1040, abs=0.5)
    assert summary["client_us"]["mean"] == pytest.approx(500, abs=0.5)
    assert summary["wake_latency_us"]["median"] == pytest.approx(40, abs=0.5)


def test_a_request_woken_twice_before_its_answer_counts_once():
    lines = _one_request(10.0, SERVER_A)
    # Its message arrived in two reads: the client wakes the server again.
    lines.insert(2, _waking(CLIENT, 1, 10.0 + 45e-6, SERVER_B, 0))
    lines += _one_request(10.002, SERVER_A)
    events = request_timeline.parse_events(lines)
    requests = request_timeline.split_requests(events, {SERVER_A, SERVER_B}, 0, 1)
    assert len(requests) == 2
    assert requests[0].server == pytest.approx(1040, abs=0.5)
    assert requests[0].client == pytest.approx(2000 - 1040, abs=0.5)


def test_lines_that_are_not_scheduler_events_are_skipped():
    lines = ["", "garbage", "  5 [000] 1.0: irq:irq_handler_entry: irq=1", *_run(2, 300e-6)]
    events = request_timeline.parse_events(lines)
    assert {event.kind for event in events} == {"sched_waking", "sched_switch"}
    assert request_timeline.summarize([])["server_us"] is None


def test_cli_refuses_one_cpu_for_both_sides(capsys):
    with pytest.raises(SystemExit):
        request_timeline.main(["--server_pid", "1", "--server_cpu", "0", "--client_cpu", "0"])
    assert "must differ" in capsys.readouterr().err


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
