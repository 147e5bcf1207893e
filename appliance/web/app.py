"""The herald web viewer: records table with histogram and live tail, record details with a
forwarded record's path, systems with heartbeats and forwarders, neelix's alerts, a JSON API
with exports, optional login with an admin purge. Read-only except that purge.

A bottle app served by waitress (threads) on the stage's web port; queries and the forwarders'
stats files go through query.py and store.py, neelix's state file through alert_store.py;
auth.py signs sessions and CSRF tokens.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import bottle

from appliance import alert_store, histogram, web_access, web_health
from appliance.query import (
    EQUALITY_FIELDS,
    LEVELS,
    MAX_ID,
    Query,
    QueryError,
    fetches_descending,
    parse,
)
from appliance.record import COLUMNS
from appliance.runtime import start_process
from appliance.store import RecordStore, forwarder_links, record_path

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
EXPORT_LIMIT = 100_000
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def make_app(store: RecordStore, alerts: alert_store.AlertStore, access: web_access.Access,
             purge: Callable[[float], int] | None = None,
             run_dir: Path | None = None) -> bottle.Bottle:
    app = bottle.Bottle()
    lookup = [str(HERE / "templates")]

    def render(name: str, **values: object) -> str:
        return bottle.template(name, template_lookup=lookup, levels=LEVELS,
                               fields=EQUALITY_FIELDS, fmt_time=fmt_time, urlencode=urlencode,
                               user=bottle.request.environ.get("herald.user"),
                               csrf=access.csrf(), **values)

    web_access.install(app, access, render, purge)

    @app.hook("after_request")
    def security_headers() -> None:
        for key, value in HEADERS.items():
            bottle.response.set_header(key, value)

    def error_page(error: bottle.HTTPError) -> str:
        if error.status_code >= 500:
            log.error("%s %s failed: %r", bottle.request.method, bottle.request.path,
                      error.exception)
            message = "internal error (logged)"
        else:
            message = str(error.body)
        for key, value in HEADERS.items():
            bottle.response.set_header(key, value)
        if bottle.request.path.startswith("/api/"):
            bottle.response.content_type = "application/json"
            return json.dumps({"error": message})
        return render("error", status=error.status_line, message=message)

    for status in (400, 401, 403, 404, 405, 409, 421, 429, 500):
        app.error(status)(error_page)

    def checked(params: dict[str, str]) -> Query:
        """Parameters → a query, or 400; the search's syntax is checked here, once."""
        try:
            query = parse(params)
            if query.text:
                store.check_search(query.text)
        except QueryError as error:
            raise bottle.HTTPError(400, str(error)) from None
        return query

    def checked_query() -> Query:
        return checked(dict(bottle.request.query.decode().allitems()))

    def shown_params() -> dict[str, str]:
        return {k: v for k, v in bottle.request.query.decode().allitems() if v}

    @app.get("/")
    def records_page() -> str:
        query = checked_query()
        rows, more = store.page(query)
        params = {k: v for k, v in shown_params().items() if k not in ("before", "after")}
        older, newer = page_links(query, rows, more)
        start, width, buckets = histogram.plan(query, time.time())
        counts = store.level_counts(query, start, width, buckets)
        return render("records", rows=rows, older=older, newer=newer, query=query,
                      params=params,
                      options=store.options(),
                      chart=histogram.svg(counts, start, width, params))

    @app.get("/record/<record_id:int>")
    def record_page(record_id: int) -> str:
        record = store.record(record_id) if record_id <= MAX_ID else None
        if record is None:
            raise bottle.HTTPError(404, f"no record {record_id}")
        newer, older = store.around(record)
        return render("record", record=record, extra=pretty_extra(record["extra"]),
                      path=record_path(record["hops"]), newer=newer, older=older)

    @app.get("/systems")
    def systems_page() -> str:
        return render("systems", **systems())

    def systems() -> dict:
        """Every system that logged or that neelix watches, with its heartbeat state; and
        this appliance's forwarders, as their stats files tell."""
        now = time.time()
        watch = alerts.watch(now)
        rows = store.systems(also=watch.systems() if watch else ())
        for row in rows:
            row["heartbeat"] = watch.state(row["system_id"]) if watch \
                else dict(alert_store.NOT_RUN)
        return {"systems": rows, "neelix_has_run": watch is not None,
                "forwarders": forwarder_links(run_dir, now) if run_dir is not None else []}

    def alert_history() -> dict:
        """Open incidents, running snoozes and a page of alerts, newest first."""
        try:
            query = alert_store.parse(dict(bottle.request.query.decode().allitems()))
        except QueryError as error:
            raise bottle.HTTPError(400, str(error)) from None
        rows, older = alerts.alerts(query)
        return {"neelix_has_run": alerts.has_run(), "incidents": alerts.incidents(query.system),
                "snoozes": alerts.snoozes(time.time()), "alerts": rows,
                "next": {"before": older} if older is not None else None}

    @app.get("/alerts")
    def alerts_page() -> str:
        history = alert_history()
        params = {k: v for k, v in shown_params().items() if k != "before"}
        return render("alerts", params=params, paged="before" in shown_params(),
                      statuses=alert_store.STATUSES, events=alert_store.EVENTS, **history)

    @app.get("/api/alerts")
    def api_alerts() -> dict:
        return alert_history()

    @app.get("/api/records")
    def api_records() -> dict:
        query = checked_query()
        rows, more = store.page(query)
        next_page = None
        if more and rows:  # the next page in the direction this one was read
            ids = [row["id"] for row in rows]
            next_page = {"before": min(ids)} if fetches_descending(query) \
                else {"after": max(ids)}
        return {"records": rows, "next": next_page}

    @app.get("/api/records/<record_id:int>")
    def api_record(record_id: int) -> dict:
        record = store.record(record_id) if record_id <= MAX_ID else None
        if record is None:
            raise bottle.HTTPError(404, f"no record {record_id}")
        return {**record, "path": record_path(record["hops"])}

    @app.get("/api/options")
    def api_options() -> dict:
        return store.options()

    @app.get("/api/systems")
    def api_systems() -> dict:
        return systems()

    @app.get("/api/histogram")
    def api_histogram() -> dict:
        query = checked_query()
        start, width, buckets = histogram.plan(query, time.time())
        counts = store.level_counts(query, start, width, buckets)
        return {"start": start, "width": width, "groups": [g[0] for g in histogram.GROUPS],
                "buckets": histogram.grouped(counts)}

    @app.get("/api/export.<kind:re:csv|ndjson>")
    def api_export(kind: str) -> Iterator[str]:
        params = dict(bottle.request.query.decode().allitems())
        limit = params.pop("limit", str(EXPORT_LIMIT))
        query = checked(params)
        count = int(limit) if re.fullmatch(r"[0-9]{1,7}", limit) else -1
        if not 1 <= count <= EXPORT_LIMIT:
            raise bottle.HTTPError(400, f"limit must be between 1 and {EXPORT_LIMIT} for exports")
        rows = store.export(query, count)
        first = next(rows, None)
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="herald-records.{kind}"')
        if kind == "csv":
            bottle.response.content_type = "text/csv; charset=utf-8"
            return export_csv(first, rows)
        bottle.response.content_type = "application/x-ndjson"
        return export_ndjson(first, rows)

    @app.get("/api/openapi.json")
    def openapi() -> bottle.HTTPResponse:
        return bottle.static_file("openapi.json", root=str(HERE / "static"),
                                  mimetype="application/json")

    @app.get("/favicon.ico")
    def favicon() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(status=204)

    @app.get("/static/<name:re:[a-z]+\\.(css|js)>")
    def static(name: str) -> bottle.HTTPResponse:
        return bottle.static_file(name, root=str(HERE / "static"))

    return app


