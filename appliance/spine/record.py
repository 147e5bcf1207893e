"""The record schema and the normalisation of a client's record dict into it.

Pure functions over plain data: the ingestor calls `normalize` on every decoded frame; the
writer, forwarder and neelix read records as lists in `COLUMNS` order.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import re
from dataclasses import dataclass

COLUMNS: tuple[str, ...] = (
    "seq", "origin", "received", "created", "levelno", "levelname", "logger", "message",
    "exc_text", "stack_info", "pathname", "filename", "module", "func_name", "lineno",
    "process", "process_name", "thread", "thread_name", "task_name", "system_id",
    "sub_system_id", "sub_sub_system_id", "produkt_id", "user_spec_1", "user_spec_2",
    "package_version", "api_version", "peer", "extra", "hops",
)
INDEX = {name: i for i, name in enumerate(COLUMNS)}
# Fields people filter on by equality; the writer keeps their distinct values in `facet`.
FILTER_FIELDS = ("system_id", "sub_system_id", "sub_sub_system_id", "produkt_id",
                 "user_spec_1", "user_spec_2", "logger", "package_version")
SEQ, ORIGIN, RECEIVED, PEER, EXTRA = (INDEX[n] for n in ("seq", "origin", "received", "peer",
                                                           "extra"))

# ps.basic's fields arrive upper-case, other clients' lower-case.
PS_FIELDS = ("system_id", "sub_system_id", "sub_sub_system_id", "produkt_id", "user_spec_1",
             "user_spec_2", "package_version", "api_version")
# Client attribute → column, for every attribute a client may set.
_CLIENT_FIELDS: dict[str, int] = {
    "name": INDEX["logger"], "msg": INDEX["message"], "funcName": INDEX["func_name"],
    "processName": INDEX["process_name"], "threadName": INDEX["thread_name"],
    "taskName": INDEX["task_name"],
    **{n: INDEX[n] for n in ("created", "levelno", "levelname", "exc_text", "stack_info",
                             "pathname", "filename", "module", "lineno", "process", "thread")},
    **{n: INDEX[n] for n in PS_FIELDS},
    **{n.upper(): INDEX[n] for n in PS_FIELDS},
}
# Standard LogRecord attributes that carry nothing the columns don't (or nothing sendable).
_DROPPED = frozenset({"args", "exc_info", "msecs", "relativeCreated", "message"})
_INTS = frozenset(INDEX[n] for n in ("levelno", "lineno", "process", "thread"))
_TEXTS = frozenset(INDEX[n] for n in ("message", "exc_text", "stack_info"))
_NONE_STRINGS = frozenset(INDEX[n] for n in PS_FIELDS)
_INT64 = 2**63
MAX_DEPTH = 64  # nesting levels of one attribute's value
_STR_COLUMNS = frozenset(range(len(COLUMNS))) - _INTS - {INDEX["created"]}
# Every width or precision of a %-spec (with or without a %(name) mapping key).
_FORMAT_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FORMAT_SCALARS = frozenset({str, int, float, bool, type(None)})
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Caps:
    """Size limits: `text` for message/exc_text/stack_info/extra, `field` for the rest."""

    text: int = 65536
    field: int = 1024
    nodes: int = 10000  # containers and leaves in one attribute's value


def truncate(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return f"{text[:cap]}…[truncated {len(text) - cap} chars]"


def normalize(raw: dict, peer: str | None, received: float, caps: Caps) -> list:
    """A client's record dict → values in COLUMNS order (seq and origin left None).

    Never raises on any plain data: odd values are coerced, unknown attributes go to `extra`.
    """
    values: list = [None] * len(COLUMNS)
    extra: dict = {}
    args = None
    for key, value in raw.items():
        if not isinstance(key, str):
            key = _text(key) if isinstance(key, (bytes, *_SCALARS)) else repr(type(key))
        if not isinstance(value, _SCALARS) and not _bounded(value, caps):
            value = f"…[value too large: more than {caps.nodes} parts]"
        index = _CLIENT_FIELDS.get(key)
        if index is not None:
            values[index] = value
        elif key == "args":
            args = value
        elif key not in _DROPPED:
            extra[key] = value
    values[INDEX["message"]] = _message(values[INDEX["message"]], args)
    for index, value in enumerate(values):
        if value is None:
            continue
        # Fast path: most values already have their column's type and size.
        kind = type(value)
        if kind is str:
            if index in _STR_COLUMNS and len(value) <= (caps.text if index in _TEXTS
                                                        else caps.field) \
                    and not (value == "None" and index in _NONE_STRINGS):
                continue
        elif kind is int:
            if index in _INTS and -_INT64 <= value < _INT64:
                continue
        values[index] = _coerce(index, value, caps)
    _fill_level(values)
    values[RECEIVED] = received
    values[PEER] = peer
    values[EXTRA] = _extra_json(extra, caps) if extra else None
    return values


def _coerce(index: int, value: object, caps: Caps) -> object:
    if index in _INTS:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            return None
        try:
            number = int(value)
        except (ValueError, OverflowError):
            return None
        return number if -_INT64 <= number < _INT64 else None
    if index == INDEX["created"]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                return None
            return number if math.isfinite(number) else None
        return None
    text = _text(value)
    if index in _NONE_STRINGS and text == "None":
        return None
    return truncate(text, caps.text if index in _TEXTS else caps.field)


def _text(value: object) -> str:
    """Any decoded value as text; never raises (huge ints, deep nesting get a marker)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    try:
        return str(value)
    except (ValueError, OverflowError, RecursionError, MemoryError):
        return f"…[unprintable {type(value).__name__}]"


