"""A journal append the disk refuses (full, too large, I/O error) leaves no half batch behind:
the segment is cut back, the seqs are not used, and appends continue cleanly afterwards."""

import resource
import signal

import pytest

from appliance.errors import JournalError
from appliance.spine.journal import Journal, JournalReader


@pytest.fixture
def file_size_limit():
    """Let the test cap file sizes (a disk that fills up), restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    yield lambda size: resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)


def test_a_refused_append_is_cut_back_and_its_seqs_reused_cleanly(tmp_path, file_size_limit):
    journal = Journal(tmp_path, "test", 64 << 20, fsync=True)
    journal.append([b"a1", b"a2", b"a3"])
    segment = next((tmp_path / "segments").iterdir())
    size = segment.stat().st_size
    file_size_limit(size + 30)  # room for one entry of the next batch, not all of them
    with pytest.raises(JournalError, match="cannot append"):
        journal.append([b"b" * 20, b"b" * 20, b"b" * 20])
    assert segment.stat().st_size == size
    assert journal.next_seq == 4
    file_size_limit(resource.RLIM_INFINITY)
    journal.append([b"c4", b"c5"])
    journal.close()
    reopened = Journal(tmp_path, "test", 64 << 20, fsync=True)
    assert reopened.next_seq == 6
    assert JournalReader(tmp_path).read_from(1, 100) == [
        (1, b"a1"), (2, b"a2"), (3, b"a3"), (4, b"c4"), (5, b"c5")]
