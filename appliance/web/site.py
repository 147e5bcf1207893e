"""What every view of the web viewer shares: the stores it reads, access control, page
rendering, and the checking of a request's record filters (one place turns a bad parameter
into a 400)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import bottle

from appliance.neelix.history import AlertHistory
from appliance.store.query import EQUALITY_FIELDS, LEVELS, Query, QueryError, parse
from appliance.store.reader import RecordStore
from appliance.web.access import Access

HERE = Path(__file__).resolve().parent
TEMPLATES = [str(HERE / "templates")]
STATIC = str(HERE / "static")


@dataclass
class Site:
    store: RecordStore
    alerts: AlertHistory
    access: Access
    purge: Callable[[float], int] | None = None
    var_dir: Path | None = None  # where the forwarders' stats files are (var/run)
    stage: str = ""     # shown on every page, so a DEVELOPMENT tab never passes for PRODUCTION
    instance: str = ""

    def render(self, name: str, **values: object) -> str:
        return bottle.template(name, template_lookup=TEMPLATES, levels=LEVELS,
                               fields=EQUALITY_FIELDS, fmt_time=fmt_time, urlencode=urlencode,
                               user=bottle.request.environ.get("herald.user"),
                               csrf=self.access.csrf(), stage=self.stage,
                               instance=self.instance, **values)

    def checked(self, params: dict[str, str]) -> Query:
        """Parameters → a query, or 400; the search's syntax is checked here, once."""
        try:
            query = parse(params)
            if query.text:
                self.store.check_search(query.text)
        except QueryError as error:
            raise bottle.HTTPError(400, str(error)) from None
        return query


def request_params() -> dict[str, str]:
    return dict(bottle.request.query.decode().allitems())


def shown_params() -> dict[str, str]:
    """The request's parameters that have a value (for links that keep the filters)."""
    return {k: v for k, v in request_params().items() if v}


def fmt_time(epoch: float | None) -> str:
    """UTC to the nearest millisecond (hops keep ms); a time beyond the calendar as the number
    it is (a relay checks only that a downstream's times are finite)."""
    if epoch is None:
        return ""
    try:
        seconds, millis = divmod(round(epoch * 1000), 1000)
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seconds))}.{millis:03d}"
    except (OverflowError, OSError, ValueError):
        return str(epoch)


def pretty_extra(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text
