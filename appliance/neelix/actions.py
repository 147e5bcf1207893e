"""neelix's [action:NAME] sections checked into an Action: plain data naming its transport
(the action's `type`) and that transport's options, which the couriers send with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance import converters as c
from appliance.neelix.transports import TRANSPORTS


@dataclass(frozen=True)
class Action:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    retry_for: float = 86400.0
    retries: int = 0  # tries at most (0: as many as fit in retry_for)


@dataclass(frozen=True)
class Defaults:
    """What [neelix] in appliance.ini gives every mail action (and the old format's mail)."""

    smtp_host: str = "localhost"
    smtp_port: int = 25
    mail_from: str = "neelix@localhost"
    retry_for: float = 86400.0


COMMON_ACTION_KEYS = {"type": c.choice(*TRANSPORTS), "retry_for": c.duration,
                      "retries": c.natural_int}


def parse_action(reader: Any, name: str, defaults: Defaults) -> Action:
    """One [action:NAME] section; `reader` is rulebook's section reader."""
    kind = reader.items.get("type", "").strip().lower()
    if kind not in TRANSPORTS:
        reader.fail(f"type must be one of {', '.join(TRANSPORTS)}", "type")
    transport = TRANSPORTS[kind]
    v = reader.typed({**COMMON_ACTION_KEYS, **transport.options})
    for key in transport.required:
        if key not in v:
            reader.fail(f"a {kind} action needs {key}", key)
    if kind == "mail":
        v.setdefault("host", defaults.smtp_host)
        v.setdefault("port", defaults.smtp_port)
        v.setdefault("from", defaults.mail_from)
        if "user" in v and not ("password_env" in v or "password_file" in v):
            reader.fail("user needs password_env or password_file (never the password "
                        "itself in this file)", "user")
        if "user" in v and v.get("security", "none") == "none":
            reader.fail("a login needs security = starttls or tls (the password would "
                        "cross the network in clear)", "security")
        for key in ("from", "host", "user"):
            if any(ch in str(v.get(key, "")) for ch in "\r\n"):
                reader.fail("one line only", key)
    retry_for = v.pop("retry_for", defaults.retry_for)
    retries = v.pop("retries", 0)
    v.pop("type")
    return Action(name=name, type=kind, options=v, retry_for=retry_for, retries=retries)
