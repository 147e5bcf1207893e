"""Web viewer latency at 1M rows: typical requests over HTTP against the real web process.

Builds (or reuses, with --keep) a herald database with --rows realistic records
(bench/web_dataset.py: the real schema, the writer's INSERT, FTS and facet updates per batch),
starts `python -m appliance web -c <ini>` on it (127.0.0.1, free ports), and times typical
requests end to end with urllib, sequentially: each --repeat times after one untimed warm-up,
interleaved round by round so that noise falls on all of them alike. Then, on the same file,
the old herald's query shape (`LIKE '%word%'` over message/func_name/module, ORDER BY created)
directly with sqlite3. Prints p50/p95 per request (flagging p95 > 100 ms), the web process's
peak RSS, and the SQL each request runs: captured by serving the same request in-process
through the app `appliance.web.main` builds from the same ini (over its RecordStore), each
statement timed alone, with EXPLAIN QUERY PLAN for the flagged requests (all with --explain).

    python3 bench/web.py [--rows 1000000] [--repeat 15] [--like-repeat 5] [--keep DIR]
                         [--budget 1200] [--explain] [--engines sqlite,postgresql]

With --engines sqlite,postgresql the same rows are also stored in a PostgreSQL server the
benchmark starts (harness.postgres; built with the writer's own store_batch) and the same
requests are timed against a web process reading it; a last table puts the p95s side by
side. The SQL capture and the old LIKE shape are SQLite's only.

p50/p95 interpolate linearly between the sorted samples.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import wsgiref.util
from dataclasses import dataclass, field
from pathlib import Path

import waitress
import web_dataset as dataset  # bench/web_dataset.py and bench/ingest.py, beside this script
from ingest import (
    ROOT,
    cpu_seconds,
    machine_busy_cpu,
    own_cpu,
    peak_rss_kib,
    stop_process,
)

from appliance.harness.instance import free_port
from appliance.harness.postgres import PASSWORD, PASSWORD_ENV, PostgresServer
from appliance.store import url as store_url
from appliance.store.engine import open_store
from appliance.store.query import parse, where_clause
from appliance.web import app as web_module

BENCH = Path(__file__).resolve().parent
TARGET_MS = 100.0
START_TIMEOUT = 60.0      # seconds for the web process to answer GET / with 200
REQUEST_TIMEOUT = 120.0   # seconds for one HTTP request
DEEP_PAGES = 50
HTML_ROW = '<tr class="record '

OLD_LIKE = ("SELECT * FROM record WHERE message LIKE '%timeout%' OR func_name LIKE '%timeout%' "
            "OR module LIKE '%timeout%' ORDER BY created DESC LIMIT 100")
OLD_LIKE_SYSTEM = ("SELECT * FROM record WHERE system_id LIKE '%{system}%' AND ("
                   "message LIKE '%timeout%' OR func_name LIKE '%timeout%' "
                   "OR module LIKE '%timeout%') ORDER BY created DESC LIMIT 100")


@dataclass
class Request:
    name: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)   # seconds
    shown: int = 0            # records (or option values) in the answer
    bytes: int = 0
    matching: int | None = None   # rows the filter matches in the whole table
    sql: list[tuple[str, float, list[str]]] = field(default_factory=list)  # sql, s, plan

    @property
    def url_path(self) -> str:
        return f"{self.path}?{urllib.parse.urlencode(self.params)}" if self.params \
            else self.path

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.50) * 1000

    @property
    def p95(self) -> float:
        return percentile(self.samples, 0.95) * 1000

    @property
    def sql_ms(self) -> float:
        return sum(seconds for _, seconds, _ in self.sql) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# the web process ----------------------------------------------------------------------------
class Web:
    """`python -m appliance web -c <ini>` on the database, on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path, db_path: Path, store: str | None = None) -> None:
        self.port = free_port()
        ingest_port = free_port()
        while ingest_port == self.port:
            ingest_port = free_port()
        (workdir / "var").mkdir(exist_ok=True)
        self.ini = workdir / "appliance.ini"
        self.ini.write_text(
            "[appliance]\nvar_dir = var\nbind = 127.0.0.1\n\n"
            f"[ingestor]\nport = {ingest_port}\n\n"
            + (f"[store]\nurl = {store}\npassword_env = {PASSWORD_ENV}\n\n" if store
               else f"[writer]\ndb = {db_path}\n\n")
            + f"[web]\nport = {self.port}\n")
        self.log_path = workdir / "web.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance", "web", "-c", str(self.ini)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"web exited {self.process.returncode}\n{self.log()}")
            try:
                status, _ = get(self.url("/"), timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"web did not answer GET / within {START_TIMEOUT:.0f} s\n"
                                   f"{self.log()}")
            time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def get(url: str, timeout: float = REQUEST_TIMEOUT) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# the requests -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Targets:
    """Values the requests filter on, all taken from the generated mix."""

    large: str             # the largest system (~20 % of rows)
    small: str             # one of the smallest (~0.7 %)
    host: str
    logger: str
    package_version: str   # the large system's version of two weeks ago
    record_id: int         # an ERROR record of the large system, ~5 days old


