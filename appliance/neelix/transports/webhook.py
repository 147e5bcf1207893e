"""The webhook transport: a notice as an HTTP POST of JSON (or Slack's message format)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from appliance import converters as c
from appliance.neelix.notice import Notice
from appliance.neelix.transports.base import Context, TransportError, link


def url(text: str) -> str:
    value = text.strip()
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


OPTIONS = {"url": url, "timeout": c.duration, "format": c.choice("json", "slack")}


def send(o: dict[str, Any], notice: Notice, alert_id: int, context: Context) -> None:
    target = link(notice, context)
    if o.get("format") == "slack":
        payload: dict = {"text": notice.subject(None, target)[len("[herald] "):] +
                         (f"\n<{target}|open in herald>" if target else "")}
    else:
        payload = {"id": alert_id, "instance": context.instance, "event": notice.event,
                   "source": notice.source, "key": notice.key, "system": notice.system,
                   "time": notice.time, "count": notice.count,
                   "suppressed": notice.suppressed, "since": notice.since,
                   "summary": notice.summary, "record": notice.record, "url": target}
    # url() above admits http:// and https:// only.
    request = urllib.request.Request(  # noqa: S310
        o["url"], data=json.dumps(payload, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "herald-neelix",
                 "Idempotency-Key": f"herald-alert-{alert_id}-{context.instance}"})
    try:
        with _NO_REDIRECTS.open(request, timeout=o.get("timeout", 10.0)) as response:
            response.read(65536)
    except urllib.error.HTTPError as error:
        permanent = 400 <= error.code < 500 and error.code not in (408, 425, 429)
        raise TransportError(f"webhook {_where(o['url'])} answered HTTP {error.code}",
                             permanent) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        # Only scheme and host: a webhook URL's path is often its secret (Slack and co.).
        raise TransportError(f"webhook {_where(o['url'])}: {error}") from None


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the notice: count it as a failure."""

    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)


def _where(address: str) -> str:
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
