"""Which process holds which TCP connection: for tests of servers that run as several processes.

Linux only: reads /proc/<pid>/fd (socket inodes) and /proc/net/tcp{,6}.
"""

from __future__ import annotations

import os


def child_pids(pid: int) -> list[int]:
    """The live children of process `pid`."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry))
    return sorted(children)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _tcp_entries() -> list[tuple[int, int, int, int]]:
    """(local port, remote port, state, inode) of every TCP socket of this network namespace."""
    entries = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                    entries.append(
                        (
                            int(local.rsplit(":", 1)[1], 16),
                            int(remote.rsplit(":", 1)[1], 16),
                            int(state, 16),
                            int(inode),
                        )
                    )
        except OSError:
            continue
    return entries


_LISTEN = 0x0A


def listeners(pids: list[int], port: int) -> dict[int, int]:
    """pid -> number of sockets it listens with on `port`."""
    owned = {pid: _socket_inodes(pid) for pid in pids}
    counts = {pid: 0 for pid in pids}
    for local, _, state, inode in _tcp_entries():
        if local == port and state == _LISTEN:
            for pid, inodes in owned.items():
                if inode in inodes:
                    counts[pid] += 1
    return counts


def connection_owner(pids: list[int], server_port: int, client_port: int) -> int | None:
    """The pid among `pids` holding the server side of the connection from `client_port`."""
    owned = {pid: _socket_inodes(pid) for pid in pids}
    for local, remote, state, inode in _tcp_entries():
        if local == server_port and remote == client_port and state != _LISTEN:
            for pid, inodes in owned.items():
                if inode in inodes:
                    return pid
    return None


def listening_ports(pid: int) -> set[int]:
    """Every TCP port process `pid` listens on."""
    inodes = _socket_inodes(pid)
    return {
        local for local, _, state, inode in _tcp_entries() if state == _LISTEN and inode in inodes
    }
