"""/health says 503 with the reason when a program is not running and 200 again when it
runs; /metrics parses with Prometheus' own parser; `appliance status` prints the same."""

from __future__ import annotations

import json
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from appliance.harness.instance import get, send_records, wait_until

ALL = ("ingestor", "writer", "neelix", "web", "events")


def test_health_follows_the_writer(instance):
    inst = instance().start(ALL)
    inst.wait_ready()
    status, body = wait_until(lambda: (r := get(inst, "/health"))[0] == 200 and r, 30,
                              "a healthy appliance", inst.diagnostics)
    report = json.loads(body)
    assert report["status"] == "ok" and report["programs"]["writer"] == "RUNNING"
    inst.ctl("stop", "writer")
    # /health reuses a snapshot for up to a second (it answers everyone: one supervisord
    # call a second, however many ask).
    status, body = wait_until(lambda: (r := get(inst, "/health"))[0] == 503 and r, 5,
                              "/health to turn 503")
    assert "writer is STOPPED" in json.loads(body)["problems"]
    inst.ctl("start", "writer")
    wait_until(lambda: get(inst, "/health")[0] == 200, 5, "/health to turn 200 again")


def test_metrics_parse_with_the_prometheus_parser(instance):
    inst = instance().start(ALL)
    send_records(inst.port, *[(20, f"metric {n}", "m") for n in range(25)])
    inst.wait_count(25, "system_id = 'm'")
    wait_until(lambda: inst.stats("writer-0of1").get("written", 0) >= 25, 10, "writer stats")
    status, text = wait_until(lambda: (r := get(inst, "/metrics"))[0] == 200 and r, 30,
                              "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    accepted = families["herald_ingestor_accepted"].samples[0]
    assert accepted.value >= 25 and accepted.labels == {"process": "ingestor"}
    written = families["herald_writer_written"].samples[0]
    assert written.value >= 25 and written.labels == {"process": "writer-0of1"}
    running = {s.labels["program"]: s.value for s in families["herald_program_running"].samples}
    assert running["writer"] == 1 and running["ingestor"] == 1
    lag = {s.labels["subscriber"] for s in families["herald_subscriber_lag_records"].samples}
    assert "writer-0of1" in lag
    assert families["herald_up"].samples[0].value == 1
    assert families["herald_disk_free_bytes"].samples[0].value > 0
    done = subprocess.run([sys.executable, "-m", "appliance", "status", "-c", str(inst.ini),
                           "--interval", "200ms"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": healthy" in done.stdout and "writer RUNNING" in done.stdout
    assert "(stage TESTING)" in done.stdout  # which instance, and where it listens
    assert f"web     http://127.0.0.1:{inst.web_port}/" in done.stdout
    assert f"ingest  127.0.0.1:{inst.port} (TCP and UDP" in done.stdout
