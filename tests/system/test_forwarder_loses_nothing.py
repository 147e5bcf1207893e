"""Downstream → upstream over the acked appliance link: an upstream outage of 30 s in the
middle of 50,000 records, and kill -9 of the forwarder and of the upstream's ingestor, cost no
record and double none; records keep their origin and list the hops they passed."""

from __future__ import annotations

import json
import time

from appliance.harness.instance import chained, finish, journal_records, start_client, wait_until
from appliance.spine.record import INDEX

# The services' records; the appliances' own alert records (a killed program is reported by
# the events listener, and forwarded like any record) are not part of the count.
SERVICES = "system_id IN ('a', 'b')"


def origin_of(inst) -> str:
    return (inst.journal_dir / "origin").read_text().strip()


def test_50000_records_through_a_30_second_upstream_outage(instance):
    down, up = chained(instance)
    up.start()
    down.start(("ingestor", "writer", "forwarder-core"))
    clients = [start_client(down.port, 25000, system, rate=2500) for system in ("a", "b")]
    up.wait_count(8000, SERVICES, timeout=60)
    up.stop()
    stopped = time.time()
    for client in clients:
        finish(client)
    down.wait_count(50000)
    wait_until(lambda: time.time() - stopped >= 30, 40, "a 30 s outage")
    held = down.stats("forwarder-core")
    assert held["link_up"] is False and held["behind_records"] > 0, held
    up.start()
    up.wait_count(50000, SERVICES, timeout=120)
    origin = origin_of(down)
    assert up.query("SELECT count(*), count(DISTINCT seq), min(origin), max(origin) "
                    f"FROM record WHERE {SERVICES}") == [(50000, 50000, origin, origin)]
    hops = json.loads(up.query("SELECT hops FROM record LIMIT 1")[0][0])
    assert [hop[0] for hop in hops] == [origin, origin_of(up)]
    assert "retrying" in down.log("forwarder-core")


def test_kill_9_of_forwarder_and_upstream_ingestor_loses_and_doubles_nothing(instance):
    down, up = chained(instance)
    up.start()
    down.start(("ingestor", "writer", "forwarder-core"))
    clients = [start_client(down.port, 25000, system, rate=2500) for system in ("a", "b")]
    up.wait_count(5000, SERVICES, timeout=60)
    down.kill9("forwarder-core")
    up.wait_count(up.count(SERVICES) + 5000, SERVICES, timeout=60)
    up.kill9("ingestor")
    for client in clients:
        finish(client)
    up.wait_count(50000, SERVICES, timeout=120)
    assert up.query(f"SELECT count(*), count(DISTINCT seq) FROM record WHERE {SERVICES}") \
        == [(50000, 50000)]
    # Exactly once in the upstream's journal too (not merely hidden by the DB's unique index).
    seqs = [values[0] for values in journal_records(up.journal_dir)
            if values[1] == origin_of(down) and values[INDEX["system_id"]] in ("a", "b")]
    assert len(seqs) == 50000 and len(set(seqs)) == 50000
