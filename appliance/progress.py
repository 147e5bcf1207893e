"""A progress bar for long operator work (import-legacy, purge) when a person watches: plain
text on stderr, redrawn in place, at most ten times a second; nothing when stderr is not a
terminal (logs, pipes, cron), so output meant for files stays clean."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
EVERY = 0.1  # seconds between redraws


class Progress:
    def __init__(self, what: str, total: int, stream: TextIO | None = None) -> None:
        self.what, self.total = what, max(total, 0)
        self.stream = sys.stderr if stream is None else stream
        self.shown = _is_terminal(self.stream)
        self.started = time.monotonic()
        self._drawn = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.shown and now - self._drawn >= EVERY:
            self._drawn = now
            self._draw(now)

    def finish(self) -> None:
        if self.shown:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(share * WIDTH)
        rate = self.done / max(now - self.started, 1e-3)
        self.stream.write(f"\r{self.what} [{'#' * filled}{'.' * (WIDTH - filled)}] "
                          f"{share:4.0%} {self.done:,}/{self.total:,} ({rate:,.0f}/s)")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False
