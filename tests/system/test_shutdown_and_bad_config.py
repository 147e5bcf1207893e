"""SIGTERM finishes the work in hand and exits 0; a bad config stops a process with file,
section and key in a message supervisord shows."""

import json

from appliance.harness.instance import finish, start_client, wait_until


def test_sigterm_commits_what_is_in_hand_and_exits_zero(instance):
    inst = instance().start()
    inst.wait_ready()
    clients = [start_client(inst.port, 10000, f"term{n}") for n in range(2)]
    inst.wait_count(2000, "system_id LIKE 'term%'")
    assert "writer: stopped" in inst.ctl("stop", "writer")  # mid-flood, batch in hand
    for client in clients:
        finish(client)
    assert "ingestor: stopped" in inst.ctl("stop", "ingestor")
    stats = json.loads((inst.dir / "var/run/ingestor.stats.json").read_text())
    assert "started" in inst.ctl("start", "writer")  # drains the journal with no ingestor
    inst.wait_count(stats["accepted"])
    assert inst.count("system_id LIKE 'term%'") == 20000
    assert "stopped" in inst.ctl("stop", "writer")
    supervisord_log = (inst.dir / "var/log/supervisord.log").read_text()
    assert supervisord_log.count("stopped: writer (exit status 0)") == 2, supervisord_log
    assert "stopped: ingestor (exit status 0)" in supervisord_log, supervisord_log
    assert "already stored" not in inst.log("writer")


def test_unknown_key_stops_the_process_with_file_section_and_key(instance):
    inst = instance(writer={"batch_size": "500"})  # the key is batch_records
    inst.start(wait_programs=())
    for program in ("ingestor", "writer"):  # every process validates the whole file
        wait_until(lambda p=program: inst.state(p) == "FATAL", 90, f"{program} FATAL",
                   inst.diagnostics)
        expected = (f"{program}: configuration error: {inst.ini}, section [writer], key "
                    "'batch_size': unknown key; known in this section: db, batch_records")
        assert expected in inst.ctl("tail", program)
    supervisord_log = (inst.dir / "var/log/supervisord.log").read_text()
    assert "exited: writer (exit status 78; not expected)" in supervisord_log
