"""Streamed exports of the records a query matches: CSV (cells that would run as a formula in
a spreadsheet kept as text) and NDJSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from appliance.spine.record import COLUMNS


def spreadsheet_safe(value: object) -> object:
    """A text cell starting like a formula would run in a spreadsheet: make it plain text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_csv(first: dict | None, rows: Iterator[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("id", *COLUMNS))
    for row in ([first] if first else []):
        writer.writerow([row["id"], *(spreadsheet_safe(row[c]) for c in COLUMNS)])
    for row in rows:
        writer.writerow([row["id"], *(spreadsheet_safe(row[c]) for c in COLUMNS)])
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_ndjson(first: dict | None, rows: Iterator[dict]) -> Iterator[str]:
    if first is not None:
        yield json.dumps(first, ensure_ascii=False) + "\n"
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"
