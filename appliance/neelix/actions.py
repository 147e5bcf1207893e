"""neelix's [action:NAME] sections: what a mail, webhook, record or command action may say,
checked into an Action (plain data that reactions.py delivers with).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from string import Template
from typing import Any

from appliance import converters as c
from appliance.notice import TEMPLATE_FIELDS

ACTION_TYPES = ("mail", "webhook", "record", "command")
SECURITY = ("none", "starttls", "tls")


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


def _template(text: str) -> Template:
    template = Template(text.replace("\\n", "\n"))
    if not template.is_valid():
        raise ValueError("not a valid template (write fields as ${name}, a $ as $$)")
    unknown = set(template.get_identifiers()) - set(TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(TEMPLATE_FIELDS)}")
    return template


def _url(text: str) -> str:
    value = text.strip()
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def _argv(text: str) -> tuple[str, ...]:
    argv = tuple(shlex.split(text))
    if not argv:
        raise ValueError("empty command")
    return argv


COMMON_ACTION_KEYS = {"type": c.choice(*ACTION_TYPES), "retry_for": c.duration,
                      "retries": c.natural_int}
ACTION_KEYS = {
    "mail": {"to": c.address_list, "from": c.text, "host": c.text, "port": c.port_number,
             "security": c.choice(*SECURITY), "user": c.text, "password_env": c.text,
             "password_file": c.text, "timeout": c.duration, "subject": _template,
             "body": _template},
    "webhook": {"url": _url, "timeout": c.duration, "format": c.choice("json", "slack")},
    "record": {"level": c.level_number, "system_id": c.text},
    "command": {"command": _argv, "timeout": c.duration},
}
ACTION_REQUIRED = {"mail": ("to",), "webhook": ("url",), "record": (), "command": ("command",)}


def parse_action(reader: Any, name: str, defaults: Defaults) -> Action:
    """One [action:NAME] section; `reader` is rulebook's section reader."""
    kind = reader.items.get("type", "").strip().lower()
    if kind not in ACTION_TYPES:
        reader.fail(f"type must be one of {', '.join(ACTION_TYPES)}", "type")
    v = reader.typed({**COMMON_ACTION_KEYS, **ACTION_KEYS[kind]})
    for key in ACTION_REQUIRED[kind]:
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
