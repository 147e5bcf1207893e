"""A deterministic, realistic herald database for bench/web.py.

Rows are made from a seeded generator and stored the way the writer stores them: the real
schema (`appliance.store.schema.open_database(create=True)`), the writer's own `INSERT_SQL` with
`executemany`, then `after_insert` (full-text index, facets and hourly counts) as
`DatabaseSink.apply` calls it, one transaction per BATCH rows. Ids follow
`received`, as they do when the writer stores a live stream.

The mix: 40 systems (Zipf-like sizes: the largest ~20 % of the rows, the smallest ~0.7 %),
each on 2 of 20 hosts and in one of 5 products; 200 message templates (25 shapes × 8
entities) with variable numbers and words, each with its logger, module, function and line;
DEBUG ~15 %, INFO ~75 %, WARNING ~8 %, ERROR ~2 % (with multi-line tracebacks in exc_text), a
little CRITICAL; a package version per system that changes with a deploy every 4-10 days;
`received` spread evenly over DAYS days up to the build time, `created` a little before it;
extra JSON on about a quarter of the rows; a customer id in user_spec_1 on 30 % of the
rows of the customer-facing products (webshop, finance), a tenant in user_spec_2 on 10 %.

A reused (cached) file is moved in time first (`refresh`), so its newest row is "now" and
relative filters (`since=2h`) and the histogram's default last 24 h see what they would on a
fresh build.
"""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.spine.record import COLUMNS
from appliance.store.schema import (
    INSERT_SQL,
    Cursor,
    after_insert,
    database,
    newest_id,
    open_database,
)

VERSION = 2  # bump when the generated data changes: it is part of the cache file name
SEED = 20261128
DAYS = 30
BATCH = 10_000       # rows per transaction
ORIGIN = "bench-web-dataset"
BUILT_MARK = "bench-build-complete"  # a cursor row written last: the file is complete

SYSTEMS = (
    "shop", "billing", "payments", "inventory", "search", "auth", "mailer", "reporting",
    "crm", "erp-sync", "warehouse", "shipping", "pricing", "catalog", "recommend",
    "analytics", "ledger", "invoicing", "gateway", "scheduler", "backup", "monitor",
    "ticketing", "chat", "media", "thumbnailer", "geo", "fraud", "loyalty", "notify",
    "export", "import", "archive", "hr-portal", "timesheets", "wiki", "ci-runner", "license",
    "dns-sync", "sso",
)
HOSTS = tuple([f"app{n:02d}" for n in range(1, 13)] + ["db01", "db02", "db03", "batch01",
                                                         "batch02", "batch03", "edge01",
                                                         "edge02"])
PRODUCTS = ("webshop", "finance", "logistics", "platform", "backoffice")
ENTITIES = ("order", "invoice", "customer", "product", "shipment", "payment", "user", "report")
USERS = tuple(f"{a}.{b}" for a, b in itertools.product(
    ("anna", "ben", "clara", "david", "eva", "felix", "greta"),
    ("meier", "schulz", "berger", "wolf")))
WORDS = ("email", "amount", "currency", "zip", "quantity", "sku", "due_date", "iban",
         "vat_id", "phone")
PORTS = (5432, 6379, 8080, 443, 5672, 9200)
ROLES = ("web", "worker", "cron")
LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


@dataclass(frozen=True)
class Shape:
    """One message shape; `{e}` becomes each of ENTITIES, giving 8 templates."""

    text: str
    logger: str
    module: str
    func: str
    lineno: int
    kind: str        # debug | info | warn | error: how its level is drawn
    weight: float    # % of all rows (over its 8 entities)
    exc: str         # which traceback an ERROR row of this shape carries


