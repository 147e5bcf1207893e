"""Acceptance of the shared PostgreSQL store: two writer shards from two instance folders (as
two writer hosts would run them) on one PostgreSQL store 4 × 25,000 records exactly once,
through a SIGKILL of one writer and the database stopped for 10 s mid-flood."""

import json
import subprocess
import sys
import time

from appliance.harness.instance import finish, wait_until
from appliance.harness.postgres import PostgresServer
from appliance.spine.subscriber import Shard

FLOOD = "system_id LIKE 'flood%'"
SYSTEMS = ("flood2", "flood3", "flood4", "flood5")  # two for each shard


def library_client(port: int, system: str, folder) -> subprocess.Popen:
    """A service logging 25,000 records flat out through appliance.client."""
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.harness.library_service", "--port", str(port),
         "--count", "25000", "--system-id", system, "--queue-size", "25000",
         "--spill", str(folder / f"{system}.spill")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_writer_hosts_store_every_record_once_through_kill_9_and_a_database_outage(
        instance, tmp_path):
    server = PostgresServer().start()  # its own: this test stops it for 10 s
    try:
        url = server.create_database()
        ingest = instance(store=url)
        ingest.only(("ingestor", "writer"), shard=(0, 2))
        writer_host = instance(store=url)
        # the second host's writer follows the first one's ingestor and journal
        writer_host.set(journal={"dir": str(ingest.journal_dir)},
                        ingestor={"publish": f"ipc://{ingest.dir}/var/run/records.pub"})
        writer_host.only(("writer",), shard=(1, 2))
        ingest.start()
        writer_host.start(wait_programs=("writer",))
        ingest.wait_ready()
        # appliance.client: the stdlib handler drops a record whose send waits over 1 s
        # (README), as it may while the stopping database flushes the one disk of this host
        clients = [library_client(ingest.port, system, tmp_path) for system in SYSTEMS]
        ingest.wait_count(20000, FLOOD, timeout=180)
        writer_host.kill9("writer")
        ingest.wait_count(40000, FLOOD, timeout=180)
        server.pause()
        stopped = time.monotonic()
        # while the database is away the writers wait; nothing restarts them
        wait_until(lambda: "retrying in" in ingest.log("writer"), 30, "the writer to wait",
                   ingest.diagnostics)
        wait_until(lambda: time.monotonic() - stopped >= 10, 15, "10 s without the database")
        pids = (ingest.pid("writer"), writer_host.pid("writer"))
        server.resume()
        for client in clients:
            sent = json.loads(finish(client, timeout=300).splitlines()[-1])
            assert sent["dropped"] == 0 and sent["flushed"], sent
        ingest.wait_count(100000, FLOOD, timeout=200)

        assert ingest.count(FLOOD) == 100000
        assert ingest.query(f"SELECT count(DISTINCT seq), count(DISTINCT message) FROM record "  # noqa: S608
                            f"WHERE {FLOOD}") == [(100000, 100000)]
        for system in SYSTEMS:
            assert ingest.count("system_id = ?", (system,)) == 25000
        cursors = dict(ingest.query('SELECT name, seq FROM "cursor"'))
        assert set(cursors) == {"writer-0of2", "writer-1of2"}
        assert (ingest.pid("writer"), writer_host.pid("writer")) == pids  # no crash loop
        logs = ingest.log("writer"), writer_host.log("writer")
        assert all("already stored" not in log for log in logs)
        assert "cannot store" in logs[0] and "herald-test-password" not in "".join(logs)
        assert [Shard(0, 2).owns(system) for system in SYSTEMS] == [False, False, True, True]
    finally:
        server.stop()
