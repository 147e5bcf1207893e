"""Operators' neelix tools: `appliance neelix snooze/unsnooze` and maintenance windows hold
notices (recorded, not sent); `appliance neelix test` shows what rules would fire over stored
records and sends nothing."""

from __future__ import annotations

import logging
import subprocess
import sys
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

[maintenance:db-upgrade]
systems = db1
start = 2000-01-01 00:00
end = 2100-01-01 00:00
"""


def appliance(inst, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "appliance", "neelix", *args, "-c",
                           str(inst.ini)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_snooze_and_maintenance_hold_notices(neelix, mail):
    inst = neelix(RULES)
    assert "held until" in appliance(inst, "snooze", "ch2eu", "2h", "--reason", "deploy")
    assert "ch2eu" in appliance(inst, "snoozes")
    send_records(inst.port, (logging.ERROR, "ch2eu crashed", "ch2eu"),
                 (logging.ERROR, "db1 crashed", "db1"),
                 (logging.ERROR, "web crashed", "web"))
    wait_until(lambda: mail.received("web crashed"), 10, "the unsnoozed system's mail",
               inst.diagnostics)
    held = wait_until(lambda: inst.alerts("status = 'held'"), 10, "held alerts")
    assert sorted(row["system"] for row in held) == ["ch2eu", "db1"]
    assert "snooze ended" in appliance(inst, "unsnooze", "ch2eu")
    send_records(inst.port, (logging.ERROR, "ch2eu crashed again", "ch2eu"))
    wait_until(lambda: mail.received("ch2eu crashed again"), 10, "the mail after unsnooze",
               inst.diagnostics)
    assert [m for m in mail.received() if "db1" in m.body] == []
    assert len(mail.received("ch2eu crashed")) == 1  # only "again"


def test_dry_run_prints_what_would_fire_and_sends_nothing(instance, mail):
    inst = instance()
    inst.set(neelix={"smtp_host": "127.0.0.1", "smtp_port": mail.port})
    inst.start()
    send_records(inst.port, *[(logging.ERROR, f"batch {n} crashed", "nightly")
                              for n in range(5)],
                 (logging.INFO, "all good", "web"))
    inst.wait_count(6)
    candidate = inst.dir / "conf" / "candidate.ini"
    candidate.write_text(RULES.replace("realert = 0", "realert = 1h") + """
[heartbeat:web]
systems = web
silence = 1s
actions = ops
""")
    last = time.time()
    wait_until(lambda: time.time() > last + 1.5, 5, "web silent past its 1 s")
    out = appliance(inst, "test", "--since", "1h", "--rules", str(candidate))
    assert "rule crash matched for nightly: batch 0 crashed" in out
    assert "4 more matches of rule crash" in out  # the digest at the end of the hour
    assert "web is DOWN" in out
    assert "nothing was sent" in out
    assert mail.received() == []
    assert not inst.state_path.exists() or inst.alerts() == []
