"""The writer's sink stores a batch and its cursor in one transaction, once; a row SQLite
rejects costs only itself; retention deletes old rows in small batches and the full-text
index follows every insert and delete."""

import sqlite3

import peewee as pw
import pytest

from appliance.spine.record import INDEX, Caps, normalize
from appliance.store.schema import Cursor, Record, database, open_database
from appliance.store.writer import DatabaseSink, StoreFailed

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "var" / "herald.sqlite"
    open_database(path, create=True)
    yield path
    database.close()


def sink(keep: float = 0, max_rows: int = 0, delete_batch: int = 1000) -> DatabaseSink:
    return DatabaseSink("writer-0of1", keep=keep, max_rows=max_rows, retention_interval=60,
                        delete_batch=delete_batch, retention_owner=True)


def row(seq: int, word: str | None = None, received: float = NOW, origin: str = "o-1") -> list:
    values = normalize({"msg": f"event {word or f'word{seq}'} happened", "levelno": 20,
                        "SYSTEM_ID": "sys", "exc_text": f"Traceback trace{seq}"},
                       "127.0.0.1:1", received, Caps())
    values[INDEX["seq"]], values[INDEX["origin"]] = seq, origin
    return values


def stored_seqs() -> list[int]:
    return [r.seq for r in Record.select(Record.seq).order_by(Record.id)]


def fts(word: str) -> list[int]:
    return [r[0] for r in database.execute_sql(
        "SELECT rowid FROM record_fts WHERE record_fts MATCH ? ORDER BY rowid", (word,))]


def assert_fts_consistent() -> None:
    # rank 1: also compare the index with the external content table (the record rows)
    database.execute_sql("INSERT INTO record_fts(record_fts, rank) VALUES ('integrity-check', 1)")


def test_apply_stores_rows_and_moves_the_cursor(db):
    writer = sink()
    assert writer.load_cursor("o-1") == 0
    writer.apply([row(s) for s in range(1, 6)], "o-1", 7)  # 6 and 7 were other shards'
    assert stored_seqs() == [1, 2, 3, 4, 5]
    with sqlite3.connect(db) as reader:  # committed: another connection sees rows and cursor
        assert reader.execute("SELECT count(*) FROM record").fetchone() == (5,)
        assert reader.execute("SELECT seq FROM cursor").fetchall() == [(7,)]
    assert writer.load_cursor("o-1") == 7 and writer.load_cursor("o-2") == 0
    assert sink().load_cursor("o-1") == 7  # it is in the file, not in the object
    assert DatabaseSink("neelix", 0, 0, 60, 1, False).load_cursor("o-1") == 0
    stored = Record.get(Record.seq == 3)
    assert (stored.message, stored.system_id, stored.peer) == \
        ("event word3 happened", "sys", "127.0.0.1:1")
    assert fts("word3") == [stored.id] and fts("trace3") == [stored.id]
    writer.apply([], "o-1", 9)  # nothing of this shard in the batch: the cursor still moves
    assert writer.load_cursor("o-1") == 9
    assert_fts_consistent()


def test_rows_and_cursor_commit_together_or_not_at_all(db):
    writer = sink()
    writer.apply([row(1)], "o-1", 1)
    database.execute_sql('DROP TABLE "cursor"')  # the cursor write will now fail
    with pytest.raises(pw.DatabaseError):
        writer.apply([row(2), row(3)], "o-1", 3)
    assert stored_seqs() == [1] and fts("word2") == []
    assert_fts_consistent()


def test_the_same_origin_and_seq_is_stored_once(db):
    writer = sink()
    writer.apply([row(s) for s in range(1, 4)], "o-1", 3)
    writer.apply([row(s) for s in range(2, 6)], "o-1", 5)  # 2 and 3 again, after a restart
    assert stored_seqs() == [1, 2, 3, 4, 5]
    assert writer.duplicates == 2 and writer.rejected == 0
    writer.apply([row(2, origin="o-2")], "o-2", 2)  # another journal's seq 2 is another record
    assert Record.select().where(Record.seq == 2).count() == 2
    assert len(fts("word2")) == 2
    assert_fts_consistent()


def test_a_row_sqlite_rejects_costs_only_itself(db):
    writer = sink()
    bad = row(3)
    bad[INDEX["lineno"]] = 2**70  # no SQLite integer holds it
    odd = row(4, word="surrogate\udcff")  # encodable once scrubbed
    writer.apply([row(1), row(2), bad, odd, row(5)], "o-1", 5)
    assert stored_seqs() == [1, 2, 4, 5]
    assert writer.rejected == 1 and writer.last_rejected == 1 and writer.duplicates == 0
    assert writer.load_cursor("o-1") == 5
    assert Record.get(Record.seq == 4).message == "event surrogate\\udcff happened"
    assert fts("word5") and fts("word3") == []
    assert_fts_consistent()


def test_an_unbindable_value_costs_only_its_row(db):
    writer = sink()
    bad = row(2)
    bad[INDEX["thread_name"]] = ["not", "bindable"]
    writer.apply([row(1), bad, row(3)], "o-1", 3)
    assert stored_seqs() == [1, 3] and writer.rejected == 1


