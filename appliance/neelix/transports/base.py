"""What every transport shares: the error it raises, the appliance facts it needs, and the
notice's link into the web viewer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from appliance.neelix.notice import Notice


class TransportError(Exception):
    """A notice was not delivered; `permanent` means retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Context:
    """What transports need from the appliance's own config."""

    instance: str
    ingest_host: str
    ingest_port: int
    url: str  # the web viewer, for links in notices
    secrets: frozenset[str] = frozenset()  # password_env variables: never given to commands


# send(options of the action, the notice, the alert's id, context); raises TransportError
Send = Callable[[dict[str, Any], Notice, int, Context], None]


@dataclass(frozen=True)
class Transport:
    """One action type: the options its [action:NAME] section takes, those it must have,
    and how it sends."""

    options: dict[str, Callable[[str], Any]]
    required: tuple[str, ...]
    send: Send


def link(notice: Notice, context: Context) -> str:
    """The record that made the notice (its detail page, found by origin and seq: neelix
    sees a record before the writer gives it an id); for a heartbeat, the system's records."""
    if not context.url:
        return ""
    base = context.url.rstrip("/")
    origin, seq = notice.record.get("origin"), notice.record.get("seq")
    if origin and seq is not None:
        return f"{base}/record/{quote(str(origin), safe='')}/{int(seq)}"
    query = {"system_id": notice.system} if notice.system else {}
    return f"{base}/?{urlencode(query)}" if query else context.url


def safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[:64]
