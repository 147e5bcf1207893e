"""Does retention stall the writer? 1M old rows, a writer storing batches meanwhile.

For each engine: stores --rows realistic records (bench/web_dataset.py) received 31-40 days
ago, then starts a writer process that stores batches of fresh records as the writer does
(store_batch: rows, search index, facets, hourly counts and cursor in one transaction) and
times each one. After --baseline seconds the retention (keep = 30 d) runs in this process
over its own connection, as the writer shard 0 runs it: on PostgreSQL it detaches and drops
whole day partitions; on SQLite it deletes in transactions of [writer] delete_batch rows.
Prints the writer's batch times before and during the retention; a stall is a batch that
took longer than the baseline's slowest.

    python3 bench/retention.py [--rows 1000000] [--engines postgresql,sqlite]
                               [--batch 1000] [--baseline 10]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import web_dataset as dataset  # beside this script

from appliance.harness.postgres import PASSWORD, PASSWORD_ENV, PostgresServer
from appliance.spine.record import INDEX
from appliance.store import url as store_url
from appliance.store.engine import open_store

DAY = 86400
KEEP = 30 * DAY


def store(text: str, base: Path):  # noqa: ANN201 - an Engine
    os.environ[PASSWORD_ENV] = PASSWORD
    return open_store(store_url.parse(text, base, PASSWORD_ENV))


def fill(text: str, base: Path, rows: int) -> float:
    """`rows` records received 31 to 40 days ago; seconds taken."""
    engine = store(text, base)
    engine.open(create=True)
    started, end_time = time.monotonic(), time.time() - KEEP - DAY
    for start in range(0, rows, dataset.BATCH):
        engine.store_batch(dataset.rows(start, min(dataset.BATCH, rows - start), end_time,
                                        rows), None, lambda values, error: None)
    engine.close()
    return time.monotonic() - started


def writer(text: str, base: str, batch: int, stop, times) -> None:  # noqa: ANN001
    """A writer process: fresh batches as fast as it can store them, each one timed."""
    engine = store(text, Path(base))
    engine.open(create=True)
    seq = 10_000_000
    while not stop.is_set():
        records = dataset.rows(seq % 1_000_000, batch, time.time(), 1_000_000)
        for values in records:
            seq += 1
            values[INDEX["seq"]], values[INDEX["origin"]] = seq, "bench-writer"
            values[INDEX["received"]] = time.time()
        started = time.monotonic()
        engine.store_batch(records, ("writer-bench", "bench-writer", seq),
                           lambda values, error: None)
        times.put((started, time.monotonic() - started))
    engine.close()


def drain(times) -> list[tuple[float, float]]:  # noqa: ANN001
    out = []
    while not times.empty():
        out.append(times.get())
    return out


class LockWaits:
    """On PostgreSQL: samples pg_stat_activity every 5 ms from its own connection and keeps
    the longest time the writer's backend was seen waiting for a lock."""

    def __init__(self, text: str) -> None:
        import psycopg
        self.db = psycopg.connect(text, password=PASSWORD, autocommit=True)
        self.longest, self.waits = 0.0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        since: float | None = None
        while not self.stop.is_set():
            waiting = self.db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'herald-bench-writer'").fetchone()[0]
            now = time.monotonic()
            if waiting and since is None:
                since, self.waits = now, self.waits + 1
            elif not waiting and since is not None:
                self.longest, since = max(self.longest, now - since), None
            time.sleep(0.005)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.db.close()


def measure(name: str, text: str, base: Path, args: argparse.Namespace) -> None:
    seconds = fill(text, base, args.rows)
    print(f"\n# {name}: {args.rows:,} old rows stored in {seconds:.0f} s", flush=True)
    context = multiprocessing.get_context("spawn")
    stop, times = context.Event(), context.Queue()
    writer_url = f"{text}?application_name=herald-bench-writer" if name == "postgresql" \
        else text
    process = context.Process(target=writer, args=(writer_url, str(base), args.batch, stop,
                                                   times))
    process.start()
    locks = None
    try:
        time.sleep(args.baseline)  # pacing: the writer's undisturbed batches
        engine = store(text, base)
        engine.open()  # the schema is there (the writer made it)
        locks = LockWaits(text) if name == "postgresql" else None
        began = time.monotonic()
        dropped = engine.retention(time.time() - KEEP, 0, 2000)
        ended = time.monotonic()
        engine.close()
        if locks is not None:
            locks.close()
        time.sleep(2)  # pacing: batches after the retention
    finally:
        stop.set()
        samples = []
        deadline = time.monotonic() + 30
        while process.is_alive() and time.monotonic() < deadline:
            samples += drain(times)
            process.join(0.1)
        samples += drain(times)
        if process.is_alive():
            process.kill()
    before = [took for at, took in samples if at + took < began]
    during = [took for at, took in samples if at < ended and at + took > began]
    p50 = statistics.median(before)
    print(f"retention: {dropped:,} rows in {ended - began:.2f} s")
    print(f"writer batches of {args.batch}: before {len(before)} (p50 {p50 * 1000:.1f} ms, "
          f"max {max(before) * 1000:.1f} ms); during {len(during)} "
          f"(p50 {statistics.median(during) * 1000 if during else 0:.1f} ms, "
          f"max {max(during, default=0) * 1000:.1f} ms)")
    worst = max(during, default=0) - p50
    print(f"slowest batch during retention minus the baseline p50: {worst * 1000:.0f} ms "
          f"(baseline max minus p50: {(max(before) - p50) * 1000:.0f} ms)")
    if locks is not None:
        print(f"writer backend seen waiting for a lock: {locks.waits} times, longest "
              f"{locks.longest * 1000:.0f} ms (sampled every 5 ms)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="postgresql,sqlite")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--baseline", type=float, default=10.0)
    args = parser.parse_args()
    print(f"$ python3 bench/retention.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="herald-retention-") as tmp:
        for name in args.engines.split(","):
            base = Path(tmp) / name
            base.mkdir()
            if name == "postgresql":
                server = PostgresServer().start()
                try:
                    measure(name, server.create_database(), base, args)
                finally:
                    server.stop()
            else:
                measure(name, "sqlite:///herald.sqlite", base, args)


if __name__ == "__main__":
    main()