def find_targets(db) -> Targets:  # noqa: ANN001 - sqlite3 or psycopg (both take `?` here)
    newest = db.execute("SELECT max(received) FROM record").fetchone()[0]
    large, small = dataset.SYSTEMS[0], dataset.SYSTEMS[-1]
    record_id = db.execute(
        "SELECT max(id) FROM record WHERE system_id = ? AND levelno = 40 AND received < ?",
        (large, newest - 5 * 86400)).fetchone()[0]
    return Targets(large, small, dataset.HOSTS[0], "urllib3.connectionpool",
                   dataset.DEPLOYS[0].version_at(dataset.DAYS - 14), record_id)


def make_requests(t: Targets) -> list[Request]:
    return [
        Request("/ first page, no filter", "/"),
        Request("/api/records first page", "/api/records"),
        Request("system_id (large, ~20 %)", "/", {"system_id": t.large}),
        Request("system_id (small, ~0.7 %)", "/", {"system_id": t.small}),
        Request("sub_system_id (host)", "/", {"sub_system_id": t.host}),
        Request("level=ERROR", "/", {"level": "ERROR"}),
        Request("level=CRITICAL (rare, ~0.04 %)", "/", {"level": "CRITICAL"}),
        Request("logger", "/", {"logger": t.logger}),
        Request("logger, no match", "/", {"logger": "no.such.logger"}),
        Request("package_version (2 weeks old)", "/", {"package_version": t.package_version}),
        Request("since=2h", "/", {"since": "2h"}),
        Request("since=7d", "/", {"since": "7d"}),
        Request("system (large) + level=ERROR", "/", {"system_id": t.large, "level": "ERROR"}),
        Request("system (large) + since=7d + ERROR", "/",
                {"system_id": t.large, "since": "7d", "level": "ERROR"}),
        Request("q=timeout (FTS words)", "/", {"q": "timeout"}),
        Request("/api/records?q=timeout", "/api/records", {"q": "timeout"}),
        Request('q="connection refused" (phrase)', "/", {"q": '"connection refused"'}),
        Request("q=conn* (prefix)", "/", {"q": "conn*"}),
        Request("q=timeout + system (large)", "/", {"q": "timeout", "system_id": t.large}),
        Request(f"deep page {DEEP_PAGES}, no filter", "/", {"before": ""}),
        Request(f"deep page {DEEP_PAGES}, system (large)", "/",
                {"system_id": t.large, "before": ""}),
        Request("/record/<id> detail + neighbours", f"/record/{t.record_id}"),
        Request("/api/options", "/api/options"),
        Request("/systems", "/systems"),
        Request("/api/histogram (last 24 h)", "/api/histogram"),
        Request("/api/histogram since=7d", "/api/histogram", {"since": "7d"}),
    ]


