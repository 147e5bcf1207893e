"""Read-only queries of the herald DB for the web viewer and the CLI: pages of records, one
record and its neighbours and the path it was forwarded along, filter options, per-system
summaries, histogram counts, exports.

One read-only connection per server thread, from the store's engine (SQLite or PostgreSQL);
the engine's Dialect writes what differs. A store that is away raises StoreUnavailable.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator

from appliance.spine.record import COLUMNS
from appliance.spine.stats import epoch
from appliance.store.engine import Engine, ReadConnection
from appliance.store.query import (
    EQUALITY_FIELDS,
    Query,
    QueryError,
    build,
    fetches_descending,
    where_clause,
)
from appliance.store.url import StoreUnavailable

AROUND = 10  # records shown before and after one on its detail page
HOUR = 3600
MAX_HOPS = 64  # a longer hops list is not the relay's (it keeps 16): shown as text
RECORD = f"id, {', '.join(COLUMNS)}"  # every column of a record (PostgreSQL has `search` too)


class RecordStore:
    """Read-only access to the herald store: one connection per server thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._local = threading.local()

    def connection(self) -> ReadConnection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.engine.reader()
        return db

    def rows(self, sql: str, params: list | tuple = ()) -> list[dict]:
        try:
            return self.connection().rows(sql, params)
        except StoreUnavailable:
            self._local.db = None  # connect afresh next time
            raise

    def check_search(self, text: str) -> None:
        """Let the engine parse the search on its own, so its complaint becomes a 400 and any
        other database error stays a 500. The web checks each request's search once, with
        the other parameters; the query methods trust it."""
        try:
            self.rows(f"SELECT 1 FROM record WHERE {self.dialect.match} LIMIT 1",  # noqa: S608
                      (self.dialect.search_parameter(text),))
        except QueryError:
            raise
        except StoreUnavailable:
            raise
        except Exception as error:  # the engine's own error type for a malformed search
            raise QueryError(f"search syntax: {error} (words, \"a phrase\", prefix*, "
                             "AND/OR/NOT, parentheses)") from None

    def page(self, query: Query) -> tuple[list[dict], bool]:
        """Up to query.limit records, newest first unless asked otherwise, and whether the
        query has more beyond them."""
        if not self.can_match(query):
            return [], False
        sql, params = build(self.narrowed(query), RECORD, self.dialect)
        rows = self.rows(sql, params)
        more = len(rows) > query.limit  # more beyond, in the direction read
        rows = rows[:query.limit]
        if fetches_descending(query) != query.newest_first:
            rows.reverse()  # read away from the cursor, shown in the order asked for
        return rows, more

    def record(self, record_id: int) -> dict | None:
        rows = self.rows(f"SELECT {RECORD} FROM record WHERE id = ?", (record_id,))  # noqa: S608
        return rows[0] if rows else None

    def record_id(self, origin: str, seq: int) -> int | None:
        """The id of the record an appliance accepted as (origin, seq): links in notices."""
        rows = self.rows("SELECT id FROM record WHERE origin = ? AND seq = ?", (origin, seq))
        return rows[0]["id"] if rows else None

    def around(self, record: dict) -> tuple[list[dict], list[dict]]:
        same = self.dialect.same.format(column="system_id")
        before = self.rows(f"SELECT {RECORD} FROM record WHERE {same} AND id < ? "  # noqa: S608
                           "ORDER BY id DESC LIMIT ?", (record["system_id"], record["id"], AROUND))
        after = self.rows(f"SELECT {RECORD} FROM record WHERE {same} AND id > ? "  # noqa: S608
                          "ORDER BY id ASC LIMIT ?", (record["system_id"], record["id"], AROUND))
        return list(reversed(after)), before

    def options(self) -> dict[str, list[str]]:
        """Distinct values for the filter drop-downs, from the writer's facet table."""
        return {name: [row["value"] for row in self.rows(
            "SELECT DISTINCT value FROM facet WHERE field = ? ORDER BY value LIMIT 1000",
            (name,))] for name in EQUALITY_FIELDS}

    def can_match(self, query: Query) -> bool:
        """False if an equality filter names a value never stored: answered from the facet
        table instead of scanning a column that has no index."""
        return all(self.rows("SELECT 1 FROM facet WHERE field = ? AND value = ? LIMIT 1",
                             (name, value)) for name, value in query.equals.items())

    def narrowed(self, query: Query) -> Query:
        """On an engine that asks for it: the query bounded in time by when its values of
        columns without an index were first and last seen (the facet table, kept in the
        rows' own transactions, so no matching row lies outside). The same rows."""
        fields = [name for name in query.equals if name != "system_id"]
        if not self.dialect.narrow_by_facets or not fields:
            return query
        since, until = query.since, query.until
        for name in fields:
            where, params = "field = ? AND value = ?", [name, query.equals[name]]
            if "system_id" in query.equals:
                where += " AND system_id = ?"
                params.append(query.equals["system_id"])
            seen = self.rows("SELECT min(first_seen) AS low, max(last_seen) AS high "  # noqa: S608
                             f"FROM facet WHERE {where}", params)[0]
            if seen["low"] is None:
                continue
            since = seen["low"] if since is None else max(since, seen["low"])
            high = math.nextafter(seen["high"], math.inf)  # `until` is exclusive
            until = high if until is None else min(until, high)
        return dataclasses.replace(query, since=since, until=until)

    def systems(self, now: float | None = None, also: Iterable[str] = ()) -> list[dict]:
        """Per system: hosts, last record, records and errors in the last hour, versions.
        Systems in `also` (those neelix watches) are listed even if they never logged."""
        now = time.time() if now is None else now
        hour = now - 3600
        summary: dict[str, dict] = {}

        def entry(system_id: str) -> dict:
            return summary.setdefault(system_id, {
                "system_id": system_id, "hosts": [], "versions": [], "last_seen": None,
                "records": 0, "last_hour": 0, "errors_last_hour": 0})

        for row in self.rows("SELECT field, value, system_id, first_seen, last_seen, count "
                             "FROM facet WHERE field IN ('system_id', 'sub_system_id', "
                             "'package_version') ORDER BY system_id, first_seen"):
            system = entry(row["system_id"])
            if row["field"] == "system_id":
                system["last_seen"], system["records"] = row["last_seen"], row["count"]
            elif row["field"] == "sub_system_id":
                system["hosts"].append(row["value"])
            else:
                system["versions"].append({"version": row["value"],
                                           "first_seen": row["first_seen"]})
        # `+system_id` keeps the planner on the time index: the last hour is small, a
        # system's whole history is not (1 s instead of 1 ms at 1M rows, measured).
        group = self.dialect.unindexed.format(column="system_id")
        for row in self.rows("SELECT system_id, count(*) AS n, "  # noqa: S608 - constants
                             "sum(CASE WHEN levelno >= 40 THEN 1 ELSE 0 END) AS errors "
                             "FROM record WHERE received >= ? AND system_id IS NOT NULL "
                             f"GROUP BY {group}", (hour,)):
            if row["system_id"] in summary:
                summary[row["system_id"]]["last_hour"] = row["n"]
                summary[row["system_id"]]["errors_last_hour"] = row["errors"]
        for system_id in also:
            entry(system_id)
        return sorted((s for s in summary.values() if s["system_id"]),
                      key=lambda s: s["system_id"])

    def level_counts(self, query: Query, start: float, width: float,
                     buckets: int) -> list[dict[int, int]]:
        """Records per time bucket and level for the query's filters, over the buckets from
        `start` clipped to the query's own since/until."""
        counts: list[dict[int, int]] = [{} for _ in range(buckets)]
        if not self.can_match(query):
            return counts
        low = start if query.since is None else max(start, query.since)
        high = start + width * buckets
        if query.until is not None:
            high = min(high, query.until)
        hourly = width % HOUR == 0 and start % HOUR == 0 and not query.text \
            and set(query.equals) <= {"system_id"}
        first, last = math.ceil(low / HOUR) * HOUR, math.floor(high / HOUR) * HOUR
        if hourly and first < last:
            # Whole hours from the writer's hourly counts; the ragged ends from the records.
            self._add_hourly(counts, query, start, width, first, last)
            self._add_records(counts, query, start, width, low, first)
            self._add_records(counts, query, start, width, last, high)
        else:
            self._add_records(counts, query, start, width, low, high)
        return counts

    def _add_records(self, counts: list[dict[int, int]], query: Query, start: float,
                     width: float, low: float, high: float) -> None:
        if low >= high:
            return
        where, params = where_clause(query, time_first=high - low <= 2 * 86400,
                                     dialect=self.dialect)
        where += ["received >= ?", "received < ?"]
        bucket = self.dialect.bucket.format(x="((received - ?) / ?)")
        sql = (f"SELECT {bucket} AS bucket, "  # noqa: S608
               f"coalesce(levelno, 0) AS level, count(*) AS n FROM record "
               f"WHERE {' AND '.join(where)} GROUP BY bucket, level")
        self._add(counts, self.rows(sql, [start, width, *params, low, high]))

    def _add_hourly(self, counts: list[dict[int, int]], query: Query, start: float,
                    width: float, low: float, high: float) -> None:
        where = ["hour >= ?", "hour < ?"]
        params: list = [int(low // HOUR), int(high // HOUR)]
        if "system_id" in query.equals:
            where.append("system_id = ?")
            params.append(query.equals["system_id"])
        if query.level is not None:
            where.append("levelno >= ?")
            params.append(query.level)
        bucket = self.dialect.bucket.format(x="((hour * 3600 - ?) / ?)")
        sql = (f"SELECT {bucket} AS bucket, "  # noqa: S608
               "levelno AS level, CAST(sum(count) AS BIGINT) AS n FROM level_hour "
               f"WHERE {' AND '.join(where)} GROUP BY bucket, level")
        self._add(counts, self.rows(sql, [start, width, *params]))

    @staticmethod
    def _add(counts: list[dict[int, int]], rows: list[dict]) -> None:
        for row in rows:
            if 0 <= row["bucket"] < len(counts) and row["n"]:
                bucket = counts[int(row["bucket"])]
                bucket[row["level"]] = bucket.get(row["level"], 0) + row["n"]

    def values_since(self, start: float, chunk: int = 5000) -> Iterator[list]:
        """Every record received since `start` as values in COLUMNS order, oldest first, a
        chunk at a time (neelix's dry run feeds them to its rules)."""
        sql = (f"SELECT {RECORD} FROM record "  # noqa: S608 - schema names
               "WHERE id > ? AND received >= ? ORDER BY id LIMIT ?")
        last = 0
        while True:
            rows = self.rows(sql, (last, start, chunk))
            if not rows:
                return
            last = rows[-1]["id"]
            for row in rows:
                yield [row[name] for name in COLUMNS]

    def export(self, query: Query, limit: int) -> Iterator[dict]:
        """Every record the query matches, newest first, at most `limit`, a page at a time."""
        sent, before = 0, query.before
        while sent < limit:
            page = dataclasses.replace(self.narrowed(query), before=before, after=None,
                                       limit=min(1000, limit - sent), newest_first=True)
            sql, params = build(page, RECORD, self.dialect)
            rows = self.rows(sql, params)[:page.limit]
            if not rows:
                return
            yield from rows
            sent += len(rows)
            before = rows[-1]["id"]


def record_path(hops: str | None) -> list[dict] | None:
    """A forwarded record's `hops` → its path, origin first, as
    [{"appliance", "received", "after"}], `after` being the seconds since the hop before (None
    for the origin). None for a local record, and for hops not of the relay's shape: those are
    shown as the text they are."""
    if not hops:
        return None
    try:
        hops_list = json.loads(hops)
    except (ValueError, RecursionError):
        return None
    if not isinstance(hops_list, list) or not 0 < len(hops_list) <= MAX_HOPS:
        return None
    path: list[dict] = []
    for hop in hops_list:
        if not isinstance(hop, list) or len(hop) != 2 or not isinstance(hop[0], str):
            return None
        received = epoch(hop[1])
        if received is None:
            return None
        after = round(received - path[-1]["received"], 3) if path else None
        path.append({"appliance": hop[0], "received": received, "after": after})
    return path