def delete_batches(run) -> tuple[int, int]:
    """Run retention, tracing SQL: its result and how many transactions deleted rows."""
    statements: list[str] = []
    database.connection().set_trace_callback(statements.append)
    try:
        deleted = run()
    finally:
        database.connection().set_trace_callback(None)
    transactions: list[bool] = []
    for statement in statements:
        if statement.startswith("BEGIN"):
            transactions.append(False)
        elif statement.lstrip().upper().startswith("DELETE FROM") and transactions:
            transactions[-1] = True
    return deleted, sum(transactions)


def test_retention_deletes_rows_older_than_keep_in_batches(db):
    writer = sink(keep=7 * DAY, delete_batch=10)
    writer.apply([row(s, received=NOW - 30 * DAY + s) for s in range(1, 26)], "o-1", 25)
    writer.apply([row(s, received=NOW - DAY) for s in range(26, 31)], "o-1", 30)
    old_id = Record.get(Record.seq == 7).id
    assert delete_batches(lambda: writer.run_retention(NOW)) == (25, 3)  # 10 + 10 + 5
    assert stored_seqs() == list(range(26, 31))
    assert fts("word7") == [] and old_id not in fts("happened")
    assert len(fts("word28")) == 1 and len(fts("happened")) == 5
    assert writer.run_retention(NOW) == 0
    assert_fts_consistent()


def test_retention_keeps_at_most_max_rows_newest_first(db):
    writer = sink(max_rows=4, delete_batch=10)
    writer.apply([row(s) for s in range(1, 26)], "o-1", 25)
    assert delete_batches(lambda: writer.run_retention(NOW)) == (21, 3)  # 10 + 10 + 1
    assert stored_seqs() == [22, 23, 24, 25]
    writer.apply([row(s) for s in range(26, 28)], "o-1", 27)
    assert writer.run_retention(NOW) == 2 and stored_seqs() == [24, 25, 26, 27]
    assert fts("word23") == [] and len(fts("word27")) == 1
    assert_fts_consistent()


def test_retention_with_nothing_to_do(db):
    writer = sink(keep=DAY, max_rows=100)
    assert writer.run_retention(NOW) == 0
    writer.apply([row(1)], "o-1", 1)
    assert writer.run_retention(NOW) == 0 and stored_seqs() == [1]


def test_retention_by_age_spares_a_fresh_row_stored_before_an_old_one(db):
    writer = sink(keep=7 * DAY)
    writer.apply([row(1, received=NOW - DAY)], "o-1", 1)           # shard 0, up to date
    writer.apply([row(2, received=NOW - 9 * DAY)], "o-1", 2)       # shard 1, catching up
    writer.run_retention(NOW)
    assert stored_seqs() == [1]


def test_cursor_rows_are_per_sink_name_and_origin(db):
    sink().apply([row(1)], "o-1", 1)
    DatabaseSink("writer-1of2", 0, 0, 60, 1, True).apply([], "o-1", 4)
    assert {(c.name, c.origin, c.seq) for c in Cursor.select()} == \
        {("writer-0of1", "o-1", 1), ("writer-1of2", "o-1", 4)}


def test_a_full_disk_stores_nothing_and_moves_no_cursor_until_it_has_room(db):
    writer = DatabaseSink("writer-0of1", 0, 0, 60, 1000, False,
                          should_stop=lambda: writer.write_failures >= 2)
    writer.apply([row(s, word="x" * 3000) for s in range(1, 11)], "o-1", 10)
    pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
    database.execute_sql(f"PRAGMA max_page_count={pages}")  # the disk is full
    with pytest.raises(StoreFailed):
        writer.apply([row(s, word="x" * 3000) for s in range(11, 211)], "o-1", 210)
    assert stored_seqs() == list(range(1, 11))
    assert writer.load_cursor("o-1") == 10 and writer.rejected == 0
    database.execute_sql("PRAGMA max_page_count=1073741823")  # room again
    writer.apply([row(s, word="x" * 3000) for s in range(11, 211)], "o-1", 210)
    assert stored_seqs() == list(range(1, 211)) and writer.load_cursor("o-1") == 210


def test_hourly_level_counts_follow_inserts_and_deletes(db):
    writer = sink(keep=7 * DAY, delete_batch=10)
    old = [row(s, received=NOW - 30 * DAY) for s in range(1, 4)]
    new = [row(s, received=NOW - 60) for s in range(4, 9)]
    new[0][INDEX["levelno"]], new[0][INDEX["levelname"]] = 40, "ERROR"
    writer.apply(old + new, "o-1", 8)

    def counts() -> dict:
        return {(h, lvl): n for h, lvl, n in database.execute_sql(
            "SELECT hour, levelno, count FROM level_hour WHERE count > 0").fetchall()}

    old_hour, new_hour = int((NOW - 30 * DAY) // 3600), int((NOW - 60) // 3600)
    assert counts() == {(old_hour, 20): 3, (new_hour, 20): 4, (new_hour, 40): 1}
    writer.run_retention(NOW)
    assert counts() == {(new_hour, 20): 4, (new_hour, 40): 1}
