"""The relay: the ingestor's ZeroMQ ROUTER where downstream appliances' forwarders deliver
batches. A batch is acknowledged only once its records are in this journal; records already
received (same origin and seq) are dropped, so a forwarder's retries never double a record.

Forwarded records keep their origin and seq; each relay adds itself to the record's hops.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import zmq
import zmq.asyncio

from appliance.spine import keys
from appliance.spine.codec import pack_record, unpack_record
from appliance.spine.journal import JournalReader
from appliance.spine.link import BATCH, BATCH_ID_BYTES, ack, refusal
from appliance.spine.record import COLUMNS, INDEX, Caps, truncate

log = logging.getLogger(__name__)

MAX_HOPS = 16
MAX_BATCH_RECORDS = 20000  # a forwarder sends at most [forwarder:NAME] batch_records (≤ 10000)
MAX_STRING = 1 << 20       # longer text is the sender's bug (the ingestor caps fields lower)
MAX_ORIGINS = 10000        # downstream origins remembered; more is a misbehaving sender
RCVHWM = 4                 # batches queued inside ZeroMQ per sender
_SEQ, _ORIGIN, _RECEIVED, _HOPS = (INDEX[n] for n in ("seq", "origin", "received", "hops"))
_INTS = frozenset(INDEX[n] for n in ("seq", "levelno", "lineno", "process", "thread"))
_FLOATS = frozenset(INDEX[n] for n in ("received", "created"))
_TEXTS = frozenset(INDEX[n] for n in ("message", "exc_text", "stack_info", "extra", "hops"))
_INT64 = 2**63


class BadRecord(ValueError):
    """A forwarded record that does not have the record schema's shape."""


def checked(values: object, caps: Caps) -> list:
    """A forwarded record, validated value by value against the schema (the downstream is in
    a less trusted zone); oversized text is cut as the ingestor cuts it."""
    if not isinstance(values, list) or not values:
        raise BadRecord("not a record")
    # A newer downstream may send columns this version does not have: they are left out.
    values = values[:len(COLUMNS)] + [None] * (len(COLUMNS) - len(values))
    for index, value in enumerate(values):
        if value is None:
            continue
        kind = type(value)
        if index in _INTS:
            if kind is not int or not -_INT64 <= value < _INT64:
                raise BadRecord(f"{COLUMNS[index]} is not an integer")
        elif index in _FLOATS:
            if kind not in (int, float) or not math.isfinite(value):
                raise BadRecord(f"{COLUMNS[index]} is not a time")
        elif kind is not str:
            raise BadRecord(f"{COLUMNS[index]} is not text")
        else:
            values[index] = truncate(value, caps.text if index in _TEXTS else caps.field)
    if not isinstance(values[_SEQ], int) or values[_SEQ] < 1 or not values[_ORIGIN] \
            or values[_RECEIVED] is None:
        raise BadRecord("seq, origin and received are required")
    return values


def add_hop(values: list, instance: str, now: float) -> None:
    """Append this appliance (its journal's origin id) to the record's hops, the record's
    origin first, each with its receive time."""
    text = values[_HOPS]
    try:
        # Longer than MAX_HOPS entries could be is not a relay's list (and deep nesting
        # would make json.loads recurse): start afresh.
        hops = json.loads(text) if text and len(text) < MAX_HOPS * 200 else []
    except (ValueError, RecursionError):
        hops = []
    if not isinstance(hops, list) or not hops:
        hops = [[values[_ORIGIN], values[_RECEIVED]]]
    hops.append([instance, round(now, 3)])
    if len(hops) > MAX_HOPS:
        hops = hops[:1] + hops[-(MAX_HOPS - 1):]
    values[_HOPS] = json.dumps(hops)


