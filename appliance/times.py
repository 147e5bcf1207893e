"""How the appliance writes times for people: one place, so mails, the command line and the
web agree on the format."""

from __future__ import annotations

import datetime


def when_text(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
