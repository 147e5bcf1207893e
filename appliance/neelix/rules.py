"""Rule matching and throttling, as plain functions over a record's values and a state dict.

neelix calls `RuleMatcher.observe` for every record and `RuleMatcher.due_digests` on its
schedule; the dry run calls the same code over stored records. No sockets, no database here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from appliance.neelix.notice import Notice, record_summary
from appliance.neelix.rulebook import Rule
from appliance.spine.record import INDEX

_LEVELNO, _MESSAGE, _EXC, _STACK, _EXTRA = (INDEX[n] for n in ("levelno", "message",
                                                              "exc_text", "stack_info",
                                                              "extra"))
_RECEIVED = INDEX["received"]


def matches(rule: Rule, values: list) -> bool:
    """Whether one record (values in COLUMNS order) meets every condition of the rule."""
    if rule.level is not None and (values[_LEVELNO] or 0) < rule.level:
        return False
    for column, globs in rule.patterns:
        value = values[INDEX[column]]
        if value is None or not any(fnmatchcase(str(value), glob) for glob in globs):
            return False
    if rule.message is not None and not rule.message.search(values[_MESSAGE] or ""):
        return False
    if rule.traceback is not None:
        text = "\n".join(v for v in (values[_EXC], values[_STACK]) if v)
        if not rule.traceback.search(text):
            return False
    if rule.anywhere is not None and not any(
            rule.anywhere.search(text) for text in (values[_MESSAGE], values[_EXC],
                                                    values[_STACK]) if text):
        return False
    if rule.fields:
        extra: dict[str, Any] | None = None
        for name, wanted in rule.fields:
            if name in INDEX:
                value = values[INDEX[name]]
            else:
                if extra is None:
                    extra = _extra(values[_EXTRA])
                value = extra.get(name)
            if value is None or not _equal(value, wanted):
                return False
    return True


def key_of(rule: Rule, values: list) -> str:
    return " ".join("" if values[INDEX[name]] is None else str(values[INDEX[name]])
                    for name in rule.key)


@dataclass
class Throttle:
    """One rule+key: matches counted towards a threshold, and the realert window."""

    until: float = 0.0          # no notice before this (record time)
    suppressed: int = 0         # matches held back since the last notice
    times: list[float] = field(default_factory=list)  # recent matches, for a threshold
    last: dict[str, Any] = field(default_factory=dict)  # the last held-back record
    system: str | None = None

    def idle(self, now: float) -> bool:
        return not self.suppressed and not self.times and self.until <= now


class RuleMatcher:
    """Every rule's throttles; `dirty` names the (rule, key) states to save."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = {rule.name: rule for rule in rules}
        self.throttles: dict[tuple[str, str], Throttle] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.matched = 0  # records that met a rule, notified or held back

    def observe(self, values: list) -> list[Notice]:
        notices = []
        for rule in self.rules.values():
            if matches(rule, values):
                self.matched += 1
                notice = self._fire(rule, values)
                if notice:
                    notices.append(notice)
        return notices

    def _fire(self, rule: Rule, values: list) -> Notice | None:
        when = values[_RECEIVED]
        key = (rule.name, key_of(rule, values))
        throttle = self.throttles.setdefault(key, Throttle())
        throttle.system = values[INDEX["system_id"]]
        self.dirty.add(key)
        count = 1
        if rule.threshold > 1:
            throttle.times = [t for t in throttle.times if t >= when - rule.window] + [when]
            if len(throttle.times) < rule.threshold:
                return None
            count, throttle.times = len(throttle.times), []
        if when < throttle.until:
            throttle.suppressed += count
            throttle.last = record_summary(values)
            return None
        notice = Notice("match", rule.name, key[1], throttle.system, when, rule.actions,
                        count=count, suppressed=throttle.suppressed,
                        record=record_summary(values))
        throttle.suppressed, throttle.last = 0, {}
        throttle.until = when + rule.realert
        return notice

    def due_digests(self, now: float) -> list[Notice]:
        """A notice for every realert window that ended with matches held back; forget idle
        states so a rule keyed by a busy field cannot grow without bound."""
        notices = []
        for key, throttle in list(self.throttles.items()):
            rule = self.rules.get(key[0])
            if rule is None:
                del self.throttles[key]
                self.dirty.add(key)
                continue
            if throttle.suppressed and throttle.until <= now:
                notices.append(Notice("digest", rule.name, key[1], throttle.system,
                                      throttle.until, rule.actions,
                                      suppressed=throttle.suppressed, record=throttle.last))
                throttle.suppressed, throttle.last = 0, {}
                throttle.until += rule.realert
                self.dirty.add(key)
            if rule.threshold > 1 and throttle.times:
                kept = [t for t in throttle.times if t >= now - rule.window]
                if kept != throttle.times:
                    throttle.times = kept
                    self.dirty.add(key)
            if throttle.idle(now):
                del self.throttles[key]
                self.dirty.add(key)
        return notices


def _extra(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _equal(value: object, wanted: str) -> bool:
    """A field's value against the rule's text: booleans as true/false (any case), numbers
    by value (42 == 42.0), everything else as text."""
    if isinstance(value, bool):
        return wanted.lower() == ("true" if value else "false")
    if isinstance(value, (int, float)):
        try:
            return float(wanted) == value
        except ValueError:
            return False
    return str(value) == wanted
