"""The writer: a subscriber that stores every record of its shard in the herald store
(SQLite or PostgreSQL, through store.engine).

Rows and the cursor go in one transaction; while the database is away it waits and retries
(the journal holds the records); retention deletes old rows in short transactions.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from appliance.errors import ApplianceError
from appliance.runtime import Every, StopFlag, start_process
from appliance.spine import stats
from appliance.spine.subscriber import Shard, SubscriberLoop
from appliance.store import schema
from appliance.store.engine import Engine, open_store
from appliance.store.sqlite_engine import SqliteEngine
from appliance.store.url import SQLITE, StoreUnavailable, StoreUrl

T = TypeVar("T")

log = logging.getLogger(__name__)


class StoreFailed(ApplianceError):
    """The database could not store a batch and the process is asked to stop."""


class DatabaseSink:
    """Applies batches to the store (SQLite or PostgreSQL, through store.engine)."""

    def __init__(self, name: str, keep: float, max_rows: int, retention_interval: float,
                 delete_batch: int, retention_owner: bool,
                 should_stop: Callable[[], bool] = lambda: False,
                 var_dir: Path | None = None, engine: Engine | None = None) -> None:
        self.name, self.should_stop = name, should_stop
        self.keep, self.max_rows, self.delete_batch = keep, max_rows, delete_batch
        self.retention_owner = retention_owner
        self._retention = Every(retention_interval)
        self.rejected = self.duplicates = self.last_rejected = self.write_failures = 0
        self.written = 0
        self.var_dir = var_dir
        self._stats = Every(2.0)
        # without one: the SQLite file schema.open_database bound (unit tests)
        self.engine: Engine = engine or SqliteEngine(StoreUrl(SQLITE, path=Path(
            schema.database.database)))

    def load_cursor(self, origin: str) -> int:
        return self._retrying(lambda: self.engine.load_cursor(self.name, origin),
                              f"cursor of {origin}")

    def apply(self, records: list[list], origin: str, last_seq: int) -> None:
        """Store a batch and move the cursor in one transaction. When the database cannot
        write (locked by another shard past the busy timeout, disk full, I/O error, the
        server away), nothing is committed: wait and try the whole batch again, so the
        cursor never passes a row that is not stored."""
        def store() -> int:
            self.last_rejected = 0
            return self.engine.store_batch(records, (self.name, origin, last_seq), self._reject)
        inserted = self._retrying(store, f"the batch up to seq {last_seq}")
        self.written += inserted
        already = len(records) - inserted - self.last_rejected
        if already:
            self.duplicates += already
            log.warning("%s: %d records were already stored (same origin and seq)", self.name,
                        already)

    def _retrying(self, step: Callable[[], T], what: str) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return step()
            except Exception as error:
                if not self.engine.transient(error):
                    raise  # e.g. a missing table: a restart re-creates the schema
                self.write_failures += 1
                if self.should_stop():
                    raise StoreFailed(f"stopping with {what} not stored: {error}") from error
                delay = min(2 ** min(attempt - 1, 5), 30)
                log.error("%s: the store %s cannot store %s (%s); the journal keeps the "
                              "records, retrying in %ds (attempt %d)", self.name,
                              self.engine.url.display, what, _one_line(error), delay, attempt)
                _sleep(delay, self.should_stop)

    def _reject(self, values: list, error: BaseException) -> None:
        self.last_rejected += 1
        self.rejected += 1
        log.error("%s: record seq %s rejected by the database: %s", self.name, values[0],
                  _one_line(error))

    def tick(self, live: bool) -> None:
        if self.retention_owner and self._retention.due():
            self.run_retention(time.time())
        if self.var_dir is not None and self._stats.due():
            stats.write(self.var_dir, self.name, {
                "written": self.written, "duplicates": self.duplicates,
                "rejected": self.rejected, "write_failures": self.write_failures})

    def run_retention(self, now: float) -> int:
        """Delete rows past the keep time or over the row cap, in short transactions."""
        cutoff = now - self.keep if self.keep > 0 else None
        deleted = self._retrying(lambda: self.engine.retention(
            cutoff, self.max_rows, self.delete_batch), "retention")
        if deleted:
            log.info("%s: retention deleted %d records", self.name, deleted)
        return deleted


def _one_line(error: BaseException) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) \
        or type(error).__name__


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Wait, but wake for a stop within a tenth of a second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not should_stop():
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


def open_writing(engine: Engine, should_stop: Callable[[], bool]) -> bool:
    """Connect and make or upgrade the schema, retrying with backoff while the database is
    away (one line per try, naming the URL without the password). False if asked to stop."""
    attempt = 0
    while not should_stop():
        attempt += 1
        try:
            engine.open(create=True)
            if attempt > 1:
                log.info("the store %s is back after %d attempts", engine.url.display, attempt)
            return True
        except StoreUnavailable as error:
            delay = min(2 ** min(attempt - 1, 5), 30)
            log.error("%s; retrying in %ds", error, delay)
            _sleep(delay, should_stop)
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appliance writer", description=__doc__)
    parser.add_argument("--shard", type=Shard.parse, default=Shard(), help="K/N, e.g. 0/2")
    args, config = start_process(parser, argv)
    stop = StopFlag()
    settings = config.writer
    engine = open_store(config.store.url, config.store.admin_url)
    if not open_writing(engine, lambda: bool(stop)):
        return
    name = f"writer-{args.shard.label}"
    sink = DatabaseSink(name, settings.keep, settings.max_rows, settings.retention_interval,
                        settings.delete_batch, retention_owner=args.shard.index == 0,
                        should_stop=lambda: bool(stop), var_dir=config.appliance.var_dir,
                        engine=engine)
    loop = SubscriberLoop("writer", config.journal.dir, config.ingestor.publish, sink,
                          args.shard, settings.batch_records, settings.batch_delay, stop)
    try:
        loop.run()
    finally:
        engine.close()
