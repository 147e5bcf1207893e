"""Who holds a port: a bind test and, from /proc, the process listening on it. `appliance
init`/`start` refuse taken ports with it, the ingestor and web say who holds theirs, and the
event listener checks that the ingestor on its port is its own instance's."""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp
_TABLES = {"tcp": ("net/tcp", "net/tcp6"), "udp": ("net/udp", "net/udp6")}


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def is_free(host: str, port: int, kind: str = "tcp") -> bool:
    """Whether a server could bind host:port now (TCP with SO_REUSEADDR, as ours do)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM) as s:
        if kind == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def holders(port: int, kind: str = "tcp") -> list[Holder]:
    """The processes with a socket listening (TCP) or bound (UDP) on `port`, as far as /proc
    lets this user see (another user's processes stay hidden unless we are root)."""
    inodes = _socket_inodes(port, kind)
    if not inodes:
        return []
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        if inodes & _sockets_of(entry):
            found.append(Holder(int(entry.name), command_line(int(entry.name))))
    return sorted(found, key=lambda holder: holder.pid)


def _sockets_of(process: Path) -> set[str]:
    """The socket inodes among a process's open files (none if it is gone or not ours)."""
    found = set()
    try:
        fds = list((process / "fd").iterdir())
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile (the listing's own fd, for one)
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def _socket_inodes(port: int, kind: str) -> set[str]:
    inodes = set()
    for table in _TABLES[kind]:
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rpartition(":")[2], 16) == port and (kind == "udp" or state == _LISTEN):
                inodes.add(inode)
    return inodes


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(raw.decode("utf-8", "replace").replace("\0", " ").split())[:200] or "?"


def parent_pid(pid: int) -> int:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0
    return int(stat.rpartition(")")[2].split()[1])  # the name in parentheses may hold spaces


def taken_message(what: str, host: str, port: int, kind: str = "tcp") -> str:
    """'the ingest port 127.0.0.1:9020 (tcp) is taken by pid 4711 (…)': one line for people."""
    held = holders(port, kind)
    by = ", ".join(map(str, held)) if held else "another process (not visible to this user)"
    return f"the {what} port {host}:{port} ({kind}) is taken by {by}"


def taken(ports: list[tuple[str, str, int, str]]) -> list[str]:
    """For (what, host, port, kind) entries, a message for each one that is not free."""
    return [taken_message(what, host, port, kind) for what, host, port, kind in ports
            if not is_free(host, port, kind)]


def instance_ports(bind: str, ingest: int, web: int, udp: bool = True) -> list[tuple[str, str,
                                                                                     int, str]]:
    """The ports an instance listens on, as (what, host, port, kind) for `taken`."""
    host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind  # a wildcard bind clashes too
    listed = [("ingest", host, ingest, "tcp"), ("web", host, web, "tcp")]
    return listed + ([("ingest", host, ingest, "udp")] if udp else [])
