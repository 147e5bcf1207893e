"""Operator commands on an instance: `appliance status`, `emit`, `query`, `tail`, `purge`.

Each reads the instance's appliance.ini (-c, default conf/appliance.ini) and goes through the
same modules as the processes: health.py, query.py/store.py, purge.py, the wire format.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import sys
import time

from appliance import converters as c
from appliance.config import Config, ingest_host
from appliance.config import load as load_config
from appliance.monitor import health
from appliance.progress import Progress
from appliance.runtime import command_parser, typed
from appliance.store.engine import open_store
from appliance.store.query import Query, QueryError, parse
from appliance.store.reader import RecordStore
from appliance.store.url import StoreUnavailable
from appliance.times import when_text, with_iso_times

SHOWN = ("id", "received", "levelname", "system_id", "sub_system_id", "logger", "message")


def status(argv: list[str]) -> None:
    parser = command_parser("status", "Every program's state, records/s in and out, subscriber "
                            "lag, journal, database and disk; exit 1 when unhealthy.")
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    parser.add_argument("--interval", type=typed(c.duration), default=1.0,
                        help="seconds between the two samples rates come from (default 1s)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    first = health.snapshot(config)
    time.sleep(args.interval)  # rates need two samples
    second = health.snapshot(config)
    rates = _rates(first, second)
    if args.json:
        print(json.dumps({**health.report(second), "rates": rates}, indent=2))
    else:
        print(render_status(config, second, rates))
    if not second.healthy:
        raise SystemExit(1)


def _rates(first: health.Snapshot, second: health.Snapshot) -> dict[str, float]:
    span = max(second.time - first.time, 1e-3)

    def total(snap: health.Snapshot, prefix: str, key: str) -> float:
        return sum(float(stats.get(key, 0)) for name, stats in snap.stats.items()
                   if name == prefix or name.startswith(prefix + "-"))

    return {name: round(max(total(second, p, k) - total(first, p, k), 0) / span, 1)
            for name, p, k in (("in", "ingestor", "accepted"), ("stored", "writer", "written"),
                               ("forwarded", "forwarder", "forwarded"),
                               ("matched", "neelix", "matched"))}


def addresses(config: Config) -> list[str]:
    """Where this instance listens, for people: the web URL and the ingest address."""
    host = ingest_host(config)
    udp = " and UDP" if config.ingestor.udp else ""
    return [f"web     http://{host}:{config.web.port}/",
            f"ingest  {host}:{config.ingestor.port} (TCP{udp}; SocketHandler, appliance.client)"]


def render_status(config: Config, snap: health.Snapshot, rates: dict[str, float]) -> str:
    state = "healthy" if snap.healthy else "UNHEALTHY"
    lines = [f"herald {config.appliance.instance} (stage {config.stage.name}): {state}"]
    lines += addresses(config)
    lines += [f"  ! {problem}" for problem in snap.problems]
    lines.append("programs: " + (", ".join(f"{name} {s}" for name, s in
                                           sorted(snap.programs.items())) or "unknown"))
    lines.append(f"records/s: in {rates['in']:g}, stored {rates['stored']:g}, forwarded "
                 f"{rates['forwarded']:g}, matched {rates['matched']:g}")
    lines.append("lag (records): " + (", ".join(f"{name} {behind}" for name, behind in
                                                sorted(snap.lag.items())) or "no subscriber"))
    for name, stats in sorted(snap.stats.items()):
        if name.startswith("forwarder-"):
            link = "up" if stats.get("link_up") else "DOWN"
            lines.append(f"{name}: link {link}, {stats.get('behind_records', 0)} records / "
                         f"{stats.get('behind_seconds', 0)}s behind")
    lines.append(f"journal {snap.journal_bytes / 2**20:.1f} MiB, database "
                 f"{snap.db_bytes / 2**20:.1f} MiB, disk free {snap.disk_free / 2**30:.1f} GiB")
    return "\n".join(lines)


def emit(argv: list[str]) -> None:
    parser = command_parser("emit", "Send test records to the instance's ingest port, as a service "
                     "would (stdlib SocketHandler).")
    parser.add_argument("message", nargs="?", default="test record from appliance emit")
    parser.add_argument("--count", type=typed(c.positive_int), default=1)
    parser.add_argument("--level", type=typed(c.log_level), default="INFO")
    parser.add_argument("--system", default="appliance-emit", help="its SYSTEM_ID")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    host = ingest_host(config)
    handler = logging.handlers.SocketHandler(host, config.ingestor.port)
    logger = logging.Logger("appliance.emit")
    logger.addHandler(handler)
    level = logging.getLevelName(args.level)
    for number in range(args.count):
        text = args.message if args.count == 1 else f"{args.message} {number + 1}"
        logger.log(level, text, extra={"SYSTEM_ID": args.system})
    handler.close()
    print(f"sent {args.count} record(s) to {host}:{config.ingestor.port}")


def _query_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = command_parser(name, description + " Filters are the web's URL parameters, e.g. "
                     "system_id=shop level=ERROR since=1h q=timeout.")
    parser.add_argument("filters", nargs="*", metavar="NAME=VALUE")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _filters(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"{pair!r} is not NAME=VALUE")
        params[name] = value
    return params


def _store(config: Config) -> RecordStore:
    store = RecordStore(open_store(config.store.url, config.store.admin_url))
    try:
        store.connection()
    except StoreUnavailable as error:
        raise SystemExit(str(error)) from None
    return store


def _print(rows: list[dict], as_json: bool) -> None:
    for row in rows:
        if as_json:
            print(json.dumps(with_iso_times(row), ensure_ascii=False))
        else:
            message = (row["message"] or "").replace("\n", " ")[:160]
            print(f"{row['id']:>9} {when_text(row['received'])[:19]} "
                  f"{row['levelname'] or '':8} {row['system_id'] or '-':16} "
                  f"{row['logger'] or '':20} {message}")
    sys.stdout.flush()


def _checked(store: RecordStore, params: dict[str, str], name: str) -> Query:
    """The filters as a Query, the search already parsed by SQLite: a mistake ends the
    command with one line (exit 2), never a traceback."""
    try:
        query = parse(params)
        if query.text:
            store.check_search(query.text)
    except QueryError as error:
        print(f"appliance {name}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return query


def query(argv: list[str]) -> None:
    parser = _query_parser("query", "Print the newest records matching the filters.")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    params = _filters(parser, args.filters)
    store = _store(config)
    rows, _more = store.page(_checked(store, params, "query"))
    _print(list(reversed(rows)), args.json)


def tail(argv: list[str]) -> None:
    parser = _query_parser("tail", "Print the last records and then new ones as they are "
                           "stored, like tail -f (Ctrl-C ends).")
    parser.add_argument("--once", action="store_true", help="print what is there and stop")
    parser.add_argument("--interval", type=typed(c.duration), default=0.5,
                        help="how often to look for new records (default 0.5s)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    params = _filters(parser, args.filters)
    store = _store(config)
    for key in ("order", "after", "before", "limit"):
        if key in params:  # tail owns the paging: it shows the last records, then newer ones
            print(f"appliance tail: {key}= is not a tail filter (use appliance query)",
                  file=sys.stderr)
            raise SystemExit(2)
    rows, _more = store.page(_checked(store, {**params, "limit": "20"}, "tail"))
    _print(list(reversed(rows)), args.json)
    last = max((row["id"] for row in rows), default=0)
    try:
        while not args.once:
            time.sleep(args.interval)  # polling a read-only SQLite file: nothing to wait on
            newer = parse({**params, "after": str(last), "order": "oldest", "limit": "1000"})
            rows, _more = store.page(newer)
            _print(rows, args.json)
            last = max((row["id"] for row in rows), default=last)
    except KeyboardInterrupt:
        pass


def purge(argv: list[str]) -> None:
    parser = command_parser("purge", "Delete records received longer ago than a duration, in small "
                     "transactions (the appliance may run meanwhile).")
    parser.add_argument("--older-than", required=True, type=typed(c.duration),
                        help="e.g. 30d, 12h")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    store = _store(config)
    cutoff = time.time() - args.older_than
    try:
        bar = Progress("purging", store.engine.count_older_than(cutoff))
        deleted = store.engine.purge_older_than(cutoff, config.writer.delete_batch, bar.update)
    except StoreUnavailable as error:
        raise SystemExit(str(error)) from None
    bar.finish()
    print(f"deleted {deleted} records received before {when_text(cutoff)}")


COMMANDS = {"status": status, "emit": emit, "query": query, "tail": tail, "purge": purge}
