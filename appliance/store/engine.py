"""The one interface every process uses to reach the herald store, whatever the engine:
storing a batch with its cursor, retention and purge, read-only connections for the web and
the CLI, the schema version. `open_store(url)` picks sqlite_engine or postgres_engine.

Callers never ask which engine they have; what differs lives behind these methods and the
engine's query Dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from appliance.store.query import Dialect
from appliance.store.url import POSTGRESQL, SchemaTooNew, StoreUnavailable, StoreUrl

__all__ = ["Engine", "ReadConnection", "SchemaTooNew", "StoreUnavailable", "open_store"]

# Called with (record values, error) for each row the database refuses.
Reject = Callable[[list, BaseException], None]


class ReadConnection(Protocol):
    def rows(self, sql: str, params: list | tuple = ()) -> list[dict]:
        """Run one statement written with `?` placeholders; rows as dicts."""

    def close(self) -> None: ...


class Engine(Protocol):
    url: StoreUrl
    dialect: Dialect

    def open(self, create: bool = False) -> None:
        """Connect; with `create`, make or upgrade the schema. Raises StoreUnavailable,
        SchemaTooNew."""

    def close(self) -> None: ...

    def load_cursor(self, name: str, origin: str) -> int: ...

    def store_batch(self, records: list[list], cursor: tuple[str, str, int] | None,
                    reject: Reject) -> int:
        """Insert the new records (a duplicate (origin, seq) is skipped), keep the search
        index, facets and hourly counts in step and move the cursor, in one transaction.
        Rows the database refuses go to `reject` and cost no other row. Returns how many
        rows were inserted. Errors of the database itself go up: see `transient`."""

    def transient(self, error: BaseException) -> bool:
        """Whether waiting (and reconnecting) can cure this error."""

    def retention(self, cutoff: float | None, max_rows: int, batch: int) -> int:
        """Delete records received before `cutoff` and beyond the newest `max_rows`."""

    def purge_older_than(self, cutoff: float, batch: int,
                         progress: Callable[[int], None] | None = None) -> int:
        """The admin purge, over its own (admin) connection; `progress` hears the running
        count of deleted records."""

    def count_older_than(self, cutoff: float) -> int:
        """How many records a purge at `cutoff` would delete (for a progress bar)."""

    def reader(self, schema: str | None = None) -> ReadConnection:
        """A new read-only connection (one per thread); `schema` is a PostgreSQL schema to
        read instead of the records' (neelix's state)."""

    def size_bytes(self) -> int | None:
        """The store's size on disk; StoreUnavailable while the database cannot be reached."""


def open_store(url: StoreUrl, admin: StoreUrl | None = None) -> Engine:
    """The engine for `url` (not yet connected); `admin` is the purge's connection."""
    if url.engine == POSTGRESQL:
        from appliance.store.postgres_engine import PostgresEngine
        return PostgresEngine(url, admin or url)
    from appliance.store.sqlite_engine import SqliteEngine
    return SqliteEngine(url)
