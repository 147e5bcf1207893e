"""The durable journal: every accepted record is appended here before it is published.

Segment files `segments/<first seq>.seg` hold entries `seq:u64 length:u32 crc32:u32 payload`;
the ingestor is the only writer, subscribers read from their cursor+1 to fill gaps in the live
ZeroMQ stream. `retention.py` deletes segments every cursor has passed.
"""

from __future__ import annotations

import logging
import os
import struct
import uuid
import zlib
from pathlib import Path

from appliance.errors import JournalError

log = logging.getLogger(__name__)

ENTRY = struct.Struct(">QII")  # seq, payload length, crc32 over seq+length+payload
SEGMENT_SUFFIX = ".seg"
READ_CHUNK = 1 << 20


def encode_entries(first_seq: int, payloads: list[bytes]) -> bytes:
    """Entries for consecutive seqs from `first_seq`: the journal's and the PUB stream's format."""
    parts = []
    for seq, payload in enumerate(payloads, first_seq):
        head = struct.pack(">QI", seq, len(payload))
        parts.append(head)
        parts.append(struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))))
        parts.append(payload)
    return b"".join(parts)


def decode_entries(data: bytes | memoryview, pos: int = 0) -> tuple[list[tuple[int, bytes]], int]:
    """Parse whole, valid entries from `pos`; return them and the offset where parsing stopped
    (at the end, at an incomplete entry, or at one whose checksum fails)."""
    entries: list[tuple[int, bytes]] = []
    view = memoryview(data)
    end = len(view)
    while end - pos >= ENTRY.size:
        seq, length, crc = ENTRY.unpack_from(view, pos)
        start = pos + ENTRY.size
        if end - start < length:
            break
        payload = bytes(view[start:start + length])
        if zlib.crc32(payload, zlib.crc32(view[pos:pos + 12])) != crc:
            break
        entries.append((seq, payload))
        pos = start + length
    return entries, pos


