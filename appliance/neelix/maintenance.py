"""Maintenance windows from the rules file: while one covers a system, neelix sends no notice
about it (the alert history still records what was held back).

One-off (start/end) or recurring (daily, or on some weekdays), in a configured time zone.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance import converters as c

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Maintenance:
    name: str
    systems: tuple[str, ...] | None  # glob patterns; None: every system
    start: float | None = None        # one-off window, epoch seconds
    end: float | None = None
    minutes: tuple[int, int] | None = None  # recurring: minutes of the day
    days: frozenset[int] = frozenset(range(7))
    zone: Any = datetime.UTC

    def covers(self, system: str | None, when: float) -> bool:
        if self.systems is not None and not any(
                fnmatchcase(system or "", pattern) for pattern in self.systems):
            return False
        if self.start is not None and self.end is not None:
            return self.start <= when < self.end
        assert self.minutes is not None
        local = datetime.datetime.fromtimestamp(when, self.zone)
        minute = local.hour * 60 + local.minute
        first, last = self.minutes
        if first <= last:
            return local.weekday() in self.days and first <= minute < last
        # Wraps past midnight: the part after midnight belongs to the previous day's window.
        if minute >= first:
            return local.weekday() in self.days
        return minute < last and (local.weekday() - 1) % 7 in self.days


def _days(text: str) -> frozenset[int]:
    days = set()
    for word in c.word_list(text.lower()):
        if word[:3] not in DAYS or word not in (word[:3], NAMES[DAYS.index(word[:3])]):
            raise ValueError(f"{word!r} is not a weekday (mon, tue, … sun or monday, …)")
        days.add(DAYS.index(word[:3]))
    if not days:
        raise ValueError("give at least one weekday (mon, tue, … sun)")
    return frozenset(days)


def _zone(text: str) -> Any:
    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text.strip()!r} is not a time zone (e.g. UTC, Europe/Zurich)") \
            from None


def _moment(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a date and time like 2026-12-01 02:00") \
            from None


KEYS = {"systems": c.word_list, "start": _moment, "end": _moment, "daily": c.clock_range,
        "days": _days, "timezone": _zone}


def parse_maintenance(reader: Any, name: str) -> Maintenance:
    """One [maintenance:NAME] section; `reader` is rulebook's section reader."""
    v = reader.typed(KEYS)
    zone = v.get("timezone", datetime.UTC)
    if not v.get("systems"):
        reader.fail("a window needs systems (patterns like ch2*, or * for every system)",
                    "systems")
    systems = tuple(v["systems"])
    chosen = None if systems == ("*",) else systems
    if "start" in v or "end" in v:
        if "start" not in v or "end" not in v or "daily" in v or "days" in v:
            reader.fail("a one-off window needs start and end (and no daily/days)")
        start, end = (v[k] if v[k].tzinfo else v[k].replace(tzinfo=zone)
                      for k in ("start", "end"))
        if end <= start:
            reader.fail("end must be after start", "end")
        return Maintenance(name, chosen, start.timestamp(), end.timestamp(), zone=zone)
    if "daily" not in v:
        reader.fail("a window needs start and end, or daily = HH:MM-HH:MM (with days = to "
                    "limit it to some weekdays)")
    return Maintenance(name, chosen, minutes=v["daily"], days=v.get("days", frozenset(range(7))),
                       zone=zone)
