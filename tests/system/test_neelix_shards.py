"""Two neelix shards (numprocs=2, --shard K/2): every record is matched exactly once, and
each system's heartbeat is owned by exactly one shard (one DOWN per system, not two)."""

from __future__ import annotations

import json
import logging

from alert_sinks import WebhookSink
from appliance.harness.instance import send_records, wait_until

RULES = """\
[action:hook]
type = webhook
url = {url}

[rule:everything]
level = INFO
realert = 0
actions = hook

[heartbeat:all]
systems = *
silence = 3s
actions = hook
"""
SYSTEMS = [f"svc-{n}" for n in range(10)]


def test_two_shards_match_each_record_once_and_split_the_heartbeats(neelix):
    hook = WebhookSink()
    try:
        inst = neelix(RULES.format(url=hook.url), shards=2,
                      programs=("ingestor", "writer", "neelix:neelix_0", "neelix:neelix_1"))
        send_records(inst.port, *[(logging.INFO, f"{system} record {n}", system)
                                  for n in range(20) for system in SYSTEMS])
        wait_until(lambda: len(inst.alerts("event = 'match'")) >= 200, 30,
                   "200 match alerts", inst.diagnostics)
        downs = wait_until(lambda: (rows := inst.alerts("event = 'down'")) and
                           len(rows) >= len(SYSTEMS) and rows, 30,
                           "a DOWN per system", inst.diagnostics)
        matches = inst.alerts("event = 'match'")
        seqs = [json.loads(row["notice"])["record"]["seq"] for row in matches]
        assert len(seqs) == 200 and len(set(seqs)) == 200
        assert sorted(row["system"] for row in downs) == sorted(SYSTEMS)
        wait_until(lambda: sum(inst.stats(f"neelix-{k}of2").get("matched", 0)
                               for k in (0, 1)) == 200, 10, "both shards' counters")
        stats = [inst.stats(f"neelix-{k}of2")["matched"] for k in (0, 1)]
        assert all(stats), f"one shard did all the work: {stats}"
        wait_until(lambda: len(hook.delivered()) == 210, 30, "every webhook delivered")
        assert len(inst.alerts("event = 'down'")) == len(SYSTEMS)
    finally:
        hook.stop()
