"""A second instance on the ports of a running one: `appliance init` refuses them naming the
port and its holder; started anyway, its ingestor and web say so in one line each and go
FATAL instead of crash-looping with tracebacks, and its event listener never reports into the
first instance. Every page of the first says which stage and instance it is."""

from __future__ import annotations

import re
import subprocess
import sys

from appliance import config
from appliance.harness.instance import get, wait_until


def test_a_second_instance_on_taken_ports_stays_out_of_the_first(instance, tmp_path):
    first = instance().start(("ingestor", "writer", "events", "web"))
    first.wait_ready()
    refused = subprocess.run(
        [sys.executable, "-m", "appliance", "init", str(tmp_path / "second"), "--stage",
         "TESTING", "--ingest-port", str(first.port), "--web-port", str(first.web_port)],
        capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert f"port 127.0.0.1:{first.port}" in refused.stderr
    ingestor_pid = first.pid("ingestor")
    assert f"pid {ingestor_pid} (" in refused.stderr, refused.stderr
    assert not (tmp_path / "second").exists()

    second = instance()  # written on free ports, then pointed at the first's, as by mistake
    text = second.ini.read_text()
    for own, taken in ((second.port, first.port), (second.web_port, first.web_port)):
        text = text.replace(f"\nport = {own}\n", f"\nport = {taken}\n")
    second.ini.write_text(text)
    refused = subprocess.run([sys.executable, "-m", "appliance", "start", "-c",
                              str(second.conf)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"appliance start: the ingest port 127.0.0.1:{first.port}")
    assert f"pid {ingestor_pid} (" in refused.stderr and "[ingestor] port" in refused.stderr
    assert not (second.dir / "var" / "run" / "supervisord.pid").exists()
    second.start(())  # with supervisord itself, as a systemd unit would
    for program in ("ingestor", "web"):
        wait_until(lambda p=program: second.state(p) == "FATAL", 90, f"the second {program} "
                   "FATAL after supervisord's retries", second.diagnostics)
        log = second.log(program)
        assert "Traceback" not in log, log
        said = [line for line in log.splitlines() if "is taken by" in line]
        assert said and all(f"pid {first.pid(program)}" in line for line in said), log
        assert len(log.splitlines()) <= 2 * len(said) + 2, log  # one line a try, no more
    wait_until(lambda: "not by this instance's ingestor" in second.log("events"), 30,
               "the second's event listener to keep its FATAL alert", second.diagnostics)
    assert first.count("logger = 'appliance.events'") == 0  # nothing reported into the first
    assert first.state("ingestor") == "RUNNING" and first.pid("ingestor") == ingestor_pid

    name = config.load(first.ini).appliance.instance
    record_id = first.query("SELECT max(id) FROM record")[0][0]
    for page in ("/", "/systems", "/alerts", f"/record/{record_id}", "/no-such-page"):
        status, body = get(first, page)
        assert status in (200, 404), (page, status)
        title = re.search(r"<title>(.*?)</title>", body).group(1)
        assert title.endswith(f"herald TESTING · {name}"), (page, title)
        assert 'class="identity stage-testing"' in body and f"TESTING · {name}" in body
