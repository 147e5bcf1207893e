"""Journal retention: subscribers leave cursor files, the ingestor deletes passed segments.

A segment goes when every cursor has passed it and it is older than the keep time, or when the
journal is over its size cap; then the records not yet processed are logged loudly and counted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from appliance.spine.journal import segment_paths

log = logging.getLogger(__name__)


def write_cursor(journal_dir: Path, name: str, seq: int) -> None:
    """Record how far subscriber `name` has durably got (a hint for retention only: the
    authoritative cursor lives with the subscriber's effect)."""
    directory = Path(journal_dir) / "cursors"
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.tmp"
    tmp.write_text(f"{seq}\n", encoding="utf-8")
    os.replace(tmp, directory / name)


def read_cursors(journal_dir: Path) -> dict[str, int]:
    cursors = {}
    for path in (Path(journal_dir) / "cursors").glob("[!.]*"):
        try:
            cursors[path.name] = int(path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            # Holding everything back is safer than deleting what that subscriber needs.
            log.warning("journal: unreadable cursor file %s, treated as seq 0", path)
            cursors[path.name] = 0
    return cursors


@dataclass
class PruneResult:
    deleted: list[str] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)  # records a cursor never got, by name


def prune(journal_dir: Path, keep: float, max_bytes: int, now: float) -> PruneResult:
    """Delete the segments retention allows; never the newest (it holds the seq state)."""
    result = PruneResult()
    segments = segment_paths(Path(journal_dir) / "segments")
    if len(segments) < 2:
        return result
    cursors = read_cursors(journal_dir)
    slowest = min(cursors.values()) if cursors else 0
    sizes = {path: _size(path) for _, path in segments}
    total = sum(sizes.values())
    for (first, path), (next_first, _) in zip(segments, segments[1:], strict=False):
        last = next_first - 1
        passed = bool(cursors) and slowest >= last
        expired = now - _mtime(path) >= keep
        over_cap = total > max_bytes
        if not (over_cap or (passed and expired)):
            break  # segments go oldest first
        if not passed:
            behind = {name: last - max(seq, first - 1) for name, seq in cursors.items()
                      if seq < last}
            for name, count in behind.items():
                result.lost[name] = result.lost.get(name, 0) + count
            log.error("journal over its cap (%d > %d bytes): deleted %s holding seq %d-%d, "
                      "which these subscribers had not processed: %s", total, max_bytes,
                      path.name, first, last,
                      ", ".join(f"{n} ({c} records)" for n, c in behind.items()) or "none")
        path.unlink(missing_ok=True)
        total -= sizes[path]
        result.deleted.append(path.name)
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
