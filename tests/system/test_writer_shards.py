"""Subscribers scale independently: two writer shards under supervisord store every record
exactly once between them, each keeping its own cursor, through a kill -9 of one shard."""

from appliance.harness.instance import finish, start_client
from appliance.spine.subscriber import Shard


def test_two_writer_shards_store_each_record_once(instance):
    inst = instance()
    inst.scale("writer", 2)
    inst.start(wait_programs=("ingestor", "writer:writer_0", "writer:writer_1"))
    inst.wait_ready()
    clients = [start_client(inst.port, 3000, f"shard-sys{n}") for n in range(8)]
    inst.wait_count(5000, "system_id LIKE 'shard-sys%'")
    inst.kill9("writer:writer_1")
    for client in clients:
        finish(client)
    inst.wait_count(24000, "system_id LIKE 'shard-sys%'")

    assert inst.count("system_id LIKE 'shard-sys%'") == 24000
    assert inst.query("SELECT count(DISTINCT seq) FROM record WHERE system_id LIKE "
                      "'shard-sys%'") == [(24000,)]
    cursors = dict(inst.query("SELECT name, seq FROM cursor"))
    assert set(cursors) == {"writer-0of2", "writer-1of2"}
    per_shard = [inst.log(f"writer_{n}") for n in range(2)]
    assert all("resuming after seq" in log for log in per_shard)
    assert per_shard[1].count("resuming after seq") == 2  # restarted after the kill
    assert all("already stored" not in log for log in per_shard)
    # both shards had work: the stable hash splits these systems between them
    owners = {Shard(0, 2).owns(f"shard-sys{n}") for n in range(8)}
    assert owners == {True, False}
