"""The transports: how an alert leaves neelix. One module per action type — mail (SMTP),
webhook (HTTP POST of JSON), record (an alert record through this appliance's ingestor),
command (argv, no shell) — each giving the options of its [action:NAME] section and `send`.

TRANSPORTS is the one registry of action types: the rules file checks [action:NAME] against
it (actions.py) and the couriers send through it (outbox.py).
"""

from __future__ import annotations

from appliance.neelix.transports import command, mail, record, webhook
from appliance.neelix.transports.base import Context, Transport, TransportError

TRANSPORTS: dict[str, Transport] = {
    "mail": Transport(mail.OPTIONS, ("to",), mail.send),
    "webhook": Transport(webhook.OPTIONS, ("url",), webhook.send),
    "record": Transport(record.OPTIONS, (), record.send),
    "command": Transport(command.OPTIONS, ("command",), command.send),
}

__all__ = ["TRANSPORTS", "Context", "Transport", "TransportError"]
