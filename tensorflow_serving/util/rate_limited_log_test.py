"""Each kind of event is logged at most once per interval, with a count of the rest."""

import logging
import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.fake_clock import FakeClock
from tensorflow_serving.util.rate_limited_log import RateLimitedLog, RateLimitingFilter

LOGGER = "rate_limited_log_test"


@pytest.fixture
def clock():
    return FakeClock(start=0.0)


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_one_line_per_kind_per_interval_then_the_count_of_the_rest(caplog, clock):
    limited = RateLimitedLog(logging.getLogger(LOGGER), interval=60, clock=clock.now)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert limited.log("reset", logging.WARNING, "client %s reset", "a")
        assert not limited.log("reset", logging.WARNING, "client %s reset", "b")
        assert limited.log("garbage", logging.WARNING, "garbage request")  # its own kind
        clock.advance(59)
        assert not limited.log("reset", logging.WARNING, "client %s reset", "c")
        clock.advance(1)
        assert limited.log("reset", logging.WARNING, "client %s reset", "d")
        clock.advance(60)
        assert limited.log("reset", logging.WARNING, "client %s reset", "e")
    assert messages(caplog) == [
        "client a reset",
        "garbage request",
        "client d reset (2 more like it since the last such line, not logged)",
        "client e reset",
    ]


def test_the_filter_limits_the_named_messages_and_drops_their_traceback(caplog, clock):
    logger = logging.getLogger(LOGGER)
    limit = RateLimitedLog(logger, interval=60, clock=clock.now)
    only = RateLimitingFilter(["Invalid HTTP request received."], limit)
    logger.addFilter(only)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            for _ in range(3):
                try:
                    raise ValueError("bad bytes")
                except ValueError:
                    logger.warning("Invalid HTTP request received.", exc_info=True)
            logger.warning("Something else")
            logger.warning("Something else")
            clock.advance(60)
            logger.warning("Invalid HTTP request received.")
    finally:
        logger.removeFilter(only)
    assert messages(caplog) == [
        "Invalid HTTP request received.",
        "Something else",
        "Something else",
        "Invalid HTTP request received. (2 more like it since the last such line, not logged)",
    ]
    assert all(r.exc_info is None for r in caplog.records), "no traceback for a client's bytes"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
