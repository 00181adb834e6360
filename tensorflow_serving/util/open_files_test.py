"""The open-file limit is raised to the hard one at start, and REST gets a share of it."""

import logging
import resource
import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import open_files

_LOWERED = 512


@pytest.fixture
def lowered_soft_limit():
    """The soft limit at _LOWERED for the test, back where it was after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= _LOWERED:
        pytest.skip(f"needs a finite hard open-file limit above {_LOWERED}, have {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (_LOWERED, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_one_and_both_are_logged(lowered_soft_limit, caplog):
    hard = lowered_soft_limit
    with caplog.at_level(logging.INFO, logger=open_files.__name__):
        assert open_files.raise_to_hard_limit() == (_LOWERED, hard)
    assert open_files.soft_limit() == hard
    assert f"Open-file limit raised from {_LOWERED} to {hard}" in caplog.text


def test_a_limit_already_at_the_hard_one_is_logged_as_it_is(lowered_soft_limit, caplog):
    hard = lowered_soft_limit
    open_files.raise_to_hard_limit()
    with caplog.at_level(logging.INFO, logger=open_files.__name__):
        assert open_files.raise_to_hard_limit() == (hard, hard)
    assert f"Open-file limit: {hard} (hard limit {hard})" in caplog.text


@pytest.mark.parametrize(
    "limit,cap", [(256, 128), (1024, 768), (20_000, 15_000), (1_048_576, 786_432)]
)
def test_rest_gets_three_quarters_leaving_at_least_256_files_or_half(limit, cap):
    assert open_files.default_max_connections(limit) == cap
    assert limit - cap >= min(open_files.MIN_RESERVED_FILES, limit // 2)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
