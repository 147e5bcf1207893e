"""The pure core of `appliance import-legacy`: an old ps.herald `log` table's columns mapped to
the record schema (a plan), and each old row converted into record values: string timestamps
in the old formats, "None" strings, levels, extras. No database access here.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from appliance.spine.record import COLUMNS, INDEX, PS_FIELDS, Caps, truncate

TABLE = "log"
LAST_EPOCH = 253402300799.0  # 9999-12-31: a later "time" is no time
MILLIS = 1e11  # an epoch number above this is in milliseconds (1e11 s is the year 5138)
ATTEMPTS = 5  # per batch, when the database stays locked past its busy timeout


def key(name: str) -> str:
    """Old column names compare case-insensitively and without '_': funcName, funcname,
    func_name and FUNC_NAME are one name."""
    return name.lower().replace("_", "").replace("-", "")


RECEIVED_NAMES = ("received", "receivedat", "inserted", "insertedat", "inserttime", "stored",
                  "storedat")
CREATED_NAMES = ("created", "createdat", "timestamp", "time")
# Record column → old names, first that has a value wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "levelno": ("levelno",), "levelname": ("levelname", "level"),
    "logger": ("name", "logger", "loggername"), "message": ("message", "msg"),
    "exc_text": ("exctext", "traceback", "exception"), "stack_info": ("stackinfo",),
    "func_name": ("funcname",), "process_name": ("processname",),
    "thread_name": ("threadname",), "task_name": ("taskname",),
    **{name: (key(name),) for name in ("pathname", "filename", "module", "lineno", "process",
                                       "thread", *PS_FIELDS)},
}
# What live records drop too (normalize: args, exc_info, msecs, relativeCreated), and
# ps_bridge's `summary` (its search helper, a concatenation of the fields).
DROPPED = frozenset({"args", "excinfo", "msecs", "relativecreated", "summary"})
INTS = frozenset({"levelno", "lineno", "process", "thread"})
TEXTS = frozenset({"message", "exc_text", "stack_info"})
CONTENT = ("message", "levelname", "levelno", "logger", "exc_text")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S.%f %z", "%d.%m.%Y %H:%M:%S",
           "%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S,%f", "%a %b %d %H:%M:%S %Y")
BAD = object()  # a value that is there but is no time


class Refused(Exception):
    """The input cannot be imported: one line for the operator, exit code 2."""


class Unreadable(Exception):
    """The old database failed while being read (damaged part way)."""


@dataclass
class Plan:
    """Which old columns feed which record column (by position in the old row)."""

    names: list[str]
    seq: int | None  # position of `id`, None: the rowid (always the last position)
    sources: dict[str, list[int]]
    extra: list[int]
    dropped: list[int]
    msecs: int | None = None
    asctime: int | None = None

    def describe(self) -> list[str]:
        def cols(positions: list[int]) -> str:
            return ", else ".join(self.names[p] for p in positions)
        lines = [f"  {'seq':<17} ← {self.names[self.seq] if self.seq is not None else 'rowid'}"]
        lines += [f"  {target:<17} ← {cols(positions)}"
                  for target, positions in self.sources.items() if positions]
        if self.extra:
            lines.append(f"  {'extra (JSON)':<17} ← {', '.join(self.names[p] for p in self.extra)}")
        if self.dropped:
            lines.append(f"  {'(dropped)':<17} ← {', '.join(self.names[p] for p in self.dropped)}")
        return lines


def make_plan(names: list[str]) -> Plan:
    """The column plan for an old table with these columns (rowid appended by the reader)."""
    position: dict[str, int] = {}
    for index, name in enumerate(names):
        position.setdefault(key(name), index)  # a second spelling of a name goes to extra

    def pick(keys: tuple[str, ...]) -> list[int]:
        return [position[k] for k in keys if k in position]

    received, stamped, asctime = pick(RECEIVED_NAMES), pick(CREATED_NAMES), pick(("asctime",))
    sources = {"received": received + stamped + asctime, "created": stamped + asctime}
    if not received:
        # ps_bridge overwrote each record's `created` with its own clock as it stored it: that
        # is when the record was received. The client's own time survives only in asctime.
        sources["created"] = asctime + stamped
    sources.update({target: pick(keys) for target, keys in ALIASES.items()})
    used = {p for positions in sources.values() for p in positions}
    seq = position.get("id")
    dropped = [position[k] for k in sorted(DROPPED) if k in position]
    extra = [i for i in range(len(names)) if i not in used and i != seq and i not in dropped]
    return Plan(list(names), seq, sources, extra, dropped,
                msecs=position.get("msecs"), asctime=asctime[0] if asctime else None)


def parse_time(value: object, zone: datetime.tzinfo | None) -> float | object | None:
    """An old timestamp → UTC epoch; None when missing ("None", ''), BAD when unreadable.
    Naive times are in `zone` (None: this machine's local zone)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            return None
        if not NUMBER.fullmatch(text):
            return _moment(text, zone)
        value = float(text)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return BAD
    return _epoch(value / 1000 if value > MILLIS else float(value))


def _moment(text: str, zone: datetime.tzinfo | None) -> float | object:
    moment = _datetime(text)
    if moment is None:
        return BAD
    if moment.tzinfo is None and zone is not None:
        moment = moment.replace(tzinfo=zone)
    try:
        return _epoch(moment.timestamp())
    except (OverflowError, OSError, ValueError):
        return BAD


def _epoch(number: float) -> float | object:
    return number if math.isfinite(number) and 0 <= number <= LAST_EPOCH else BAD


def _datetime(text: str) -> datetime.datetime | None:
    try:  # 3.11: "2023-04-01 12:00:00.123456", "…,123" (asctime), "…T…Z", "…+02:00"
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in FORMATS:
        try:
            return datetime.datetime.strptime(text, form)
        except ValueError:
            continue
    return None


def _int(value: object) -> int | object | None:
    """A whole number, None when missing ("None", ''), BAD when there is no number."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            return None
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return BAD
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or isinstance(value, float) and not math.isfinite(value):
        return BAD
    number = int(value)
    return number if -2**63 <= number < 2**63 else BAD


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    if value is None or value == "None":
        return None
    return value if isinstance(value, str) else str(value)


@dataclass
class Converter:
    """Old rows → record values in COLUMNS order; counts what it had to leave out."""

    plan: Plan
    origin: str
    zone: datetime.tzinfo | None
    caps: Caps
    now: float
    not_before: float | None = None  # older records would be deleted by retention at once
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # (column index, old positions, whole number?, size cap) per plain field
        self.fields = [(INDEX[target], positions, target in INTS,
                        self.caps.text if target in TEXTS else self.caps.field)
                       for target, positions in self.plan.sources.items()
                       if positions and target not in ("received", "created")]
        self.times = sorted(set(self.plan.sources["created"] + self.plan.sources["received"]))

    def convert(self, row: tuple) -> list | None:
        plan, values = self.plan, [None] * len(COLUMNS)
        seq = _int(row[plan.seq] if plan.seq is not None else row[-1])
        if type(seq) is not int:
            self.counts["no usable id"] += 1
            return None
        for index, positions, whole, cap in self.fields:
            for position in positions:
                value = row[position]
                if value is None or value == "None":
                    continue
                kind = type(value)  # fast path: most values already have the column's type
                if whole and kind is int and -2**63 <= value < 2**63 \
                        or not whole and kind is str and len(value) <= cap:
                    values[index] = value
                    break
                value = self._convert(value, whole, cap, plan.names[position])
                if value is not None:
                    values[index] = value
                    break
        if all(values[INDEX[name]] in (None, "") for name in CONTENT):
            self.counts["empty placeholder rows"] += 1  # ps_bridge wrote one at each start
            return None
        times = {position: self._time(row, position) for position in self.times}
        values[INDEX["created"]] = next(
            (times[p] for p in plan.sources["created"] if times[p] is not None), None)
        received = next(
            (times[p] for p in plan.sources["received"] if times[p] is not None), None)
        if received is None:
            self.counts["no usable time: received set to the import's time"] += 1
            received = self.now
        if self.not_before is not None and received < self.not_before:
            self.counts["older than [writer] keep"] += 1
            return None
        _fill_level(values)
        extra = {plan.names[p]: _json_value(row[p]) for p in plan.extra
                 if row[p] is not None and row[p] != "None"}
        values[INDEX["seq"]], values[INDEX["origin"]] = seq, self.origin
        values[INDEX["received"]] = received
        values[INDEX["extra"]] = truncate(json.dumps(extra, ensure_ascii=False),
                                          self.caps.text) if extra else None
        return values

    def _convert(self, value: object, whole: bool, cap: int, name: str) -> object:
        if whole:
            number = _int(value)
            if number is BAD:
                self.counts[f"unreadable number in {name} (NULL)"] += 1
                return None
            return number
        text = _text(value)
        return None if text is None else truncate(text, cap)

    def _time(self, row: tuple, position: int) -> float | None:
        moment = parse_time(row[position], self.zone)
        if moment is BAD:
            self.counts[f"unreadable time in {self.plan.names[position]} (NULL)"] += 1
            return None
        if moment is not None and position == self.plan.asctime and self.plan.msecs \
                is not None and not re.search(r"[.,]\d", str(row[position])):
            msecs = _int(row[self.plan.msecs])  # a datefmt without the fraction
            if type(msecs) is int and 0 <= msecs < 1000:
                moment += msecs / 1000
        return moment


def _fill_level(values: list) -> None:
    levelno, levelname = INDEX["levelno"], INDEX["levelname"]
    name = values[levelname]
    if name is not None and NUMBER.fullmatch(name.strip()):  # a `level` column of numbers
        number, name = _int(name), None
        values[levelname] = None
        if values[levelno] is None and isinstance(number, int):
            values[levelno] = number
    if values[levelno] is None and name is not None:
        number = logging.getLevelName(name.strip().upper())
        values[levelno] = number if isinstance(number, int) else None
    elif name is None and values[levelno] is not None:
        values[levelname] = logging.getLevelName(values[levelno])


def _json_value(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


# The shell: arguments, the old file, batches into the herald DB. -----------------------------
