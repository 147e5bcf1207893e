"""Record queries for the web table, the JSON API and the CLI: URL parameters → checked
filters → one SQL statement with keyset pagination. Pure functions over plain data.

Every bad parameter raises QueryError with a message fit for a 400 answer.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from appliance.converters import level_number
from appliance.errors import ApplianceError
from appliance.spine.record import FILTER_FIELDS

EQUALITY_FIELDS = FILTER_FIELDS
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_ID = 2**63 - 1  # SQLite's largest integer
MAX_SEARCH = 1000  # characters of a full-text search
PARAMETERS = frozenset({*EQUALITY_FIELDS, "level", "since", "until", "q", "order", "limit",
                        "before", "after"})
_RELATIVE = re.compile(r"^\s*(\d{1,9})\s*(s|m|h|d|w)\s*$")
MATCH = "id IN (SELECT rowid FROM record_fts WHERE record_fts MATCH ?)"
TIME_FIRST_MATCH = "+" + MATCH
_FTS_SYNTAX = re.compile(r'["()*]|\b(?:AND|OR|NOT|NEAR)\b')
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class QueryError(ApplianceError):
    """A request parameter is wrong; `status` is the HTTP answer."""

    status = 400


@dataclass(frozen=True)
class Dialect:
    """What differs in SQL between the engines, for the statements built here and in the
    reader. Statements use `?` placeholders on both (the PostgreSQL reader converts them)."""

    name: str
    match: str  # the full-text condition, one `?` for the search parameter
    time_first_match: str  # the same, phrased so the planner walks the time range first
    search_parameter: Callable[[str], str]  # the user's search → the `?` value
    search_only: Callable[[Query, str, str], tuple[str, list]] | None  # a search-only page
    bucket: str  # "{x}" → the whole number of time buckets below x (a float expression)
    same: str  # null-safe equality with `?`: "{column} IS ?" or "IS NOT DISTINCT FROM"
    unindexed: str  # "{column}", hidden from SQLite's planner with a unary +
    # bound a filter on a column without an index by the time its value was seen (facets),
    # so day partitions outside it are not read at all
    narrow_by_facets: bool = False


@dataclass(frozen=True)
class Query:
    equals: dict[str, str] = field(default_factory=dict)
    level: int | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None
    newest_first: bool = True
    limit: int = DEFAULT_LIMIT
    before: int | None = None  # keyset: ids below this (older, in newest-first order)
    after: int | None = None   # keyset: ids above this (newer)


def parse(params: Mapping[str, str], now: float | None = None) -> Query:
    """Checked filters from URL parameters; empty values mean 'no filter'."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}; known: "
                         f"{', '.join(sorted(PARAMETERS))}")
    now = time.time() if now is None else now
    given = {key: value.strip() for key, value in params.items() if value and value.strip()}
    order = given.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise QueryError(f"order must be 'newest' or 'oldest', not {order!r}")
    return Query(
        equals={key: given[key] for key in EQUALITY_FIELDS if key in given},
        level=_level(given["level"]) if "level" in given else None,
        since=_time(given["since"], now, "since") if "since" in given else None,
        until=_time(given["until"], now, "until") if "until" in given else None,
        text=_search(given.get("q")),
        newest_first=order == "newest",
        limit=_bounded_int(given.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT),
        before=_bounded_int(given["before"], "before", 1, MAX_ID) if "before" in given else None,
        after=_bounded_int(given["after"], "after", 0, MAX_ID) if "after" in given else None,
    )


