"""gRPC core settings our servers choose, before grpc is first imported.

gRPC reads the GRPC_EXPERIMENTS environment variable once, when the grpc
module is imported, so whatever imports grpc first in a server process must
call `choose_server_experiments()` before it (inline_grpc_server does).

Why turn off the EventEngine listener: with it, connections accepted by the
server are read by EventEngine's own threads, which then wake the thread
polling the completion queue, so every request crosses threads once more.
Without it, the polling thread reads the socket itself
(docs/performance/2026-11-27-grpc-event-engine.md).

A user who sets GRPC_EXPERIMENTS keeps exactly their own setting.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# Experiment names as grpcio (pinned in requirements.txt) spells them; a
# leading "-" turns one off.
SERVER_EXPERIMENTS = "-event_engine_listener"


def choose_server_experiments(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets GRPC_EXPERIMENTS to the servers' choice unless the user already set it."""
    environ.setdefault("GRPC_EXPERIMENTS", SERVER_EXPERIMENTS)
