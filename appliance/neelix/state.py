"""neelix's own state: its cursor, rule throttles, heartbeat states, incidents, snoozes and the
alert outbox (which doubles as the alert history the web shows on /alerts). A SQLite file of
its own, or the schema `neelix` of the shared store when that is PostgreSQL.

A batch's state changes, its alerts and the cursor commit in one transaction: after kill -9,
neelix neither forgets an incident nor re-evaluates a record whose notices are already queued.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import peewee as pw

from appliance.config import Config
from appliance.neelix.heartbeats import HeartbeatWatch, Pulse
from appliance.neelix.notice import Notice
from appliance.neelix.rules import RuleMatcher, Throttle
from appliance.store.url import POSTGRESQL, StoreUrl

log = logging.getLogger(__name__)
state_db = pw.DatabaseProxy()
SCHEMA = "neelix"  # on PostgreSQL: its own schema, so its `cursor` is not the writer's
PRAGMAS = {"journal_mode": "wal", "synchronous": "normal", "busy_timeout": 10000}
PENDING, SENT, FAILED, HELD = "pending", "sent", "failed", "held"


class _Model(pw.Model):
    class Meta:
        database = state_db


class CursorRow(_Model):
    name = pw.TextField()
    origin = pw.TextField()
    seq = pw.BigIntegerField()

    class Meta:
        table_name = "cursor"
        primary_key = pw.CompositeKey("name", "origin")


class ThrottleRow(_Model):
    shard = pw.TextField()
    rule = pw.TextField()
    key = pw.TextField()
    data = pw.TextField()

    class Meta:
        table_name = "throttle"
        primary_key = pw.CompositeKey("shard", "rule", "key")


class PulseRow(_Model):
    heartbeat = pw.TextField()
    system = pw.TextField()
    last_seen = pw.DoubleField()
    down_since = pw.DoubleField(null=True)
    notified = pw.DoubleField(default=0.0)
    seen = pw.BooleanField(default=True)

    class Meta:
        table_name = "heartbeat"
        primary_key = pw.CompositeKey("heartbeat", "system")


class Incident(_Model):
    id = pw.AutoField()
    heartbeat = pw.TextField()
    system = pw.TextField(index=True)
    opened = pw.DoubleField()
    closed = pw.DoubleField(null=True)
    last_seen = pw.DoubleField()


class Snooze(_Model):
    system = pw.TextField(primary_key=True)  # "*": every system
    until = pw.DoubleField()
    reason = pw.TextField(default="")
    created = pw.DoubleField()


class Alert(_Model):
    """One notice for one action: queued, then sent, failed or held (maintenance/snooze)."""

    id = pw.AutoField()
    shard = pw.TextField(default="0of1")  # the neelix shard that queued it delivers it
    created = pw.DoubleField()
    time = pw.DoubleField()
    event = pw.TextField()
    source = pw.TextField()
    key = pw.TextField()
    system = pw.TextField(null=True, index=True)
    action = pw.TextField()
    summary = pw.TextField()
    notice = pw.TextField()
    status = pw.TextField()
    attempts = pw.IntegerField(default=0)
    next_attempt = pw.DoubleField(default=0.0)
    last_error = pw.TextField(null=True)
    sent = pw.DoubleField(null=True)

    class Meta:
        indexes = ((("status", "shard", "action", "next_attempt"), False),)


MODELS = (CursorRow, ThrottleRow, PulseRow, Incident, Snooze, Alert)


def state_target(config: Config) -> Path | StoreUrl:
    """Where this appliance keeps neelix's state: the shared store when it is PostgreSQL (so
    the web on another host shows /alerts and heartbeats), else [neelix] state's file."""
    url = config.store.url
    return url if url.engine == POSTGRESQL else config.neelix.state


def open_state(target: str | Path | StoreUrl, create: bool = True) -> pw.Database:
    if isinstance(target, StoreUrl):
        args = target.connect_args()
        for model in MODELS:
            model._meta.schema = SCHEMA
        state_db.initialize(pw.PostgresqlDatabase(args.pop("conninfo"), **args))
        if create:
            with state_db.atomic():
                state_db.execute_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                state_db.create_tables(MODELS)
        return state_db
    path = Path(target)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        model._meta.schema = None
    state_db.initialize(pw.SqliteDatabase(str(path), pragmas=PRAGMAS,
                                          check_same_thread=False))
    if create:
        with state_db.atomic():
            state_db.create_tables(MODELS)
    return state_db


def open_state_when_reachable(target: Path | StoreUrl) -> pw.Database:
    """neelix's start: while the shared store is away (server down, wrong password) wait and
    try again with backoff, one line per try naming the URL (never the password). A SQLite
    file's errors go up at once."""
    attempt = 0
    while True:
        try:
            return open_state(target)
        except pw.OperationalError as error:  # peewee's wrapping of psycopg's
            if not isinstance(target, StoreUrl):
                raise
            attempt += 1
            delay = min(2 ** (attempt - 1), 30)
            reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
            log.error("the store %s is unavailable (%s); neelix waits, retrying in %ds",
                      target.display, reason, delay)
            time.sleep(delay)


def write_transaction() -> object:
    """A write transaction: on SQLite IMMEDIATE (the busy timeout applies at BEGIN, not
    mid-transaction); PostgreSQL locks rows as it goes."""
    if isinstance(state_db.obj, pw.SqliteDatabase):
        return state_db.atomic(lock_type="IMMEDIATE")
    return state_db.atomic()


