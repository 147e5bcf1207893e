"""The operator's commands against a running instance: emit test records, query them with
the web's filters (table and JSON), tail them, purge old ones."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time

from appliance.harness.instance import wait_until


def appliance(inst, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args, "-c", str(inst.ini)],
                          capture_output=True, text=True, timeout=60)


def on_a_terminal(inst, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run a command with its stderr on a pseudo-terminal, as a person would; return the
    process and what the terminal showed."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "appliance", *args, "-c", str(inst.ini)],
                              stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=60)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    return done, shown.decode("utf-8", "replace")


def test_emit_query_tail_and_purge(instance, store):
    inst = instance().start()
    sent = appliance(inst, "emit", "disk almost full", "--count", "5", "--level", "WARNING",
                     "--system", "ops-check")
    assert sent.returncode == 0 and "sent 5 record(s)" in sent.stdout, sent.stderr
    inst.wait_count(5, "system_id = 'ops-check'")
    found = appliance(inst, "query", "system_id=ops-check", "level=WARNING", "--json")
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert [r["message"] for r in rows] == [f"disk almost full {n}" for n in range(1, 6)]
    table = appliance(inst, "query", "system_id=ops-check", "limit=2")
    assert table.stdout.count("disk almost full") == 2 and "WARNING" in table.stdout
    assert [json.loads(line)["received"][-6:] for line in found.stdout.splitlines()] == \
        ["+00:00"] * 5  # ISO 8601 with offset
    for level in ("WARN", "warn", "warning", "30"):
        same = appliance(inst, "query", "system_id=ops-check", f"level={level}", "--json")
        assert same.stdout == found.stdout, (level, same.stderr)
    assert appliance(inst, "query", "system_id=ops-check", "level=error").stdout == ""
    for bad_filter in ("level=LOUD", 'q="unclosed phrase', "since=yesterday"):
        bad = appliance(inst, "query", bad_filter)
        assert bad.returncode == 2 and bad.stdout == "", bad_filter
        assert bad.stderr.startswith("appliance query: ") and bad.stderr.count("\n") == 1 \
            and "Traceback" not in bad.stderr, bad.stderr
    tailed = appliance(inst, "tail", "--once", "system_id=ops-check")
    assert tailed.stdout.count("disk almost full") == 5
    moment = time.time()
    wait_until(lambda: time.time() > moment + 1.1, 5, "the records a second old")
    purged, terminal = on_a_terminal(inst, "purge", "--older-than", "1s")
    assert purged.returncode == 0 and "deleted" in purged.stdout, terminal
    assert inst.count("system_id = 'ops-check'") == 0
    deleted = int(purged.stdout.split()[1])
    assert deleted >= 5 and f"] 100% {deleted:,}/{deleted:,}" in terminal  # the bar, drawn
    again = appliance(inst, "purge", "--older-than", "1s")
    assert again.returncode == 0 and again.stderr == ""  # no bar where no one watches


def test_tail_follows_like_tail_f(instance):
    inst = instance().start()
    appliance(inst, "emit", "before the tail", "--system", "tailed")
    inst.wait_count(1, "system_id = 'tailed'")
    follower = subprocess.Popen(
        [sys.executable, "-m", "appliance", "tail", "system_id=tailed", "level=warn",
         "-c", str(inst.ini), "--interval", "200ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    started = time.time()
    try:
        # the INFO record "before the tail" is below level=warn: nothing shown yet
        wait_until(lambda: time.time() > started + 5, 10, "the tail to follow for 5 s")
        assert follower.poll() is None, follower.stderr.read()
        assert lines == []
        appliance(inst, "emit", "sent while tailing", "--level", "ERROR", "--system", "tailed")
        wait_until(lambda: any("sent while tailing" in line for line in lines), 30,
                   "the new record in the tail's output", lambda: "".join(lines))
        wait_until(lambda: time.time() > started + 10, 20, "the tail to follow for 10 s")
        assert follower.poll() is None, "tail stopped following"
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert len(lines) == 1 and "ERROR" in lines[0], lines
