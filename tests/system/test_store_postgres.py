"""The PostgreSQL store's own behaviour against a real server: day partitions made ahead and
dropped whole by retention, a versioned schema (upgraded in place, a newer one refused on both
engines), one clear line when the server is away or the password wrong, a bad row costing
only itself, and the documented read-only viewer role with purges through the admin URL."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from appliance.harness.postgres import PASSWORD, PASSWORD_ENV, ROLE, query
from appliance.spine.record import INDEX, Caps, normalize
from appliance.store import pg_schema
from appliance.store import url as store_url
from appliance.store.engine import open_store
from appliance.store.query import parse
from appliance.store.reader import RecordStore
from appliance.store.url import SchemaTooNew, StoreUnavailable

DAY = 86400
NOW = time.time()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"


def row(seq: int, received: float, message: str = "", **fields) -> list:
    values = normalize({"msg": message or f"event {seq}", "levelno": 20, "SYSTEM_ID": "sys",
                        **fields}, "127.0.0.1:1", received, Caps())
    values[INDEX["seq"]], values[INDEX["origin"]] = seq, "o-1"
    return values


def engine_for(text: str, base: Path, admin: str | None = None, env: str = PASSWORD_ENV):
    os.environ.setdefault(PASSWORD_ENV, PASSWORD)
    url = store_url.parse(text, base, env)
    return open_store(url, store_url.parse(admin, base, PASSWORD_ENV) if admin else None)


def partitions(url: str) -> list[int]:
    return sorted(int(name[len("record_d"):]) for name, _ in query(url, pg_schema.PARTITIONS))


def refuse(values: list, error: BaseException) -> None:
    raise AssertionError(error)


def test_retention_drops_whole_days_and_keeps_the_counts_true(postgres_server, tmp_path):
    url = postgres_server.create_database()
    engine = engine_for(url, tmp_path)
    engine.open(create=True)
    today = pg_schema.day_of(NOW)
    assert set(range(today, today + 3)) <= set(partitions(url))  # made ahead
    rows = [row(n, NOW - (n % 10) * DAY - 60) for n in range(1, 501)]
    assert engine.store_batch(rows, ("writer-0of1", "o-1", 500), refuse) == 500
    assert {pg_schema.day_of(values[2]) for values in rows} <= set(partitions(url))
    cutoff = NOW - 5 * DAY
    dropped = engine.retention(cutoff, 0, 1000)
    first_kept = pg_schema.day_of(cutoff)
    assert min(partitions(url)) == first_kept  # every day wholly older is gone, no other
    left = query(url, "SELECT min(received), count(*) FROM record")[0]
    assert left[0] >= first_kept * DAY and dropped + left[1] == 500
    assert query(url, "SELECT sum(count) FROM level_hour")[0][0] == left[1]
    store = RecordStore(engine)
    chart = store.level_counts(parse({}), (today - 12) * DAY, DAY, 16)
    assert sum(sum(bucket.values()) for bucket in chart) == left[1]
    # another shard knew a day this retention dropped: a late record there is still stored
    other = engine_for(url, tmp_path)
    other.open(create=True)
    other.partitions.add(today - 9)  # as if it had stored a record of that day before
    assert other.store_batch([row(900, NOW - 9 * DAY)], None, refuse) == 1
    other.close()
    engine.close()


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_a_newer_schema_is_refused_and_an_older_one_upgraded(postgres_server, tmp_path,
                                                            engine_name, monkeypatch):
    text = "sqlite:///herald.sqlite" if engine_name == "sqlite" \
        else postgres_server.create_database()
    engine = engine_for(text, tmp_path)
    engine.open(create=True)
    engine.close()
    set_version = "UPDATE schema_version SET version = 99 WHERE component = 'records'"
    if engine_name == "sqlite":
        import sqlite3
        with sqlite3.connect(tmp_path / "herald.sqlite") as db:
            db.execute(set_version)
    else:
        query(text, set_version)
    for create in (True, False):
        with pytest.raises(SchemaTooNew) as refused:
            engine.open(create=create)
        message = str(refused.value)
        assert "schema version 99" in message and "upgrade the appliance" in message
        assert PASSWORD not in message and "\n" not in message
    if engine_name == "postgresql":  # an upgrade runs the migrations in place, in order
        query(text, "UPDATE schema_version SET version = 1 WHERE component = 'records'")
        monkeypatch.setattr(pg_schema, "VERSION", 2)
        monkeypatch.setattr(pg_schema, "MIGRATIONS", {
            1: ("CREATE TABLE upgraded_marker (x integer)",)})
        engine.open(create=True)
        engine.close()
        assert query(text, "SELECT version FROM schema_version") == [(2,)]
        assert query(text, "SELECT count(*) FROM upgraded_marker") == [(0,)]


def test_a_server_away_or_a_wrong_password_is_one_clear_line(postgres_server, tmp_path):
    url = postgres_server.create_database()
    os.environ["HERALD_WRONG_PASSWORD"] = "not-the-password"
    for text, env, reason in (
            (url, "HERALD_WRONG_PASSWORD", "password authentication failed"),
            (url.replace(f":{postgres_server.port}/", ":1/"), PASSWORD_ENV, "refused")):
        engine = engine_for(text, tmp_path, env=env)
        with pytest.raises(StoreUnavailable) as away:
            engine.open(create=True)
        message = str(away.value)
        assert message.startswith(f"the store {text} is unavailable: ")
        assert reason in message and "\n" not in message
        assert "not-the-password" not in message and PASSWORD not in message


def test_a_bad_row_costs_only_itself(postgres_server, tmp_path):
    url = postgres_server.create_database()
    engine = engine_for(url, tmp_path)
    engine.open(create=True)
    refused = []
    rows = [row(1, NOW), row(2, NOW, "nul \x00 inside"), row(3, NOW), row(4, NOW),
            row(5, NOW, "lone \udcff surrogate")]
    rows[2][INDEX["process"]] = 2 ** 70  # beyond bigint: the database refuses this row
    inserted = engine.store_batch(rows, ("writer-0of1", "o-1", 5),
                                  lambda values, error: refused.append(values[0]))
    assert inserted == 4 and refused == [3]
    assert query(url, "SELECT seq, message FROM record ORDER BY seq") == [
        (1, "event 1"), (2, "nul \\x00 inside"), (4, "event 4"), (5, "lone \\udcff surrogate")]
    assert engine.load_cursor("writer-0of1", "o-1") == 5
    engine.close()


def test_the_documented_viewer_role_reads_and_purges_go_through_the_admin_url(
        postgres_server, tmp_path):
    url = postgres_server.create_database()
    database = url.rsplit("/", 1)[1]
    writer = engine_for(url, tmp_path)
    writer.open(create=True)
    writer.store_batch([row(n, NOW - 3 * DAY - n) for n in range(1, 11)] +
                       [row(n, NOW) for n in range(11, 21)], ("writer-0of1", "o-1", 20), refuse)
    from appliance.neelix import state
    state.open_state(store_url.parse(url, tmp_path, PASSWORD_ENV))  # the neelix schema too
    state.state_db.close()
    sql = re.search(r"<!-- viewer-role -->\n```sql\n(.*?)```", DOCS.read_text(), re.S).group(1)
    role = f"viewer_{database}"
    sql = (sql.replace("herald_viewer", role).replace("DATABASE herald", f"DATABASE {database}")
           .replace("FOR ROLE herald ", f"FOR ROLE {ROLE} ").replace("viewer-password", PASSWORD))
    for statement in filter(str.strip, sql.split(";")):
        query(url, statement)  # as the owner, as the doc says
    viewer_url = url.replace(f"//{ROLE}@", f"//{role}@")
    viewer = engine_for(viewer_url, tmp_path, admin=url)
    store = RecordStore(viewer)
    assert len(store.page(parse({"limit": "100"}))[0]) == 20
    with pytest.raises(Exception, match="read-only|permission denied"):
        viewer.reader().rows("DELETE FROM record")
    writer.store_batch([row(21, NOW + 2 * DAY)], ("writer-0of1", "o-1", 21), refuse)
    assert len(store.page(parse({"limit": "100"}))[0]) == 21  # a new day partition: readable
    assert viewer.purge_older_than(NOW - DAY, 3) == 10  # through the admin URL
    assert [r["seq"] for r in store.page(parse({"limit": "100", "order": "oldest"}))[0]] == \
        list(range(11, 22))
    writer.close()