class Seen:
    """The highest seq received per downstream origin, kept next to the journal. The file is
    written after each append; at start, journal entries after it are read to catch up."""

    def __init__(self, journal_dir: Path, own_origin: str) -> None:
        self.path = Path(journal_dir) / "relay-origins.json"
        self.own = own_origin
        self.last: dict[str, int] = {}
        self.journal_seq = 1

    def load(self, journal_dir: Path, next_seq: int) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.last = {str(k): int(v) for k, v in data["origins"].items()}
            self.journal_seq = int(data["journal_seq"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.last, self.journal_seq = {}, 1
        reader = JournalReader(journal_dir)
        position = self.journal_seq
        while position < next_seq:
            entries = reader.read_from(position, 5000)
            if not entries:
                break
            for _seq, payload in entries:
                self.note(unpack_record(payload))
            position = entries[-1][0] + 1
        self.journal_seq = next_seq

    def note(self, values: list, into: dict[str, int] | None = None) -> None:
        last = self.last if into is None else into
        origin = values[_ORIGIN]
        if origin != self.own and values[_SEQ] > last.get(origin, 0):
            last[origin] = values[_SEQ]

    def fresh(self, values: list, batch: dict[str, int]) -> bool:
        origin = values[_ORIGIN]
        return values[_SEQ] > max(self.last.get(origin, 0), batch.get(origin, 0))

    def save(self, journal_seq: int) -> None:
        self.journal_seq = journal_seq
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"journal_seq": journal_seq, "origins": self.last}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


class Relay:
    """Receives batches, journals the new records through `append` and acknowledges."""

    def __init__(self, settings: object, journal_dir: Path, own_origin: str,
                 caps: Caps, append: Callable[[list[bytes]], int | None],
                 reject: Callable[[str, str, str], None]) -> None:
        self.settings, self.caps = settings, caps
        self.append, self.reject = append, reject
        self.journal_dir = Path(journal_dir)
        self.seen = Seen(journal_dir, own_origin)
        self.received = self.duplicates = self.batches = 0

    async def serve(self, next_seq: int) -> None:
        self.seen.load(self.journal_dir, next_seq)
        context = zmq.asyncio.Context.instance()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        # libzmq drops a connection that sends a bigger message: memory stays bounded.
        router.setsockopt(zmq.MAXMSGSIZE, self.settings.max_batch_bytes)
        router.setsockopt(zmq.RCVHWM, RCVHWM)
        authenticator = None
        if self.settings.secret_key_file:
            authenticator = keys.serve_curve(context, router, self.settings.secret_key_file,
                                             self.settings.allowed_keys)
        router.bind(self.settings.listen)
        log.info("relay listening on %s (%s)", self.settings.listen,
                 "Curve, allowed keys in " + str(self.settings.allowed_keys)
                 if authenticator else "no encryption: keep it on loopback or a tunnel")
        try:
            while True:
                frames = await router.recv_multipart()
                try:
                    reply = self.handle(frames[0], frames[1:])
                except Exception as error:  # noqa: BLE001 - a sender must not stop the relay
                    log.exception("relay: batch from %s not handled", frames[0].hex()[:16])
                    self.reject(f"relay:{frames[0].hex()[:16]}", "relay-batch", str(error))
                    reply = refusal(frames[2] if len(frames) > 2 else b"", b"not handled")
                if reply is not None:
                    await router.send_multipart([frames[0], *reply])
        finally:
            router.close()
            if authenticator is not None:
                authenticator.stop()

    def handle(self, identity: bytes, frames: list[bytes]) -> list[bytes] | None:
        """One batch → the ack frames (or None: nothing could be journaled, no ack)."""
        peer = f"relay:{identity.hex()[:16]}"
        if len(frames) != 3 or frames[0] != BATCH or len(frames[1]) != BATCH_ID_BYTES:
            self.reject(peer, "relay-protocol", "not a herald batch")
            return refusal(frames[1] if len(frames) > 1 else b"", b"not a batch")
        batch_id, body = frames[1], frames[2]
        try:
            # Bounded before anything is built: a batch of millions of tiny arrays would
            # take gigabytes and seconds of the ingestor's loop.
            records = msgpack.unpackb(body, raw=False, use_list=True, max_map_len=0,
                                      max_ext_len=0, max_bin_len=0,
                                      max_array_len=MAX_BATCH_RECORDS,
                                      max_str_len=MAX_STRING)
            if not isinstance(records, list):
                raise ValueError("not a list")
        except Exception as error:  # noqa: BLE001 - any decoding failure is the sender's
            self.reject(peer, "relay-batch", f"undecodable batch: {error}")
            return refusal(batch_id, b"undecodable batch")
        now = time.time()
        payloads: list[bytes] = []
        batch: dict[str, int] = {}  # noted in `seen` only once journaled
        for raw in records:
            try:
                values = checked(raw, self.caps)
            except BadRecord as error:
                self.reject(peer, "relay-record", str(error))
                continue
            if values[_ORIGIN] == self.seen.own:
                self.duplicates += 1  # our own record came back round a cycle of appliances
                continue
            if not self.seen.fresh(values, batch):
                self.duplicates += 1
                continue
            if len(self.seen.last) + len(batch) >= MAX_ORIGINS and \
                    values[_ORIGIN] not in self.seen.last and values[_ORIGIN] not in batch:
                self.reject(peer, "relay-origins", f"more than {MAX_ORIGINS} origins")
                continue
            self.seen.note(values, batch)
            add_hop(values, self.seen.own, now)
            payloads.append(pack_record(values))
        if payloads:
            next_seq = self.append(payloads)
            if next_seq is None:
                return None  # the journal refused: no ack, the forwarder sends it again
            self.seen.last.update(batch)
            self.seen.save(next_seq)
        self.batches += 1
        self.received += len(payloads)
        return ack(batch_id, len(payloads))
