"""The herald store on a PostgreSQL server that writer shards, webs and neelix on several hosts
share: the Engine of store/engine.py over psycopg 3 (schema in pg_schema.py).

Batches go in by COPY into a temporary table and one statement that inserts what is new and
upserts facets and hourly counts; retention detaches and drops whole day partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from appliance.spine.record import scrub
from appliance.store import pg_schema as ddl
from appliance.store.query import Dialect, QueryError
from appliance.store.tsquery import tsquery
from appliance.store.url import MissingTable, SchemaTooNew, StoreUnavailable, StoreUrl

# Called with (record values, error) for each row the database refuses.
Reject = Callable[[list, BaseException], None]

log = logging.getLogger(__name__)
SCHEMA_LOCK = 0x68657261  # advisory lock key: one process makes or upgrades the schema
PARTITION_LOCK = 0x68657262  # and one at a time adds a day partition
AHEAD_DAYS = 2  # partitions made ahead of today

POSTGRES = Dialect(
    "postgresql", match="search @@ ?::tsquery", time_first_match="search @@ ?::tsquery",
    search_parameter=tsquery, search_only=None, bucket="floor({x})",
    same="{column} IS NOT DISTINCT FROM ?", unindexed="{column}", narrow_by_facets=True)


def connect(url: StoreUrl, **options) -> psycopg.Connection:
    """A connection, or StoreUnavailable naming the URL (never the password) and the cause."""
    try:
        return psycopg.connect(**url.connect_args(), **options)
    except psycopg.Error as error:
        raise unavailable(url, error) from None


def unavailable(url: StoreUrl, error: BaseException) -> StoreUnavailable:
    reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) \
        or type(error).__name__
    if url.password:
        reason = reason.replace(url.password, "***")
    return StoreUnavailable(f"the store {url.display} is unavailable: {reason}")


class PostgresReader:
    """One read-only connection (autocommit, read-only transactions)."""

    def __init__(self, url: StoreUrl, schema: str | None = None) -> None:
        self.url = url
        self.db = connect(url, autocommit=True, row_factory=dict_row)
        self.db.execute("SET default_transaction_read_only = on")
        if schema:
            self.db.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))

    def rows(self, statement: str, params: list | tuple = ()) -> list[dict]:
        # The reader's statements are constants written with `?`; psycopg wants %s.
        text = statement.replace("%", "%%").replace("?", "%s")
        try:
            return self.db.execute(text, params).fetchall()  # type: ignore[arg-type]
        except (errors.UndefinedTable, errors.UndefinedColumn):
            raise MissingTable(f"the store {self.url.display} has no herald schema yet "
                               "(has a writer run?)") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            self.close()
            raise unavailable(self.url, error) from None
        except errors.SyntaxError as error:  # a tsquery PostgreSQL refuses
            raise QueryError(f"search syntax: {error}") from None

    def close(self) -> None:
        self.db.close()


class PostgresEngine:
    dialect = POSTGRES

    def __init__(self, url: StoreUrl, admin: StoreUrl) -> None:
        self.url, self.admin = url, admin
        self.db: psycopg.Connection | None = None
        self.partitions: set[int] = set()

    # connection ------------------------------------------------------------------------
    def open(self, create: bool = False) -> None:
        self.close()
        # autocommit: every transaction is an explicit `with db.transaction()`
        self.db = connect(self.url, autocommit=True)
        self.partitions = set()
        try:
            with self.db.transaction():
                if create:
                    self.db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    self._create_or_upgrade()
                else:
                    self._check_version(self._version())
            if create:
                self.db.execute(ddl.STAGE)
                self.ensure_partitions(self._days_ahead())
        except BaseException:
            self.close()
            raise

    def _version(self) -> int | None:
        found = self.db.execute("SELECT to_regclass('schema_version')").fetchone()[0]
        if found is None:
            return None
        row = self.db.execute("SELECT version FROM schema_version WHERE component = "
                              "'records'").fetchone()
        return row[0] if row else None

    def _check_version(self, found: int | None) -> None:
        if found is not None and found > ddl.VERSION:
            raise SchemaTooNew(self.url.display, found, ddl.VERSION)

    def _create_or_upgrade(self) -> None:
        found = self._version()
        self._check_version(found)
        if found is None:
            for statement in ddl.CREATE:
                self.db.execute(statement)
            found = ddl.VERSION
        while found < ddl.VERSION:
            log.info("upgrading the store %s from schema version %d", self.url.display, found)
            for statement in ddl.MIGRATIONS[found]:
                self.db.execute(statement)
            found += 1
        self.db.execute("INSERT INTO schema_version (component, version) VALUES ('records', "
                        "%s) ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                        (found,))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _connection(self) -> psycopg.Connection:
        if self.db is None or self.db.closed or self.db.broken:
            self.open(create=True)  # after the server came back: connect again
        return self.db  # type: ignore[return-value]

    def transient(self, error: BaseException) -> bool:
        transient = isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError,
                                       StoreUnavailable))
        if transient:
            self.close()  # whatever state it is in, the next try starts on a fresh one
        return transient

    # writing ---------------------------------------------------------------------------
    def _days_ahead(self) -> set[int]:
        today = ddl.day_of(time.time())
        return set(range(today - 1, today + AHEAD_DAYS + 1))

    def ensure_partitions(self, days: set[int]) -> None:
        """Make the day partitions these days need, each in a short transaction of its own
        (serialised by an advisory lock, so shards on several hosts never race)."""
        missing = days - self.partitions
        if not missing:
            return
        db = self._connection()
        existing = {int(name[len("record_d"):]) for name, _bound in
                    db.execute(ddl.PARTITIONS).fetchall() if name.startswith("record_d")}
        for day in sorted(missing - existing):
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
                db.execute(ddl.create_partition(day))
        self.partitions |= missing | existing

    def load_cursor(self, name: str, origin: str) -> int:
        row = self._connection().execute(
            'SELECT seq FROM "cursor" WHERE name = %s AND origin = %s', (name, origin)
        ).fetchone()
        return row[0] if row else 0

    def store_batch(self, records: list[list], cursor: tuple[str, str, int] | None,
                    reject: Reject) -> int:
        db = self._connection()
        rows = [_clean(values) for values in records]
        days = {ddl.day_of(values[2]) for values in rows if isinstance(values[2], (int, float))}
        for attempt in (1, 2):
            self.ensure_partitions(days)
            try:
                return self._store(db, rows, cursor, reject)
            except _MissingPartition:
                if attempt == 2:
                    raise
                self.partitions.clear()  # another shard's retention dropped a day we knew
        return 0

    def _store(self, db: psycopg.Connection, rows: list[list],
               cursor: tuple[str, str, int] | None, reject: Reject) -> int:
        inserted = 0
        with db.transaction():
            if rows:
                try:
                    with db.transaction():  # a savepoint: a bad row undoes only this try
                        inserted = self._insert(db, rows)
                except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError,
                        ValueError, OverflowError):
                    inserted = 0
                    for values in rows:
                        try:
                            with db.transaction():
                                inserted += self._insert(db, [scrub(values)])
                        except (psycopg.DataError, psycopg.IntegrityError,
                                psycopg.ProgrammingError, ValueError, OverflowError) as error:
                            reject(values, error)
            if cursor:
                db.execute(ddl.SAVE_CURSOR, cursor)
        return inserted

    @staticmethod
    def _insert(db: psycopg.Connection, rows: list[list]) -> int:
        with db.cursor() as cursor:
            cursor.execute("DELETE FROM stage")  # what a failed try left
            with cursor.copy(ddl.COPY) as copy:
                for values in rows:
                    copy.write_row(values)
            try:
                return cursor.execute(ddl.INSERT).fetchone()[0]
            except errors.CheckViolation as error:
                if "no partition" in str(error):
                    raise _MissingPartition(str(error)) from error
                raise

    # retention and purge ---------------------------------------------------------------
    def retention(self, cutoff: float | None, max_rows: int, batch: int) -> int:
        db = self._connection()
        deleted = 0
        if cutoff is not None:
            deleted += self._drop_days_before(db, cutoff)
        if max_rows > 0:
            newest = db.execute("SELECT max(id) FROM record").fetchone()[0] or 0
            if newest > max_rows:
                deleted += _delete_in_batches(db, ddl.UP_TO_ID, newest - max_rows, batch)
        self.ensure_partitions(self._days_ahead())
        return deleted

    def _drop_days_before(self, db: psycopg.Connection, cutoff: float) -> int:
        """Drop the day partitions that end at or before `cutoff`: DETACH CONCURRENTLY
        takes no lock that stops writers, and a dropped table is gone at once (no
        row-by-row delete, no vacuum). Their hourly counts go with them."""
        dropped = 0
        for name, _bound in sorted(db.execute(ddl.PARTITIONS).fetchall()):
            if not name.startswith("record_d"):
                continue
            day = int(name[len("record_d"):])
            if (day + 1) * ddl.DAY > cutoff:
                continue
            rows = db.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(name))).fetchone()[0]
            # outside a transaction (autocommit), as CONCURRENTLY must be
            try:
                db.execute(sql.SQL("ALTER TABLE record DETACH PARTITION {} CONCURRENTLY")
                           .format(sql.Identifier(name)))
            except errors.ObjectNotInPrerequisiteState:  # a detach cut short by a kill
                db.execute(sql.SQL("ALTER TABLE record DETACH PARTITION {} FINALIZE")
                           .format(sql.Identifier(name)))
            with db.transaction():
                db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                db.execute("DELETE FROM level_hour WHERE hour >= %s AND hour < %s",
                           (day * 24, (day + 1) * 24))
            self.partitions.discard(day)
            dropped += rows
            log.info("retention dropped partition %s (%d records)", name, rows)
        return dropped

    def purge_older_than(self, cutoff: float, batch: int,
                         progress: Callable[[int], None] | None = None) -> int:
        """Whole days first, then the ragged end row by row, over the admin connection."""
        admin = PostgresEngine(self.admin, self.admin)
        admin.db = connect(self.admin, autocommit=True)
        try:
            deleted = admin._drop_days_before(admin.db, cutoff)
            if progress is not None:
                progress(deleted)
            return deleted + _delete_in_batches(
                admin.db, ddl.OLDER_THAN, cutoff, batch,
                None if progress is None else lambda n: progress(deleted + n))
        finally:
            admin.close()

    def count_older_than(self, cutoff: float) -> int:
        reader = self.reader()
        try:
            return reader.rows("SELECT count(*) AS n FROM record WHERE received < ?",
                               (cutoff,))[0]["n"]
        finally:
            reader.close()

    # reading ---------------------------------------------------------------------------
    def reader(self, schema: str | None = None) -> PostgresReader:
        return PostgresReader(self.url, schema)

    def size_bytes(self) -> int | None:
        """The database's size; StoreUnavailable while it cannot be reached."""
        with connect(self.url, autocommit=True) as db:
            return db.execute("SELECT pg_database_size(current_database())").fetchone()[0]


class _MissingPartition(Exception):
    """A row's day has no partition (any more): not the row's fault, make it and retry."""


def _delete_in_batches(db: psycopg.Connection, select: str, bound: float, batch: int,
                       progress: Callable[[int], None] | None = None) -> int:
    """Delete what `select` picks, `batch` rows per short transaction."""
    deleted = 0
    while True:
        with db.transaction():
            count = db.execute(ddl.DELETE.format(select=select), (bound, batch)).fetchone()[0]
        deleted += count
        if progress is not None:
            progress(deleted)
        if count < batch:
            return deleted


def _clean(values: list) -> list:
    """PostgreSQL text cannot hold NUL: shown as \\x00, as SQLite would show the byte."""
    return [v.replace("\x00", "\\x00") if isinstance(v, str) and "\x00" in v else v
            for v in values]

