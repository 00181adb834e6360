"""How this machine's idle CPUs wait, which decides what one client can get.

On a KVM guest with the `haltpoll` cpuidle driver and `guest_halt_poll_ns`
0, an idle vCPU halts at once. With one client, both ends idle once per
request (the server while the client builds the next request, the client
while the model runs), and each wake-up costs a trip through the host. No
server can remove that.

So the benchmark reports the setting next to its one-client rows rather than
leaving users to guess (README.md here, "Idle vCPUs"; measurements in
docs/performance/2026-11-28-halt-polling.md).
"""

from __future__ import annotations

import os
from typing import Any

_DRIVER = "devices/system/cpu/cpuidle/current_driver"
_HALTPOLL = "module/haltpoll/parameters"


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def read_idle_settings(sys_root: str = "/sys") -> dict[str, Any]:
    """The cpuidle driver and, for `haltpoll`, its poll limit in ns (None where unreadable)."""
    poll = _read(os.path.join(sys_root, _HALTPOLL, "guest_halt_poll_ns"))
    return {
        "cpuidle_driver": _read(os.path.join(sys_root, _DRIVER)),
        "guest_halt_poll_ns": int(poll) if poll is not None and poll.isdigit() else None,
    }


def one_client_warning(settings: dict[str, Any], concurrencies: list[int]) -> str | None:
    """A note for the report when one-client rows ran on vCPUs that halt at once.

    Only for the case we measured: `haltpoll` with a poll limit of 0. Other
    drivers (bare metal's intel_idle or acpi_idle, or none) say nothing.
    """
    if 1 not in concurrencies:
        return None
    if settings.get("cpuidle_driver") != "haltpoll" or settings.get("guest_halt_poll_ns") != 0:
        return None
    return (
        "idle vCPUs halt at once here (cpuidle driver haltpoll, guest_halt_poll_ns 0): "
        "with one client, the server and the client each pay a wake-up per request, "
        "which the ceiling does not count. See tensorflow_serving/tools/README.md, "
        "'Idle vCPUs'."
    )
