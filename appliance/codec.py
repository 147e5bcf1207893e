"""Wire decoding and internal encoding of records: the only place bytes become records.

Clients send SocketHandler frames (4-byte big-endian length + pickle). They are unpickled by an
unpickler that admits plain data only; the ingestor re-encodes normalised records with msgpack
for the journal and the ZeroMQ stream, which every subscriber decodes with `unpack_record`.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import msgpack

from appliance.errors import FrameError

HEADER_BYTES = 4


class _Refused(pickle.UnpicklingError):
    """The pickle asked for a global: it tries to reach code."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds dict/list/tuple/str/bytes/int/float/bool/None and nothing else.

    Every opcode that could reach code (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) needs find_class,
    which refuses; REDUCE/BUILD/NEWOBJ then have no callable to apply; persistent ids are refused
    by the base class. So nothing in a frame is ever executed.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise _Refused(f"global {module}.{name} refused")


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


def pack_record(values: list) -> bytes:
    """A normalised record (values in `record.COLUMNS` order) → internal bytes."""
    return msgpack.packb(values, use_bin_type=True)


def unpack_record(data: bytes) -> list:
    """Internal bytes → a record's values in `record.COLUMNS` order."""
    return msgpack.unpackb(data, raw=False, use_list=True)
