"""`appliance import-legacy OLD.sqlite` on databases the old ps_bridge made, into a running
instance: the records show in the web with their original times and fields, full-text search
finds them, a second run inserts nothing, live traffic goes on, bad input gets one line."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from appliance.harness.instance import Instance, api, finish, get, start_client, wait_until
from appliance.web.site import fmt_time
from conftest import ENGINES
from legacy_fixtures import (
    PS_BRIDGE_ROWS,
    SYSTEM,
    TRACEBACK,
    VARIANT_ROWS,
    ZONE,
    epoch,
    ps_bridge_db,
    variant_db,
)


def import_legacy(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "import-legacy",
                           *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=env)


def search_count(inst: Instance, word: str) -> list[tuple]:
    """Rows the engine's full-text index finds for one word."""
    if inst.store:
        return inst.query("SELECT count(*) FROM record WHERE search @@ ?::tsquery", (word,))
    return inst.query("SELECT count(*) FROM record_fts WHERE record_fts MATCH ?", (word,))


def by_message(inst: Instance, query: str) -> dict[str, dict]:
    return {r["message"]: r for r in api(inst, f"/api/records?limit=1000&{query}")["records"]}


@pytest.fixture(scope="module", params=ENGINES)
def imported(tmp_path_factory, request):
    """A running instance (retention off: the old records are years old) into which the old
    database was imported once, on each engine; yields (instance, the import's output, its
    time span)."""
    base = tmp_path_factory.mktemp("legacy")
    old = ps_bridge_db(base / "ps_herald.sqlite")
    store = None
    if request.param == "postgresql":
        store = request.getfixturevalue("postgres_server").create_database()
    inst = Instance(base / "instance", store=store, writer={"keep": "0"})
    inst.start(("ingestor", "writer", "web"))
    try:
        wait_until(lambda: get(inst, "/api/records")[0] == 200, 30, "the web viewer",
                   inst.diagnostics)
        before = time.time()
        done = import_legacy(old, "-c", inst.ini, "--timezone", ZONE)
        assert done.returncode == 0, done.stdout + done.stderr
        yield inst, done.stdout, (before, time.time())
    finally:
        inst.stop()


def test_old_records_show_in_the_web_with_their_original_times_and_fields(imported):
    inst, out, (before, after) = imported
    records = by_message(inst, f"system_id={SYSTEM}")
    assert set(records) == {row["message"] for row, _ in PS_BRIDGE_ROWS}  # no placeholder
    for row, expected in PS_BRIDGE_ROWS:
        record = records[row["message"]]
        expected = dict(expected)
        extra = expected.pop("extra", "absent")
        assert {name: record[name] for name in expected} == expected, row["message"]
        if extra != "absent":
            assert (json.loads(record["extra"]) if record["extra"] else None) == extra
        assert record["origin"] == "legacy:ps_herald" and record["peer"] is None
    # The old ids are the seqs (the placeholder row was id 1).
    assert sorted(r["seq"] for r in records.values()) == [2, 3, 4, 5]
    broken = records["clock was broken here"]
    assert broken["created"] is None and before <= broken["received"] <= after
    # The operator sees how the columns were read and what could not be.
    assert "created           ← asctime, else created" in out
    assert "received          ← created, else asctime" in out
    assert "extra (JSON)      ← request_id" in out
    assert "(dropped)         ← args, exc_info, msecs, relativecreated, summary" in out
    assert "4 records inserted" in out
    assert "skipped: 1 × empty placeholder rows" in out
    assert "warning: 1 × unreadable time in created (NULL)" in out


def test_the_detail_page_shows_an_old_record_with_its_traceback(imported):
    inst, _, _ = imported
    records = by_message(inst, f"system_id={SYSTEM}")
    first = records["disk quota nearly exhausted on volume7"]
    status, html = get(inst, f"/record/{first['id']}")
    assert status == 200
    assert f'<dd class="field-created">{fmt_time(epoch("2023-04-01 12:00:00.100"))}</dd>' in html
    assert '<dd class="field-created">2023-04-01 10:00:00.100</dd>' in html  # UTC
    assert '<dd class="field-sub_system_id">host-a</dd>' in html
    assert '<dd class="field-user_spec_2"></dd>' in html  # "None" is no value
    assert '<dd class="field-origin">legacy:ps_herald</dd>' in html
    assert 'id="extra"' in html and "&quot;request_id&quot;: &quot;req-77&quot;" in html
    failed = records["settlement failed for batch 17"]
    _, html = get(inst, f"/record/{failed['id']}")
    assert "ZeroDivisionError: division by zero" in html and 'id="trace"' in html
    assert '<dd class="field-lineno"></dd>' in html


def test_full_text_search_time_filters_and_counts_cover_old_records(imported):
    inst, _, _ = imported
    for word, message in (("volume7", "disk quota nearly exhausted on volume7"),
                          ("ZeroDivisionError", "settlement failed for batch 17")):
        found = by_message(inst, f"q={word}")
        assert list(found) == [message], word
    assert by_message(inst, f"q=ZeroDivisionError&system_id={SYSTEM}")[
        "settlement failed for batch 17"]["exc_text"] == TRACEBACK
    # received is the time ps_bridge stored the row: the time filters find it there.
    window = by_message(inst, "since=2023-04-01T10:00&until=2023-04-01T10:01")
    assert list(window) == ["disk quota nearly exhausted on volume7"]
    system = next(s for s in api(inst, "/api/systems")["systems"] if s["system_id"] == SYSTEM)
    assert system["records"] == 4 and system["hosts"] == ["host-a", "host-b"]
    hourly = inst.query("SELECT sum(count) FROM level_hour WHERE system_id = ?", (SYSTEM,))
    assert hourly == [(4,)]