def page_links(query: Query, rows: list[dict], more: bool) -> tuple[int | None, int | None]:
    """The cursors of the older (before=) and newer (after=) pages, None where nothing lies:
    `more` speaks of the direction the page was read in; a cursor means the other side has
    records too."""
    if not rows:  # past the end: offer the way back
        return (query.after + 1 if query.after is not None else None,
                query.before - 1 if query.before is not None else None)
    ids = [row["id"] for row in rows]
    down = fetches_descending(query)
    cursor = query.before is not None or query.after is not None
    older = min(ids) if (more if down else cursor) else None
    newer = max(ids) if (cursor if down else more) else None
    return older, newer


def spreadsheet_safe(value: object) -> object:
    """A text cell starting like a formula would run in a spreadsheet: make it plain text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_csv(first: dict | None, rows: Iterator[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("id", *COLUMNS))
    for row in ([first] if first else []):
        writer.writerow([row["id"], *(spreadsheet_safe(row[c]) for c in COLUMNS)])
    for row in rows:
        writer.writerow([row["id"], *(spreadsheet_safe(row[c]) for c in COLUMNS)])
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_ndjson(first: dict | None, rows: Iterator[dict]) -> Iterator[str]:
    if first is not None:
        yield json.dumps(first, ensure_ascii=False) + "\n"
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def fmt_time(epoch: float | None) -> str:
    """UTC to the nearest millisecond (hops keep ms); a time beyond the calendar as the number
    it is (a relay checks only that a downstream's times are finite)."""
    if epoch is None:
        return ""
    try:
        seconds, millis = divmod(round(epoch * 1000), 1000)
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seconds))}.{millis:03d}"
    except (OverflowError, OSError, ValueError):
        return str(epoch)


def pretty_extra(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> None:
    import waitress

    from appliance.purge import purge_older_than

    _args, config = start_process(
        argparse.ArgumentParser(prog="appliance web", description=__doc__), argv)
    db = config.writer.db
    while not db.exists():  # the writer creates it; the web never creates it
        log.info("waiting for the writer to create %s", db)
        time.sleep(1)
    access = web_access.Access(config.web, config.appliance.var_dir / "web.secret",
                               config.appliance.bind)
    app = make_app(RecordStore(db), alert_store.AlertStore(config.neelix.state), access,
                   purge=lambda cutoff: purge_older_than(db, cutoff, config.writer.delete_batch),
                   run_dir=config.appliance.var_dir / "run")
    web_health.add_routes(app, config, access.login)
    log.info("herald web on http://%s:%d/ reading %s and %s (login %s)",
             config.appliance.bind, config.web.port, db, config.neelix.state,
             "on" if access.login else "off")
    waitress.serve(app, host=config.appliance.bind, port=config.web.port,
                   threads=config.web.threads, ident="herald")
