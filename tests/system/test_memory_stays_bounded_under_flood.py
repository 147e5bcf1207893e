"""A stalled subscriber makes the journal grow, not any process's memory: the writer is frozen
(SIGSTOP) through a 100,000-record flood, then catches up from the journal, exactly."""

import os
import signal

from appliance.harness.instance import finish, start_client

# 100,000 records as Python objects take ~250 MB; a process holding them could not stay below.
PEAK_RSS_LIMIT_MB = 100


def peak_rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_frozen_writer_costs_journal_space_not_memory(instance):
    inst = instance().start()
    inst.wait_ready()
    ingestor, writer = inst.pid("ingestor"), inst.pid("writer")
    os.kill(writer, signal.SIGSTOP)
    try:
        clients = [start_client(inst.port, 25000, f"mem{n}") for n in range(4)]
        for client in clients:
            finish(client, timeout=300)
    finally:
        os.kill(writer, signal.SIGCONT)
    journal_bytes = sum(p.stat().st_size for p in (inst.journal_dir / "segments").iterdir())
    assert journal_bytes > 10 * 2**20, "the flood should sit in the journal"
    inst.wait_count(100000, "system_id LIKE 'mem%'", timeout=300)

    assert inst.count("system_id LIKE 'mem%'") == 100000
    assert inst.pid("writer") == writer, "the writer was restarted"
    assert peak_rss_mb(ingestor) < PEAK_RSS_LIMIT_MB
    assert peak_rss_mb(writer) < PEAK_RSS_LIMIT_MB