def resolve_deep_pages(web: Web, requests: list[Request]) -> None:
    """Follow the `before=` cursors DEEP_PAGES - 1 times: the request is then page DEEP_PAGES
    (or the last page, on a database too small for that many)."""
    for request in requests:
        if request.params.get("before") != "":
            continue
        params = {k: v for k, v in request.params.items() if k != "before"}
        for page_number in range(1, DEEP_PAGES):
            status, body = get(web.url(f"/api/records?{urllib.parse.urlencode(params)}"))
            if status != 200:
                raise RuntimeError(f"{request.name}: HTTP {status}: {body[:300]!r}")
            cursor = json.loads(body)["next"]
            if not cursor:
                request.name = request.name.replace(f"page {DEEP_PAGES}", f"page {page_number}")
                break
            params["before"] = str(cursor["before"])
        request.params = params


def fetch(web: Web, request: Request) -> float:
    started = time.perf_counter()
    status, body = get(web.url(request.url_path))
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{request.name}: HTTP {status} for {request.url_path}: "
                           f"{body[:300]!r}\n{web.log()}")
    request.bytes = len(body)
    request.shown = count_shown(request.path, body)
    return elapsed


def time_requests(web: Web, requests: list[Request], repeat: int, budget: float) -> int:
    """Round-robin over the requests `repeat` times; returns the rounds done in the budget."""
    for request in requests:      # warm-up, untimed: checks every answer once
        fetch(web, request)
    started = time.monotonic()
    for number in range(1, repeat + 1):
        for request in requests:
            request.samples.append(fetch(web, request))
        elapsed = time.monotonic() - started
        print(f"  round {number}/{repeat} done ({elapsed:.0f} s)", flush=True)
        if elapsed > budget and number < repeat:
            print(f"  budget of {budget:.0f} s spent: stopping after {number} rounds")
            return number
    return repeat


def count_shown(path: str, body: bytes) -> int:
    """Records in the answer (option values for /api/options, systems, histogram buckets)."""
    if path == "/api/records":
        return len(json.loads(body)["records"])
    if path == "/api/options":
        return sum(len(values) for values in json.loads(body).values())
    if path == "/api/histogram":
        return sum(1 for bucket in json.loads(body)["buckets"] if any(bucket))
    if path == "/systems":
        return body.count(b'<tr class="system')
    return body.count(HTML_ROW.encode())