SHAPES = (
    Shape("cache hit for {e}:{id}", "app.cache", "cache", "get", 88, "debug", 6, "generic"),
    Shape("cache miss for {e}:{id}, loading from database", "app.cache", "cache", "get", 95,
          "debug", 4, "generic"),
    Shape("SELECT {e} rows: {n} in {ms} ms", "sqlalchemy.engine.Engine", "base",
          "_execute_context", 1815, "debug", 5, "db"),
    Shape("GET /api/{e}s/{id} 200 in {ms} ms", "app.http", "middleware", "log_request", 41,
          "info", 30, "generic"),
    Shape("POST /api/{e}s 201 in {ms} ms", "app.http", "middleware", "log_request", 41,
          "info", 10, "generic"),
    Shape("{e} {id} created by {user}", "app.api", "views", "create", 120, "info", 6,
          "generic"),
    Shape("{e} {id} updated: {n2} fields changed", "app.api", "views", "update", 151, "info",
          6, "generic"),
    Shape("queued {n} {e} events for export", "app.events", "events", "publish", 60, "info", 4,
          "generic"),
    Shape("worker {n2} processed {e} batch {id} in {ms} ms", "app.jobs", "jobs", "run_batch",
          210, "info", 5, "generic"),
    Shape("connected to {e} store at {host}:{port}", "app.db", "db", "connect", 33, "info", 2,
          "db"),
    Shape("sync of {e}s finished: {n} changed, {n2} unchanged", "app.sync", "sync", "run_sync",
          77, "info", 4, "generic"),
    Shape("exported {n} {e}s to /srv/export/{e}s-{id}.csv", "app.export", "export",
          "export_csv", 52, "info", 2, "generic"),
    Shape("scheduled job refresh_{e}s started", "apscheduler.executors.default", "base",
          "run_job", 125, "info", 2, "generic"),
    Shape("user {user} opened {e} {id}", "app.audit", "audit", "record_access", 19, "info", 4,
          "generic"),
    Shape("slow query on {e}s: {ms2} ms", "app.db", "db", "execute", 71, "warn", 2.0, "db"),
    Shape("retrying {e} {id} after timeout ({n3}/5)", "app.client", "client",
          "call_with_retry", 140, "warn", 1.2, "timeout"),
    Shape("read timeout after {ms2} ms talking to {host} for {e} {id}",
          "urllib3.connectionpool", "connectionpool", "_make_request", 535, "warn", 0.8,
          "timeout"),
    Shape("connection pool for {e} service is full, discarding connection: {host}",
          "urllib3.connectionpool", "connectionpool", "_put_conn", 301, "warn", 1.0,
          "refused"),
    Shape("validation failed for {e} {id}: field {word} is invalid", "app.api", "views",
          "validate", 98, "warn", 2.0, "value"),
    Shape("reconnecting to {e} queue in {n3} s", "app.events", "events", "reconnect", 112,
          "warn", 0.8, "refused"),
    Shape("{e} {id} not found", "app.api", "views", "get", 64, "warn", 0.7, "key"),
    Shape("timeout waiting for {e} service after {n3} s", "app.client", "client", "call", 131,
          "error", 0.3, "timeout"),
    Shape("connection refused by {host}:{port} while loading {e} {id}", "app.client",
          "client", "fetch", 88, "error", 0.35, "refused"),
    Shape("unhandled error in {e} handler", "app.http", "middleware", "handle", 57, "error",
          0.5, "generic"),
    Shape("permission denied for {user} on {e} {id}", "app.auth", "auth", "check", 45, "error",
          0.35, "permission"),
)

_LIB = "/usr/lib/python3.11/site-packages"
_EXCEPTIONS = {
    "timeout": (
        f'  File "{_LIB}/requests/api.py", line 115, in post\n'
        '    return request("post", url, data=data, json=json, **kwargs)\n'
        f'  File "{_LIB}/requests/adapters.py", line 532, in send\n'
        "    raise ReadTimeout(e, request=request)\n"
        "requests.exceptions.ReadTimeout: HTTPConnectionPool(host='{host}', port={port}): "
        "Read timed out. (read timeout=30)",
    ),
    "refused": (
        f'  File "{_LIB}/urllib3/connection.py", line 174, in _new_conn\n'
        "    conn = connection.create_connection(\n"
        f'  File "{_LIB}/urllib3/util/connection.py", line 72, in create_connection\n'
        "    sock.connect(sa)\n"
        "ConnectionRefusedError: [Errno 111] Connection refused",
    ),
    "db": (
        f'  File "{_LIB}/sqlalchemy/engine/base.py", line 1815, in _execute_context\n'
        "    self.dialect.do_execute(\n"
        f'  File "{_LIB}/sqlalchemy/engine/default.py", line 732, in do_execute\n'
        "    cursor.execute(statement, parameters)\n"
        "psycopg2.OperationalError: could not connect to server: Connection refused\n"
        '\tIs the server running on host "{host}" and accepting\n'
        "\tTCP/IP connections on port {port}?",
        f'  File "{_LIB}/sqlalchemy/engine/default.py", line 732, in do_execute\n'
        "    cursor.execute(statement, parameters)\n"
        "psycopg2.errors.SerializationFailure: could not serialize access due to concurrent "
        "update",
    ),
    "value": (
        "ValueError: invalid literal for int() with base 10: '{word}'",
    ),
    "key": (
        "KeyError: '{id}'",
    ),
    "permission": (
        "PermissionError: user {user} lacks role '{word}_admin'",
    ),
    "generic": (
        "KeyError: '{word}'",
        "TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'",
        "ZeroDivisionError: division by zero",
        "AttributeError: 'NoneType' object has no attribute '{word}'",
    ),
}


