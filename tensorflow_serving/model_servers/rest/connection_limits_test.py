"""A connection's one deadline timer, and the connection cap's throttled warning."""

import asyncio
import logging
import sys

from tensorflow_serving.model_servers.rest import connection_limits
from tensorflow_serving.model_servers.rest.connection_limits import ConnectionCap, Deadline
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.fake_clock import FakeClock
from tensorflow_serving.util.rate_limited_log import RateLimitedLog


def _counting_timers(loop: asyncio.AbstractEventLoop) -> list[float]:
    """The times of every timer armed on `loop` from now on."""
    armed: list[float] = []
    call_at = loop.call_at

    def counted(when, callback, *args):
        armed.append(when)
        return call_at(when, callback, *args)

    loop.call_at = counted
    return armed


def test_a_deadline_moved_later_and_later_keeps_one_timer_and_fires_once_at_the_last():
    async def scenario():
        loop = asyncio.get_running_loop()
        armed = _counting_timers(loop)
        fired: list[float] = []
        expired = asyncio.Event()
        deadline = Deadline(loop, lambda: (fired.append(loop.time()), expired.set()))
        start = loop.time()
        for step in range(100):  # a busy connection: each request moves the deadline on
            last = start + 0.05 + step * 0.001
            deadline.set(last)
        await expired.wait()
        return armed, fired, last

    armed, fired, last = asyncio.run(scenario())
    assert len(armed) == 2  # the first, and once more when it found the deadline moved
    assert len(fired) == 1 and fired[0] >= last


def test_a_deadline_moved_earlier_fires_then_and_a_cleared_one_never():
    async def scenario():
        loop = asyncio.get_running_loop()
        order: list[str] = []
        done = asyncio.Event()
        earlier = Deadline(loop, lambda: order.append("moved earlier"))
        earlier.after(60)
        earlier.after(0.01)
        cleared = Deadline(loop, lambda: order.append("cleared"))
        cleared.after(0.02)
        cleared.set(None)
        last = Deadline(loop, lambda: (order.append("last"), done.set()))
        last.after(0.03)
        await done.wait()
        return order

    assert asyncio.run(scenario()) == ["moved earlier", "last"]


def test_the_cap_admits_up_to_its_limit_and_its_warning_is_rate_limited(caplog):
    clock = FakeClock()
    log = RateLimitedLog(logging.getLogger(connection_limits.__name__), 60, clock.now)
    cap = ConnectionCap(2, log)
    with caplog.at_level(logging.WARNING, logger=connection_limits.__name__):
        assert cap.admits(1) and cap.admits(2)
        assert not cap.admits(3)
        assert not cap.admits(3)
        clock.advance(59)
        assert not cap.admits(3)
        assert len(caplog.records) == 1
        clock.advance(1)
        assert not cap.admits(3)
    assert len(caplog.records) == 2 and "2 more like it" in caplog.records[1].getMessage()
    assert "2 REST connections are open, the cap" in caplog.text


def test_a_cap_of_zero_admits_every_connection():
    assert ConnectionCap(0).admits(1_000_000)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