# what each request runs, in-process -------------------------------------------------------
class Tracer:
    """The web's own app in this process, made by `appliance.web.main` from the same ini
    (waitress.serve is swapped for a function that keeps the app; the store it makes is
    remembered). Serves a request through WSGI and keeps the SQL statements it ran: the
    store has one connection per thread, and this thread's is the one traced."""

    def __init__(self, ini: Path) -> None:
        stores: list = []
        apps: list = []

        class TracedStore(web_module.RecordStore):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)
                stores.append(self)

        serve, store_class = waitress.serve, web_module.RecordStore
        waitress.serve = lambda app, **_options: apps.append(app)
        web_module.RecordStore = TracedStore
        try:
            web_module.main(["-c", str(ini)])
        finally:
            waitress.serve, web_module.RecordStore = serve, store_class
        self.app, self.store = apps[0], stores[0]

    def serve(self, path_qs: str) -> tuple[str, bytes, list[str]]:
        path, _, query_string = path_qs.partition("?")
        environ: dict = {}
        wsgiref.util.setup_testing_defaults(environ)
        environ.update(REQUEST_METHOD="GET", PATH_INFO=path, QUERY_STRING=query_string)
        status: list[str] = []
        db = self.store.connection().db  # the SqliteReader's sqlite3 connection
        captured: list[str] = []
        db.set_trace_callback(captured.append)
        try:
            body = b"".join(self.app(environ, lambda s, _h, _e=None: status.append(s)))
        finally:
            db.set_trace_callback(None)
        # FTS5's own statements come nested ("-- …") or on its shadow tables ('main'.…).
        statements = [sql for sql in captured if sql.lstrip().upper().startswith("SELECT")
                      and "'main'." not in sql]
        return status[0], body, statements

    def analyse(self, request: Request, timing_repeat: int = 3) -> None:
        status, _, statements = self.serve(request.url_path)
        if not status.startswith("200"):
            raise RuntimeError(f"{request.name}: in-process {status}")
        db = self.store.connection().db  # the SqliteReader's sqlite3 connection
        for sql in statements:
            times = []
            for _ in range(timing_repeat):
                started = time.perf_counter()
                db.execute(sql).fetchall()
                times.append(time.perf_counter() - started)
            plan = [(row[0], row[1], row[3])
                    for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            request.sql.append((sql, statistics.median(times), format_plan(plan)))
        if request.path in ("/", "/api/records"):
            where, params = where_clause(parse(request.params))
            request.matching = db.execute(
                f"SELECT count(*) FROM record WHERE {' AND '.join(where) or '1'}",  # noqa: S608
                params).fetchone()[0]

    def close(self) -> None:
        self.store.connection().close()  # the SqliteReader


def format_plan(rows: list[tuple[int, int, str]]) -> list[str]:
    depth = {0: -1}
    lines = []
    for node, parent, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append(f"{'  ' * depth[node]}{detail}")
    return lines


# the old herald's query shape ---------------------------------------------------------------
def time_old_like(db_path: Path, system: str, repeat: int) -> dict[str, list[float]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        result: dict[str, list[float]] = {}
        for label, sql in (("LIKE", OLD_LIKE),
                           ("LIKE + system", OLD_LIKE_SYSTEM.format(system=system))):
            db.execute(sql).fetchall()  # warm-up, as for the HTTP requests
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                rows = db.execute(sql).fetchall()
                samples.append(time.perf_counter() - started)
            if not rows:
                raise RuntimeError(f"{label}: no rows")
            result[label] = samples
        return result
    finally:
        db.close()


def match_counts(db_path: Path) -> tuple[int, int]:
    """Rows the old LIKE shape matches vs rows FTS5 matches for `timeout`."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        like = db.execute(OLD_LIKE.replace("SELECT *", "SELECT count(*)")
                          .replace(" ORDER BY created DESC LIMIT 100", "")).fetchone()[0]
        fts = db.execute("SELECT count(*) FROM record_fts WHERE record_fts MATCH 'timeout'"
                         ).fetchone()[0]
    return like, fts


# report -------------------------------------------------------------------------------------
def print_table(requests: list[Request]) -> None:
    print(f"\n{'request':<38} {'matching':>9} {'shown':>5} {'KiB':>6} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'SQL ms':>7}")
    for r in requests:
        matching = "" if r.matching is None else f"{r.matching:,}"
        flag = f"  <-- p95 > {TARGET_MS:.0f} ms" if r.p95 > TARGET_MS else ""
        print(f"{r.name:<38} {matching:>9} {r.shown:>5} {r.bytes / 1024:>6.0f} {r.p50:>7.1f} "
              f"{r.p95:>7.1f} {r.sql_ms:>7.1f}{flag}")


def print_sql(requests: list[Request], everything: bool) -> None:
    shown = [r for r in requests if everything or r.p95 > TARGET_MS]
    if not shown:
        return
    print("\nSQL per request (as the web's RecordStore runs it; in-process median of 3):")
    for r in shown:
        print(f"\n## {r.name}: GET {r.url_path}  (HTTP p95 {r.p95:.1f} ms)")
        for sql, seconds, plan in r.sql:
            print(f"  {seconds * 1000:8.1f} ms  {sql}")
            for line in plan:
                print(f"              {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15, help="timed requests each")
    parser.add_argument("--like-repeat", type=int, default=5,
                        help="timed runs of each old LIKE query")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the database here once and reuse it on later runs")
    parser.add_argument("--budget", type=float, default=1200,
                        help="seconds for the timed rounds at most (then it stops early)")
    parser.add_argument("--explain", action="store_true",
                        help="print SQL and query plans of every request, not only the slow")
    parser.add_argument("--engines", default="sqlite",
                        help="sqlite and/or postgresql, comma-separated (sqlite runs first)")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"sqlite", "postgresql"}:
        parser.error("--engines takes sqlite, postgresql")
    if min(args.rows, args.repeat, args.like_repeat) < 1 or args.rows < dataset.BATCH:
        parser.error(f"counts must be at least 1, --rows at least {dataset.BATCH}")
    print(f"$ python3 bench/web.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, list[Request]] = {}
    with tempfile.TemporaryDirectory(prefix="herald-web-bench-") as tmp:
        workdir = Path(tmp)
        if "sqlite" in engines:
            results["sqlite"] = run(args, workdir)
        if "postgresql" in engines:
            (workdir / "pg").mkdir()
            results["postgresql"] = run_postgres(args, workdir / "pg")
    if len(results) > 1:
        print_side_by_side(results)


def run(args: argparse.Namespace, workdir: Path) -> list[Request]:
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        db_path = dataset.cache_path(args.keep.resolve(), args.rows)
    else:
        db_path = workdir / "herald.sqlite"
    if dataset.is_complete(db_path, args.rows):
        started = time.monotonic()
        shift = dataset.refresh(db_path)
        print(f"database: reusing {db_path}, times moved {shift / 3600:.1f} h forward "
              f"in {time.monotonic() - started:.1f} s")
    else:
        print(f"database: building {args.rows:,} rows in {db_path}")
        seconds = dataset.build(db_path, args.rows)
        print(f"database: built in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)")
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        targets = find_targets(db)
        levels = dict(db.execute("SELECT levelname, count(*) FROM record GROUP BY 1"))
        facets = dict(db.execute("SELECT field, count(*) FROM facet GROUP BY 1"))
    print(f"database: {db_path.stat().st_size / 2**20:,.0f} MiB, levels {levels}")
    print(f"facet rows per field: {facets}")
    requests = make_requests(targets)

    web = Web(workdir, db_path)
    tracer: Tracer | None = None
    try:
        web.start()
        print(f"web: pid {web.pid} on 127.0.0.1:{web.port}")
        resolve_deep_pages(web, requests)
        machine, web_cpu, bench_cpu = machine_busy_cpu(), cpu_seconds(web.pid), own_cpu()
        started = time.monotonic()
        rounds = time_requests(web, requests, args.repeat, args.budget)
        window = time.monotonic() - started
        web_cpu = cpu_seconds(web.pid) - web_cpu
        bench_cpu = own_cpu() - bench_cpu
        other = max(0.0, machine_busy_cpu() - machine - web_cpu - bench_cpu)
        rss_kib = peak_rss_kib(web.pid)
        print(f"timed {rounds} rounds × {len(requests)} requests in {window:.0f} s "
              f"(incl. warm-up); CPU in % of one core: web {100 * web_cpu / window:.0f}, "
              f"bench client {100 * bench_cpu / window:.0f}, other {100 * other / window:.0f}")
        print(f"web peak RSS (VmHWM): {rss_kib / 1024:.1f} MiB")

        like = time_old_like(db_path, targets.large, args.like_repeat)
        like_matches, fts_matches = match_counts(db_path)
        try:
            tracer = Tracer(web.ini)
            for request in requests:
                tracer.analyse(request)
        except Exception as error:  # the web module is being refactored: keep the timings
            print(f"warning: no SQL capture ({type(error).__name__}: {error})")
    finally:
        web.stop()
        if tracer is not None:
            tracer.close()

    print("\nURLs:")
    for request in requests:
        print(f"  {request.name:<38} {request.url_path}")
    print_table(requests)
    by_name = {r.name: r for r in requests}
    print(f"\nold herald query shape, direct sqlite3 (no HTTP, no rendering), "
          f"{args.like_repeat} runs each after a warm-up:")
    for label, ours in (("LIKE", "q=timeout (FTS words)"), ("LIKE", "/api/records?q=timeout"),
                        ("LIKE + system", "q=timeout + system (large)")):
        p95 = percentile(like[label], 0.95) * 1000
        print(f"  {label:<14} p50 {percentile(like[label], 0.5) * 1000:7.1f} ms  "
              f"p95 {p95:7.1f} ms;  {ours!r} HTTP p95 {by_name[ours].p95:6.1f} ms: "
              f"{p95 / by_name[ours].p95:5.1f}× faster")
    print(f"  rows matching: LIKE '%timeout%' over message/func_name/module {like_matches:,}; "
          f"FTS5 'timeout' over message/exc_text {fts_matches:,}")
    print(f"  {OLD_LIKE}")
    print(f"  {OLD_LIKE_SYSTEM.format(system=targets.large)}")
    misses = [r.name for r in requests if r.p95 > TARGET_MS]
    print(f"\nweb peak RSS (VmHWM) {rss_kib / 1024:.1f} MiB; "
          f"{len(misses)} of {len(requests)} requests over {TARGET_MS:.0f} ms p95"
          + (f": {', '.join(misses)}" if misses else ""))
    print_sql(requests, args.explain)
    return requests


def run_postgres(args: argparse.Namespace, workdir: Path) -> list[Request]:
    """The same rows in PostgreSQL (stored as the writer stores them), the same requests."""
    import psycopg
    print("\n# PostgreSQL")
    server = PostgresServer().start()
    os.environ[PASSWORD_ENV] = PASSWORD
    try:
        url = server.create_database()
        engine = open_store(store_url.parse(url, workdir, PASSWORD_ENV))
        engine.open(create=True)
        started, end_time = time.monotonic(), time.time()
        for start in range(0, args.rows, dataset.BATCH):
            batch = dataset.rows(start, min(dataset.BATCH, args.rows - start), end_time,
                                 args.rows)
            engine.store_batch(batch, None, lambda values, error: None)
            if (start // dataset.BATCH) % 50 == 49:
                print(f"  built {start + len(batch):>9,} rows "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
        engine.close()
        seconds = time.monotonic() - started
        print(f"database: built {args.rows:,} rows in {seconds:.1f} s "
              f"({args.rows / seconds:,.0f} rows/s, COPY + one upsert statement per batch)")
        with psycopg.connect(url, password=PASSWORD, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
            size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]

            class Marks:  # find_targets writes `?`
                def execute(self, sql: str, params: tuple = ()):  # noqa: ANN202
                    return db.execute(sql.replace("?", "%s"), params)

            targets = find_targets(Marks())
        print(f"database: {size / 2**20:,.0f} MiB")
        requests = make_requests(targets)
        web = Web(workdir, workdir / "unused.sqlite", store=url)
        try:
            web.start()
            print(f"web: pid {web.pid} on 127.0.0.1:{web.port}, postgres pid {server.pid}")
            resolve_deep_pages(web, requests)
            started = time.monotonic()
            rounds = time_requests(web, requests, args.repeat, args.budget)
            print(f"timed {rounds} rounds × {len(requests)} requests in "
                  f"{time.monotonic() - started:.0f} s; web peak RSS (VmHWM) "
                  f"{peak_rss_kib(web.pid) / 1024:.1f} MiB")
        finally:
            web.stop()
        print_table(requests)
        return requests
    finally:
        server.stop()


def print_side_by_side(results: dict[str, list[Request]]) -> None:
    names = list(results)
    print(f"\np95 ms per request, same rows, same requests: {' | '.join(names)}")
    print(f"{'request':<38} " + " ".join(f"{name:>11}" for name in names))
    for number, request in enumerate(results[names[0]]):
        cells = [results[name][number].p95 for name in names]
        print(f"{request.name:<38} " + " ".join(f"{cell:>11.1f}" for cell in cells))


if __name__ == "__main__":
    main()
