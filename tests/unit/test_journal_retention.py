"""Journal retention deletes only what every cursor has passed and the keep time allows,
never the newest segment; a size cap deletes the oldest and counts exactly what each
subscriber lost."""

import os

import pytest

from appliance.spine.journal import Journal, JournalReader, segment_paths
from appliance.spine.retention import prune, read_cursors, write_cursor

NOW = 2_000_000_000.0
HOUR = 3600.0


@pytest.fixture
def journal_dir(tmp_path):
    """Four segments of three records each: seqs 1-3, 4-6, 7-9, 10-12."""
    journal = Journal(tmp_path / "journal", "test_t", segment_bytes=1, fsync=False)
    try:
        for first in (1, 4, 7, 10):
            journal.append([f"record {s}".encode() * 20 for s in range(first, first + 3)])
    finally:
        journal.close()
    assert firsts(journal.directory) == [1, 4, 7, 10]
    return journal.directory


def firsts(journal_dir) -> list[int]:
    return [first for first, _ in segment_paths(journal_dir / "segments")]


def age_all(journal_dir, seconds: float) -> None:
    for _, path in segment_paths(journal_dir / "segments"):
        os.utime(path, (NOW - seconds, NOW - seconds))


def total_bytes(journal_dir) -> int:
    return sum(path.stat().st_size for _, path in segment_paths(journal_dir / "segments"))


def test_nothing_goes_without_cursors_unless_over_the_cap(journal_dir):
    age_all(journal_dir, 100 * HOUR)
    result = prune(journal_dir, keep=HOUR, max_bytes=10**9, now=NOW)
    assert result.deleted == [] and result.lost == {}
    assert firsts(journal_dir) == [1, 4, 7, 10]


def test_passed_and_expired_segments_go_but_never_the_newest(journal_dir):
    age_all(journal_dir, 2 * HOUR)
    write_cursor(journal_dir, "writer-0of1", 12)
    write_cursor(journal_dir, "neelix-0of1", 12)
    result = prune(journal_dir, keep=HOUR, max_bytes=10**9, now=NOW)
    assert firsts(journal_dir) == [10]
    assert len(result.deleted) == 3 and result.lost == {}


def test_segments_younger_than_keep_stay_even_if_passed(journal_dir):
    age_all(journal_dir, HOUR - 1)
    write_cursor(journal_dir, "writer-0of1", 12)
    assert prune(journal_dir, keep=HOUR, max_bytes=10**9, now=NOW).deleted == []
    assert firsts(journal_dir) == [1, 4, 7, 10]


@pytest.mark.parametrize(("slowest", "remaining"), [
    (2, [1, 4, 7, 10]),   # inside the first segment
    (3, [4, 7, 10]),      # exactly its last seq: passed
    (6, [7, 10]),
    (8, [7, 10]),
    (0, [1, 4, 7, 10]),   # a subscriber that has processed nothing yet
])
def test_a_segment_the_slowest_cursor_has_not_passed_stays(journal_dir, slowest, remaining):
    age_all(journal_dir, 100 * HOUR)
    write_cursor(journal_dir, "fast", 12)
    write_cursor(journal_dir, "slow", slowest)
    result = prune(journal_dir, keep=HOUR, max_bytes=10**9, now=NOW)
    assert firsts(journal_dir) == remaining
    assert result.lost == {}


def test_over_the_cap_the_oldest_go_and_each_cursors_loss_is_counted(journal_dir):
    write_cursor(journal_dir, "in-first", 2)    # loses 3, then 4-6
    write_cursor(journal_dir, "at-start", 0)    # loses 1-3 and 4-6
    write_cursor(journal_dir, "in-second", 5)   # loses 6 only
    write_cursor(journal_dir, "ahead", 11)      # loses nothing
    sizes = [path.stat().st_size for _, path in segment_paths(journal_dir / "segments")]
    cap = sizes[2] + sizes[3]  # room for the two newest segments only
    result = prune(journal_dir, keep=100 * HOUR, max_bytes=cap, now=NOW)  # nothing expired
    assert firsts(journal_dir) == [7, 10]
    assert total_bytes(journal_dir) <= cap
    assert result.lost == {"in-first": 4, "at-start": 6, "in-second": 1}
    assert len(result.deleted) == 2


def test_over_the_cap_without_cursors_never_deletes_the_newest(journal_dir):
    result = prune(journal_dir, keep=100 * HOUR, max_bytes=1, now=NOW)
    assert firsts(journal_dir) == [10]
    assert result.lost == {} and len(result.deleted) == 3


def test_a_single_segment_is_never_deleted(tmp_path):
    journal = Journal(tmp_path / "journal", "test_t", segment_bytes=10**6, fsync=False)
    journal.append([b"only"])
    journal.close()
    write_cursor(journal.directory, "w", 1)
    age_all(journal.directory, 100 * HOUR)
    assert prune(journal.directory, keep=0, max_bytes=0, now=NOW).deleted == []
    assert firsts(journal.directory) == [1]


def test_cursor_files_round_trip(tmp_path):
    assert read_cursors(tmp_path) == {}
    write_cursor(tmp_path, "writer-0of2", 41)
    write_cursor(tmp_path, "writer-0of2", 42)  # replaced, not appended
    write_cursor(tmp_path, "neelix-0of1", 7)
    (tmp_path / "cursors" / ".half-written.tmp").write_text("1\n")
    assert read_cursors(tmp_path) == {"writer-0of2": 42, "neelix-0of1": 7}


def test_reader_starts_at_the_first_remaining_seq_after_pruning(journal_dir):
    reader = JournalReader(journal_dir)
    assert reader.read_from(1, 2) == [(1, b"record 1" * 20), (2, b"record 2" * 20)]
    age_all(journal_dir, 2 * HOUR)
    write_cursor(journal_dir, "w", 6)
    prune(journal_dir, keep=HOUR, max_bytes=10**9, now=NOW)
    assert reader.first_seq() == 7
    assert [seq for seq, _ in reader.read_from(3, 100)] == [7, 8, 9, 10, 11, 12]
    assert [seq for seq, _ in JournalReader(journal_dir).read_from(1, 2)] == [7, 8]
