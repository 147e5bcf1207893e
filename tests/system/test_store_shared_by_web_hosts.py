"""Several web processes on one PostgreSQL store, as on several web hosts: a login made on one
is valid on the other (shared [web] secret_file), a purge on one is seen by both, neelix's
alerts (state in the store) show on a web that runs without it, and while the database is
away the web answers 503 with a clear message and recovers by itself."""

from __future__ import annotations

import json
import logging
import secrets
import time

from test_web_login import Browser, passwd

from appliance.harness.instance import send_records, wait_until
from appliance.harness.postgres import PASSWORD, PASSWORD_ENV, PostgresServer
from appliance.spine.record import INDEX, Caps, normalize
from appliance.store import url as store_url
from appliance.store.engine import open_store

RULES = """\
[action:ops]
type = mail
to = ops@example.org

[rule:crash]
message = crashed
realert = 0
actions = ops
"""


def old_records(url: str, count: int) -> None:
    """Records received three days ago, stored as a writer would."""
    engine = open_store(store_url.parse(url, store_url.Path("."), PASSWORD_ENV))
    engine.open(create=True)
    rows = []
    for n in range(1, count + 1):
        values = normalize({"msg": f"old record {n}", "levelno": 20, "SYSTEM_ID": "old"},
                           "127.0.0.1:1", time.time() - 3 * 86400, Caps())
        values[INDEX["seq"]], values[INDEX["origin"]] = n, "an-old-appliance"
        rows.append(values)
    assert engine.store_batch(rows, None, lambda values, error: None) == count
    engine.close()


def test_two_web_hosts_share_logins_purges_and_alerts(instance, mail, tmp_path):
    server = PostgresServer().start()  # its own: this test stops it
    try:
        url = server.create_database()
        secret = tmp_path / "web.secret"
        secret.write_text(secrets.token_hex(32))
        admin = passwd("ada", "--role", "admin")[0]
        web = {"login": "true", "users": admin, "secret_file": str(secret)}
        first = instance(store=url, web=web)
        first.set(neelix={"smtp_host": "127.0.0.1", "smtp_port": mail.port})
        first.rules_path.write_text(RULES)
        second = instance(store=url, web=web)
        second.only(("web",))  # a web host: no ingestor, writer or neelix of its own
        first.start(("ingestor", "writer", "web", "neelix"))
        second.start(("web",))
        first.wait_ready()
        old_records(url, 5)
        send_records(first.port, (logging.ERROR, "worker crashed", "ch2eu"))
        wait_until(lambda: mail.received("worker crashed"), 30, "neelix's mail",
                   first.diagnostics)

        on_first = Browser(f"http://127.0.0.1:{first.web_port}")
        on_second = Browser(f"http://127.0.0.1:{second.web_port}")
        assert on_first.login("ada") == 303
        # the second web gets the session cookie of the login on the first
        on_second.jar, on_second.opener = on_first.jar, on_first.opener
        status, _, html = on_second.call("/api/records?system_id=old")
        assert status == 200 and len(json.loads(html)["records"]) == 5
        alerts = json.loads(on_second.call("/api/alerts")[2])["alerts"]
        assert [(a["event"], a["status"]) for a in alerts] == [("match", "sent")]

        token = on_second.csrf()  # a form on the second web, the session of the first
        status, headers, _ = on_second.call("/admin/purge", {"days": "1", "csrf": token})
        assert status == 303 and "deleted=5" in headers["Location"]
        for browser in (on_first, on_second):
            assert json.loads(browser.call("/api/records?system_id=old")[2])["records"] == []
            records = json.loads(browser.call("/api/records?system_id=ch2eu")[2])["records"]
            assert [r["message"] for r in records] == ["worker crashed"]

        server.pause()
        for path in ("/api/records", "/"):
            status, _, body = on_second.call(path)
            assert status == 503, body
            assert "is unavailable" in body and "Traceback" not in body
            assert PASSWORD not in body
        status, _, body = on_second.call("/health")
        assert status == 503 and "is unavailable" in " ".join(json.loads(body)["problems"])
        server.resume()
        wait_until(lambda: on_second.call("/api/records")[0] == 200, 30,
                   "the web to reconnect", second.diagnostics)
        assert second.state("web") == "RUNNING"
    finally:
        server.stop()
