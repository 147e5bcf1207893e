"""A notice: what neelix tells people (a rule matched, a system went DOWN or RECOVERED), and
its wording for mail subjects and bodies, webhook payloads and alert records.

Plain data, built by the pure rule and heartbeat cores, stored in the outbox as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from string import Template
from typing import Any

from appliance.spine.record import COLUMNS, INDEX
from appliance.times import duration_text, iso_time

EVENTS = ("match", "digest", "down", "reminder", "recovered")
TEMPLATE_FIELDS: tuple[str, ...] = (*COLUMNS, "event", "source", "key", "system", "count",
                                    "suppressed", "summary", "since", "time", "url")
# Record fields a notice carries (the rest stay in the DB).
RECORD_FIELDS = ("seq", "origin", "received", "levelname", "logger", "message", "exc_text",
                 "system_id", "sub_system_id", "sub_sub_system_id", "produkt_id",
                 "package_version", "func_name", "lineno")


@dataclass
class Notice:
    event: str                 # one of EVENTS
    source: str                # the rule's or heartbeat's name
    key: str                   # the rule's key value (system for heartbeats)
    system: str | None
    time: float                # when it happened (record time, or when silence began)
    actions: tuple[str, ...]
    count: int = 1             # matches that made it fire (threshold)
    suppressed: int = 0        # matches held back by realert since the last notice
    since: float | None = None  # last record seen (down, reminder) / down since (recovered)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        who = self.system or self.key or "?"
        if self.event == "down":
            silent = duration_text(self.time - (self.since or self.time))
            return f"{who} is DOWN: no record for {silent} (heartbeat {self.source})"
        if self.event == "reminder":
            return f"{who} is still DOWN, silent since {_when(self.since)} " \
                   f"(heartbeat {self.source})"
        if self.event == "recovered":
            down = duration_text(self.time - (self.since or self.time))
            return f"{who} RECOVERED after {down} down (since {_when(self.since)}; " \
                   f"heartbeat {self.source})"
        # The old format names its rule after the system: "rule ch2eu matched for ch2eu"
        # says nothing twice.
        target = f" for {self.key}" if self.key and self.key != self.source else ""
        if self.event == "digest":
            return f"{self.suppressed} more matches of rule {self.source}{target} " \
                   f"since the last notice"
        text = f"rule {self.source} matched{target}"
        if self.count > 1:
            text += f" ({self.count} records)"
        if self.suppressed:
            text += f", and {self.suppressed} more since the last notice"
        message = str(self.record.get("message") or "")[:200]
        return f"{text}: {message}" if message else text

    def fields(self, url: str = "") -> dict[str, str]:
        """Every template field as text ('' where unknown)."""
        values = {name: "" for name in TEMPLATE_FIELDS}
        values.update({k: "" if v is None else str(v) for k, v in self.record.items()})
        values.update(event=self.event, source=self.source, key=self.key,
                      system=self.system or "", count=str(self.count),
                      suppressed=str(self.suppressed), summary=self.summary,
                      since=_when(self.since) or "", time=_when(self.time) or "",
                      url=url)
        return values

    def subject(self, template: Template | None = None, url: str = "") -> str:
        if template is not None:
            text = template.safe_substitute(self.fields(url))
        else:
            text = f"[herald] {self.summary}"
        return " ".join(text.split())[:250]  # one line: no header injection

    def body(self, template: Template | None = None, url: str = "") -> str:
        if template is not None:
            return template.safe_substitute(self.fields(url))
        lines = [self.summary, "", f"event:  {self.event}", f"source: {self.source}",
                 f"key:    {self.key}", f"time:   {_when(self.time)}"]
        if self.suppressed:
            lines.append(f"held back by realert: {self.suppressed} more")
        for name in RECORD_FIELDS:
            value = self.record.get(name)
            if value not in (None, ""):
                lines.append(f"{name}: {_when(value) if name == 'received' else value}")
        if url:
            lines += ["", url]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> Notice:
        data = json.loads(text)
        data["actions"] = tuple(data.get("actions", ()))
        return cls(**data)


_SUMMARY = tuple((name, INDEX[name]) for name in RECORD_FIELDS)


def record_summary(values: list) -> dict[str, Any]:
    return {name: values[index] for name, index in _SUMMARY}



def _when(epoch: float | None) -> str | None:
    return iso_time(epoch, "seconds")  # a mail reader needs no milliseconds
