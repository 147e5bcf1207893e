"""How the appliance writes times for people and for other programs: one place, so mails, the
command line and the web agree on the format."""

from __future__ import annotations

import datetime

TIME_FIELDS = ("received", "created")  # a record's epoch-second columns


def when_text(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(epoch: float | None, timespec: str = "milliseconds") -> str | None:
    """ISO 8601 with its offset ('2026-11-28T12:00:00.250+00:00'; timespec="seconds" for
    people, as in mails): unambiguous in any zone."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec=timespec)


def with_iso_times(row: dict) -> dict:
    """A record row whose epoch columns are ISO 8601 texts (for JSON output)."""
    return {**row, **{key: iso_time(row[key]) for key in TIME_FIELDS if key in row}}


def duration_text(seconds: float) -> str:
    """A span for people: '45s', '12m', '2h 5m', '3d 4h' (two units at most)."""
    seconds = max(int(round(seconds)), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(shown[:2]) or "0s"
