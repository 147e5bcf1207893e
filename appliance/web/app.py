"""The herald web viewer program: records table with histogram and live tail, record details
with a forwarded record's path, systems with heartbeats and forwarders, neelix's alerts, a
JSON API with exports, /health and /metrics, optional login with an admin purge. Read-only
except that purge.

A bottle app served by waitress (threads) on the stage's web port. This module is the route
table and the wiring; the views are in records.py, overview.py, gate.py and health.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import bottle

from appliance.config import Config
from appliance.errors import ConfigError
from appliance.neelix.history import alert_history
from appliance.runtime import start_process
from appliance.store.engine import open_store
from appliance.store.reader import RecordStore
from appliance.store.url import StoreUnavailable
from appliance.web import auth
from appliance.web.access import Access
from appliance.web.gate import GateViews
from appliance.web.health import HealthViews
from appliance.web.overview import OverviewViews
from appliance.web.records import RecordViews
from appliance.web.site import STATIC, Site

log = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
ERROR_STATUSES = (400, 401, 403, 404, 405, 409, 421, 429, 500, 503)


def make_app(site: Site, config: Config | None = None) -> bottle.Bottle:
    """The app: the gate before every request, the security headers after, and the routes
    (with `config`, also /health and /metrics)."""
    app = bottle.Bottle()
    records, overview, gate = RecordViews(site), OverviewViews(site), GateViews(site)
    app.add_hook("before_request", gate.require_login)
    app.add_hook("after_request", security_headers)
    routes = [
        ("GET", "/", records.table),
        ("GET", "/record/<record_id:int>", records.detail),
        ("GET", "/record/<origin>/<seq:int>", records.by_seq),
        ("GET", "/systems", overview.systems_page),
        ("GET", "/alerts", overview.alerts_page),
        ("GET", "/api/records", records.api_page),
        ("GET", "/api/records/<record_id:int>", records.api_record),
        ("GET", "/api/options", records.api_options),
        ("GET", "/api/histogram", records.api_histogram),
        ("GET", "/api/export.<kind:re:csv|ndjson>", records.api_export),
        ("GET", "/api/systems", overview.api_systems),
        ("GET", "/api/alerts", overview.api_alerts),
        ("GET", "/api/openapi.json", openapi),
        ("GET", "/login", gate.login_page),
        ("POST", "/login", gate.login),
        ("POST", "/logout", gate.logout),
        ("GET", "/admin", gate.admin_page),
        ("POST", "/admin/purge", gate.admin_purge),
        ("GET", "/favicon.ico", favicon),
        ("GET", "/static/<name:re:[a-z]+\\.(css|js)>", static),
    ]
    if config is not None:
        checks = HealthViews(config, site.access.login)
        routes += [("GET", "/health", checks.health), ("GET", "/metrics", checks.metrics)]
    for method, path, callback in routes:
        app.route(path, method, callback)
    for status in ERROR_STATUSES:
        app.error(status)(lambda error: error_page(site, error))
    return app


def security_headers() -> None:
    for key, value in HEADERS.items():
        bottle.response.set_header(key, value)


def error_page(site: Site, error: bottle.HTTPError) -> str:
    """Every error as JSON under /api/, else as a page; a 5xx is logged and says no more."""
    if isinstance(error.exception, StoreUnavailable):
        # the database is away or not made yet: say so, no traceback; it may come back
        bottle.response.status = StoreUnavailable.status
        log.warning("%s %s: %s", bottle.request.method, bottle.request.path, error.exception)
        message = str(error.exception)
    elif error.status_code >= 500:
        log.error("%s %s failed: %r", bottle.request.method, bottle.request.path,
                  error.exception)
        message = "internal error (logged)"
    else:
        message = str(error.body)
    security_headers()
    if bottle.request.path.startswith("/api/"):
        bottle.response.content_type = "application/json"
        return json.dumps({"error": message})
    return site.render("error", status=error.status_line, message=message)


def openapi() -> bottle.HTTPResponse:
    return bottle.static_file("openapi.json", root=STATIC, mimetype="application/json")


def favicon() -> bottle.HTTPResponse:
    return bottle.HTTPResponse(status=204)


def static(name: str) -> bottle.HTTPResponse:
    return bottle.static_file(name, root=STATIC)


def main(argv: list[str] | None = None) -> None:
    import waitress

    _args, config = start_process(
        argparse.ArgumentParser(prog="appliance web", description=__doc__), argv)
    engine = open_store(config.store.url, config.store.admin_url)
    db = config.writer.db
    while db is not None and not db.exists():  # the writer creates it; the web never does
        log.info("waiting for the writer to create %s", db)
        time.sleep(1)
    try:
        secret = auth.shared_secret(config.web.secret_file, config.web.secret_env)
    except ValueError as error:
        raise ConfigError(str(error), str(config.path), "web") from None
    access = Access(config.web, secret or config.appliance.var_dir / "web.secret",
                    config.appliance.bind)
    site = Site(RecordStore(engine), alert_history(config), access,
                purge=lambda cutoff: engine.purge_older_than(cutoff, config.writer.delete_batch),
                var_dir=config.appliance.var_dir, stage=config.stage.name,
                instance=config.appliance.instance)
    app = make_app(site, config)
    log.info("herald web on http://%s:%d/ reading %s (login %s)", config.appliance.bind,
             config.web.port, config.store.url.display, "on" if access.login else "off")
    waitress.serve(app, host=config.appliance.bind, port=config.web.port,
                   threads=config.web.threads, ident="herald")