def _search(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_SEARCH:
        raise QueryError(f"a search may have at most {MAX_SEARCH} characters")
    return text


def _level(text: str) -> int:
    """A level name as the config takes it (error, WARN, Warning, …) or a number 0-100."""
    if text.isdigit():
        return _bounded_int(text, "level", 0, 100)
    try:
        return level_number(text)
    except ValueError as error:
        raise QueryError(f"level: {error}") from None


def _bounded_int(text: str, name: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?\d{1,19}", text):
        raise QueryError(f"{name} must be a whole number, not {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _time(text: str, now: float, name: str) -> float:
    """'15m', '2h', '7d' (ago), epoch seconds, or an ISO date/time (UTC unless it says)."""
    relative = _RELATIVE.match(text)
    if relative:
        return now - int(relative.group(1)) * _SECONDS[relative.group(2)]
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return float(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{name} must be like 15m, 2h, 7d, epoch seconds or "
                         f"2026-11-28T12:00, not {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def fts_expression(text: str) -> str:
    """The user's search as an FTS5 expression. Plain words must all occur, each taken
    literally (so `connection-refused` or `db01:5432` just work); with FTS5 syntax
    ("phrases", prefix*, AND OR NOT NEAR, parentheses) it is passed through, and a malformed
    one comes back from SQLite as a QueryError."""
    if _FTS_SYNTAX.search(text):
        return text
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


def build(query: Query, columns: str = "*", dialect: Dialect | None = None) -> tuple[str, list]:
    """One SELECT over `record` for the query: filters, keyset bound, order, limit+1 rows (the
    extra row tells whether another page exists). It reads away from the cursor: downwards
    from `before`, upwards from `after`; `fetches_descending` says which, so the caller can
    show the rows in the order asked for."""
    dialect = dialect or SQLITE
    order = "DESC" if fetches_descending(query) else "ASC"
    if query.text and not query.equals and query.level is None and query.since is None \
            and query.until is None and dialect.search_only is not None:
        return dialect.search_only(query, columns, order)
    where, params = where_clause(query, dialect=dialect)
    _add_cursor(query, "id", where, params)
    # Keyset on id (the order records were stored in): no OFFSET scans, stable pages.
    sql = (f"SELECT {columns} FROM record WHERE {' AND '.join(where) or '1=1'} "  # noqa: S608
           f"ORDER BY id {order} LIMIT ?")
    return sql, [*params, query.limit + 1]


def _search_only(query: Query, columns: str, order: str) -> tuple[str, list]:
    """A search with no other filter: FTS5 walks its matches in rowid order and stops after
    a page, instead of collecting every match first (a prefix can match millions)."""
    bounds, params = ["record_fts MATCH ?"], [fts_expression(query.text or "")]
    _add_cursor(query, "rowid", bounds, params)
    sql = (f"SELECT {columns} FROM record WHERE id IN (SELECT rowid FROM record_fts "  # noqa: S608
           f"WHERE {' AND '.join(bounds)} ORDER BY rowid {order} LIMIT ?) ORDER BY id {order}")
    return sql, [*params, query.limit + 1]


def _add_cursor(query: Query, column: str, where: list[str], params: list) -> None:
    """The keyset bound: `column` is 'id' (record) or 'rowid' (record_fts), a constant."""
    if query.before is not None:
        where.append(f"{column} < ?")
        params.append(query.before)
    if query.after is not None:
        where.append(f"{column} > ?")
        params.append(query.after)


def fetches_descending(query: Query) -> bool:
    if query.before is not None:
        return True
    if query.after is not None:
        return False
    return query.newest_first


def where_clause(query: Query, time_first: bool = False,
                 dialect: Dialect | None = None) -> tuple[list[str], list]:
    """The filter part, shared by the table, the histogram and exports. `time_first` makes
    SQLite walk a (short) time range and test each row against the search's matches, instead
    of fetching every match of the whole history (`+id` hides the rowid from the planner)."""
    dialect = dialect or SQLITE
    where: list[str] = []
    params: list = []
    for key, value in query.equals.items():
        where.append(f"{key} = ?")  # key comes from EQUALITY_FIELDS, never from input
        params.append(value)
    if query.level is not None:
        where.append("levelno >= ?")
        params.append(query.level)
    if query.since is not None:
        where.append("received >= ?")
        params.append(query.since)
    if query.until is not None:
        where.append("received < ?")
        params.append(query.until)
    if query.text:
        where.append(dialect.time_first_match if time_first else dialect.match)
        params.append(dialect.search_parameter(query.text))
    return where, params


SQLITE = Dialect("sqlite", MATCH, TIME_FIRST_MATCH, fts_expression, _search_only,
                 bucket="CAST({x} AS INTEGER)", same="{column} IS ?", unindexed="+{column}")
