"""Acceptance: SIGKILL the writer in the middle of a 100,000-record flood; supervisord restarts
it; after the drain the DB holds exactly the records sent, none twice. (On PostgreSQL the same
flood through a kill -9 and a database outage: test_store_shared_by_writer_hosts.py.)"""

from appliance.harness.instance import finish, start_client


def test_writer_killed_twice_mid_flood_loses_and_duplicates_nothing(instance):
    inst = instance().start()
    inst.wait_ready()
    clients = [start_client(inst.port, 25000, f"flood{n}") for n in range(4)]
    for threshold in (15000, 50000):
        inst.wait_count(threshold, "system_id LIKE 'flood%'", timeout=180)
        inst.kill9("writer")
    for client in clients:
        finish(client, timeout=300)
    inst.wait_count(100000, "system_id LIKE 'flood%'", timeout=300)

    assert inst.count("system_id LIKE 'flood%'") == 100000
    assert inst.query("SELECT count(DISTINCT message), count(DISTINCT seq) FROM record "
                      "WHERE system_id LIKE 'flood%'") == [(100000, 100000)]
    for n in range(4):
        assert inst.count("system_id = ?", (f"flood{n}",)) == 25000
    log = inst.log("writer")
    assert log.count("resuming after seq") == 3, log  # the first start and two restarts
    assert "already stored" not in log  # the cursor alone kept the effect exactly-once
