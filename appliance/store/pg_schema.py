"""The herald store's schema on PostgreSQL: `record` partitioned by day on `received`, a
`search` tsvector with a GIN index, the facet and hourly-count tables, cursors, and the
schema version. Statements only; store/postgres.py runs them.
"""

from __future__ import annotations

import math

from appliance.spine.record import COLUMNS, FILTER_FIELDS
from appliance.store.tsquery import TSVECTOR_SQL

VERSION = 1  # this code's schema; a database with a higher one is refused
DAY = 86400
_TYPES = {"seq": "bigint NOT NULL", "origin": "text NOT NULL",
          "received": "double precision NOT NULL", "created": "double precision",
          "levelno": "integer", "lineno": "integer", "process": "bigint", "thread": "bigint"}
COLUMN_DEFS = ", ".join(f"{name} {_TYPES.get(name, 'text')}" for name in COLUMNS)

# Version 1, made in one transaction. The unique key holds the partition key (PostgreSQL's
# rule for unique indexes on partitioned tables): a record's `received` is fixed in the
# journal, so (origin, seq, received) is as unique as (origin, seq).
CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_version (component text PRIMARY KEY, "
    "version integer NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS record_id_seq AS bigint",
    f"CREATE TABLE IF NOT EXISTS record (id bigint NOT NULL DEFAULT nextval('record_id_seq'), "
    f"{COLUMN_DEFS}, search tsvector GENERATED ALWAYS AS ({TSVECTOR_SQL}) STORED) "
    "PARTITION BY RANGE (received)",
    "CREATE UNIQUE INDEX IF NOT EXISTS record_origin_seq ON record (origin, seq, received)",
    "CREATE INDEX IF NOT EXISTS record_id ON record (id)",
    "CREATE INDEX IF NOT EXISTS record_received ON record (received, levelno)",
    "CREATE INDEX IF NOT EXISTS record_system_id ON record (system_id, id)",
    "CREATE INDEX IF NOT EXISTS record_system_received ON record "
    "(system_id, received, levelno)",
    "CREATE INDEX IF NOT EXISTS record_level ON record (levelno, received)",
    "CREATE INDEX IF NOT EXISTS record_search ON record USING gin (search)",
    'CREATE TABLE IF NOT EXISTS "cursor" (name text NOT NULL, origin text NOT NULL, '
    "seq bigint NOT NULL, PRIMARY KEY (name, origin))",
    # COLLATE "C": the drop-downs list values in the same (binary) order as SQLite's
    'CREATE TABLE IF NOT EXISTS facet (field text COLLATE "C" NOT NULL, value text COLLATE "C" '
    'NOT NULL, system_id text COLLATE "C" NOT NULL, first_seen double precision NOT NULL, '
    "last_seen double precision NOT NULL, count bigint NOT NULL, "
    "PRIMARY KEY (field, value, system_id))",
    "CREATE TABLE IF NOT EXISTS level_hour (hour integer NOT NULL, system_id text NOT NULL, "
    "levelno integer NOT NULL, count bigint NOT NULL, PRIMARY KEY (hour, system_id, levelno))",
)
# Upgrades: MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {}

# Each batch is copied into a temporary table, then one statement inserts what is new and
# folds exactly those rows into the facets and hourly counts. Every upsert takes its rows in
# key order, so writers on several hosts lock in the same order and never deadlock.
STAGE = (f"CREATE TEMPORARY TABLE IF NOT EXISTS stage ({COLUMN_DEFS.replace(' NOT NULL', '')})"
         " ON COMMIT DELETE ROWS")
COPY = f"COPY stage ({', '.join(COLUMNS)}) FROM STDIN"
_FACET_VALUES = ", ".join(f"('{name}', ins.{name})" for name in FILTER_FIELDS)
INSERT = (
    f"WITH ins AS (INSERT INTO record ({', '.join(COLUMNS)}) "  # noqa: S608 - constants
    f"SELECT {', '.join(COLUMNS)} FROM stage ORDER BY origin, seq ON CONFLICT DO NOTHING "
    f"RETURNING received, levelno, {', '.join(FILTER_FIELDS)}), "
    "facets AS (INSERT INTO facet (field, value, system_id, first_seen, last_seen, count) "
    "SELECT f.field, f.value, coalesce(ins.system_id, ''), min(ins.received), "
    f"max(ins.received), count(*) FROM ins CROSS JOIN LATERAL (VALUES {_FACET_VALUES}) "
    "AS f(field, value) WHERE f.value IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
    "ON CONFLICT (field, value, system_id) DO UPDATE SET "
    "first_seen = least(facet.first_seen, excluded.first_seen), "
    "last_seen = greatest(facet.last_seen, excluded.last_seen), "
    "count = facet.count + excluded.count), "
    "hours AS (INSERT INTO level_hour (hour, system_id, levelno, count) "
    "SELECT floor(received / 3600)::integer, coalesce(system_id, ''), coalesce(levelno, 0), "
    "count(*) FROM ins GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
    "ON CONFLICT (hour, system_id, levelno) DO UPDATE SET count = level_hour.count + "
    "excluded.count) "
    "SELECT count(*) FROM ins")
SAVE_CURSOR = ('INSERT INTO "cursor" (name, origin, seq) VALUES (%s, %s, %s) '
               "ON CONFLICT (name, origin) DO UPDATE SET seq = excluded.seq")
# Deleting rows (a purge's ragged end, the row cap) takes their hourly counts with them.
DELETE = ("WITH gone AS (DELETE FROM record WHERE id IN ({select}) "  # noqa: S608 - constants
          "RETURNING received, system_id, levelno), "
          "counts AS (SELECT floor(received / 3600)::integer AS hour, "
          "coalesce(system_id, '') AS system_id, coalesce(levelno, 0) AS levelno, "
          "count(*) AS n FROM gone GROUP BY 1, 2, 3 ORDER BY 1, 2, 3), "
          "fixed AS (UPDATE level_hour SET count = level_hour.count - counts.n FROM counts "
          "WHERE (level_hour.hour, level_hour.system_id, level_hour.levelno) = "
          "(counts.hour, counts.system_id, counts.levelno)) SELECT count(*) FROM gone")
OLDER_THAN = "SELECT id FROM record WHERE received < %s ORDER BY received LIMIT %s"
UP_TO_ID = "SELECT id FROM record WHERE id <= %s ORDER BY id LIMIT %s"
PARTITIONS = ("SELECT child.relname, pg_get_expr(child.relpartbound, child.oid) "
              "FROM pg_inherits JOIN pg_class parent ON parent.oid = inhparent "
              "JOIN pg_class child ON child.oid = inhrelid WHERE parent.relname = 'record' "
              "AND parent.relnamespace = to_regnamespace(current_schema())::oid")


def day_of(received: float) -> int:
    return math.floor(received / DAY)


def partition_name(day: int) -> str:
    return f"record_d{day}"  # days since 1970: sorts, and the bound is in the name


def create_partition(day: int) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF record "
            f"FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})")