@dataclass(frozen=True)
class Template:
    message: str
    shape: Shape
    cum_weight: float


def _templates() -> tuple[Template, ...]:
    cumulative, result = 0.0, []
    for shape in SHAPES:
        for entity in ENTITIES:
            cumulative += shape.weight / len(ENTITIES)
            result.append(Template(shape.text.replace("{e}", entity), shape, cumulative))
    return tuple(result)


TEMPLATES = _templates()
TEMPLATE_WEIGHTS = tuple(t.cum_weight for t in TEMPLATES)
SYSTEM_WEIGHTS = tuple(itertools.accumulate(1 / (rank ** 0.9) for rank in range(1, 41)))


def system_hosts(index: int) -> tuple[str, str]:
    return HOSTS[(index * 3) % len(HOSTS)], HOSTS[(index * 3 + 7) % len(HOSTS)]


@dataclass(frozen=True)
class Deploys:
    """Per system: a deploy every `period` days from `offset`, each a new version."""

    period: float
    offset: float
    versions: tuple[str, ...]

    def version_at(self, day: float) -> str:
        return self.versions[int((day + self.offset) / self.period)]


def _deploys() -> tuple[Deploys, ...]:
    rng = random.Random(SEED + 1)
    result = []
    for _ in SYSTEMS:
        period, offset = rng.uniform(4, 10), rng.uniform(0, 4)
        major, minor, patch = rng.randrange(1, 5), rng.randrange(0, 20), 0
        versions = []
        for _step in range(int((DAYS + offset) / period) + 2):
            versions.append(f"{major}.{minor}.{patch}")
            if rng.random() < 0.3:
                minor, patch = minor + 1, 0
            else:
                patch += 1
        result.append(Deploys(period, offset, tuple(versions)))
    return tuple(result)


DEPLOYS = _deploys()


def _traceback(rng: random.Random, system: str, shape: Shape, values: dict) -> str:
    variants = _EXCEPTIONS[shape.exc]
    tail = variants[rng.randrange(len(variants))] if len(variants) > 1 else variants[0]
    return ("Traceback (most recent call last):\n"
            f'  File "/srv/{system}/app/{shape.module}.py", line {shape.lineno}, '
            f"in {shape.func}\n"
            f"    result = {shape.func}(request, **params)\n"
            f'  File "/srv/{system}/app/service.py", line {values["n"] % 300 + 20}, '
            "in dispatch\n"
            "    return handler(payload)\n"
            + tail.format(**values))


def _level(rng: random.Random, kind: str) -> int:
    if kind == "debug":
        return 10
    if kind == "info":
        return 20
    draw = rng.random()
    if kind == "warn":
        return 40 if draw < 0.10 else 30
    return 50 if draw < 0.03 else 30 if draw < 0.15 else 40


