"""The reactions a notice can cause: a mail (SMTP), a webhook (HTTP POST of JSON), an alert
record sent back through the ingestor, or a command (argv, no shell).

Each `send_*` delivers one notice or raises DeliveryError saying whether a retry can help;
`delivery.py` calls them from its per-action threads and keeps the outbox.
"""

from __future__ import annotations

import http.client
import json
import logging
import logging.handlers
import os
import smtplib
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from appliance.actions import Action
from appliance.notice import Notice

ALERT_LOGGER = "appliance.neelix"  # neelix never matches its own alert records
ERROR_TAIL = 300


class DeliveryError(Exception):
    """A notice was not delivered; `permanent` means retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Context:
    """What reactions need from the appliance's own config."""

    instance: str
    ingest_host: str
    ingest_port: int
    url: str  # the web viewer, for links in notices
    secrets: frozenset[str] = frozenset()  # password_env variables: never given to commands


def send(action: Action, notice: Notice, alert_id: int, context: Context) -> None:
    sender = {"mail": send_mail, "webhook": send_webhook, "record": send_record,
              "command": send_command}[action.type]
    sender(action, notice, alert_id, context)


def send_mail(action: Action, notice: Notice, alert_id: int, context: Context) -> None:
    o = action.options
    url = _link(notice, context)
    message = EmailMessage()
    message["Subject"] = notice.subject(o.get("subject"), url)
    message["From"] = o["from"]
    message["To"] = ", ".join(o["to"])
    message["Date"] = formatdate(localtime=False)
    # The same id on a retry lets mail clients fold a rare duplicate (sent, then killed
    # before the outbox row said so).
    message["Message-ID"] = f"<herald-alert-{alert_id}.{_safe(context.instance)}@herald>"
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
        raise DeliveryError(f"every recipient refused: {error.recipients}", True) from None
    except smtplib.SMTPAuthenticationError as error:
        raise DeliveryError(f"SMTP login refused: {error.smtp_code}", True) from None
    except smtplib.SMTPResponseException as error:
        permanent = 500 <= error.smtp_code < 600
        raise DeliveryError(f"SMTP {error.smtp_code} {error.smtp_error!r}", permanent) \
            from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"SMTP {o['host']}:{o['port']}: {error}") from None


def _password(options: dict) -> str:
    if options.get("password_env"):
        value = os.environ.get(options["password_env"])
        if value is None:
            raise DeliveryError(f"environment variable {options['password_env']} is not set",
                                True)
        return value
    try:
        return Path(options["password_file"]).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise DeliveryError(f"cannot read password_file: {error.strerror}", True) from None


def send_webhook(action: Action, notice: Notice, alert_id: int, context: Context) -> None:
    o = action.options
    url = _link(notice, context)
    if o.get("format") == "slack":
        payload: dict = {"text": notice.subject(None, url)[len("[herald] "):] +
                         (f"\n<{url}|open in herald>" if url else "")}
    else:
        payload = {"id": alert_id, "instance": context.instance, "event": notice.event,
                   "source": notice.source, "key": notice.key, "system": notice.system,
                   "time": notice.time, "count": notice.count,
                   "suppressed": notice.suppressed, "since": notice.since,
                   "summary": notice.summary, "record": notice.record, "url": url}
    # _url in rulebook admits http:// and https:// only.
    request = urllib.request.Request(  # noqa: S310
        o["url"], data=json.dumps(payload, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "herald-neelix",
                 "Idempotency-Key": f"herald-alert-{alert_id}-{context.instance}"})
    try:
        with _NO_REDIRECTS.open(request, timeout=o.get("timeout", 10.0)) as response:
            response.read(65536)
    except urllib.error.HTTPError as error:
        permanent = 400 <= error.code < 500 and error.code not in (408, 425, 429)
        raise DeliveryError(f"webhook {_where(o['url'])} answered HTTP {error.code}",
                            permanent) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        # Only scheme and host: a webhook URL's path is often its secret (Slack and co.).
        raise DeliveryError(f"webhook {_where(o['url'])}: {error}") from None


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the notice: count it as a failure."""

    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def send_record(action: Action, notice: Notice, alert_id: int, context: Context) -> None:
    """An alert record to this appliance's ingestor: it lands in the table and travels
    upstream like any record."""
    o = action.options
    try:
        send_alert_record(context.ingest_host, context.ingest_port, ALERT_LOGGER,
                          o.get("level", logging.WARNING), notice.summary,
                          {"SYSTEM_ID": o.get("system_id", "neelix"), "alert_id": alert_id,
                           "alert_event": notice.event, "alert_source": notice.source,
                           "alert_key": notice.key, "alert_system": notice.system})
    except OSError as error:
        raise DeliveryError(f"ingestor {context.ingest_host}:{context.ingest_port}: "
                            f"{error}") from None


def send_alert_record(host: str, port: int, logger: str, level: int, message: str,
                      fields: dict[str, object], timeout: float = 10.0) -> None:
    """One record in the SocketHandler wire format to an ingestor; raises OSError."""
    record = logging.LogRecord(logger, level, __file__, 0, "%s", (message,), None)
    record.SUB_SYSTEM_ID = socket.gethostname()
    for name, value in fields.items():
        setattr(record, name, value)
    frame = logging.handlers.SocketHandler(host, port).makePickle(record)
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(frame)
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)  # the ingestor closes once it has read the frame


def send_command(action: Action, notice: Notice, alert_id: int, context: Context) -> None:
    o = action.options
    env = {**{k: v for k, v in os.environ.items() if k not in context.secrets},
           "HERALD_ALERT_ID": str(alert_id), "HERALD_EVENT": notice.event,
           "HERALD_SOURCE": notice.source, "HERALD_SYSTEM": notice.system or "",
           "HERALD_SUMMARY": notice.summary}
    try:
        done = subprocess.run(list(o["command"]), input=notice.to_json().encode(),
                              capture_output=True, timeout=o.get("timeout", 30.0), env=env,
                              check=False)
    except FileNotFoundError:
        raise DeliveryError(f"command not found: {o['command'][0]}", True) from None
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"command timed out after {o.get('timeout', 30.0)}s") from None
    except OSError as error:
        raise DeliveryError(f"command failed to start: {error}") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        raise DeliveryError(f"command exited {done.returncode}: {stderr[-ERROR_TAIL:]}")


def _link(notice: Notice, context: Context) -> str:
    if not context.url:
        return ""
    query = {"system_id": notice.system} if notice.system else {}
    return f"{context.url.rstrip('/')}/?{urlencode(query)}" if query else context.url


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[:64]
