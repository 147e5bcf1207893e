"""The loop every subscriber shares: live batches from ZeroMQ SUB, gaps filled from the journal.

A subscriber's sink applies a batch and its cursor atomically; anything at or below the cursor
is skipped, so each record takes effect exactly once through restarts and kill -9.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zmq

from appliance.runtime import Every, StopFlag
from appliance.spine import retention
from appliance.spine.codec import unpack_record
from appliance.spine.journal import JournalReader, decode_entries
from appliance.spine.link import TOPIC
from appliance.spine.record import INDEX

log = logging.getLogger(__name__)

# Batches queued in ZeroMQ per subscriber: past this, PUB drops and the journal fills the gap,
# so a slow subscriber costs disk, not memory.
RCVHWM = 16
_SYSTEM_ID = INDEX["system_id"]


@dataclass(frozen=True)
class Shard:
    """This process handles the records whose stable hash of system_id falls to `index`."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard wants K/N, e.g. 0/2, not {text!r}") from None
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"--shard {text}: need 0 <= K < N")
        return cls(index, count)

    def owns(self, system_id: str | None) -> bool:
        if self.count == 1:
            return True
        return zlib.crc32((system_id or "").encode("utf-8", "surrogatepass")) % self.count \
            == self.index

    @property
    def label(self) -> str:
        return f"{self.index}of{self.count}"


class Deferred(Exception):  # noqa: N818 - it is not an error: the batch simply waits
    """Raised by a sink's apply when it is stopping before the batch could take effect (an
    upstream away): the cursor stays, the batch is taken again at the next start."""


class Sink(Protocol):
    def load_cursor(self, origin: str) -> int: ...

    def apply(self, records: list[list], origin: str, last_seq: int) -> None: ...

    def tick(self, live: bool) -> None:
        """Called every turn of the loop; `live` is False while reading the journal's
        backlog (time-based checks such as heartbeats must wait for it)."""


def wait_for_origin(journal_dir: Path, stop: StopFlag) -> str | None:
    """The journal's origin, once the ingestor has created it."""
    path = Path(journal_dir) / "origin"
    announced = False
    while not stop:
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if not announced:
                log.info("waiting for the ingestor to create the journal in %s", journal_dir)
                announced = True
            time.sleep(0.2)
    return None