def rows(start: int, count: int, end_time: float, total: int) -> list[list]:
    """Rows start .. start+count-1 of `total`, in COLUMNS order; the same for the same
    arguments (each batch has its own seeded generator)."""
    rng = random.Random(SEED * 1_000_003 + start)
    span = DAYS * 86400.0
    first = end_time - span
    systems = rng.choices(range(len(SYSTEMS)), cum_weights=SYSTEM_WEIGHTS, k=count)
    templates = rng.choices(TEMPLATES, cum_weights=TEMPLATE_WEIGHTS, k=count)
    out = []
    for offset in range(count):
        number = start + offset
        system_index = systems[offset]
        system = SYSTEMS[system_index]
        template = templates[offset]
        shape = template.shape
        received = first + span * (number + rng.random() * 0.5) / total
        created = received - (rng.random() * 0.3 if rng.random() < 0.98
                              else rng.random() * 20)   # a few arrive late (client buffers)
        host = system_hosts(system_index)[rng.random() < 0.5]
        values = {
            "id": rng.randrange(1000, 1_000_000), "ms": int(rng.expovariate(1 / 40)) + 1,
            "ms2": rng.randrange(1000, 30000), "n": rng.randrange(1, 500),
            "n2": rng.randrange(1, 16), "n3": rng.randrange(1, 6),
            "user": USERS[rng.randrange(len(USERS))],
            "host": f"{HOSTS[rng.randrange(len(HOSTS))]}.internal",
            "port": PORTS[rng.randrange(len(PORTS))], "word": WORDS[rng.randrange(len(WORDS))],
        }
        levelno = _level(rng, shape.kind)
        exc_text = _traceback(rng, system, shape, values) if levelno >= 40 else None
        day = (received - first) / 86400
        pid = 1000 + system_index * 37 + (host == system_hosts(system_index)[1]) * 11
        worker = rng.random() < 0.3
        extra = None
        if rng.random() < 0.25:
            extra = (f'{{"request_id": "{rng.getrandbits(64):016x}", '
                     f'"duration_ms": {values["ms"]}, "attempt": {values["n3"]}}}')
        out.append([
            number + 1,                                        # seq
            ORIGIN,                                            # origin
            received,
            created,
            levelno,
            LEVEL_NAMES[levelno],
            shape.logger,
            template.message.format(**values),
            exc_text,
            None,                                              # stack_info
            f"/srv/{system}/app/{shape.module}.py",            # pathname
            f"{shape.module}.py",                              # filename
            shape.module,
            shape.func,
            shape.lineno,
            pid + (rng.randrange(1, 5) if worker else 0),      # process
            f"ForkPoolWorker-{rng.randrange(1, 5)}" if worker else "MainProcess",
            139_900_000_000_000 + rng.randrange(8) * 4096,     # thread
            f"ThreadPoolExecutor-0_{rng.randrange(8)}" if rng.random() < 0.4 else "MainThread",
            None,                                              # task_name
            system,
            host,
            ROLES[rng.randrange(3)] if rng.random() < 0.5 else None,   # sub_sub_system_id
            PRODUCTS[system_index % len(PRODUCTS)],            # produkt_id
            f"customer-{rng.randrange(1, 5000)}"                                   # user_spec_1
            if system_index % len(PRODUCTS) < 2 and rng.random() < 0.3 else None,
            f"tenant-{rng.randrange(1, 40)}" if rng.random() < 0.1 else None,      # user_spec_2
            DEPLOYS[system_index].version_at(day),             # package_version
            ("v1", "v2")[rng.random() < 0.6] if rng.random() < 0.5 else None,      # api_version
            f"10.0.{system_index}.{rng.randrange(2, 250)}:{rng.randrange(30000, 60000)}",
            extra,
            None,                                              # hops (not forwarded)
        ])
    return out


# The column order above is the writer's; check it once against the schema.
assert len(COLUMNS) == 31 and COLUMNS[:2] == ("seq", "origin") and COLUMNS[-2:] == (
    "extra", "hops")
assert COLUMNS[15:20] == ("process", "process_name", "thread", "thread_name", "task_name")


def cache_path(directory: Path, total: int) -> Path:
    return directory / f"herald-web-bench-{total}-v{VERSION}.sqlite"


def is_complete(path: Path, total: int) -> bool:
    """A cached file counts only if its build finished (the mark is written last)."""
    if not path.exists():
        return False
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            row = db.execute("SELECT seq FROM cursor WHERE name = ?", (BUILT_MARK,)).fetchone()
        except sqlite3.Error:
            return False
    return row is not None and row[0] == total


def build(path: Path, total: int, progress: bool = True) -> float:
    """Create `path` with `total` rows as the writer would store them; seconds taken."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.monotonic()
    end_time = time.time()
    open_database(path, create=True)
    try:
        cursor = database.cursor()
        for start in range(0, total, BATCH):
            batch = rows(start, min(BATCH, total - start), end_time, total)
            with database.atomic():
                before = newest_id()
                cursor.executemany(INSERT_SQL, batch)
                after_insert(before)
            if progress and (start // BATCH) % 10 == 9:
                print(f"  built {start + len(batch):>9,} rows "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
        with database.atomic():
            Cursor.insert(name=BUILT_MARK, origin=ORIGIN, seq=total).execute()
    finally:
        database.close()   # the last connection checkpoints the WAL into the file
    os.sync()
    return time.monotonic() - started


def refresh(path: Path) -> float:
    """Move every time in a reused file forward so that its newest row is now; returns the
    shift in seconds (0 if it is already within a minute)."""
    with sqlite3.connect(path) as db:
        newest = db.execute("SELECT max(received) FROM record").fetchone()[0]
        shift = time.time() - newest
        if shift < 60:
            return 0.0
        db.execute("UPDATE record SET received = received + ?, created = created + ?",
                   (shift, shift))
        db.execute("UPDATE facet SET first_seen = first_seen + ?, last_seen = last_seen + ?",
                   (shift, shift))
    db.close()
    return shift
