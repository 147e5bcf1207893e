"""`appliance import-legacy OLD.sqlite`: copy the records of an old ps.herald database (the `log`
table ps_bridge filled) into this instance's herald DB, stored as the writer stores its rows.

The shell around legacy_rows.py (the column plan and the row conversion): it reads the old
table and inserts batches in IMMEDIATE transactions beside the running writer. (origin, seq) =
("legacy:<stem>", old id) makes a second run insert nothing twice.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import sqlite3
import sys
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import peewee as pw

from appliance.config import load as load_config
from appliance.errors import ConfigError
from appliance.ops.legacy_rows import ATTEMPTS, TABLE, Converter, Refused, Unreadable, make_plan
from appliance.progress import Progress
from appliance.spine.record import Caps
from appliance.store.engine import Engine, open_store
from appliance.store.url import SQLITE, StoreUnavailable, StoreUrl


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


def run(args: argparse.Namespace) -> None:
    config = None
    if args.db is None or args.config is not None:
        config = load_config(args.config or "conf/appliance.ini")
    url = StoreUrl(SQLITE, path=args.db.resolve()) if args.db else config.store.url
    source, names, total = _open_old(args.old)
    target = url.path or url.display
    if url.path and url.path.exists() and url.path == args.old.resolve():
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
    engine = open_store(url)
    try:
        engine.open(create=True)
    except (StoreUnavailable, pw.PeeweeException, sqlite3.Error, OSError) as error:
        raise Refused(f"cannot open the herald DB {target}: {error}") from None
    print(f"importing {total:,} rows of {args.old} (table {TABLE}) into {target} "
          f"as origin {origin!r}\ncolumn mapping (record ← {TABLE}):", *plan.describe(),
          sep="\n", flush=True)
    read = stored = converted = 0
    started = shown = time.monotonic()
    bar = Progress("importing", total)  # on a terminal; else a line a second on stdout
    try:
        for batch in _batches(source, select, args.batch):
            records = [v for v in map(converter.convert, batch) if v is not None]
            read, converted = read + len(batch), converted + len(records)
            stored += _store(engine, records) if records else 0
            bar.update(read)
            if not bar.shown and time.monotonic() - shown >= 1:
                shown = time.monotonic()
                print(f"  {read:,}/{total:,} rows read, {stored:,} records inserted "
                      f"({read / (shown - started):,.0f} rows/s)", flush=True)
    except Unreadable as error:
        raise Refused(f"reading {args.old} failed after {read:,} rows ({error}); the "
                      f"{stored:,} records inserted stay (a second run skips them)") from None
    except Exception as error:  # the database's own trouble, on either engine
        if isinstance(error, (Refused, KeyboardInterrupt)):
            raise
        raise Refused(f"storing into {target} failed after {read:,} rows ({error}); the "
                      f"{stored:,} records inserted stay (a second run skips them)") from None
    finally:
        engine.close()
    bar.finish()
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


def _store(engine: Engine, records: list[list]) -> int:
    """Insert a batch with its search index, facets and hourly counts, as the writer does; a
    record already there (same origin and seq) is ignored. While the live writer holds the
    lock (or the server is briefly away), wait and try again."""
    # PostgreSQL's unique key holds `received` too (the partition key), which a row without
    # a readable time gets from the import's clock: skip what is there by (origin, seq).
    reader = engine.reader()
    try:
        known = {(row["origin"], row["seq"]) for row in reader.rows(
            "SELECT origin, seq FROM record WHERE origin = ? AND seq IN "  # noqa: S608
            f"({', '.join('?' * len(records))})", [records[0][1], *(r[0] for r in records)])}
    finally:
        reader.close()
    records = [r for r in records if (r[1], r[0]) not in known]
    if not records:
        return 0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return engine.store_batch(records, None, _refused_row)
        except Exception as error:
            if attempt == ATTEMPTS or not engine.transient(error):
                raise
            print(f"  the herald store is busy ({error}); trying again", flush=True)
            time.sleep(attempt)
    return 0


def _refused_row(values: list, error: BaseException) -> None:
    print(f"  record {values[1]}:{values[0]} refused by the database: {error}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
