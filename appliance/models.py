"""The peewee schema of the herald database: records, their full-text index, cursors.

The writer creates and fills it; the web and the CLI read it through the same models.
"""

from __future__ import annotations

from pathlib import Path

import peewee as pw

from appliance.record import COLUMNS, FILTER_FIELDS

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

    class Meta:
        database = database
        table_name = "record"
        indexes = (
            (("origin", "seq"), True),  # one row per accepted record, even across retries
            (("received",), False),
            (("system_id", "received"), False),
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


def open_database(path: Path, create: bool = False) -> pw.SqliteDatabase:
    """Bind the models to the SQLite file at `path`; with `create`, make the schema."""
    if create:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    database.init(str(path), pragmas=PRAGMAS)
    database.connect(reuse_if_open=True)
    if create:
        with database.atomic():
            database.create_tables([Record, Cursor, Facet], safe=True)
            for statement in FTS_SQL:
                database.execute_sql(statement)
    return database
