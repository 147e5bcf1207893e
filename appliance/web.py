"""The herald web viewer: the records table, record details and a JSON API, read-only.

A bottle app served by waitress (threads) on the stage's web port; it opens the SQLite file
read-only (WAL: it never blocks the writer) and runs every query through query.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import bottle

from appliance import config as config_module
from appliance.query import EQUALITY_FIELDS, LEVELS, Query, QueryError, build, fts_expression, parse
from appliance.runtime import setup_logging

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
AROUND = 10  # records shown before and after one on its detail page
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
SAFE_METHODS = ("GET", "HEAD")


class RecordStore:
    """Read-only access to the herald DB: one connection per server thread."""

    def __init__(self, path: Path) -> None:
        self.uri = f"file:{path}?mode=ro"
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.uri, uri=True, timeout=10, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA query_only = 1")
            self._local.db = db
        return db

    def rows(self, sql: str, params: list | tuple = ()) -> list[dict]:
        return [dict(row) for row in self.connection().execute(sql, params)]

    def check_search(self, text: str) -> None:
        """Let FTS5 parse the search on its own, so its complaint becomes a 400 and any
        other database error stays a 500."""
        try:
            self.connection().execute(
                "SELECT rowid FROM record_fts WHERE record_fts MATCH ? LIMIT 1",
                (fts_expression(text),)).fetchall()
        except sqlite3.OperationalError as error:
            raise QueryError(f"search syntax: {error} (words, \"a phrase\", prefix*, "
                             "AND/OR/NOT, parentheses)") from None

    def page(self, query: Query) -> tuple[list[dict], bool]:
        """Up to query.limit records, newest first unless asked otherwise, and whether the
        query has more beyond them."""
        if query.text:
            self.check_search(query.text)
        sql, params = build(query)
        rows = self.rows(sql, params)
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        if query.after is not None and query.newest_first:
            rows.reverse()  # fetched upwards from the cursor, shown newest first
        return rows, more

    def record(self, record_id: int) -> dict | None:
        rows = self.rows("SELECT * FROM record WHERE id = ?", (record_id,))
        return rows[0] if rows else None

    def around(self, record: dict) -> tuple[list[dict], list[dict]]:
        same = "system_id IS ?"
        before = self.rows(f"SELECT * FROM record WHERE {same} AND id < ? "  # noqa: S608
                           "ORDER BY id DESC LIMIT ?", (record["system_id"], record["id"], AROUND))
        after = self.rows(f"SELECT * FROM record WHERE {same} AND id > ? "  # noqa: S608
                          "ORDER BY id ASC LIMIT ?", (record["system_id"], record["id"], AROUND))
        return list(reversed(after)), before

    def options(self) -> dict[str, list[str]]:
        """Distinct values for the filter drop-downs (each read from its index)."""
        return {name: [row["v"] for row in self.rows(
            f"SELECT DISTINCT {name} AS v FROM record WHERE {name} IS NOT NULL "  # noqa: S608
            "ORDER BY 1 LIMIT 500")] for name in EQUALITY_FIELDS}


def make_app(store: RecordStore) -> bottle.Bottle:
    app = bottle.Bottle()
    template_lookup = [str(HERE / "templates")]

    def render(name: str, **values: object) -> str:
        return bottle.template(name, template_lookup=template_lookup, levels=LEVELS,
                               fields=EQUALITY_FIELDS, fmt_time=fmt_time, **values)

    @app.hook("after_request")
    def security_headers() -> None:
        for key, value in HEADERS.items():
            bottle.response.set_header(key, value)

    @app.error(400)
    @app.error(404)
    @app.error(405)
    @app.error(500)
    def error_page(error: bottle.HTTPError) -> str:
        if error.status_code == 500:
            log.error("%s %s failed: %r", bottle.request.method, bottle.request.path,
                      error.exception)
            message = "internal error (logged)"
        else:
            message = str(error.body)
        if bottle.request.path.startswith("/api/"):
            bottle.response.content_type = "application/json"
            return json.dumps({"error": message})
        return render("error", status=error.status_line, message=message)

    def checked_query() -> Query:
        try:
            return parse(dict(bottle.request.query.decode().allitems()))
        except QueryError as error:
            bottle.abort(400, str(error))
            raise  # unreachable: abort raises

    @app.get("/")
    def records_page() -> str:
        query = checked_query()
        try:
            rows, more = store.page(query)
        except QueryError as error:
            bottle.abort(400, str(error))
        params = {k: v for k, v in bottle.request.query.decode().allitems()
                  if k not in ("before", "after") and v}
        return render("records", rows=rows, more=more, query=query, params=params)

    @app.get("/record/<record_id:int>")
    def record_page(record_id: int) -> str:
        record = store.record(record_id)
        if record is None:
            bottle.abort(404, f"no record {record_id}")
        newer, older = store.around(record)
        return render("record", record=record, extra=pretty_extra(record["extra"]),
                      newer=newer, older=older)

    @app.get("/api/records")
    def api_records() -> dict:
        query = checked_query()
        try:
            rows, more = store.page(query)
        except QueryError as error:
            bottle.abort(400, str(error))
        next_page = None
        if more and rows:
            next_page = {"before": rows[-1]["id"]} if query.newest_first and query.after is None \
                else {"after": rows[-1]["id"]}
        return {"records": rows, "next": next_page}

    @app.get("/api/records/<record_id:int>")
    def api_record(record_id: int) -> dict:
        record = store.record(record_id)
        if record is None:
            bottle.abort(404, f"no record {record_id}")
        return record

    @app.get("/api/options")
    def api_options() -> dict:
        return store.options()

    @app.get("/static/<name:re:[a-z]+\\.(css|js)>")
    def static(name: str) -> bottle.HTTPResponse:
        return bottle.static_file(name, root=str(HERE / "static"))

    return app


def fmt_time(epoch: float | None) -> str:
    """UTC with milliseconds, as the old herald showed it."""
    if epoch is None:
        return ""
    millis = int(epoch * 1000) % 1000
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(epoch))}.{millis:03d}"


def pretty_extra(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> None:
    import waitress

    parser = argparse.ArgumentParser(prog="appliance web", description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="path of appliance.ini")
    args = parser.parse_args(argv)
    config = config_module.load(args.config)
    setup_logging(config.appliance.log_level)
    db = config.writer.db
    while not db.exists():  # the writer creates it; the web never writes
        log.info("waiting for the writer to create %s", db)
        time.sleep(1)
    app = make_app(RecordStore(db))
    log.info("herald web on http://%s:%d/ reading %s", config.appliance.bind,
             config.web.port, db)
    waitress.serve(app, host=config.appliance.bind, port=config.web.port,
                   threads=config.web.threads, ident="herald")
