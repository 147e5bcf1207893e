"""The herald store in one SQLite file (the embedded default): the Engine of store/engine.py
over schema.py's peewee models (writer side) and read-only sqlite3 connections (readers).

WAL: readers never block the writer; shards of one host take turns on the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import peewee as pw

from appliance.spine.record import scrub
from appliance.store import schema
from appliance.store.purge import OLDER_THAN, UP_TO_ID, delete_in_batches
from appliance.store.query import SQLITE
from appliance.store.url import StoreUnavailable, StoreUrl

# Called with (record values, error) for each row the database refuses.
Reject = Callable[[list, BaseException], None]

# OperationalErrors that waiting can cure (another shard's lock, a full disk, I/O trouble).
TRANSIENT = ("locked", "busy", "full", "disk i/o", "readonly")
# Errors a single row can cause (bad value, constraint); anything else is the database's.
ROW_ERRORS = (pw.IntegrityError, pw.DataError, pw.InterfaceError, pw.ProgrammingError,
              sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
              sqlite3.ProgrammingError, ValueError, OverflowError)


class SqliteReader:
    """One read-only connection (query_only; WAL: it never blocks the writer)."""

    def __init__(self, path: Path) -> None:
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10,
                                      check_same_thread=False)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"the store sqlite:///{path} cannot be opened: {error}") \
                from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA query_only = 1")

    def rows(self, sql: str, params: list | tuple = ()) -> list[dict]:
        return [dict(row) for row in self.db.execute(sql, params)]

    def close(self) -> None:
        self.db.close()


class SqliteEngine:
    dialect = SQLITE

    def __init__(self, url: StoreUrl) -> None:
        self.url = url
        self.path: Path = url.path  # type: ignore[assignment]

    def open(self, create: bool = False) -> None:
        if not create and not self.path.exists():
            raise StoreUnavailable(f"no herald database at {self.path} yet (has the writer "
                                   "run?)")
        schema.open_database(self.path, create=create)

    def close(self) -> None:
        if not schema.database.is_closed():
            schema.database.close()

    def load_cursor(self, name: str, origin: str) -> int:
        row = schema.Cursor.get_or_none((schema.Cursor.name == name) &
                                        (schema.Cursor.origin == origin))
        return row.seq if row else 0

    def store_batch(self, records: list[list], cursor: tuple[str, str, int] | None,
                    reject: Reject) -> int:
        database = schema.database
        # IMMEDIATE takes the write lock at BEGIN, where SQLite's busy timeout applies; a
        # deferred transaction can get SQLITE_BUSY at once when shards interleave.
        with database.atomic(lock_type="IMMEDIATE"):
            before = schema.newest_id()
            inserted = self._insert(records, reject)
            if inserted:
                schema.after_insert(before)
            if cursor:
                name, origin, seq = cursor
                schema.Cursor.insert(name=name, origin=origin, seq=seq).on_conflict(
                    conflict_target=[schema.Cursor.name, schema.Cursor.origin],
                    update={schema.Cursor.seq: seq}).execute()
        return inserted

    @staticmethod
    def _insert(records: list[list], reject: Reject) -> int:
        """executemany on peewee's connection (2-3× faster than a multi-row insert_many,
        measured); if one row is at fault, row by row, so a bad row never blocks the others
        (and never crash-loops the writer on the same journal entries). Errors of the
        database itself (OperationalError) go up: they are not the row's fault."""
        if not records:
            return 0
        database = schema.database
        cursor = database.cursor()
        try:
            with database.atomic():
                cursor.executemany(schema.INSERT_SQL, records)
                return cursor.rowcount
        except ROW_ERRORS:
            pass
        inserted = 0
        for values in records:
            try:
                with database.atomic():
                    inserted += database.execute_sql(schema.INSERT_SQL, scrub(values)).rowcount
            except ROW_ERRORS as error:
                reject(values, error)
        return inserted

    def transient(self, error: BaseException | None) -> bool:
        """SQLite rolls a transaction back by itself on a full disk, so what surfaces may be
        the failed rollback: look along the whole chain."""
        while error is not None:
            if isinstance(error, (pw.OperationalError, sqlite3.OperationalError)) and any(
                    word in str(error).lower() for word in TRANSIENT):
                return True
            error = error.__cause__ or error.__context__
        return False

    def retention(self, cutoff: float | None, max_rows: int, batch: int) -> int:
        connection = schema.database.connection()
        deleted = 0
        if cutoff is not None:
            deleted += delete_in_batches(connection, OLDER_THAN, cutoff, batch)
        if max_rows > 0:
            # Rows are deleted from the old end, so ids are nearly dense: the newest id minus
            # the cap is the cut, found without counting millions of rows (gaps only make it
            # keep slightly fewer rows than the cap).
            newest = schema.newest_id()
            if newest > max_rows:
                deleted += delete_in_batches(connection, UP_TO_ID, newest - max_rows, batch)
        return deleted

    def purge_older_than(self, cutoff: float, batch: int,
                         progress: Callable[[int], None] | None = None) -> int:
        """Its own short-lived write connection to the file."""
        db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        try:
            return delete_in_batches(db, OLDER_THAN, cutoff, batch, progress)
        finally:
            db.close()

    def count_older_than(self, cutoff: float) -> int:
        reader = self.reader()
        try:
            return reader.rows("SELECT count(*) AS n FROM record WHERE received < ?",
                               (cutoff,))[0]["n"]
        finally:
            reader.close()

    def reader(self, schema: str | None = None) -> SqliteReader:
        if not self.path.exists():
            raise StoreUnavailable(f"no herald database at {self.path} yet (has the writer "
                                   "run?)")
        return SqliteReader(self.path)

    def size_bytes(self) -> int | None:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"))
                   if p.exists())
