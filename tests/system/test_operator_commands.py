"""The operator's commands against a running instance: emit test records, query them with
the web's filters (table and JSON), tail them, purge old ones."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from appliance.harness.instance import wait_until


def appliance(inst, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args, "-c", str(inst.ini)],
                          capture_output=True, text=True, timeout=60)


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
    bad = appliance(inst, "query", "level=LOUD")
    assert bad.returncode == 2 and "level" in bad.stderr and "Traceback" not in bad.stderr
    tailed = appliance(inst, "tail", "--once", "system_id=ops-check")
    assert tailed.stdout.count("disk almost full") == 5
    moment = time.time()
    wait_until(lambda: time.time() > moment + 1.1, 5, "the records a second old")
    purged = appliance(inst, "purge", "--older-than", "1s")
    assert purged.returncode == 0 and "deleted" in purged.stdout, purged.stderr
    assert inst.count("system_id = 'ops-check'") == 0
