"""The level histogram of a query over its time range: bucket plan and a server-rendered SVG.

Pure functions; every text that reaches the SVG goes through html.escape (the template shows
the SVG as markup, so this module is where escaping is decided).
"""

from __future__ import annotations

import html
import math
import time
from urllib.parse import urlencode

from appliance.store.query import Query

BUCKETS = 60
HOUR = 3600.0
DEFAULT_SPAN = 24 * 3600.0  # without `since`: the last day
GROUPS = (("debug/info", 0, 29, "#8aa4c8"), ("warning", 30, 39, "#e0a030"),
          ("error+", 40, 1000, "#c83c3c"))
WIDTH, HEIGHT = 900, 90


def plan(query: Query, now: float) -> tuple[float, float, int]:
    """(start, bucket width, buckets) covering the query's time range. Buckets that would be
    20 minutes or wider become whole hours (the default day: 24 of them), so they can be
    answered from the writer's hourly counts."""
    end = query.until if query.until is not None else now
    start = query.since if query.since is not None else end - DEFAULT_SPAN
    if end <= start:
        end = start + 60
    width = max((end - start) / BUCKETS, 0.001)
    if width < HOUR / 3:
        return start, width, BUCKETS
    width = math.ceil(width / HOUR) * HOUR
    start = math.floor(start / HOUR) * HOUR
    return start, width, max(1, math.ceil((end - start) / width))


def grouped(counts: list[dict[int, int]]) -> list[list[int]]:
    """Per bucket, the counts of each level group in GROUPS."""
    return [[sum(n for level, n in bucket.items() if low <= level <= high)
             for _name, low, high, _colour in GROUPS] for bucket in counts]


def svg(counts: list[dict[int, int]], start: float, width: float, params: dict) -> str:
    """Stacked bars, one per bucket; each bar links to the same filters narrowed to it."""
    bars = grouped(counts)
    tallest = max((sum(bar) for bar in bars), default=0) or 1
    slot = WIDTH / len(bars)
    parts = [f'<svg id="histogram" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" height="{HEIGHT}" role="img">']
    for index, bar in enumerate(bars):
        total = sum(bar)
        if not total:
            continue
        since = start + index * width
        narrowed = {**params, "since": f"{since:.3f}", "until": f"{since + width:.3f}"}
        narrowed.pop("before", None)
        narrowed.pop("after", None)
        label = (f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(since))} UTC: "
                 + ", ".join(f"{n} {group[0]}" for n, group in zip(bar, GROUPS, strict=True)
                             if n))
        parts.append(f'<a class="bar" href="/?{html.escape(urlencode(narrowed))}">'
                     f"<title>{html.escape(label)}</title>")
        y = float(HEIGHT)
        for n, (_name, _low, _high, colour) in zip(bar, GROUPS, strict=True):
            if n:
                h = HEIGHT * n / tallest
                y -= h
                parts.append(f'<rect x="{index * slot:.1f}" y="{y:.1f}" '
                             f'width="{max(slot - 1, 1):.1f}" height="{h:.1f}" fill="{colour}"/>')
        parts.append("</a>")
    parts.append("</svg>")
    return "".join(parts)
