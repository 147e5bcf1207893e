"""Deleting old SQLite records in short batches, so readers and writers never wait long: used
by the SQLite engine's retention and admin purge (PostgreSQL's are in postgres_engine.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

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
