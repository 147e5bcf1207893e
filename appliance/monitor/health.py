"""The appliance's health in one snapshot: every program's supervisor state, the counters each
process publishes in var/run/*.stats.json, each subscriber's lag behind the journal, journal,
database and disk sizes. The web serves it as /health and /metrics; `appliance status`
prints it.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config import Config
from appliance.spine import retention
from appliance.spine.stats import read_all
from appliance.store.engine import open_store
from appliance.store.url import StoreUnavailable

RPC_TIMEOUT = 5.0


@dataclass
class Snapshot:
    time: float
    programs: dict[str, str]           # "group:name" or name → RUNNING, STOPPED, FATAL, …
    supervisor_error: str | None
    stats: dict[str, dict[str, Any]]   # var/run/<name>.stats.json by name
    lag: dict[str, int]                # subscriber cursor name → records behind the journal
    journal_bytes: int
    db_bytes: int
    disk_free: int
    problems: list[str] = field(default_factory=list)
    store_error: str | None = None      # the shared database cannot be reached

    @property
    def healthy(self) -> bool:
        return not self.problems


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over supervisord's unix socket, with a timeout (supervisor's own has none)."""

    def __init__(self, path: str) -> None:
        super().__init__("127.0.0.1", timeout=RPC_TIMEOUT)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(RPC_TIMEOUT)
        self.sock.connect(self.path)


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def make_connection(self, host: object) -> http.client.HTTPConnection:
        return _UnixConnection(self.path)


def programs(url: str) -> dict[str, str]:
    """Every program's state, from supervisord over its control socket."""
    if not url.startswith("unix://"):
        raise OSError(f"{url} is not a unix:// socket")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1/RPC2",
                                      transport=_UnixTransport(url[len("unix://"):]))
    infos = proxy.supervisor.getAllProcessInfo()
    return {(info["name"] if info["group"] == info["name"] else
             f"{info['group']}:{info['name']}"): info["statename"] for info in infos}


def lags(journal_dir: Path, head: int) -> dict[str, int]:
    """Records each subscriber (by its cursor file) still has to take from the journal."""
    return {name: max(head - seq, 0)
            for name, seq in sorted(retention.read_cursors(journal_dir).items())}


_latest: tuple[float, Snapshot | None] = (0.0, None)
_taking = threading.Lock()


def recent_snapshot(config: Config, fresh: float = 1.0) -> Snapshot:
    """A snapshot at most `fresh` seconds old; one is taken at a time, so a flood of /health
    requests (open to everyone) costs one supervisord call a second, not one each."""
    global _latest
    with _taking:
        taken, snap = _latest
        if snap is None or time.monotonic() - taken > fresh:
            snap = snapshot(config)
            _latest = (time.monotonic(), snap)
        return snap


def snapshot(config: Config) -> Snapshot:
    now = time.time()
    try:
        states, error = programs(config.health.supervisor), None
    except (OSError, xmlrpc.client.Error, http.client.HTTPException) as failure:
        states, error = {}, f"supervisord does not answer at {config.health.supervisor}: " \
                            f"{failure}"
    stats = {name: counters for name, counters in
             read_all(config.appliance.var_dir).items() if counters is not None}
    head = int(stats.get("ingestor", {}).get("next_seq", 1)) - 1
    try:
        db_bytes, store_error = open_store(config.store.url).size_bytes(), None
    except StoreUnavailable as away:  # (not `error`: that name holds supervisord's)
        db_bytes, store_error = None, str(away)
    snap = Snapshot(
        time=now, programs=states, supervisor_error=error, stats=stats,
        lag=lags(config.journal.dir, head),
        journal_bytes=int(stats.get("ingestor", {}).get("journal_bytes", 0)),
        db_bytes=db_bytes or 0, store_error=store_error,
        disk_free=shutil.disk_usage(config.appliance.var_dir).free)
    snap.problems = problems(snap, config)
    return snap


def problems(snap: Snapshot, config: Config) -> list[str]:
    """Why the appliance is not healthy (empty: it is)."""
    found = []
    if snap.supervisor_error:
        found.append(snap.supervisor_error)
    if snap.store_error:
        found.append(snap.store_error)
    found += [f"{name} is {state}" for name, state in sorted(snap.programs.items())
              if state != "RUNNING"]
    found += [f"{name} is {behind} records behind the journal (limit "
              f"{config.health.max_lag})" for name, behind in sorted(snap.lag.items())
              if behind > config.health.max_lag]
    if snap.disk_free < config.health.min_disk_free:
        found.append(f"only {snap.disk_free >> 20} MiB free where {config.appliance.var_dir} "
                     f"is (limit {config.health.min_disk_free >> 20} MiB)")
    return found


def report(snap: Snapshot) -> dict[str, Any]:
    """/health's JSON."""
    return {"status": "ok" if snap.healthy else "unhealthy", "problems": snap.problems,
            "programs": snap.programs, "lag": snap.lag, "journal_bytes": snap.journal_bytes,
            "db_bytes": snap.db_bytes, "disk_free": snap.disk_free, "time": snap.time}