def load_cursor(name: str, origin: str, head: int) -> int:
    """Where this shard resumes. A shard without a cursor of its own starts where the shards
    of an earlier numprocs stopped (the furthest, so nothing is notified twice), or, on
    neelix's first start, at the journal's head `head`: an old backlog is not alerted on
    (`appliance neelix test` shows what it would fire). Stored at once, so a kill before the
    first batch does not move the start again."""
    row = CursorRow.get_or_none((CursorRow.name == name) &
                                   (CursorRow.origin == origin))
    if row:
        return row.seq
    others = {r.name: r.seq for r in CursorRow.select().where(
        (CursorRow.origin == origin) & (CursorRow.name != name))}
    seq = max(others.values()) if others else head
    if others and min(others.values()) < seq:
        log.warning("%s: shards of another numprocs stopped at %s; starting after seq %d: "
                    "records %d-%d of a shard that was behind are not matched", name, others,
                    seq, min(others.values()) + 1, seq)
    elif not others:
        log.info("%s: first start: matching records after seq %d (the journal's head)",
                 name, seq)
    CursorRow.insert(name=name, origin=origin, seq=seq).execute()
    return seq


def load(rules: RuleMatcher, heartbeats: HeartbeatWatch, shard: str) -> None:
    """Fill the in-memory states from the file (this shard's throttles and systems)."""
    known = {f.name for f in dataclasses.fields(Throttle)}
    for row in ThrottleRow.select().where(ThrottleRow.shard == shard):
        data = json.loads(row.data)
        rules.throttles[(row.rule, row.key)] = Throttle(
            **{k: v for k, v in data.items() if k in known})
    for row in PulseRow.select():
        if heartbeats.owns(row.system):
            heartbeats.pulses[(row.heartbeat, row.system)] = Pulse(
                row.last_seen, row.down_since, row.notified, row.seen)


def close_incidents(watched: Callable[[str, str], bool], now: float) -> int:
    """Close open incidents whose heartbeat no longer watches the system (rules changed):
    nothing would ever close them."""
    closed = 0
    for incident in Incident.select().where(Incident.closed.is_null()):
        if not watched(incident.heartbeat, incident.system):
            incident.closed = now
            incident.save()
            closed += 1
    return closed


def snoozes(now: float) -> dict[str, float]:
    return {row.system: row.until for row in Snooze.select().where(Snooze.until > now)}


def commit(notices: list[Notice], rules: RuleMatcher, heartbeats: HeartbeatWatch, shard: str,
           held: set[int], cursor: tuple[str, str, int] | None = None) -> int:
    """Save changed states, queue one alert per notice and action (held ones as `held`) and
    move the cursor, in one transaction. Returns how many alerts were queued to send."""
    now = time.time()
    queued = 0
    with write_transaction():
        _save_states(rules, heartbeats, shard)
        for name, system in heartbeats.forgotten:
            Incident.update(closed=now).where(
                (Incident.heartbeat == name) & (Incident.system == system) &
                Incident.closed.is_null()).execute()
        for number, notice in enumerate(notices):
            _incident(notice)
            status = HELD if number in held else PENDING
            for action in notice.actions:
                Alert.create(shard=shard, created=now, time=notice.time, event=notice.event,
                             source=notice.source, key=notice.key, system=notice.system,
                             action=action, summary=notice.summary, notice=notice.to_json(),
                             status=status, next_attempt=now)
                queued += status == PENDING
        if cursor:
            name, origin, seq = cursor
            CursorRow.insert(name=name, origin=origin, seq=seq).on_conflict(
                conflict_target=[CursorRow.name, CursorRow.origin],
                update={CursorRow.seq: seq}).execute()
    rules.dirty.clear()
    heartbeats.dirty.clear()
    heartbeats.forgotten.clear()
    return queued


def _save_states(rules: RuleMatcher, heartbeats: HeartbeatWatch, shard: str) -> None:
    for rule, key in rules.dirty:
        throttle = rules.throttles.get((rule, key))
        if throttle is None:
            ThrottleRow.delete().where((ThrottleRow.shard == shard) &
                                         (ThrottleRow.rule == rule) &
                                         (ThrottleRow.key == key)).execute()
        else:
            data = json.dumps(dataclasses.asdict(throttle), default=str)
            ThrottleRow.insert(shard=shard, rule=rule, key=key, data=data).on_conflict(
                conflict_target=[ThrottleRow.shard, ThrottleRow.rule, ThrottleRow.key],
                update={ThrottleRow.data: data}).execute()
    for name, system in heartbeats.dirty:
        beat = heartbeats.pulses.get((name, system))
        if beat is None:
            PulseRow.delete().where((PulseRow.heartbeat == name) &
                                     (PulseRow.system == system)).execute()
        else:
            values = {PulseRow.last_seen: beat.last_seen, PulseRow.down_since: beat.down_since,
                      PulseRow.notified: beat.notified, PulseRow.seen: beat.seen}
            PulseRow.insert({PulseRow.heartbeat: name, PulseRow.system: system, **values}) \
                .on_conflict(conflict_target=[PulseRow.heartbeat, PulseRow.system],
                             update=values).execute()


def _incident(notice: Notice) -> None:
    if notice.event == "down":
        Incident.create(heartbeat=notice.source, system=notice.system, opened=notice.time,
                        last_seen=notice.since or notice.time)
    elif notice.event == "recovered":
        Incident.update(closed=notice.time).where(
            (Incident.heartbeat == notice.source) & (Incident.system == notice.system) &
            Incident.closed.is_null()).execute()


def prune(before: float) -> int:
    """Forget delivered, failed and held alerts and closed incidents older than `before`
    (pending ones stay until delivered or given up)."""
    with state_db.atomic():
        gone = Alert.delete().where((Alert.created < before) &
                                    (Alert.status != PENDING)).execute()
        gone += Incident.delete().where(Incident.closed < before).execute()
        Snooze.delete().where(Snooze.until < time.time()).execute()
    return gone
