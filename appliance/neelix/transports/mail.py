"""The mail transport: a notice as a mail over SMTP (plain, STARTTLS or TLS, optional login)."""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from string import Template
from typing import Any

from appliance import converters as c
from appliance.neelix.notice import TEMPLATE_FIELDS, Notice
from appliance.neelix.transports.base import Context, TransportError, link, safe

SECURITY = ("none", "starttls", "tls")


def template(text: str) -> Template:
    """A subject or body template: ${field} for any notice field."""
    parsed = Template(text.replace("\\n", "\n"))
    if not parsed.is_valid():
        raise ValueError("not a valid template (write fields as ${name}, a $ as $$)")
    unknown = set(parsed.get_identifiers()) - set(TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(TEMPLATE_FIELDS)}")
    return parsed


OPTIONS = {"to": c.address_list, "from": c.text, "host": c.text, "port": c.port_number,
           "security": c.choice(*SECURITY), "user": c.text, "password_env": c.text,
           "password_file": c.text, "timeout": c.duration, "subject": template,
           "body": template}


def send(o: dict[str, Any], notice: Notice, alert_id: int, context: Context) -> None:
    url = link(notice, context)
    message = EmailMessage()
    message["Subject"] = notice.subject(o.get("subject"), url)
    message["From"] = o["from"]
    message["To"] = ", ".join(o["to"])
    message["Date"] = formatdate(localtime=False)
    # The same id on a retry lets mail clients fold a rare duplicate (sent, then killed
    # before the outbox row said so). A DOWN's id comes from its incident, so the RECOVERED
    # that ends it can answer it and mail clients show the two as one thread.
    if notice.event == "down":
        message["Message-ID"] = incident_id(notice, notice.time, o["to"], context)
    else:
        message["Message-ID"] = f"<herald-alert-{alert_id}.{safe(context.instance)}@herald>"
    if notice.event == "recovered" and notice.since is not None:
        down = incident_id(notice, notice.since, o["to"], context)
        message["In-Reply-To"] = down
        message["References"] = down
    message.set_content(notice.body(o.get("body"), url))
    timeout = o.get("timeout", 10.0)
    security = o.get("security", "none")
    try:
        if security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(o["host"], o["port"], timeout=timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(o["host"], o["port"], timeout=timeout)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if o.get("user"):
                smtp.login(o["user"], _password(o))
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        raise TransportError(f"every recipient refused: {error.recipients}", True) from None
    except smtplib.SMTPAuthenticationError as error:
        raise TransportError(f"SMTP login refused: {error.smtp_code}", True) from None
    except smtplib.SMTPResponseException as error:
        permanent = 500 <= error.smtp_code < 600
        raise TransportError(f"SMTP {error.smtp_code} {error.smtp_error!r}", permanent) \
            from None
    except (smtplib.SMTPException, OSError) as error:
        raise TransportError(f"SMTP {o['host']}:{o['port']}: {error}") from None


def incident_id(notice: Notice, down_since: float, to: list[str], context: Context) -> str:
    """The Message-ID of the DOWN mail of one incident (heartbeat, system, the moment it went
    down) to these recipients: the DOWN has it, its RECOVERED refers to it."""
    key = "\0".join((notice.source, notice.system or notice.key, f"{down_since:.3f}", *to))
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return f"<herald-down-{digest}.{safe(context.instance)}@herald>"


def _password(options: dict) -> str:
    if options.get("password_env"):
        value = os.environ.get(options["password_env"])
        if value is None:
            raise TransportError(f"environment variable {options['password_env']} is not set",
                                 True)
        return value
    try:
        return Path(options["password_file"]).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise TransportError(f"cannot read password_file: {error.strerror}", True) from None
