"""supervisord's events become alert records in the appliance's own table: a program that
keeps crashing gives one (throttled) "exited unexpectedly" alert, one that cannot start at
all a FATAL alert; they are records like any other (searchable, forwarded)."""

from __future__ import annotations

import json
import sys

from appliance import config
from appliance.monitor.events import Watch, parse

CRASHERS = f"""
[program:crasher]
command={sys.executable} -c "import sys; sys.exit(3)"
startsecs=0
autorestart=true
startretries=100

[program:broken]
command={sys.executable} -c "import sys; sys.exit(4)"
startsecs=1
startretries=1
autorestart=true
"""


def test_a_crashing_program_becomes_an_alert_record(instance):
    inst = instance()
    inst.conf.write_text(inst.conf.read_text() + CRASHERS)
    inst.start(("ingestor", "writer", "events"))
    where = "logger = 'appliance.events' AND system_id = 'herald'"
    # Each alert says which instance it is from (records travel upstream, people have several).
    origin = f"{config.load(inst.ini).appliance.instance} (TESTING): "
    inst.wait_count(1, f"{where} AND message LIKE ?", (f"{origin}crasher exited unexpectedly%",),
                    timeout=60)
    inst.wait_count(1, f"{where} AND message LIKE ?", (f"{origin}broken is FATAL%",), timeout=60)
    rows = inst.query(f"SELECT levelno, message, extra FROM record WHERE {where}")
    # (broken may also exit unexpectedly first, when a loaded machine keeps it up past startsecs)
    assert {levelno for levelno, message, _ in rows if "broken is FATAL" in message} == {50}
    assert {json.loads(extra)["stage"] for _, _, extra in rows} == {"TESTING"}
    # A crash loop makes one alert a minute, not one per crash.
    crashes = [m for _level, m, _ in rows if "crasher" in m]
    assert len(crashes) == 1, crashes


def test_exits_are_throttled_per_program_and_counted():
    watch = Watch()
    exited = parse("processname:w groupname:w from_state:RUNNING expected:0 pid:7")
    assert watch.alert("PROCESS_STATE_EXITED", exited, 100.0)[0] == 40
    assert watch.alert("PROCESS_STATE_EXITED", exited, 110.0) is None
    assert watch.alert("PROCESS_STATE_EXITED", exited, 120.0) is None
    level, message = watch.alert("PROCESS_STATE_EXITED", exited, 161.0)
    assert "2 more unexpected exits" in message
    expected = parse("processname:w groupname:w from_state:RUNNING expected:1 pid:8")
    assert watch.alert("PROCESS_STATE_EXITED", expected, 500.0) is None  # a clean stop
    fatal = parse("processname:writer_1 groupname:writer from_state:BACKOFF")
    assert watch.alert("PROCESS_STATE_FATAL", fatal, 500.0)[1].startswith("writer:writer_1")
