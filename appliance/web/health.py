"""The web's /health and /metrics views over the monitor's snapshot: /health is 200 or 503
with the reasons (JSON); /metrics is Prometheus text. Both answer in a few milliseconds.
"""

from __future__ import annotations

import json

import bottle

from appliance.config import Config
from appliance.monitor import health, metrics


class HealthViews:
    def __init__(self, config: Config, login: bool) -> None:
        self.config, self.login = config, login

    def health(self) -> str:
        snap = health.recent_snapshot(self.config)
        bottle.response.status = 200 if snap.healthy else 503
        bottle.response.content_type = "application/json"
        bottle.response.set_header("Cache-Control", "no-store")
        if self.login and bottle.request.environ.get("herald.user") is None:
            return json.dumps({"status": "ok" if snap.healthy else "unhealthy"})
        return json.dumps(health.report(snap))

    def metrics(self) -> str:
        bottle.response.content_type = "text/plain; version=0.0.4; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return metrics.render(health.recent_snapshot(self.config))
