"""Deleting old records in short batches, so readers and writers never wait long: used by
the writer's retention and the web's admin purge.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

OLDER_THAN = "SELECT id FROM record WHERE received < ? ORDER BY received LIMIT ?"
UP_TO_ID = "SELECT id FROM record WHERE id <= ? ORDER BY id LIMIT ?"


def delete_in_batches(db: sqlite3.Connection, select_ids: str, bound: float,
                      batch: int, progress: Callable[[int], None] | None = None) -> int:
    """Delete the rows `select_ids` (one of the constants above) picks, `batch` at a time,
    each in its own IMMEDIATE transaction (the FTS index follows through its trigger);
    `progress` hears the running count after each."""
    deleted = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            count = db.execute(f"DELETE FROM record WHERE id IN ({select_ids})",  # noqa: S608
                               (bound, batch)).rowcount
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        deleted += count
        if progress is not None:
            progress(deleted)
        if count < batch:
            return deleted


def count_older_than(path: Path, cutoff: float) -> int:
    """How many records a purge at `cutoff` deletes (the received index counts them)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM record WHERE received < ?",
                          (cutoff,)).fetchone()[0]
    finally:
        db.close()


def purge_older_than(path: Path, cutoff: float, batch: int,
                     progress: Callable[[int], None] | None = None) -> int:
    """The admin purge (web and command line): its own short-lived write connection."""
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        return delete_in_batches(db, OLDER_THAN, cutoff, batch, progress)
    finally:
        db.close()
