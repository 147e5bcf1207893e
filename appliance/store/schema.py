"""The peewee schema of the herald database: records, their full-text index, cursors.

The writer creates and fills it; the web and the CLI read it through the same models.
"""

from __future__ import annotations

from pathlib import Path

import peewee as pw

from appliance.spine.record import COLUMNS, FILTER_FIELDS

database = pw.SqliteDatabase(None)

PRAGMAS = {
    "journal_mode": "wal",      # readers never block the writer, nor it them
    "synchronous": "normal",    # with WAL: durable against a process kill, fast
    "busy_timeout": 10000,
    "cache_size": -32000,
    "foreign_keys": 0,
}


class Record(pw.Model):
    id = pw.AutoField()
    seq = pw.BigIntegerField()
    origin = pw.TextField()
    received = pw.DoubleField()
    created = pw.DoubleField(null=True)
    levelno = pw.IntegerField(null=True)
    levelname = pw.TextField(null=True)
    logger = pw.TextField(null=True)
    message = pw.TextField(null=True)
    exc_text = pw.TextField(null=True)
    stack_info = pw.TextField(null=True)
    pathname = pw.TextField(null=True)
    filename = pw.TextField(null=True)
    module = pw.TextField(null=True)
    func_name = pw.TextField(null=True)
    lineno = pw.IntegerField(null=True)
    process = pw.BigIntegerField(null=True)
    process_name = pw.TextField(null=True)
    thread = pw.BigIntegerField(null=True)
    thread_name = pw.TextField(null=True)
    task_name = pw.TextField(null=True)
    system_id = pw.TextField(null=True)
    sub_system_id = pw.TextField(null=True)
    sub_sub_system_id = pw.TextField(null=True)
    produkt_id = pw.TextField(null=True)
    user_spec_1 = pw.TextField(null=True)
    user_spec_2 = pw.TextField(null=True)
    package_version = pw.TextField(null=True)
    api_version = pw.TextField(null=True)
    peer = pw.TextField(null=True)
    extra = pw.TextField(null=True)  # JSON object of the attributes without a column
    # JSON [[instance, received], …]: the appliances a forwarded record passed, origin first
    hops = pw.TextField(null=True)

    class Meta:
        database = database
        table_name = "record"
        # Measured at 1M rows (bench/web.py): (system_id) gives a system's records in id
        # order without a sort (the rowid is its hidden last column); levelno at the end of
        # the time indexes lets the histogram count from the index alone.
        indexes = (
            (("origin", "seq"), True),  # one row per accepted record, even across retries
            (("received", "levelno"), False),
            (("system_id",), False),
            (("system_id", "received", "levelno"), False),
            (("levelno", "received"), False),
        )


class Cursor(pw.Model):
    """Last journal seq whose effect is in this database, per subscriber and journal origin."""

    name = pw.TextField()
    origin = pw.TextField()
    seq = pw.BigIntegerField()

    class Meta:
        database = database
        table_name = "cursor"
        primary_key = pw.CompositeKey("name", "origin")


class Facet(pw.Model):
    """Each value seen per filter field and system: first/last seen and how many records (ever;
    retention does not subtract). Feeds the drop-downs and the systems page without scans."""

    field = pw.TextField()
    value = pw.TextField()
    system_id = pw.TextField()  # '' for records without one
    first_seen = pw.DoubleField()
    last_seen = pw.DoubleField()
    count = pw.BigIntegerField()

    class Meta:
        database = database
        table_name = "facet"
        primary_key = pw.CompositeKey("field", "value", "system_id")


class LevelHour(pw.Model):
    """Records per hour, system and level, kept by the writer (and by a delete trigger), so a
    histogram over days or weeks reads thousands of counts instead of millions of rows."""

    hour = pw.IntegerField()  # received // 3600
    system_id = pw.TextField()  # '' for records without one
    levelno = pw.IntegerField()  # 0 for records without one
    count = pw.BigIntegerField()

    class Meta:
        database = database
        table_name = "level_hour"
        primary_key = pw.CompositeKey("hour", "system_id", "levelno")
        without_rowid = True


# How a batch of records (values in COLUMNS order) is inserted: the writer, the legacy import
# and the benchmarks' dataset builder all store rows this one way. Built from the schema's own
# constants, never from input.
INSERT_SQL = (f"INSERT OR IGNORE INTO {Record._meta.table_name} ({', '.join(COLUMNS)}) "  # noqa: S608
              f"VALUES ({', '.join('?' * len(COLUMNS))})")


LEVEL_HOUR_KEY = ("CAST({t}.received / 3600 AS INTEGER), coalesce({t}.system_id, ''), "
                  "coalesce({t}.levelno, 0)")
LEVEL_HOUR_SQL = (  # built from constants only
    "CREATE TRIGGER IF NOT EXISTS level_hour_delete AFTER DELETE ON record BEGIN "  # noqa: S608
    "UPDATE level_hour SET count = count - 1 WHERE (hour, system_id, levelno) = "
    f"({LEVEL_HOUR_KEY.format(t='old')}); END",
)


