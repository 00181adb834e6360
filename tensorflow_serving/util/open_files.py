"""The process's open-file limit: raised to the hard limit at start, and shared out.

Every connection, on either transport, is an open file; so are the model
files while a version loads, the log and the server's own pipes and event
fds. At the soft limit (often 1,024) a server stops accepting anything, and
gRPC, model loads and logging fail with it. The server raises the soft limit
to the hard one at start, and caps REST connections below it
(`default_max_connections`), so that idle REST clients cannot take the files
the rest of the server needs.
"""

from __future__ import annotations

import logging
import resource

_LOG = logging.getLogger(__name__)

# Open files kept out of the REST connections' reach, at the least: gRPC
# connections, model files, logs, pipes and event fds.
MIN_RESERVED_FILES = 256


def soft_limit() -> int:
    """The soft RLIMIT_NOFILE: the most files this process may have open now."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_to_hard_limit() -> tuple[int, int]:
    """Raises the soft RLIMIT_NOFILE to the hard one, and logs both; returns (before, after).

    An unlimited hard limit is not a value the kernel accepts for the soft
    one; the soft limit is then left as it is, as it is when the system
    refuses the change (the server serves either way).
    """
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    after = before
    if hard != resource.RLIM_INFINITY and before < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            after = hard
        except (OSError, ValueError) as error:
            _LOG.warning(
                "Could not raise the open-file limit from %d to %d: %s", before, hard, error
            )
    if after != before:
        _LOG.info("Open-file limit raised from %d to %d (the hard limit)", before, after)
    else:
        _LOG.info("Open-file limit: %d (hard limit %s)", after, _limit_text(hard))
    return before, after


def default_max_connections(open_file_limit: int) -> int:
    """REST connections allowed when --rest_api_max_connections is 0.

    Three quarters of the open-file limit, leaving at least
    MIN_RESERVED_FILES (but never less than half of the limit) to the rest
    of the server: 768 of 1,024, 15,000 of 20,000.
    """
    if open_file_limit == resource.RLIM_INFINITY:
        open_file_limit = 1 << 20
    reserved = max(MIN_RESERVED_FILES, open_file_limit // 4)
    return max(open_file_limit - reserved, open_file_limit // 2)


def _limit_text(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