def _repr(value: object) -> str:
    try:
        return repr(value)
    except (ValueError, OverflowError, RecursionError, MemoryError):
        return f"…[unprintable {type(value).__name__}]"


def _message(msg: object, args: object) -> object:
    """Merge unmerged args safely: %-format plain scalars, else msg plus repr(args)."""
    if msg is None or args is None or args == () or args == {} or args == []:
        return msg
    text = _text(msg)
    if isinstance(args, str):  # the marker that replaced args too large to format
        return f"{text} {args}"
    if isinstance(args, list):
        args = tuple(args)
    if _formattable(text, args):
        try:
            return text % args
        except (TypeError, ValueError, KeyError, OverflowError, MemoryError, RecursionError):
            pass
    return f"{text} {_repr(args)}"


def _formattable(text: str, args: object) -> bool:
    """%-formatting is safe only with scalar args and modest widths: '%d' % Decimal('1e9999999')
    or '%(a)9999s' * 100000 would burn CPU or memory on a tiny frame."""
    if isinstance(args, dict):
        items = list(args.values())
    elif isinstance(args, tuple):
        items = list(args)
    else:
        return False
    if not all(type(a) in _FORMAT_SCALARS for a in items):
        return False
    if any(type(a) is int and a.bit_length() > 3000 for a in items):
        return False
    specs = _FORMAT_WIDTH.findall(text)
    return len(specs) <= 1000 and all(
        part != "*" and len(part) <= 3 for spec in specs for part in spec)


def _fill_level(values: list) -> None:
    levelno, levelname = INDEX["levelno"], INDEX["levelname"]
    if values[levelno] is None and values[levelname] is not None:
        number = logging.getLevelName(values[levelname].upper())
        values[levelno] = number if isinstance(number, int) else None
    elif values[levelname] is None and values[levelno] is not None:
        values[levelname] = logging.getLevelName(values[levelno])


def _bounded(value: object, caps: Caps) -> bool:
    """True if a container is small and shallow enough to format: pickle memo references can
    make a few bytes expand into an exponentially large or very deep structure."""
    budget, chars, stack = caps.nodes, 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        budget -= 1
        if budget < 0 or depth > MAX_DEPTH:
            return False
        if isinstance(item, (str, bytes, bytearray)):
            chars += len(item)
            if chars > caps.text * 4:
                return False
        elif isinstance(item, int):
            if item.bit_length() > 3000:  # str() refuses past 4300 digits
                return False
        elif isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.keys())
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((child, depth + 1) for child in item)
    return True


def _extra_json(extra: dict, caps: Caps) -> str:
    try:
        text = json.dumps(extra, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (ValueError, TypeError, RecursionError, OverflowError):
        text = json.dumps({_text(k): _repr(v)[:caps.field] for k, v in extra.items()},
                          ensure_ascii=False)
    if not text.isascii():
        # A lone surrogate (pickle can carry one) would come back from json.loads as one.
        text = _SURROGATE.sub("\ufffd", text)
    if len(text) > caps.text:
        text = json.dumps({"_truncated": truncate(text, caps.text)}, ensure_ascii=False)
    return text


def _json_default(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)  # Decimal, timezone: their str is their value


def scrub(values: list) -> list:
    """Make every string encodable as UTF-8 (pickle can carry lone surrogates)."""
    return [v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else v
            for v in values]