def count_levels_after(last_id: int) -> None:
    """Fold the rows with id > last_id into `level_hour` (same transaction as their insert)."""
    database.execute_sql(
        "INSERT INTO level_hour (hour, system_id, levelno, count) "  # noqa: S608 - constant
        f"SELECT {LEVEL_HOUR_KEY.format(t='record')}, count(*) FROM record WHERE id > ? "
        "GROUP BY 1, 2, 3 ON CONFLICT (hour, system_id, levelno) DO UPDATE SET "
        "count = count + excluded.count", (last_id,))


# External-content FTS5 over message and traceback. New rows are indexed per batch by
# `index_rows_after` (3.5x faster than a per-row trigger, measured); deletes keep it in step
# through a trigger, in the same transaction.
FTS_SQL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS record_fts USING fts5("
    "message, exc_text, content='record', content_rowid='id', tokenize='unicode61')",
    "DROP TRIGGER IF EXISTS record_fts_insert",
    "CREATE TRIGGER IF NOT EXISTS record_fts_delete AFTER DELETE ON record BEGIN "
    "INSERT INTO record_fts(record_fts, rowid, message, exc_text) "
    "VALUES ('delete', old.id, old.message, old.exc_text); END",
)


def newest_id() -> int:
    return Record.select(pw.fn.MAX(Record.id)).scalar() or 0


def update_facets_after(last_id: int) -> None:
    """Fold the rows with id > last_id into `facet` (same transaction as their insert)."""
    for name in FILTER_FIELDS:
        database.execute_sql(
            "INSERT INTO facet (field, value, system_id, first_seen, last_seen, count) "  # noqa: S608
            f"SELECT ?, {name}, coalesce(system_id, ''), min(received), max(received), "
            f"count(*) FROM record WHERE id > ? AND {name} IS NOT NULL "
            f"GROUP BY {name}, coalesce(system_id, '') "
            "ON CONFLICT (field, value, system_id) DO UPDATE SET "
            "first_seen = min(first_seen, excluded.first_seen), "
            "last_seen = max(last_seen, excluded.last_seen), count = count + excluded.count",
            (name, last_id))


def index_rows_after(last_id: int) -> None:
    """Add the rows with id > last_id to the full-text index. Call it in the transaction that
    inserted them, holding the write lock, so exactly those rows are new."""
    database.execute_sql(
        "INSERT INTO record_fts(rowid, message, exc_text) "
        "SELECT id, message, exc_text FROM record WHERE id > ?", (last_id,))


assert tuple(Record._meta.sorted_field_names[1:]) == COLUMNS, "schema and codec disagree"


def after_insert(last_id: int) -> None:
    """Everything kept in step with new rows: full-text index, facets, hourly counts. Call it
    in the transaction that inserted the rows with id > last_id, holding the write lock."""
    index_rows_after(last_id)
    update_facets_after(last_id)
    count_levels_after(last_id)


VERSION = 1  # this code's schema; a file with a higher one is refused (see schema_version)
VERSION_SQL = ("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
               "version INTEGER NOT NULL)")


def schema_version() -> int | None:
    """The file's schema version: None before any schema, 1 for files from before the table."""
    if not database.table_exists("record"):
        return None
    if not database.table_exists("schema_version"):
        return 1
    found = database.execute_sql(
        "SELECT version FROM schema_version WHERE component = 'records'").fetchone()
    return found[0] if found else 1


def open_database(path: Path, create: bool = False) -> pw.SqliteDatabase:
    """Bind the models to the SQLite file at `path`; with `create`, make or upgrade the
    schema. A file of a newer schema is refused (engine.SchemaTooNew)."""
    from appliance.store.url import SchemaTooNew
    if create:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    database.init(str(path), pragmas=PRAGMAS)
    database.connect(reuse_if_open=True)
    found = schema_version()
    if found is not None and found > VERSION:
        database.close()
        raise SchemaTooNew(f"sqlite:///{path}", found, VERSION)
    if create:
        # IMMEDIATE: the write lock is taken at BEGIN, where the busy timeout waits for a
        # running writer; a deferred transaction that read first would fail at once with
        # "database is locked" when the writer commits in between (SQLITE_BUSY_SNAPSHOT).
        with database.atomic(lock_type="IMMEDIATE"):
            database.execute_sql(VERSION_SQL)
            database.execute_sql("INSERT INTO schema_version (component, version) "
                                 "VALUES ('records', ?) ON CONFLICT (component) DO UPDATE "
                                 "SET version = excluded.version", (VERSION,))
            new_counts = not database.table_exists("level_hour")
            database.create_tables([Record, Cursor, Facet, LevelHour], safe=True)
            if "hops" not in {c.name for c in database.get_columns("record")}:
                database.execute_sql("ALTER TABLE record ADD COLUMN hops TEXT")  # pre-forwarder
            for statement in FTS_SQL + LEVEL_HOUR_SQL:
                database.execute_sql(statement)
            if new_counts:  # a database from before the table: count what it holds once
                count_levels_after(0)
    return database
