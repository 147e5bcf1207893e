"""Acceptance: SIGKILL the ingestor mid-flood; every record whose frame it had accepted (it is
in the journal) is stored exactly once, and clients reconnect and go on."""

import time
from pathlib import Path

from appliance.harness.instance import finish, start_client, wait_until
from appliance.spine.codec import unpack_record
from appliance.spine.journal import JournalReader
from appliance.spine.record import INDEX

CLIENTS = "system_id != 'herald'"  # the events listener reports the kill as a record


def child_pids(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def journaled_messages(journal_dir) -> list[str]:
    """The clients' messages in the journal: not the appliance's own alert record about the
    killed ingestor (the events listener sends it whenever the new ingestor takes it)."""
    reader, seq, messages = JournalReader(journal_dir), 1, []
    while entries := reader.read_from(seq, 10000):
        messages += [values[INDEX["message"]] for values in
                     (unpack_record(payload) for _, payload in entries)
                     if values[INDEX["system_id"]] != "herald"]
        seq = entries[-1][0] + 1
    return messages


def test_ingestor_killed_mid_flood_keeps_every_accepted_record(instance):
    inst = instance().start()
    inst.wait_ready()
    # Paced so the clients are still sending when the new ingestor is up: the stdlib
    # SocketHandler drops what it logs while disconnected (appliance.client will not).
    clients = [start_client(inst.port, 40000, f"steady{n}", rate=5000) for n in range(2)]
    inst.wait_count(15000, "system_id LIKE 'steady%'", timeout=120)
    decoders = child_pids(inst.pid("ingestor"))
    assert decoders, "the ingestor runs its decoders as child processes"
    inst.kill9("ingestor")
    restarted = time.time()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in decoders), 10,
               "the killed ingestor's decoders to die with it", inst.diagnostics)
    for client in clients:
        finish(client, timeout=300)
    inst.wait_ready()
    finish(start_client(inst.port, 1000, "after"))

    def drained() -> bool:
        return inst.count(CLIENTS) == len(journaled_messages(inst.journal_dir))

    wait_until(drained, 120, "the writer to store every journaled record", inst.diagnostics)
    stored = [row[0] for row in inst.query(f"SELECT message FROM record WHERE {CLIENTS} "
                                           "AND system_id != 'probe'")]
    accepted = [m for m in journaled_messages(inst.journal_dir) if not m.startswith("probe-")]
    assert len(stored) == len(set(stored)), "a record was stored twice"
    assert sorted(stored) == sorted(accepted)
    assert inst.query("SELECT count(DISTINCT seq) FROM record") == [(inst.count(),)]
    inst.wait_count(1, "system_id = 'herald' AND message LIKE '% (TESTING): ingestor exited%'",
                    timeout=30)
    assert inst.count("system_id = 'after'") == 1000
    for n in range(2):
        after_restart = inst.count("system_id = ? AND received > ?", (f"steady{n}", restarted))
        assert after_restart > 1000, f"client {n} did not go on after the restart"
    sent = 2 * 40000
    print(f"stdlib clients: {len(stored) - 1000} of {sent} stored; the rest was dropped by "
          "SocketHandler while it could not connect, or was in flight at the kill")
    assert inst.count("system_id LIKE 'steady%'") > 15000
    assert "already stored" not in inst.log("writer")