class SubscriberLoop:
    def __init__(self, name: str, journal_dir: Path, endpoint: str, sink: Sink, shard: Shard,
                 batch_records: int, batch_delay: float, stop: StopFlag) -> None:
        self.name, self.journal_dir, self.endpoint = name, Path(journal_dir), endpoint
        self.sink, self.shard, self.stop = sink, shard, stop
        self.batch_records, self.batch_delay = batch_records, batch_delay
        self.reader = JournalReader(self.journal_dir)
        self.origin = ""
        self.cursor = 0      # durable
        self.position = 0    # taken into `pending`
        self.pending: list[list] = []
        self.pending_since = 0.0
        self.processed = self.lost = 0
        self._cursor_hint = Every(1.0)
        self._hinted = -1
        self._stats = Every(60.0)

    def run(self) -> None:
        origin = wait_for_origin(self.journal_dir, self.stop)
        if origin is None:
            return
        self.origin = origin
        if self.shard.index == 0:
            self._forget_other_shard_counts()
        self.cursor = self.position = self.sink.load_cursor(origin)
        log.info("%s: origin %s, resuming after seq %d (shard %s)", self.name, origin,
                 self.cursor, self.shard.label)
        context = zmq.Context.instance()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, RCVHWM)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, TOPIC)
        sub.connect(self.endpoint)
        clean = False
        try:
            self._loop(sub)
            clean = True
        finally:
            if clean:
                # Not after an error: a sink that failed mid-batch may hold state it could
                # not store; the restart takes the batch again from the cursor.
                self.flush()
                self.hint_cursor(force=True)
            sub.close()
            log.info("%s: stopped after seq %d (%s)", self.name, self.cursor,
                     self.stop.signal_name or "end")

    def _loop(self, sub: zmq.Socket) -> None:
        catching_up, live = True, False  # live: the journal had nothing beyond what we hold
        while not self.stop:
            if catching_up:
                entries = self.reader.read_from(self.position + 1, self.batch_records)
                if entries:
                    self.take(entries)
                    self.flush_if_due()
                    live = False
                    self.sink.tick(live)
                    self.hint_cursor()
                    continue
                catching_up, live = False, True
            timeout_ms = self._poll_timeout_ms()
            if sub.poll(timeout_ms):
                catching_up = self._take_live(sub)
                live = not catching_up
            elif self.position == self.cursor:
                catching_up = True  # quiet: look in the journal in case a batch was dropped
            self.flush_if_due()
            # Live means caught up with nothing in hand: a record still waiting for its
            # batch has not been seen by time-based checks (heartbeats) yet.
            self.sink.tick(live and self.position == self.cursor)
            self.hint_cursor()
            if self._stats.due():
                log.info("%s: %d records processed, cursor %d, %d lost", self.name,
                         self.processed, self.cursor, self.lost)

    def _take_live(self, sub: zmq.Socket) -> bool:
        """Take queued live batches; True if one showed a gap (go read the journal)."""
        for _ in range(RCVHWM):
            try:
                _topic, blob = sub.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return False
            entries, _ = decode_entries(blob)
            if not entries or entries[-1][0] <= self.position:
                continue
            if entries[0][0] > self.position + 1:
                return True
            self.take(entries)
        return False

    def _poll_timeout_ms(self) -> int:
        if self.position <= self.cursor:
            return 1000
        left = self.pending_since + self.batch_delay - time.monotonic()
        return max(0, int(left * 1000))

    def take(self, entries: list[tuple[int, bytes]]) -> None:
        """Add journal entries (ascending seq) after the current position to the batch."""
        for seq, payload in entries:
            if seq <= self.position:
                continue
            if seq != self.position + 1:
                missing = seq - self.position - 1
                self.lost += missing
                log.error("%s: %d records (seq %d-%d) were deleted from the journal before "
                          "this subscriber got them", self.name, missing, self.position + 1,
                          seq - 1)
            if self.position == self.cursor:
                self.pending_since = time.monotonic()
            self.position = seq
            values = unpack_record(payload)
            if self.shard.owns(values[_SYSTEM_ID]):
                self.pending.append(values)
                if len(self.pending) >= self.batch_records:
                    self.flush()

    def flush_if_due(self) -> None:
        if self.position > self.cursor and \
                time.monotonic() - self.pending_since >= self.batch_delay:
            self.flush()

    def flush(self) -> None:
        """Apply the batch and move the cursor, atomically, through the sink."""
        if self.position <= self.cursor:
            return
        try:
            self.sink.apply(self.pending, self.origin, self.position)
        except Deferred as reason:
            log.warning("%s: stopping with seq %d-%d not done (%s); they are taken again at "
                        "the next start", self.name, self.cursor + 1, self.position, reason)
            self.stop.stopping = True
            return
        self.processed += len(self.pending)
        self.cursor = self.position
        self.pending = []
        if self.stop:
            self.hint_cursor(force=True)

    def hint_cursor(self, force: bool = False) -> None:
        """Publish the cursor in journal/cursors (retention and /health read it) at most once
        a second, and only when it moved."""
        if self.cursor != self._hinted and (force or self._cursor_hint.due()):
            retention.write_cursor(self.journal_dir, self.cursor_name, self.cursor)
            self._hinted = self.cursor

    def _forget_other_shard_counts(self) -> None:
        """Cursor files of this subscriber under another numprocs would hold journal
        segments back (and look like a lagging subscriber) for ever: remove them."""
        for path in (self.journal_dir / "cursors").glob(f"{self.name}-*of*"):
            label = path.name[len(self.name) + 1:]
            index, of, count = label.partition("of")
            if of and index.isdigit() and count.isdigit() and int(count) != self.shard.count:
                log.info("%s: removing the cursor file of shard %s (numprocs changed)",
                         self.name, label)
                path.unlink(missing_ok=True)

    @property
    def cursor_name(self) -> str:
        return f"{self.name}-{self.shard.label}"
