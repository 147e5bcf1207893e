"""Delivery failures are retried with backoff and recorded, and one failing action never
holds up another: SMTP down does not delay the webhook, a webhook answering 500 does not
delay the mail. The `record` action's alert lands in the table as a WARNING record."""

from __future__ import annotations

import logging
import sqlite3
import time

from alert_sinks import WebhookSink
from appliance.harness.instance import send_records, wait_until

RULES = """\
[action:ops]
type = mail
to = ops@example.org

[action:hook]
type = webhook
url = {url}
timeout = 5s

[action:table]
type = record
level = WARNING

[rule:payments]
message = payment failed
realert = 0
actions = {actions}
"""


def test_smtp_down_is_retried_until_it_returns_and_never_blocks_the_webhook(neelix, mail):
    hook = WebhookSink()
    try:
        inst = neelix(RULES.format(url=hook.url, actions="ops, hook"))
        mail.stop()
        sent = send_records(inst.port, (logging.ERROR, "payment failed: card", "shop"))
        wait_until(hook.delivered, 10, "the webhook", inst.diagnostics)
        assert hook.requests[0][0] - sent < 2.0
        payload = hook.delivered()[0]
        assert payload["event"] == "match" and payload["system"] == "shop"
        assert payload["record"]["message"] == "payment failed: card"
        retried = wait_until(lambda: inst.alerts("action = 'ops' AND attempts >= 3"), 20,
                             "three attempts at the stopped SMTP server", inst.diagnostics)
        assert retried[0]["status"] == "pending"
        assert "refused" in retried[0]["last_error"].lower()
        mail.start()
        got = wait_until(mail.received, 30, "the mail once SMTP is back", inst.diagnostics)
        assert "payment failed: card" in got[0].body
        wait_until(lambda: inst.alerts("action = 'ops' AND status = 'sent'"), 10,
                   "the alert marked sent")
        assert len(mail.received()) == 1 and len(hook.delivered()) == 1
    finally:
        hook.stop()


def test_webhook_500_is_retried_and_never_blocks_the_mail(neelix, mail):
    hook = WebhookSink(statuses=[500, 500, 503])
    try:
        inst = neelix(RULES.format(url=hook.url, actions="hook, ops"))
        sent = send_records(inst.port, (logging.ERROR, "payment failed: timeout", "shop"))
        got = wait_until(mail.received, 10, "the mail", inst.diagnostics)
        assert got[0].at - sent < 2.0
        wait_until(hook.delivered, 30, "the webhook after three failures", inst.diagnostics)
        assert [status for _at, status, _body in hook.requests] == [500, 500, 503, 200]
        row = wait_until(lambda: inst.alerts("action = 'hook' AND status = 'sent'"), 10,
                         "the webhook alert marked sent")[0]
        assert row["attempts"] == 4
        gaps = [b[0] - a[0] for a, b in zip(hook.requests, hook.requests[1:])]
        assert gaps[0] < gaps[2], f"no backoff between tries: {gaps}"
    finally:
        hook.stop()


def test_record_action_puts_an_alert_record_in_the_table(neelix, mail):
    inst = neelix(RULES.format(url="http://127.0.0.1:9/never", actions="table"))
    send_records(inst.port, (logging.ERROR, "payment failed: fraud check", "shop"))
    inst.wait_count(1, "logger = 'appliance.neelix'")
    rows = inst.query("SELECT levelno, system_id, message, extra FROM record "
                      "WHERE logger = 'appliance.neelix'")
    levelno, system, message, extra = rows[0]
    assert levelno >= logging.WARNING and system == "neelix"
    assert "payments" in message and "payment failed: fraud check" in message
    assert '"alert_system": "shop"' in extra and '"alert_event": "match"' in extra
    # Its own alert record (which contains the matching text) never matches again.
    (seq,), = inst.query("SELECT seq FROM record WHERE logger = 'appliance.neelix'")
    wait_until(lambda: neelix_cursor(inst) >= seq, 10, "neelix past the alert record")
    moment = time.time()
    wait_until(lambda: inst.stats("neelix-0of1").get("time", 0) > moment, 10, "fresh stats")
    assert inst.stats("neelix-0of1")["matched"] == 1
    assert len(inst.alerts()) == 1


def neelix_cursor(inst) -> int:
    with sqlite3.connect(f"file:{inst.state_path}?mode=ro", uri=True) as db:
        return db.execute("SELECT max(seq) FROM cursor").fetchone()[0] or 0
