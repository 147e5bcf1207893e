"""The record transport: a notice as an alert record sent through this appliance's own
ingestor, so it lands in the table and travels upstream like any record."""

from __future__ import annotations

import logging
from typing import Any

from appliance import converters as c
from appliance.neelix.notice import Notice
from appliance.neelix.transports.base import Context, TransportError
from appliance.spine.emit import send_record_frame

ALERT_LOGGER = "appliance.neelix"  # neelix never matches its own alert records
OPTIONS = {"level": c.level_number, "system_id": c.text}


def send(o: dict[str, Any], notice: Notice, alert_id: int, context: Context) -> None:
    try:
        send_record_frame(context.ingest_host, context.ingest_port, ALERT_LOGGER,
                          o.get("level", logging.WARNING), notice.summary,
                          {"SYSTEM_ID": o.get("system_id", "neelix"), "alert_id": alert_id,
                           "alert_event": notice.event, "alert_source": notice.source,
                           "alert_key": notice.key, "alert_system": notice.system})
    except OSError as error:
        raise TransportError(f"ingestor {context.ingest_host}:{context.ingest_port}: "
                             f"{error}") from None
