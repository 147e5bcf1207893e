"""Read-only view of neelix's state file for the web viewer: open incidents, the alert history,
snoozes and each system's heartbeat state. neelix_state.py writes the file; this never does.

The file may be missing or older than its tables (neelix not run yet): then there is nothing
to show, which is an answer, not an error.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from appliance.neelix.notice import EVENTS
from appliance.neelix.state import FAILED, HELD, PENDING, SCHEMA, SENT, state_target
from appliance.store.engine import ReadConnection, open_store
from appliance.store.query import MAX_ID, QueryError
from appliance.store.url import MissingTable, StoreUnavailable, StoreUrl

STATUSES = (PENDING, SENT, FAILED, HELD)
PARAMETERS = frozenset({"system", "status", "event", "before"})
PAGE = 200  # alerts per page, newest first
MAX_SYSTEM = 200  # characters of a system name in a filter
INCIDENTS = 1000  # open incidents shown at most (more would be an outage, not a list)
ALERT_COLUMNS = ("id", "created", "time", "event", "source", "key", "system", "action",
                 "summary", "status", "attempts", "next_attempt", "last_error", "sent")
NOT_RUN = {"state": "unknown", "down_since": None, "snoozed_until": None, "heartbeats": [],
           "last_seen": None}


@dataclass(frozen=True)
class AlertQuery:
    system: str | None = None
    status: str | None = None
    event: str | None = None
    before: int | None = None  # keyset: alerts with a smaller id (older)


def parse(params: Mapping[str, str]) -> AlertQuery:
    """Checked filters of /alerts from URL parameters; empty values mean 'no filter'."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0][:40]!r}; known: "
                         f"{', '.join(sorted(PARAMETERS))}")
    given = {key: value.strip() for key, value in params.items() if value and value.strip()}
    for name, allowed in (("status", STATUSES), ("event", EVENTS)):
        if name in given and given[name] not in allowed:
            raise QueryError(f"{name} must be one of {', '.join(allowed)}, "
                             f"not {given[name][:40]!r}")
    system = given.get("system")
    if system is not None and (len(system) > MAX_SYSTEM or not system.isprintable()):
        raise QueryError(f"system must be printable and at most {MAX_SYSTEM} characters")
    before = given.get("before")
    if before is not None:
        if not re.fullmatch(r"\d{1,19}", before) or not 1 <= int(before) <= MAX_ID:
            raise QueryError(f"before must be a whole number from 1 to {MAX_ID}, "
                             f"not {before[:40]!r}")
    return AlertQuery(system=system, status=given.get("status"), event=given.get("event"),
                      before=int(before) if before is not None else None)


@dataclass(frozen=True)
class HeartbeatView:
    """neelix's heartbeat states at one moment, per system."""

    pulses: dict[str, list[dict]]  # system → its heartbeat rows
    down: dict[str, float]  # system → down since (a heartbeat down or an incident open)
    snoozes: dict[str, float]  # system or "*" → until, only snoozes still running

    def systems(self) -> set[str]:
        """The systems neelix watches (they belong on /systems even before any record)."""
        return set(self.pulses) | set(self.down)

    def state(self, system: str) -> dict:
        """down > snoozed > up > not watched; the JSON /api/systems shows per system."""
        beats = self.pulses.get(system, [])
        until = max(self.snoozes.get(system, 0.0), self.snoozes.get("*", 0.0)) or None
        if system in self.down:
            state = "down"
        elif until is not None:
            state = "snoozed"
        else:
            state = "up" if beats else "not watched"
        return {"state": state, "down_since": self.down.get(system), "snoozed_until": until,
                "heartbeats": sorted(beat["heartbeat"] for beat in beats),
                "last_seen": max((b["last_seen"] for b in beats if b["seen"]), default=None)}


def watch_from(beats: Iterable[dict], incidents: Iterable[dict], snoozes: Iterable[dict],
               now: float) -> HeartbeatView:
    """Rows of the heartbeat, open incident and snooze tables → per-system states."""
    by_system: dict[str, list[dict]] = {}
    down: dict[str, float] = {}
    for beat in beats:
        by_system.setdefault(beat["system"], []).append(beat)
        if beat["down_since"] is not None:
            down[beat["system"]] = min(down.get(beat["system"], beat["down_since"]),
                                       beat["down_since"])
    for incident in incidents:
        down[incident["system"]] = min(down.get(incident["system"], incident["opened"]),
                                       incident["opened"])
    running = {s["system"]: s["until"] for s in snoozes if s["until"] > now}
    return HeartbeatView(by_system, down, running)