def test_a_second_run_inserts_nothing_and_says_so(imported):
    inst, _, _ = imported
    old = inst.dir.parent / "ps_herald.sqlite"
    done = import_legacy(old, "-c", inst.ini, "--timezone", ZONE)
    assert done.returncode == 0, done.stderr
    assert "0 records inserted, 4 already imported before" in done.stdout
    assert "nothing new: all 4 records were imported before" in done.stdout
    assert len(by_message(inst, f"system_id={SYSTEM}")) == 4
    system = next(s for s in api(inst, "/api/systems")["systems"] if s["system_id"] == SYSTEM)
    assert system["records"] == 4  # facets are not counted twice
    assert inst.query("SELECT sum(count) FROM level_hour WHERE system_id = ?",
                      (SYSTEM,)) == [(4,)]


def test_another_layout_and_every_timestamp_form(imported, tmp_path):
    inst, _, _ = imported
    done = import_legacy(variant_db(tmp_path / "older.sqlite"), "-c", inst.ini,
                         "--timezone", ZONE, "--origin", "legacy:variant")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created           ← timestamp" in done.stdout
    assert "received          ← received, else timestamp" in done.stdout
    records = by_message(inst, "system_id=variant")
    for message, _, _, created, received in VARIANT_ROWS:
        record = records[f"variant {message}"]
        assert (record["created"], record["received"]) == (created, received), message
        assert record["levelno"] == 40 and record["levelname"] == "ERROR"
        assert record["logger"] == "variant.logger" and record["func_name"] == "handle"
        assert record["lineno"] == 7 and record["task_name"] == "Task-3"
        assert record["produkt_id"] == "P1" and record["sub_system_id"] is None
        assert record["exc_text"] is None and json.loads(record["extra"]) == {"hostname": "web01"}
        assert record["origin"] == "legacy:variant"


def test_a_large_import_runs_beside_live_traffic(imported, tmp_path):
    inst, _, _ = imported
    old = ps_bridge_db(tmp_path / "big_herald.sqlite", filler=100_000, samples=False)
    client = start_client(inst.port, 5000, "live-during-import", rate=2000)
    started = time.monotonic()
    done = import_legacy(old, "-c", inst.ini, "--timezone", ZONE)
    seconds = time.monotonic() - started
    finish(client)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100,000 records inserted" in done.stdout
    print(f"imported 100,000 rows in {seconds:.1f} s beside live traffic")
    assert seconds < 60, done.stdout
    inst.wait_count(5000, "system_id = ?", ("live-during-import",))
    bulk = f"{SYSTEM}-bulk"
    assert inst.count("system_id = ?", (bulk,)) == 100_000
    assert search_count(inst, "filler") == [(100_000,)]
    assert inst.query("SELECT sum(count) FROM level_hour WHERE system_id = ?",
                      (bulk,)) == [(100_000,)]
    assert inst.query("SELECT count FROM facet WHERE field = 'system_id' AND value = ?",
                      (bulk,)) == [(100_000,)]
    last = by_message(inst, "q=99999&system_id=" + urllib.parse.quote(bulk))
    assert last["filler record 99999"]["created"] == epoch("2023-04-03 03:46:39")


def test_records_older_than_the_instances_keep_are_skipped_with_advice(instance, tmp_path):
    inst = instance()  # keep = 30d, not started: the import creates the DB
    old = ps_bridge_db(tmp_path / "ps_herald.sqlite")
    recent = time.time() - 3600
    with sqlite3.connect(old) as db:
        db.execute("INSERT INTO log (created, name, message, levelname, system_id) "
                   "VALUES (?, 'recent', 'logged an hour ago', 'INFO', 'fresh')",
                   (time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(recent)),))
    db.close()
    done = import_legacy(old, "-c", inst.ini)
    assert done.returncode == 0, done.stderr
    assert "skipped: 3 × older than [writer] keep" in done.stdout
    assert "set [writer] keep = 0" in done.stdout
    assert inst.query("SELECT message FROM record ORDER BY id") == [
        ("clock was broken here",), ("logged an hour ago",)]


def test_naive_times_default_to_the_local_zone(tmp_path):
    env = {**os.environ, "TZ": "America/New_York"}
    help_text = import_legacy("--help", env=env).stdout
    assert "default: this machine's local zone" in " ".join(help_text.split())
    target = tmp_path / "herald.sqlite"
    done = import_legacy(variant_db(tmp_path / "older.sqlite"), "--db", target, env=env)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(target) as db:
        rows = dict(db.execute("SELECT message, created FROM record"))
    db.close()
    assert rows["variant naive T"] == epoch("2023-04-01 12:00:00", "America/New_York")
    assert rows["variant iso utc"] == 1680343200.0  # a time with its zone keeps it


def test_bad_input_is_refused_in_one_line(tmp_path):
    target = tmp_path / "herald.sqlite"
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all\n" * 100)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE heartbeat (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE records (id INTEGER PRIMARY KEY)")
    db.close()
    cases = [
        (text, "is not a readable SQLite database"),
        (other, "has no `log` table, so it is no old ps.herald database "
                "(tables found: heartbeat, records)"),
        (tmp_path / "missing.sqlite", "missing.sqlite: no such file"),
        (tmp_path, "not a file"),
    ]
    for path, message in cases:
        done = import_legacy(path, "--db", target)
        assert done.returncode == 2, (path, done.stdout, done.stderr)
        assert done.stderr.startswith("appliance import-legacy: "), done.stderr
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
    done = import_legacy(other, "--db", target, "--timezone", "Mars/Olympus")
    assert done.returncode == 2 and "unknown time zone 'Mars/Olympus'" in done.stderr
    done = import_legacy(other, "-c", tmp_path / "nowhere.ini")
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr
    assert not target.exists()  # nothing was created for input that was refused
