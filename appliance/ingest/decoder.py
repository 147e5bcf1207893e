"""A decoder worker: turns chunks of raw frames into normalised, packed records.

The ingestor runs these as child processes (decoder_pool.py): a hostile frame can make C code
inside the unpickler spin or allocate without bound (hashing shared tuples, a huge memo index),
and only a process boundary, a memory limit and a watchdog contain that.
Protocol on stdin/stdout: 4-byte big-endian length + msgpack, one request → one response.
"""

from __future__ import annotations

import argparse
import copyreg
import ctypes
import os
import resource
import signal
import struct
import sys
import time
from typing import BinaryIO

import msgpack

from appliance.errors import FrameError
from appliance.spine.codec import decode_frame, pack_record_for_seq
from appliance.spine.record import ORIGIN, Caps, normalize, scrub

LENGTH = struct.Struct(">I")
PR_SET_PDEATHSIG = 1


def read_message(stream: BinaryIO) -> bytes | None:
    header = stream.read(LENGTH.size)
    if len(header) < LENGTH.size:
        return None
    (length,) = LENGTH.unpack(header)
    body = stream.read(length)
    return body if len(body) == length else None


def frame_message(body: bytes) -> bytes:
    return LENGTH.pack(len(body)) + body


def decode_chunk(frames: list, origin: str, caps: Caps) -> tuple[list[bytes], list[list]]:
    """[[peer, received, payload], …] → packed records (in order) and [[peer, kind, reason]]."""
    records: list[bytes] = []
    rejects: list[list] = []
    for peer, received, payload in frames:
        try:
            values = normalize(decode_frame(payload), peer, received, caps)
        except FrameError as error:
            rejects.append([peer, error.kind, error.reason])
            continue
        except MemoryError:
            rejects.append([peer, "decode-memory", "decoding needed more memory than allowed"])
            continue
        except Exception as error:  # noqa: BLE001 - a bug must cost one frame, not a chunk
            rejects.append([peer, "internal-error", f"{type(error).__name__}: {error}"])
            continue
        values[ORIGIN] = origin
        try:
            records.append(pack_record_for_seq(values))
        except (UnicodeEncodeError, ValueError):
            records.append(pack_record_for_seq(scrub(values)))
    return records, rejects


def _seal() -> None:
    # The C unpickler takes EXT codes from copyreg's cache without asking find_class; nothing
    # in this process registers or uses extensions, so make sure none exist.
    copyreg._extension_registry.clear()  # type: ignore[attr-defined]
    copyreg._inverted_registry.clear()  # type: ignore[attr-defined]
    copyreg._extension_cache.clear()  # type: ignore[attr-defined]
    # Stop only when the ingestor closes our stdin: its SIGTERM drain needs our answers.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # ...but die with it: a worker spinning on a hostile frame never reads its stdin again.
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the ingestor's watchdog and stdin EOF still end us
    if os.getppid() != parent:  # the ingestor died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appliance decoder", description=__doc__)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--max-text-chars", type=int, required=True)
    parser.add_argument("--max-field-chars", type=int, required=True)
    parser.add_argument("--memory", type=int, required=True, help="address space limit, bytes")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
    _seal()
    caps = Caps(text=args.max_text_chars, field=args.max_field_chars)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (message := read_message(stdin)) is not None:
        chunk_id, frames = msgpack.unpackb(message, raw=False)
        started = time.monotonic()
        records, rejects = decode_chunk(frames, args.origin, caps)
        stdout.write(frame_message(msgpack.packb(
            [chunk_id, records, rejects, time.monotonic() - started], use_bin_type=True)))
        stdout.flush()
