"""The records views: the table with its histogram, one record's page, and the JSON API over
the same queries (pages, one record, filter options, histogram, exports). Page and API share
each piece of work: the record lookup, the histogram plan and counts, the page cursors."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import bottle

from appliance.store.query import MAX_ID, Query, fetches_descending
from appliance.store.reader import record_path
from appliance.web import histogram
from appliance.web.export import export_csv, export_ndjson
from appliance.web.site import Site, pretty_extra, request_params, shown_params

EXPORT_LIMIT = 100_000


class RecordViews:
    def __init__(self, site: Site) -> None:
        self.site = site

    # pages ----------------------------------------------------------------------------
    def table(self) -> str:
        query = self.site.checked(request_params())
        rows, more = self.site.store.page(query)
        params = {k: v for k, v in shown_params().items() if k not in ("before", "after")}
        older, newer = page_links(query, rows, more)
        start, width, counts = self.counts(query)
        return self.site.render("records", rows=rows, older=older, newer=newer, query=query,
                                params=params, options=self.site.store.options(),
                                chart=histogram.svg(counts, start, width, params))

    def detail(self, record_id: int) -> str:
        record = self.lookup(record_id)
        newer, older = self.site.store.around(record)
        return self.site.render("record", record=record, extra=pretty_extra(record["extra"]),
                                path=record_path(record["hops"]), newer=newer, older=older)

    def by_seq(self, origin: str, seq: int) -> None:
        """/record/ORIGIN/SEQ, the link in neelix's notices: on to the record's page."""
        record_id = self.site.store.record_id(origin, seq) if seq <= MAX_ID else None
        if record_id is None:
            raise bottle.HTTPError(404, f"no record {seq} of {origin} (yet: the writer may "
                                   "be behind; reload in a moment)")
        bottle.redirect(f"/record/{record_id}", 303)

    # API ------------------------------------------------------------------------------
    def api_page(self) -> dict:
        query = self.site.checked(request_params())
        rows, more = self.site.store.page(query)
        next_page = None
        if more and rows:  # the next page in the direction this one was read
            ids = [row["id"] for row in rows]
            next_page = {"before": min(ids)} if fetches_descending(query) \
                else {"after": max(ids)}
        return {"records": rows, "next": next_page}

    def api_record(self, record_id: int) -> dict:
        record = self.lookup(record_id)
        return {**record, "path": record_path(record["hops"])}

    def api_options(self) -> dict:
        return self.site.store.options()

    def api_histogram(self) -> dict:
        start, width, counts = self.counts(self.site.checked(request_params()))
        return {"start": start, "width": width, "groups": [g[0] for g in histogram.GROUPS],
                "buckets": histogram.grouped(counts)}

    def api_export(self, kind: str) -> Iterator[str]:
        params = request_params()
        limit = params.pop("limit", str(EXPORT_LIMIT))
        query = self.site.checked(params)
        count = int(limit) if re.fullmatch(r"[0-9]{1,7}", limit) else -1
        if not 1 <= count <= EXPORT_LIMIT:
            raise bottle.HTTPError(400, f"limit must be between 1 and {EXPORT_LIMIT} for exports")
        rows = self.site.store.export(query, count)
        first = next(rows, None)
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="herald-records.{kind}"')
        if kind == "csv":
            bottle.response.content_type = "text/csv; charset=utf-8"
            return export_csv(first, rows)
        bottle.response.content_type = "application/x-ndjson"
        return export_ndjson(first, rows)

    # shared work ----------------------------------------------------------------------
    def lookup(self, record_id: int) -> dict:
        record = self.site.store.record(record_id) if record_id <= MAX_ID else None
        if record is None:
            raise bottle.HTTPError(404, f"no record {record_id}")
        return record

    def counts(self, query: Query) -> tuple[float, float, list[dict[int, int]]]:
        """The histogram of a query: (start, bucket width, counts per bucket and level)."""
        start, width, buckets = histogram.plan(query, time.time())
        return start, width, self.site.store.level_counts(query, start, width, buckets)


def page_links(query: Query, rows: list[dict], more: bool) -> tuple[int | None, int | None]:
    """The cursors of the older (before=) and newer (after=) pages, None where nothing lies:
    `more` speaks of the direction the page was read in; a cursor means the other side has
    records too."""
    if not rows:  # past the end: offer the way back
        return (query.after + 1 if query.after is not None else None,
                query.before - 1 if query.before is not None else None)
    ids = [row["id"] for row in rows]
    down = fetches_descending(query)
    cursor = query.before is not None or query.after is not None
    older = min(ids) if (more if down else cursor) else None
    newer = max(ids) if (cursor if down else more) else None
    return older, newer