def alert_history(config: Config) -> AlertHistory:
    """The web's view of neelix's state where neelix keeps it (state.state_target)."""
    target = state_target(config)
    if isinstance(target, StoreUrl):
        return SharedAlertHistory(target)
    return AlertHistory(target)


class AlertHistory:
    """Read-only access to neelix's state file: one connection per server thread, opened
    only once the file exists and reopened if neelix's file is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.uri = f"file:{self.path}?mode=ro"
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection | None:
        """None while the file does not exist (neelix has not run yet)."""
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            file = None
        else:
            # ctime too: a file deleted and made anew may get the old inode number back. In
            # WAL mode the main file changes only at checkpoints, so reopening then is rare.
            file = (found.st_dev, found.st_ino, found.st_ctime_ns)
        db = getattr(self._local, "db", None)
        if db is not None and self._local.file != file:  # deleted or replaced: let it go
            db.close()
            db = self._local.db = None
        if db is None and file is not None:
            try:
                db = sqlite3.connect(self.uri, uri=True, timeout=10, check_same_thread=False)
            except sqlite3.OperationalError:  # gone between the stat and the open
                return None
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA query_only = 1")
            self._local.db, self._local.file = db, file
        return db

    def rows(self, sql: str, params: list | tuple = ()) -> list[dict] | None:
        """The rows, or None if the file or the table is not there (yet)."""
        db = self.connection()
        if db is None:
            return None
        try:
            return [dict(row) for row in db.execute(sql, params)]
        except sqlite3.OperationalError as error:
            if "no such table" in str(error) or "no such column" in str(error):
                return None
            raise

    def has_run(self) -> bool:
        return self.rows("SELECT 1 FROM alert LIMIT 1") is not None

    def incidents(self, system: str | None = None) -> list[dict]:
        """Open incidents, newest first."""
        where, params = ("AND system = ?", [system]) if system is not None else ("", [])
        return self.rows("SELECT id, heartbeat, system, opened, last_seen FROM incident "  # noqa: S608
                         f"WHERE closed IS NULL {where} ORDER BY opened DESC, id DESC LIMIT ?",
                         [*params, INCIDENTS]) or []

    def snoozes(self, now: float) -> list[dict]:
        """Snoozes still running, the one ending last first."""
        return self.rows("SELECT system, until, reason, created FROM snooze WHERE until > ? "
                         "ORDER BY until DESC LIMIT ?", (now, INCIDENTS)) or []

    def alerts(self, query: AlertQuery, limit: int = PAGE) -> tuple[list[dict], int | None]:
        """Up to `limit` alerts newest first, and the `before` cursor of the older page
        (None at the end)."""
        where, params = [], []
        for column, value in (("system", query.system), ("status", query.status),
                              ("event", query.event)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.before is not None:
            where.append("id < ?")
            params.append(query.before)
        sql = (f"SELECT {', '.join(ALERT_COLUMNS)} FROM alert "  # noqa: S608
               f"WHERE {' AND '.join(where) or '1=1'} ORDER BY id DESC LIMIT ?")
        rows = self.rows(sql, [*params, limit + 1]) or []
        older = rows[limit - 1]["id"] if len(rows) > limit else None
        return rows[:limit], older

    def watch(self, now: float) -> HeartbeatView | None:
        """Every system's heartbeat state, or None if neelix has not run yet."""
        beats = self.rows("SELECT heartbeat, system, last_seen, down_since, seen "
                          "FROM heartbeat")
        if beats is None:
            return None
        incidents = self.rows("SELECT system, opened FROM incident WHERE closed IS NULL") or []
        return watch_from(beats, incidents, self.snoozes(now), now)


class SharedAlertHistory(AlertHistory):
    """neelix's state in the shared PostgreSQL store (its schema `neelix`), read by a web on
    any host. A store that is away raises StoreUnavailable (the web answers 503)."""

    def __init__(self, url: StoreUrl) -> None:  # no file: the store's connections
        self.engine = open_store(url)
        self._local = threading.local()

    def rows(self, sql: str, params: list | tuple = ()) -> list[dict] | None:
        db: ReadConnection | None = getattr(self._local, "db", None)
        try:
            if db is None:
                db = self._local.db = self.engine.reader(schema=SCHEMA)
            return db.rows(sql, params)
        except MissingTable:
            return None  # neelix has not run yet
        except StoreUnavailable:
            self._local.db = None
            raise
