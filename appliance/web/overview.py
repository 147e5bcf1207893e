"""The overview views: /systems (every system that logged or that neelix watches, with its
heartbeat state, and this appliance's forwarders) and /alerts (open incidents, snoozes and
the alert history), each as a page and as JSON."""

from __future__ import annotations

import time

import bottle

from appliance.neelix import history
from appliance.spine.stats import forwarder_links
from appliance.store.query import QueryError
from appliance.web.site import Site, request_params, shown_params


class OverviewViews:
    def __init__(self, site: Site) -> None:
        self.site = site

    def systems_page(self) -> str:
        return self.site.render("systems", **self.systems())

    def api_systems(self) -> dict:
        return self.systems()

    def alerts_page(self) -> str:
        alerts = self.alerts()
        params = {k: v for k, v in shown_params().items() if k != "before"}
        return self.site.render("alerts", params=params, paged="before" in shown_params(),
                                statuses=history.STATUSES, events=history.EVENTS, **alerts)

    def api_alerts(self) -> dict:
        return self.alerts()

    def systems(self) -> dict:
        """Every system that logged or that neelix watches, with its heartbeat state; and
        this appliance's forwarders, as their stats files tell."""
        now = time.time()
        watch = self.site.alerts.watch(now)
        rows = self.site.store.systems(also=watch.systems() if watch else ())
        for row in rows:
            row["heartbeat"] = watch.state(row["system_id"]) if watch else dict(history.NOT_RUN)
        var_dir = self.site.var_dir
        return {"systems": rows, "neelix_has_run": watch is not None,
                "forwarders": forwarder_links(var_dir, now) if var_dir is not None else []}

    def alerts(self) -> dict:
        """Open incidents, running snoozes and a page of alerts, newest first."""
        try:
            query = history.parse(request_params())
        except QueryError as error:
            raise bottle.HTTPError(400, str(error)) from None
        store = self.site.alerts
        rows, older = store.alerts(query)
        return {"neelix_has_run": store.has_run(), "incidents": store.incidents(query.system),
                "snoozes": store.snoozes(time.time()), "alerts": rows,
                "next": {"before": older} if older is not None else None}