def segment_paths(directory: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment, oldest first."""
    found = []
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        try:
            found.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(found)


def read_origin(directory: Path, default_name: str) -> str:
    """The journal's origin id, created with the journal: a new journal is a new seq space."""
    path = directory / "origin"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        origin = f"{default_name}-{uuid.uuid4().hex[:8]}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(origin + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return origin


class Journal:
    """The ingestor's append-only view of the journal."""

    def __init__(self, directory: Path, instance: str, segment_bytes: int, fsync: bool) -> None:
        self.directory = Path(directory)
        self.segments_dir = self.directory / "segments"
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        (self.directory / "cursors").mkdir(exist_ok=True)
        self.origin = read_origin(self.directory, instance)
        self.segment_bytes, self.fsync = segment_bytes, fsync
        self._fd = -1
        self._size = 0
        self.next_seq = self._recover()

    def _recover(self) -> int:
        """Open the last segment, cut a torn tail, and return the next seq to assign."""
        segments = segment_paths(self.segments_dir)
        if not segments:
            self._open_segment(1)
            return 1
        first, path = segments[-1]
        data = path.read_bytes()
        entries, good = decode_entries(data)
        if good < len(data):
            log.warning("journal: cut a torn tail of %d bytes from %s (after seq %s)",
                        len(data) - good, path.name, entries[-1][0] if entries else first - 1)
            with open(path, "r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        if entries and entries[0][0] != first:
            raise JournalError(f"{path} starts at seq {entries[0][0]}, its name says {first}")
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = good
        return entries[-1][0] + 1 if entries else first

    def _open_segment(self, first_seq: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        path = self.segments_dir / f"{first_seq:020d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = 0
        if self.fsync:
            dir_fd = os.open(self.segments_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def append(self, payloads: list[bytes]) -> tuple[int, bytes]:
        """Durably append records with consecutive seqs; return the first seq and the bytes
        written (the same bytes are published, so subscribers parse one format)."""
        if self._size >= self.segment_bytes:
            self._open_segment(self.next_seq)
        first = self.next_seq
        blob = encode_entries(first, payloads)
        view = memoryview(blob)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as error:
            # Cut what part of the batch reached the file, so the journal stays a clean
            # sequence and these seqs are never half there (disk full, I/O error).
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise JournalError(f"cannot append to the journal: {error}") from error
        self._size += len(blob)
        self.next_seq = first + len(payloads)
        return first, blob

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class JournalReader:
    """A subscriber's read-only view: entries from any seq on, resuming where it left off."""

    def __init__(self, directory: Path) -> None:
        self.segments_dir = Path(directory) / "segments"
        self._path: Path | None = None
        self._offset = 0
        self._next = 0  # seq expected at (_path, _offset)
        self.damaged = 0

    def read_from(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` entries with seq ≥ `seq`, oldest first. If retention deleted `seq`,
        the entries start later: the caller sees (and reports) the gap."""
        if not self._seek(seq):
            return []
        out: list[tuple[int, bytes]] = []
        while len(out) < limit:
            entries, clean = self._read_some(limit - len(out))
            out.extend(entry for entry in entries if entry[0] >= seq)
            if entries:
                continue
            following = self._following_segment()
            if following is None:
                break  # the live end, or an entry the ingestor is still writing
            if not clean:
                # The ingestor only rolls after a complete write: look once more, then give up.
                entries, clean = self._read_some(limit - len(out))
                if entries:
                    out.extend(entry for entry in entries if entry[0] >= seq)
                    continue
                self.damaged += 1
                log.error("journal: damaged entry in %s at offset %d; records up to seq %d "
                          "are skipped", self._path, self._offset, following[0] - 1)
            self._path, self._offset, self._next = following[1], 0, following[0]
        return out

    def first_seq(self) -> int | None:
        """The oldest seq still in the journal, or None if it is empty."""
        segments = segment_paths(self.segments_dir)
        return segments[0][0] if segments else None

    def _seek(self, seq: int) -> bool:
        """Position before `seq`: keep the current place when `seq` lies ahead of it in the
        same segment (the common case), else start the segment that holds it (or the oldest)."""
        segments = segment_paths(self.segments_dir)
        if not segments:
            return False
        chosen = segments[0]
        for item in segments:
            if item[0] <= seq:
                chosen = item
        if chosen[1] != self._path or seq < self._next:
            self._path, self._offset, self._next = chosen[1], 0, chosen[0]
        return True

    def _following_segment(self) -> tuple[int, Path] | None:
        for first, path in segment_paths(self.segments_dir):
            if first >= self._next and path != self._path:
                return first, path
        return None

    def _read_some(self, limit: int) -> tuple[list[tuple[int, bytes]], bool]:
        """Entries at the current position and whether the file ended cleanly there (rather
        than in an incomplete or damaged entry)."""
        assert self._path is not None
        try:
            with open(self._path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read(READ_CHUNK)
                entries, _ = decode_entries(data)
                if not entries and len(data) == READ_CHUNK:
                    data += handle.read()  # a single entry larger than one chunk
                    entries, _ = decode_entries(data)
        except FileNotFoundError:
            return [], True
        if not entries:
            return [], not data
        entries = entries[:limit]
        self._offset += sum(ENTRY.size + len(payload) for _, payload in entries)
        self._next = entries[-1][0] + 1
        return entries, True


def last_seq(directory: Path) -> int:
    """The newest seq in the journal at `directory` (0 if empty): reads its last segment."""
    segments = segment_paths(Path(directory) / "segments")
    for first, path in reversed(segments):
        entries, _good = decode_entries(path.read_bytes())
        if entries:
            return entries[-1][0]
        if first > 1:
            return first - 1
    return 0


def journal_bytes(directory: Path) -> int:
    """What the journal's segments take on disk."""
    total = 0
    for _first, path in segment_paths(Path(directory) / "segments"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass  # pruned meanwhile
    return total
