"""neelix through SIGKILL: a notice queued (or not yet queued) when it dies is sent exactly
once after the restart, and an open incident stays open without a second DOWN mail."""

from __future__ import annotations

import logging
import sqlite3
import time

from appliance.harness.instance import send_records, wait_until

RULES = """\
[action:ops]
type = mail
to = ops@example.org

[rule:crash]
message = crashed
realert = 0
actions = ops

[heartbeat:nightly]
systems = nightly
silence = 3s
actions = ops
"""


def run_on(inst, pid: int, seconds: float) -> None:
    """Wait until neelix (this PID) publishes its counters `seconds` from now: it kept
    running (and checking) that long."""
    moment = time.time() + seconds

    def published() -> bool:
        stats = inst.stats("neelix-0of1")
        return stats.get("pid") == pid and stats.get("time", 0) > moment

    wait_until(published, seconds + 15, f"neelix {pid} running {seconds}s on",
               inst.diagnostics)


def test_queued_notice_is_sent_once_after_kill_9(neelix, mail, store):
    inst = neelix(RULES)
    mail.stop()  # the notice must wait in the outbox
    send_records(inst.port, (logging.ERROR, "worker crashed", "ch2eu"))
    wait_until(lambda: inst.alerts("event = 'match' AND attempts >= 1"), 15,
               "a delivery attempt against the stopped SMTP server", inst.diagnostics)
    pid = inst.kill9("neelix")
    mail.start()
    wait_until(mail.received, 15, "the notice after the restart", inst.diagnostics)
    run_on(inst, pid, 2)
    assert len(mail.received("worker crashed")) == 1
    rows = inst.alerts("event = 'match'")
    assert len(rows) == 1 and rows[0]["status"] == "sent"


def test_kill_9_between_a_record_and_its_notice(neelix, mail):
    """neelix holds each record up to batch_delay (3 s here) before its transaction: a kill in
    that time loses the match in memory; after the restart it is read again from the
    journal and notified once."""
    inst = neelix(RULES)
    inst.set(neelix={"batch_delay": "3s"})
    inst.ctl("restart", "neelix")
    for n in range(3):
        send_records(inst.port, (logging.ERROR, f"round {n}: job crashed", "ch2eu"))
        inst.kill9("neelix")
        killed = time.time()
        got = wait_until(lambda n=n: mail.received(f"round {n}:"), 15,
                         f"the notice of round {n}", inst.diagnostics)
        assert got[0].at > killed, "the notice went before the kill: nothing was tested"
    run_on(inst, inst.pid("neelix"), 2)
    for n in range(3):
        assert len(mail.received(f"round {n}:")) == 1, n
    assert len(inst.alerts("event = 'match'")) == 3


def test_open_incident_survives_kill_9(neelix, mail):
    inst = neelix(RULES)
    send_records(inst.port, (logging.INFO, "nightly run done", "nightly"))
    wait_until(lambda: mail.received("DOWN"), 15, "the DOWN mail", inst.diagnostics)
    pid = inst.kill9("neelix")
    run_on(inst, pid, 3)
    assert len(mail.received("DOWN")) == 1
    with_state = inst.alerts("event = 'down'")
    assert len(with_state) == 1
    with sqlite3.connect(inst.state_path) as db:
        open_incidents = db.execute("SELECT system FROM incident WHERE closed IS NULL")\
            .fetchall()
    assert open_incidents == [("nightly",)]
    send_records(inst.port, (logging.INFO, "nightly run done", "nightly"))
    wait_until(lambda: mail.received("RECOVERED"), 15, "the RECOVERED mail",
               inst.diagnostics)
    with sqlite3.connect(inst.state_path) as db:
        assert db.execute("SELECT count(*) FROM incident WHERE closed IS NULL")\
            .fetchone() == (0,)
    assert len(mail.received("DOWN")) == 1 and len(mail.received("RECOVERED")) == 1
