"""`appliance import SOURCE_URL`: an old SQLite appliance's records copied into PostgreSQL,
with a progress bar on a terminal, resumable (a second run copies only what is new) and
idempotent (a record already there is never stored twice)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from appliance.harness.instance import Instance, send_records


def run_import(target: Instance, source: str, terminal: bool = False) -> str:
    command = [sys.executable, "-m", "appliance", "import", source, "-c", str(target.ini)]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(command, stdout=follower, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0, b"".join(chunks)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)


def test_a_sqlite_appliance_is_copied_into_postgresql_resumably(instance, postgres_server):
    old = instance().start()
    send_records(old.port, *[(30, f"old record {n}", f"sys{n % 3}") for n in range(1200)])
    old.wait_count(1200)
    source = f"sqlite:///{old.db_path}"
    target = instance(store=postgres_server.create_database())

    shown = run_import(target, source, terminal=True)
    assert "\r[" in shown and "#" * 30 in shown and "1,200/1,200" in shown
    assert "1,200 records read, 1,200 inserted, 0 were there already" in shown
    copied = target.query("SELECT origin, seq, message, system_id, received FROM record "
                          "ORDER BY id")
    assert copied == old.query("SELECT origin, seq, message, system_id, received FROM record "
                               "ORDER BY id")
    assert target.query("SELECT sum(count) FROM level_hour") == [(1200,)]

    send_records(old.port, *[(40, f"new record {n}", "sys-new") for n in range(300)])
    old.wait_count(1500)
    again = run_import(target, source)
    assert "copying 300 records" in again and "resuming after source id 1200" in again
    assert "300 records read, 300 inserted" in again
    assert target.count() == 1500

    target.query('DELETE FROM "cursor" WHERE name LIKE ?', ("import %",))  # forget progress
    from_scratch = run_import(target, source)
    assert "1,500 records read, 0 inserted, 1,500 were there already" in from_scratch
    assert target.count() == 1500
    assert target.query("SELECT count(DISTINCT (origin, seq)) FROM record") == [(1500,)]
