"""The web's /health and /metrics routes over health.py's snapshot: /health is 200 or 503
with the reasons (JSON); /metrics is Prometheus text. Both answer in a few milliseconds.
"""

from __future__ import annotations

import json

import bottle

from appliance import health, metrics
from appliance.config import Config


def add_routes(app: bottle.Bottle, config: Config, login: bool) -> None:
    @app.get("/health")
    def health_check() -> str:
        snap = health.recent_snapshot(config)
        bottle.response.status = 200 if snap.healthy else 503
        bottle.response.content_type = "application/json"
        bottle.response.set_header("Cache-Control", "no-store")
        if login and bottle.request.environ.get("herald.user") is None:
            return json.dumps({"status": "ok" if snap.healthy else "unhealthy"})
        return json.dumps(health.report(snap))

    @app.get("/metrics")
    def prometheus() -> str:
        bottle.response.content_type = "text/plain; version=0.0.4; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return metrics.render(health.recent_snapshot(config))
