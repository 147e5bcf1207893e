"""The journal keeps every appended entry in seq order across segments and restarts, cuts a
torn tail at reopen, and lets a reader tail it and step over a damaged entry."""

import pytest

from appliance.spine.journal import ENTRY, Journal, JournalReader, segment_paths


def payload(seq: int) -> bytes:
    return f"record {seq} ".encode() * (1 + seq % 4)


def fill(journal: Journal, count: int, batch: int = 3) -> None:
    while count > 0:
        n = min(batch, count)
        first = journal.next_seq
        assert journal.append([payload(s) for s in range(first, first + n)])[0] == first
        count -= n


def read_all(reader: JournalReader, seq: int = 1, limit: int = 10_000) -> list[tuple]:
    return reader.read_from(seq, limit)


def expected(first: int, last: int) -> list[tuple]:
    return [(s, payload(s)) for s in range(first, last + 1)]


@pytest.fixture
def journal(tmp_path):
    made = Journal(tmp_path / "journal", "test_t", segment_bytes=200, fsync=False)
    yield made
    made.close()


def last_segment(journal: Journal):
    return segment_paths(journal.segments_dir)[-1][1]


def test_append_and_read_back_across_many_segments(journal):
    fill(journal, 100)
    segments = segment_paths(journal.segments_dir)
    assert len(segments) > 10
    assert [first for first, _ in segments] == sorted(first for first, _ in segments)
    assert segments[0][0] == 1
    assert read_all(JournalReader(journal.directory)) == expected(1, 100)


def test_append_returns_the_bytes_written(journal):
    first, blob = journal.append([b"a", b"bc"])
    assert first == 1 and len(blob) == 2 * ENTRY.size + 3
    assert last_segment(journal).read_bytes() == blob


def test_read_from_the_middle_in_pages(journal):
    fill(journal, 100)
    reader = JournalReader(journal.directory)
    assert reader.read_from(37, 10) == expected(37, 46)
    got, seq = [], 50
    while page := reader.read_from(seq, 7):
        assert len(page) <= 7
        got.extend(page)
        seq = page[-1][0] + 1
    assert got == expected(50, 100)
    assert reader.read_from(101, 10) == []
    assert reader.read_from(3, 2) == expected(3, 4)  # going back works too


def test_seq_continues_after_close_and_reopen(journal):
    fill(journal, 10)
    journal.close()
    again = Journal(journal.directory, "test_t", segment_bytes=200, fsync=False)
    try:
        assert again.next_seq == 11
        fill(again, 5)
    finally:
        again.close()
    assert read_all(JournalReader(journal.directory)) == expected(1, 15)


def test_empty_journal_reads_nothing(tmp_path, journal):
    assert journal.next_seq == 1
    assert read_all(JournalReader(journal.directory)) == []
    assert JournalReader(tmp_path / "nowhere").read_from(1, 10) == []


@pytest.mark.parametrize("damage", ["partial-header", "partial-payload", "flipped-byte",
                                    "flipped-crc"])
def test_torn_tail_is_cut_at_reopen_and_its_seq_reused(journal, damage):
    fill(journal, 7, batch=1)
    path = last_segment(journal)
    whole = path.read_bytes()
    last_size = ENTRY.size + len(payload(7))
    if damage == "partial-header":
        torn, good_size, last_good = whole + b"\x00" * (ENTRY.size - 1), len(whole), 7
    elif damage == "partial-payload":
        head = ENTRY.pack(8, 100, 0)
        torn, good_size, last_good = whole + head + b"x" * 10, len(whole), 7
    else:
        at = len(whole) - 1 if damage == "flipped-byte" else len(whole) - last_size + 12
        torn = whole[:at] + bytes([whole[at] ^ 0x40]) + whole[at + 1:]
        good_size, last_good = len(whole) - last_size, 6
    journal.close()
    path.write_bytes(torn)

    reopened = Journal(journal.directory, "test_t", segment_bytes=200, fsync=False)
    try:
        assert reopened.next_seq == last_good + 1
        assert path.stat().st_size == good_size
        reopened.append([b"after the cut"])
    finally:
        reopened.close()
    assert read_all(JournalReader(journal.directory)) == \
        expected(1, last_good) + [(last_good + 1, b"after the cut")]


def test_reader_tails_new_appends_in_the_same_and_new_segments(journal):
    reader = JournalReader(journal.directory)
    journal.append([b"one", b"two"])
    assert reader.read_from(1, 100) == [(1, b"one"), (2, b"two")]
    assert reader.read_from(3, 100) == []
    journal.append([b"three"])
    assert reader.read_from(3, 100) == [(3, b"three")]
    before = len(segment_paths(journal.segments_dir))
    fill(journal, 30)
    assert len(segment_paths(journal.segments_dir)) > before
    assert reader.read_from(4, 100) == expected(4, 33)


def test_reader_waits_at_an_entry_still_being_written(journal):
    journal.append([b"one"])
    path = last_segment(journal)
    journal.append([b"two-is-long"])
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])  # as if the ingestor's write were half done
    reader = JournalReader(journal.directory)
    assert reader.read_from(1, 100) == [(1, b"one")]
    assert reader.damaged == 0
    path.write_bytes(whole)
    assert reader.read_from(2, 100) == [(2, b"two-is-long")]


def test_damaged_entry_in_an_older_segment_is_skipped_and_counted(tmp_path):
    journal = Journal(tmp_path / "journal", "test_t", segment_bytes=1, fsync=False)
    try:
        journal.append([b"s1-a", b"s1-b", b"s1-c"])  # one batch per segment
        journal.append([b"s2-a", b"s2-b"])
        journal.append([b"s3-a"])
    finally:
        journal.close()
    (_, first), (second_seq, _), _ = segment_paths(journal.segments_dir)
    assert second_seq == 4
    data = bytearray(first.read_bytes())
    data[2 * ENTRY.size + len(b"s1-a") + 1] ^= 0xFF  # inside the payload of seq 2
    first.write_bytes(bytes(data))

    reader = JournalReader(journal.directory)
    assert reader.read_from(1, 100) == [(1, b"s1-a"), (4, b"s2-a"), (5, b"s2-b"), (6, b"s3-a")]
    assert reader.damaged == 1
    again = JournalReader(journal.directory)
    assert again.read_from(2, 100)[0] == (4, b"s2-a") and again.damaged == 1


def test_origin_is_stable_across_reopen_and_new_per_directory(tmp_path, journal):
    origin = journal.origin
    assert origin.startswith("test_t-")
    journal.close()
    again = Journal(journal.directory, "other_name", segment_bytes=200, fsync=False)
    other = Journal(tmp_path / "elsewhere", "test_t", segment_bytes=200, fsync=False)
    try:
        assert again.origin == origin
        assert other.origin != origin and other.origin.startswith("test_t-")
    finally:
        again.close()
        other.close()
    assert (journal.directory / "origin").read_text().strip() == origin
