"""Small functions that turn one config text into one typed value, or raise ValueError.

Modelled on supervisor's `datatypes.py`; `config.py` wraps their errors with file/section/key.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, yes/no, on/off, 1/0)")


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{value} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def natural_int(text: str) -> int:
    """A whole number ≥ 0 (0 usually means 'no limit')."""
    return _whole_number(text, 0)


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise ValueError(f"{value} is not a port number (1-65535)")
    return value


_SIZE = re.compile(r"^\s*(\d+)\s*(?:([kmgt])i?)?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def byte_size(text: str) -> int:
    """'65536', '64KiB', '64k', '1GB' → bytes (binary multiples, like supervisor)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 65536, 64KiB, 512MiB, 4GiB)")
    unit = (match.group(2) or "").lower()
    return int(match.group(1)) * _SIZE_UNITS[unit]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> float:
    """'250ms', '5s', '15m', '2h', '7d', '1w' or plain seconds → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 250ms, 30s, 15m, 2h, 7d)")
    return float(match.group(1)) * _SECONDS[(match.group(2) or "").lower()]


def bind_address(text: str) -> str:
    value = text.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)") from None
    return value


_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# The names logging itself accepts for these levels (logging.WARN, logging.FATAL): people
# type them, and `level=WARN` must not be refused where `level=error` works.
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


def log_level(text: str) -> str:
    """A level name in any case, WARN and FATAL included → its canonical name ('WARNING')."""
    value = text.strip().upper()
    value = _ALIASES.get(value, value)
    if value not in _LOG_LEVELS:
        raise ValueError(f"{text!r} is not a log level ({', '.join(sorted(_LOG_LEVELS))}, "
                         "or WARN, FATAL; any case)")
    return value


def level_number(text: str) -> int:
    """A level name ('ERROR') → its number (40)."""
    return logging.getLevelName(log_level(text))


def endpoint(text: str) -> str:
    """A ZeroMQ endpoint this appliance may use: ipc://PATH or tcp://HOST:PORT."""
    value = text.strip()
    if value.startswith("ipc://"):
        # The kernel limits unix socket paths to 107 bytes; ZeroMQ's own error is cryptic.
        if len(value[6:].encode()) > 107:
            raise ValueError(f"ipc path is longer than 107 bytes: {value[6:]!r}")
        return value
    if re.fullmatch(r"tcp://[\w.\-\[\]:*]+:\d{1,5}", value):
        return value
    raise ValueError(f"{text!r} is not an endpoint (ipc:///path or tcp://host:port)")


def text(value: str) -> str:
    return value.strip()


def at_least(convert: Callable[[str], Any], minimum: Any, shown: str) -> Callable[[str], Any]:
    """`convert`, refusing values below `minimum` (a value that would stall or spin)."""
    def checked(text: str) -> Any:
        value = convert(text)
        if value < minimum:
            raise ValueError(f"{text.strip()!r} is below the minimum of {shown}")
        return value
    return checked


def at_most(convert: Callable[[str], Any], maximum: Any) -> Callable[[str], Any]:
    """`convert`, refusing values above `maximum`."""
    def checked(text: str) -> Any:
        value = convert(text)
        if value > maximum:
            raise ValueError(f"{text.strip()!r} is above the maximum of {maximum}")
        return value
    return checked


def credentials(text: str) -> dict[str, tuple[str, str]]:
    """'name:role:secret' entries, one per line or comma-separated → {name: (role, secret)};
    role is viewer or admin. Used for [web] users (password hashes) and tokens (digests)."""
    found: dict[str, tuple[str, str]] = {}
    for entry in (part.strip() for line in text.splitlines() for part in line.split(",")):
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        role, _, secret = rest.partition(":")
        if not name or role not in ("viewer", "admin") or not secret:
            raise ValueError(f"{entry[:40]!r} is not name:role:hash with role viewer or admin "
                             "(make one with `appliance passwd NAME --role ROLE`)")
        found[name] = (role, secret)
    return found


def word_list(text: str) -> list[str]:
    """Comma- or space-separated words."""
    return [word for word in re.split(r"[\s,]+", text.strip()) if word]


def product(text: str) -> int:
    """The old neelix AGE: a whole number or a product of them ('60*60*2'), never eval'd."""
    factors = text.split("*")
    if not all(re.fullmatch(r"\s*[0-9]+\s*", factor) for factor in factors):
        raise ValueError(f"{text!r} is not a number of seconds or a product like 60*60*2")
    value = 1
    for factor in factors:
        value *= int(factor)
        if value > 10**12:
            raise ValueError(f"{text!r} is too large")
    return value


def seconds(text: str) -> float:
    """A duration ('2h', '90s') or, as the old neelix wrote it, a product ('60*60*2')."""
    return float(product(text)) if "*" in text else duration(text)


def regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text.strip())
    except re.error as error:
        raise ValueError(f"{text.strip()!r} is not a valid regular expression: {error}") \
            from None


def address_list(text: str) -> list[str]:
    """Comma-separated e-mail addresses, each with one @."""
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    if not addresses:
        raise ValueError("no address given")
    for address in addresses:
        local, at, domain = address.partition("@")
        if not at or not local or not domain or "@" in domain or \
                any(ch in address for ch in " <>;\r\n"):
            raise ValueError(f"{address!r} is not an e-mail address")
    return addresses


def clock_range(text: str) -> tuple[int, int]:
    """'02:00-04:30' → minutes of the day (start, end); end may wrap past midnight."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a time range like 02:00-04:30")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} is not a time range like 02:00-04:30")
    return h1 * 60 + m1, h2 * 60 + m2


def choice(*options: str) -> Callable[[str], str]:
    """One of `options` (case-insensitive)."""
    def convert(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"{text.strip()!r} is not one of {', '.join(options)}")
        return value
    return convert
