"""Wire decoding and internal encoding of records: the only place bytes become records.

Clients send SocketHandler frames (4-byte big-endian length + pickle). They are unpickled by an
unpickler that admits plain data only; the ingestor re-encodes normalised records with msgpack
for the journal and the ZeroMQ stream, which every subscriber decodes with `unpack_record`.
"""

from __future__ import annotations

import datetime
import decimal
import io
import pickle
from typing import Any

import msgpack

from appliance.errors import FrameError
from appliance.spine.record import COLUMNS

HEADER_BYTES = 4


class _Refused(pickle.UnpicklingError):
    """The pickle asked for a global outside the short list below: it tries to reach code."""


def _latin1_bytes(text: object, encoding: object = "latin1") -> bytes:
    """Protocols 0-2 (SocketHandler uses 1) spell bytes as _codecs.encode(str, 'latin1')."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode is admitted only to rebuild bytes from latin-1")
    return text.encode("latin-1")


def _bytes(*args: object) -> bytes:
    if args and not (len(args) == 1 and type(args[0]) is bytes):
        raise _Refused("bytes()/bytearray() admitted only empty or from bytes")
    return args[0] if args else b""


def _set_of(factory: type) -> Any:
    def build(items: object = ()) -> Any:
        if type(items) not in (list, tuple):
            raise _Refused(f"{factory.__name__}() admitted only from a list")
        return factory(items)
    return build


# The only callables a frame can reach: how protocol 1 spells bytes, sets and the stdlib
# value types services commonly put in `extra`. Each builds a value and runs nothing else.
_ADMITTED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "bytes"): _bytes,
    ("builtins", "bytearray"): _bytes,
    ("builtins", "set"): _set_of(set),
    ("builtins", "frozenset"): _set_of(frozenset),
    **{("datetime", cls.__name__): cls for cls in (
        datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
        datetime.timezone)},
    ("decimal", "Decimal"): decimal.Decimal,
}
# Protocols 0-2 name the builtins module by its Python 2 name (find_class gets it unmapped).
_ADMITTED.update({("__builtin__", name): value for (module, name), value in list(_ADMITTED.items())
                  if module == "builtins"})


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds plain data (dict/list/tuple/str/bytes/int/float/bool/None, plus sets, dates and
    decimals) and nothing else.

    Every opcode that could reach code (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) goes through
    find_class, which hands out only the value builders above; REDUCE/BUILD/NEWOBJ have no
    other callable to apply; persistent ids are refused by the base class.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise _Refused(f"global {module}.{name} refused") from None


def decode_frame(payload: bytes) -> dict:
    """One frame's pickle → the client's record dict, or FrameError (the stream goes on)."""
    if not payload:
        raise FrameError("empty frame", "empty")
    try:
        value = _PlainDataUnpickler(io.BytesIO(payload)).load()
    except _Refused as error:
        raise FrameError(f"refused pickle: {error}", "refused-pickle") from None
    except Exception as error:  # noqa: BLE001 - any failure of hostile bytes is a bad frame
        raise FrameError(f"undecodable pickle: {type(error).__name__}: {error}",
                         "bad-pickle") from None
    if not isinstance(value, dict):
        raise FrameError(f"frame holds a {type(value).__name__}, not a record dict",
                         "not-a-dict")
    return value


class FrameSplitter:
    """Cuts a TCP byte stream into frames, however the reads fall."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> tuple[list[bytes], FrameError | None]:
        """Add received bytes; return the complete frame payloads now available and, if the
        stream broke (a length over the maximum cannot be resynchronised), the fatal error.
        Frames complete before the bad length are still returned: they cost nothing."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        pos, end = 0, len(buffer)
        error = None
        while end - pos >= HEADER_BYTES:
            length = int.from_bytes(buffer[pos:pos + HEADER_BYTES], "big")
            if length > self.max_frame_bytes:
                error = FrameError(f"frame length {length} exceeds the maximum "
                                   f"{self.max_frame_bytes}", "oversized", fatal=True)
                break
            if end - pos - HEADER_BYTES < length:
                break
            start = pos + HEADER_BYTES
            frames.append(bytes(buffer[start:start + length]))
            pos = start + length
        del buffer[:pos]
        return frames, error

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def split_datagram(datagram: bytes, max_frame_bytes: int) -> bytes:
    """A DatagramHandler datagram (one frame) → its payload, or FrameError."""
    if len(datagram) < HEADER_BYTES:
        raise FrameError(f"datagram of {len(datagram)} bytes is shorter than a frame header",
                         "bad-datagram")
    length = int.from_bytes(datagram[:HEADER_BYTES], "big")
    if length > max_frame_bytes:
        raise FrameError(f"datagram frame length {length} exceeds the maximum {max_frame_bytes}",
                         "oversized")
    if length != len(datagram) - HEADER_BYTES:
        raise FrameError(f"datagram frame length {length} but {len(datagram) - 4} bytes follow",
                         "bad-datagram")
    return datagram[HEADER_BYTES:]


_WIDTH = len(COLUMNS)


def pack_record(values: list) -> bytes:
    """A normalised record (values in `record.COLUMNS` order) → internal bytes."""
    return msgpack.packb(values, use_bin_type=True)


def unpack_record(data: bytes) -> list:
    """Internal bytes → a record's values in `record.COLUMNS` order (journal entries written
    before a column was added lack it: it reads as None)."""
    values = msgpack.unpackb(data, raw=False, use_list=True)
    if len(values) < _WIDTH:
        values.extend([None] * (_WIDTH - len(values)))
    return values



# A decoder packs a record with seq 0 (the first value); the ingestor splices in the journal's
# seq as a fixed-width uint64, so assigning seqs costs a slice, not a re-encode.
def pack_record_for_seq(values: list) -> bytes:
    values[0] = 0
    return pack_record(values)


def with_seq(packed: bytes, seq: int) -> bytes:
    first = packed[0]
    head = 1 if 0x90 <= first <= 0x9F else 3 if first == 0xDC else 5
    if packed[head] != 0:
        raise ValueError("not a record packed by pack_record_for_seq")
    return b"".join((packed[:head], b"\xcf", seq.to_bytes(8, "big"), packed[head + 1:]))
