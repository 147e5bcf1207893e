"""`appliance import SOURCE_URL`: copy every record of one herald store into this instance's
store (e.g. an old SQLite appliance into PostgreSQL), in source id order, with a progress bar.

Resumable and idempotent: each batch and the import's cursor (the last source id copied)
commit together in the target, and a record already there (same origin and seq) is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from appliance.config import load as load_config
from appliance.errors import ConfigError
from appliance.spine.record import COLUMNS
from appliance.store import url as store_url
from appliance.store.engine import open_store
from appliance.store.reader import RECORD
from appliance.store.url import StoreUnavailable
from appliance.times import when_text

SOURCE_ID = "source-id"  # the import cursor's origin: its seq is the last source id copied
BAR = 30


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance import", description="Copy every record of another herald store into "
        "this instance's [store] (resumable; a second run copies only what is new).")
    parser.add_argument("source", help="sqlite:///PATH/herald.sqlite or "
                        "postgresql://USER@HOST:PORT/DB of the store to copy from")
    parser.add_argument("-c", "--config", default="conf/appliance.ini",
                        help="this instance's appliance.ini (default: %(default)s)")
    parser.add_argument("--source-password-env", default="",
                        help="environment variable with the source's PostgreSQL password")
    parser.add_argument("--batch", type=int, default=5000, help="records per transaction")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        run(args)
    except (StoreUnavailable, ConfigError, ValueError) as error:
        print(f"appliance import: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # the batch in hand rolls back; the cursor is at the last one
        print("\nappliance import: interrupted; run it again to go on where it stopped",
              file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def run(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    source_url = store_url.parse(args.source, Path.cwd(), args.source_password_env)
    if source_url == config.store.url:
        raise ValueError(f"{source_url.display} is this instance's own store")
    source = open_store(source_url)
    source.open()
    target = open_store(config.store.url, config.store.admin_url)
    target.open(create=True)
    name = f"import {source_url.display}"
    reader = source.reader()
    try:
        last = target.load_cursor(name, SOURCE_ID)
        total = reader.rows("SELECT count(*) AS n FROM record WHERE id > ?", (last,))[0]["n"]
        print(f"copying {total:,} records from {source_url.display} into "
              f"{config.store.url.display}" + (f" (resuming after source id {last})"
                                               if last else ""), flush=True)
        progress = Progress(total)
        read = inserted = 0
        while True:
            rows = reader.rows(f"SELECT {RECORD} FROM record WHERE id > ? "  # noqa: S608
                               "ORDER BY id LIMIT ?", (last, args.batch))
            if not rows:
                break
            last = rows[-1]["id"]
            inserted += target.store_batch([[row[c] for c in COLUMNS] for row in rows],
                                           (name, SOURCE_ID, last), _refused)
            read += len(rows)
            progress.show(read, inserted)
        progress.done(read, inserted)
    finally:
        reader.close()
        source.close()
        target.close()


def _refused(values: list, error: BaseException) -> None:
    print(f"\n  record {values[1]}:{values[0]} refused by the target: {error}", flush=True)


class Progress:
    """A bar redrawn in place on a terminal; a line every 5 s when the output is a file."""

    def __init__(self, total: int) -> None:
        self.total, self.started = total, time.monotonic()
        self.shown = 0.0
        self.tty = sys.stdout.isatty()

    def show(self, read: int, inserted: int) -> None:
        now = time.monotonic()
        if now - self.shown < (0.2 if self.tty else 5):
            return
        self.shown = now
        rate = read / max(now - self.started, 1e-6)
        if self.tty:
            filled = BAR * read // max(self.total, 1)
            print(f"\r[{'#' * filled}{' ' * (BAR - filled)}] {read:,}/{self.total:,} "
                  f"({rate:,.0f}/s)", end="", flush=True)
        else:
            print(f"  {read:,}/{self.total:,} records read, {inserted:,} inserted "
                  f"({rate:,.0f}/s)", flush=True)

    def done(self, read: int, inserted: int) -> None:
        seconds = time.monotonic() - self.started
        if self.tty:
            print(f"\r[{'#' * BAR}] {read:,}/{self.total:,}", flush=True)
        print(f"{read:,} records read, {inserted:,} inserted, {read - inserted:,} were there "
              f"already, in {seconds:.1f} s (finished {when_text(time.time())})", flush=True)
