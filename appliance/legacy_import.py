"""`appliance import-legacy OLD.sqlite`: copy the records of an old ps.herald database (the `log`
table ps_bridge filled) into this instance's herald DB, stored as the writer stores its rows.

A pure core (column plan, time and value conversion) and a thin shell that reads the old table
and inserts batches in IMMEDIATE transactions beside the running writer. (origin, seq) =
("legacy:<stem>", old id) makes a second run insert nothing twice.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import math
import re
import sqlite3
import sys
import time
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw

from appliance.config import load as load_config
from appliance.errors import ConfigError
from appliance.models import after_insert, database, newest_id, open_database
from appliance.record import COLUMNS, INDEX, PS_FIELDS, Caps, truncate
from appliance.writer import INSERT_SQL

TABLE = "log"
LAST_EPOCH = 253402300799.0  # 9999-12-31: a later "time" is no time
MILLIS = 1e11  # an epoch number above this is in milliseconds (1e11 s is the year 5138)
ATTEMPTS = 5  # per batch, when the database stays locked past its busy timeout


def key(name: str) -> str:
    """Old column names compare case-insensitively and without '_': funcName, funcname,
    func_name and FUNC_NAME are one name."""
    return name.lower().replace("_", "").replace("-", "")


RECEIVED_NAMES = ("received", "receivedat", "inserted", "insertedat", "inserttime", "stored",
                  "storedat")
CREATED_NAMES = ("created", "createdat", "timestamp", "time")
# Record column → old names, first that has a value wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "levelno": ("levelno",), "levelname": ("levelname", "level"),
    "logger": ("name", "logger", "loggername"), "message": ("message", "msg"),
    "exc_text": ("exctext", "traceback", "exception"), "stack_info": ("stackinfo",),
    "func_name": ("funcname",), "process_name": ("processname",),
    "thread_name": ("threadname",), "task_name": ("taskname",),
    **{name: (key(name),) for name in ("pathname", "filename", "module", "lineno", "process",
                                       "thread", *PS_FIELDS)},
}
# What live records drop too (normalize: args, exc_info, msecs, relativeCreated), and
# ps_bridge's `summary` (its search helper, a concatenation of the fields).
DROPPED = frozenset({"args", "excinfo", "msecs", "relativecreated", "summary"})
INTS = frozenset({"levelno", "lineno", "process", "thread"})
TEXTS = frozenset({"message", "exc_text", "stack_info"})
CONTENT = ("message", "levelname", "levelno", "logger", "exc_text")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S.%f %z", "%d.%m.%Y %H:%M:%S",
           "%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S,%f", "%a %b %d %H:%M:%S %Y")
BAD = object()  # a value that is there but is no time


class Refused(Exception):
    """The input cannot be imported: one line for the operator, exit code 2."""


class Unreadable(Exception):
    """The old database failed while being read (damaged part way)."""


@dataclass
class Plan:
    """Which old columns feed which record column (by position in the old row)."""

    names: list[str]
    seq: int | None  # position of `id`, None: the rowid (always the last position)
    sources: dict[str, list[int]]
    extra: list[int]
    dropped: list[int]
    msecs: int | None = None
    asctime: int | None = None

    def describe(self) -> list[str]:
        def cols(positions: list[int]) -> str:
            return ", else ".join(self.names[p] for p in positions)
        lines = [f"  {'seq':<17} ← {self.names[self.seq] if self.seq is not None else 'rowid'}"]
        lines += [f"  {target:<17} ← {cols(positions)}"
                  for target, positions in self.sources.items() if positions]
        if self.extra:
            lines.append(f"  {'extra (JSON)':<17} ← {', '.join(self.names[p] for p in self.extra)}")
        if self.dropped:
            lines.append(f"  {'(dropped)':<17} ← {', '.join(self.names[p] for p in self.dropped)}")
        return lines


def make_plan(names: list[str]) -> Plan:
    """The column plan for an old table with these columns (rowid appended by the reader)."""
    position: dict[str, int] = {}
    for index, name in enumerate(names):
        position.setdefault(key(name), index)  # a second spelling of a name goes to extra

    def pick(keys: tuple[str, ...]) -> list[int]:
        return [position[k] for k in keys if k in position]

    received, stamped, asctime = pick(RECEIVED_NAMES), pick(CREATED_NAMES), pick(("asctime",))
    sources = {"received": received + stamped + asctime, "created": stamped + asctime}
    if not received:
        # ps_bridge overwrote each record's `created` with its own clock as it stored it: that
        # is when the record was received. The client's own time survives only in asctime.
        sources["created"] = asctime + stamped
    sources.update({target: pick(keys) for target, keys in ALIASES.items()})
    used = {p for positions in sources.values() for p in positions}
    seq = position.get("id")
    dropped = [position[k] for k in sorted(DROPPED) if k in position]
    extra = [i for i in range(len(names)) if i not in used and i != seq and i not in dropped]
    return Plan(list(names), seq, sources, extra, dropped,
                msecs=position.get("msecs"), asctime=asctime[0] if asctime else None)


def parse_time(value: object, zone: datetime.tzinfo | None) -> float | object | None:
    """An old timestamp → UTC epoch; None when missing ("None", ''), BAD when unreadable.
    Naive times are in `zone` (None: this machine's local zone)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            return None
        if not NUMBER.fullmatch(text):
            return _moment(text, zone)
        value = float(text)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return BAD
    return _epoch(value / 1000 if value > MILLIS else float(value))


def _moment(text: str, zone: datetime.tzinfo | None) -> float | object:
    moment = _datetime(text)
    if moment is None:
        return BAD
    if moment.tzinfo is None and zone is not None:
        moment = moment.replace(tzinfo=zone)
    try:
        return _epoch(moment.timestamp())
    except (OverflowError, OSError, ValueError):
        return BAD


def _epoch(number: float) -> float | object:
    return number if math.isfinite(number) and 0 <= number <= LAST_EPOCH else BAD


def _datetime(text: str) -> datetime.datetime | None:
    try:  # 3.11: "2023-04-01 12:00:00.123456", "…,123" (asctime), "…T…Z", "…+02:00"
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in FORMATS:
        try:
            return datetime.datetime.strptime(text, form)
        except ValueError:
            continue
    return None


def _int(value: object) -> int | object | None:
    """A whole number, None when missing ("None", ''), BAD when there is no number."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            return None
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return BAD
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or isinstance(value, float) and not math.isfinite(value):
        return BAD
    number = int(value)
    return number if -2**63 <= number < 2**63 else BAD


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    if value is None or value == "None":
        return None
    return value if isinstance(value, str) else str(value)


@dataclass
class Converter:
    """Old rows → record values in COLUMNS order; counts what it had to leave out."""

    plan: Plan
    origin: str
    zone: datetime.tzinfo | None
    caps: Caps
    now: float
    not_before: float | None = None  # older records would be deleted by retention at once
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # (column index, old positions, whole number?, size cap) per plain field
        self.fields = [(INDEX[target], positions, target in INTS,
                        self.caps.text if target in TEXTS else self.caps.field)
                       for target, positions in self.plan.sources.items()
                       if positions and target not in ("received", "created")]
        self.times = sorted(set(self.plan.sources["created"] + self.plan.sources["received"]))

    def convert(self, row: tuple) -> list | None:
        plan, values = self.plan, [None] * len(COLUMNS)
        seq = _int(row[plan.seq] if plan.seq is not None else row[-1])
        if type(seq) is not int:
            self.counts["no usable id"] += 1
            return None
        for index, positions, whole, cap in self.fields:
            for position in positions:
                value = row[position]
                if value is None or value == "None":
                    continue
                kind = type(value)  # fast path: most values already have the column's type
                if whole and kind is int and -2**63 <= value < 2**63 \
                        or not whole and kind is str and len(value) <= cap:
                    values[index] = value
                    break
                value = self._convert(value, whole, cap, plan.names[position])
                if value is not None:
                    values[index] = value
                    break
        if all(values[INDEX[name]] in (None, "") for name in CONTENT):
            self.counts["empty placeholder rows"] += 1  # ps_bridge wrote one at each start
            return None
        times = {position: self._time(row, position) for position in self.times}
        values[INDEX["created"]] = next(
            (times[p] for p in plan.sources["created"] if times[p] is not None), None)
        received = next(
            (times[p] for p in plan.sources["received"] if times[p] is not None), None)
        if received is None:
            self.counts["no usable time: received set to the import's time"] += 1
            received = self.now
        if self.not_before is not None and received < self.not_before:
            self.counts["older than [writer] keep"] += 1
            return None
        _fill_level(values)
        extra = {plan.names[p]: _json_value(row[p]) for p in plan.extra
                 if row[p] is not None and row[p] != "None"}
        values[INDEX["seq"]], values[INDEX["origin"]] = seq, self.origin
        values[INDEX["received"]] = received
        values[INDEX["extra"]] = truncate(json.dumps(extra, ensure_ascii=False),
                                          self.caps.text) if extra else None
        return values

    def _convert(self, value: object, whole: bool, cap: int, name: str) -> object:
        if whole:
            number = _int(value)
            if number is BAD:
                self.counts[f"unreadable number in {name} (NULL)"] += 1
                return None
            return number
        text = _text(value)
        return None if text is None else truncate(text, cap)

    def _time(self, row: tuple, position: int) -> float | None:
        moment = parse_time(row[position], self.zone)
        if moment is BAD:
            self.counts[f"unreadable time in {self.plan.names[position]} (NULL)"] += 1
            return None
        if moment is not None and position == self.plan.asctime and self.plan.msecs \
                is not None and not re.search(r"[.,]\d", str(row[position])):
            msecs = _int(row[self.plan.msecs])  # a datefmt without the fraction
            if type(msecs) is int and 0 <= msecs < 1000:
                moment += msecs / 1000
        return moment


def _fill_level(values: list) -> None:
    levelno, levelname = INDEX["levelno"], INDEX["levelname"]
    name = values[levelname]
    if name is not None and NUMBER.fullmatch(name.strip()):  # a `level` column of numbers
        number, name = _int(name), None
        values[levelname] = None
        if values[levelno] is None and isinstance(number, int):
            values[levelno] = number
    if values[levelno] is None and name is not None:
        number = logging.getLevelName(name.strip().upper())
        values[levelno] = number if isinstance(number, int) else None
    elif name is None and values[levelno] is not None:
        values[levelname] = logging.getLevelName(values[levelno])


def _json_value(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


# The shell: arguments, the old file, batches into the herald DB. -----------------------------

def _zone(name: str) -> datetime.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone {name!r} (e.g. Europe/Berlin, "
                                         "UTC)") from None


def _batch(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100000:
        raise argparse.ArgumentTypeError(f"a number of rows from 1 to 100000, not {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance import-legacy",
        description="Import the records of an old ps.herald database (its `log` table, as "
        "ps_bridge wrote it) into this appliance's herald DB. It may run while the appliance "
        "runs; running it again imports only what is not there yet.")
    parser.add_argument("old", type=Path, metavar="OLD.sqlite",
                        help="the old ps.herald database (opened read-only)")
    parser.add_argument("-c", "--config", help="the instance's appliance.ini; its [writer] db "
                        "is the target (default: conf/appliance.ini)")
    parser.add_argument("--db", type=Path, help="import into this herald DB instead of the "
                        "config's [writer] db (with --db, no config is read unless -c is given)")
    parser.add_argument("--timezone", type=_zone, metavar="ZONE",
                        help="the zone of timestamps written without one (ps_bridge wrote its "
                        "host's local time), e.g. Europe/Berlin or UTC (default: this machine's "
                        f"local zone, now {time.strftime('%Z') or 'unknown'})")
    parser.add_argument("--origin", help="origin of the imported records (default: "
                        "legacy:<file stem>); with the old id it makes each record unique")
    parser.add_argument("--batch", type=_batch, default=1000, metavar="N",
                        help="rows per transaction (default: %(default)s)")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        run(args)
    except (Refused, ConfigError) as error:
        print(f"appliance import-legacy: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # the batch in hand is rolled back, the ones before stay
        print("appliance import-legacy: interrupted; the records inserted so far stay (a "
              "second run skips them)", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    finally:
        if not database.is_closed():
            database.close()


def run(args: argparse.Namespace) -> None:
    config = None
    if args.db is None or args.config is not None:
        config = load_config(args.config or "conf/appliance.ini")
    target = Path(args.db or config.writer.db)
    source, names, total = _open_old(args.old)
    if target.exists() and target.resolve() == args.old.resolve():
        raise Refused(f"{args.old} is the target herald DB itself")
    plan = make_plan(names)
    order = f'"{names[plan.seq]}"' if plan.seq is not None else "rowid"
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in names)
    select = f"SELECT {columns}, rowid FROM {TABLE} ORDER BY {order}"  # noqa: S608 - its own names
    now = time.time()
    keep = config.writer.keep if config else 0
    caps = Caps(config.ingestor.max_text_chars, config.ingestor.max_field_chars) if config \
        else Caps()
    origin = args.origin or f"legacy:{args.old.stem}"
    converter = Converter(plan, origin, args.timezone, caps, now,
                          not_before=now - keep if keep > 0 else None)
    try:
        open_database(target, create=True)
    except (pw.PeeweeException, sqlite3.Error, OSError) as error:
        raise Refused(f"cannot open the herald DB {target}: {error}") from None
    print(f"importing {total:,} rows of {args.old} (table {TABLE}) into {target} "
          f"as origin {origin!r}\ncolumn mapping (record ← {TABLE}):", *plan.describe(),
          sep="\n", flush=True)
    read = stored = converted = 0
    started = shown = time.monotonic()
    try:
        for batch in _batches(source, select, args.batch):
            records = [v for v in map(converter.convert, batch) if v is not None]
            read, converted = read + len(batch), converted + len(records)
            stored += _store(records) if records else 0
            if time.monotonic() - shown >= 1:
                shown = time.monotonic()
                print(f"  {read:,}/{total:,} rows read, {stored:,} records inserted "
                      f"({read / (shown - started):,.0f} rows/s)", flush=True)
    except Unreadable as error:
        raise Refused(f"reading {args.old} failed after {read:,} rows ({error}); the "
                      f"{stored:,} records inserted stay (a second run skips them)") from None
    except (pw.PeeweeException, sqlite3.Error) as error:
        raise Refused(f"storing into {target} failed after {read:,} rows ({error}); the "
                      f"{stored:,} records inserted stay (a second run skips them)") from None
    _summary(read, converted, stored, time.monotonic() - started, converter, keep)


SKIPS = ("empty placeholder rows", "no usable id", "older than [writer] keep")


def _summary(read: int, converted: int, stored: int, seconds: float, converter: Converter,
             keep: float) -> None:
    already = converted - stored
    print(f"done in {seconds:.1f} s: {read:,} rows read, {stored:,} records inserted, "
          f"{already:,} already imported before (same origin and id)")
    if stored == 0 and already:
        print(f"nothing new: all {already:,} records were imported before")
    for what, count in sorted(converter.counts.items()):
        print(f"{'skipped' if what in SKIPS else 'warning'}: {count:,} × {what}")
    if converter.counts["older than [writer] keep"]:
        print(f"  the writer deletes records received more than {keep / 86400:g} days ago; to "
              "keep them, set [writer] keep = 0 (or longer), restart the writer, run this again")


def _open_old(path: Path) -> tuple[sqlite3.Connection, list[str], int]:
    """The old database opened read-only, the `log` table's column names and row count."""
    if not path.is_file():
        raise Refused(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        source.text_factory = functools.partial(str, encoding="utf-8", errors="backslashreplace")
        tables = [row[0] for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]
    except sqlite3.DatabaseError as error:
        raise Refused(f"{path} is not a readable SQLite database ({error})") from None
    if TABLE not in (name.lower() for name in tables):
        raise Refused(f"{path} has no `{TABLE}` table, so it is no old ps.herald database "
                      f"(tables found: {', '.join(tables) or 'none'})")
    try:
        names = [row[1] for row in source.execute(f"PRAGMA table_info({TABLE})")]
        total = source.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]  # noqa: S608
    except sqlite3.DatabaseError as error:
        raise Refused(f"{path}: the `{TABLE}` table cannot be read ({error})") from None
    return source, names, total


def _batches(source: sqlite3.Connection, select: str, size: int) -> Iterator[list[tuple]]:
    try:
        rows = source.execute(select)
        while batch := rows.fetchmany(size):
            yield batch
    except sqlite3.DatabaseError as error:
        raise Unreadable(str(error)) from None


def _store(records: list[list]) -> int:
    """Insert a batch with its FTS rows, facets and hourly counts, as the writer does; a
    record already there (same origin and seq) is ignored. IMMEDIATE: the write lock is taken
    at BEGIN, where the busy timeout applies, so the live writer's batches interleave."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with database.atomic(lock_type="IMMEDIATE"):
                before = newest_id()
                cursor = database.cursor()
                cursor.executemany(INSERT_SQL, records)
                if cursor.rowcount:
                    after_insert(before)
                return cursor.rowcount
        except (pw.OperationalError, sqlite3.OperationalError) as error:
            if attempt == ATTEMPTS or not any(w in str(error) for w in ("locked", "busy")):
                raise
            print(f"  the herald DB is busy ({error}); trying again", flush=True)
            time.sleep(attempt)
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
