"""The stats files: each process publishes its counters as var/run/<name>.stats.json, replaced
atomically; /health, /metrics, /systems and `appliance status` read them. The one writer and
the one reader of that format.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 16  # a stats file is a few hundred bytes; a bigger one is not one of ours
MAX_FILES = 200      # files read at most (a forwarder each, shards, …)
STALE = 10.0         # seconds without a new file: its process is not running
LAST_EPOCH = 253402300799  # 9999-12-31: a later "time" would not format, so it is no time
FORWARDER_COUNTERS = ("behind_records", "behind_seconds", "forwarded", "failures", "skipped")


def write(var_dir: Path, name: str, counters: dict) -> None:
    """Publish a process's counters (with the time and its pid)."""
    directory = Path(var_dir) / "run"
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.stats.tmp"
    tmp.write_text(json.dumps({**counters, "time": time.time(), "pid": os.getpid()}),
                   encoding="utf-8")
    os.replace(tmp, directory / f"{name}.stats.json")


def read(var_dir: Path, name: str) -> dict[str, Any] | None:
    """One process's counters, or None when its file is missing or unreadable (being
    replaced, torn, too big, not a JSON object)."""
    return _load(Path(var_dir) / "run" / f"{name}.stats.json")


def read_all(var_dir: Path, prefix: str = "") -> dict[str, dict[str, Any] | None]:
    """Every stats file (whose name starts with `prefix`) by name, as `read` gives it."""
    try:
        paths = sorted((Path(var_dir) / "run").glob(f"{prefix}*.stats.json"))[:MAX_FILES]
    except OSError:
        return {}
    return {path.name[:-len(".stats.json")]: _load(path) for path in paths}


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(MAX_BYTES + 1)[:MAX_BYTES])
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def number(value: object) -> int | float | None:
    """A count or a duration from a stats file, or None (a bool is an int to Python, not a
    count)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -2**63 <= value < 2**63 \
            or isinstance(value, float) and math.isfinite(value):
        return value
    return None


def epoch(value: object) -> float | None:
    """A plausible epoch time, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and 0 <= value <= LAST_EPOCH:
        return float(value)
    return None


def forwarder_links(var_dir: Path, now: float | None = None) -> list[dict]:
    """Each forwarder's last stats file by name: link up, how far behind, counters, and
    `stale` when the file is older than STALE seconds (or unreadable): its process is not
    running, so the numbers are not current."""
    now = time.time() if now is None else now
    links = []
    for name, stats in read_all(var_dir, "forwarder-").items():
        stats = stats or {}
        written = epoch(stats.get("time"))
        link_up = stats.get("link_up")
        links.append({
            "name": name[len("forwarder-"):],
            "link_up": link_up if isinstance(link_up, bool) else None,
            **{key: number(stats.get(key)) for key in FORWARDER_COUNTERS}, "time": written,
            "stale": written is None or now - written > STALE})
    return links
