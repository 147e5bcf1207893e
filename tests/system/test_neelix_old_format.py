"""The old neelix's per-system rules file works unchanged: a matching record is mailed within
2 s, others are not; a silent system gets one DOWN mail and one RECOVERED when it resumes."""

from __future__ import annotations

import logging
import logging.handlers
import re
import urllib.request

from appliance.harness.instance import send_records, wait_until

OLD_FORMAT = """\
[ch2eu]
MAIL_TO = ops@example.org,oncall@example.org
MSG = Traceback
AGE = 60*60*2

[batch_job]
MAIL_TO = ops@example.org
AGE = 2*3
"""


def test_matching_record_is_mailed_within_two_seconds(neelix, mail):
    inst = neelix(OLD_FORMAT)
    send_records(inst.port, (logging.ERROR, "all fine, no trace here", "ch2eu"),
                 (logging.ERROR, "Traceback in another system", "other"),
                 (logging.INFO, "ch2eu is fine", "ch2eu"))
    sent = send_records(inst.port, (logging.ERROR, "Traceback (most recent call last)",
                                    "ch2eu"))
    first = wait_until(mail.received, 10, "a mail", inst.diagnostics)[0]
    assert first.at - sent < 2.0, f"mail took {first.at - sent:.2f}s"
    assert sorted(first.recipients) == ["oncall@example.org", "ops@example.org"]
    assert "ch2eu" in first.subject and "Traceback (most recent call last)" in first.body
    # Said once, not "rule ch2eu matched for ch2eu"; times with their offset.
    assert first.subject == "[herald] rule ch2eu matched: Traceback (most recent call last)"
    assert re.search(r"^time: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\r?$", first.body, re.M)
    # The link opens the record that matched, not the system's list.
    link = re.search(r"^http://\S+(?=\r?$)", first.body, re.M).group(0)
    assert re.fullmatch(rf"http://127\.0\.0\.1:{inst.web_port}/record/[^/]+/\d+", link), link
    inst.wait_web()
    inst.wait_count(1, "message = 'Traceback (most recent call last)'")
    with urllib.request.urlopen(link, timeout=10) as page:
        record_id = inst.query("SELECT id FROM record WHERE message = "
                               "'Traceback (most recent call last)'")[0][0]
        assert page.url.endswith(f"/record/{record_id}")
        assert "Traceback (most recent call last)" in page.read().decode()
    # Records are matched in order: the three before it were seen and did not match.
    stats = wait_until(lambda: inst.stats("neelix-0of1").get("matched"), 10, "stats")
    assert stats == 1
    assert len(mail.received()) == 1


def test_silent_system_gets_one_down_and_one_recovered_mail(neelix, mail):
    inst = neelix(OLD_FORMAT)
    last = send_records(inst.port, (logging.INFO, "job ran", "batch_job"))
    down = wait_until(lambda: mail.received("DOWN"), 6 + 10, "a DOWN mail",
                      inst.diagnostics)
    assert down[0].at - last <= 6 + 5, f"DOWN after {down[0].at - last:.1f}s silence"
    assert "batch_job" in down[0].subject
    # Silence goes on: still exactly one DOWN (no repeat on every check).
    wait_until(lambda: inst.stats("neelix-0of1").get("time", 0) > down[0].at + 3, 10,
               "neelix running 3 s past the DOWN")
    assert len(mail.received("DOWN")) == 1
    send_records(inst.port, (logging.INFO, "job ran again", "batch_job"))
    recovered = wait_until(lambda: mail.received("RECOVERED"), 10, "a RECOVERED mail",
                           inst.diagnostics)
    assert len(recovered) == 1 and "batch_job" in recovered[0].subject
    # It says how long the system was down and answers the DOWN: one thread in a mail client.
    took = re.search(r"RECOVERED after (\d+)s down \(since \d{4}-\d\d-\d\dT[\d:]{8}\+00:00",
                     recovered[0].subject)
    assert took and 3 <= int(took.group(1)) <= 30, recovered[0].subject
    down_id = down[0].message["Message-ID"]
    assert recovered[0].message["In-Reply-To"] == down_id
    assert recovered[0].message["References"] == down_id
    assert recovered[0].message["Message-ID"] != down_id
    assert len(mail.received("DOWN")) == 1
    # ch2eu has AGE 2h: no mail about it.
    assert not [m for m in mail.received() if "ch2eu" in m.subject]
    closed = inst.alerts("event = 'recovered'")
    assert len(closed) == 1 and closed[0]["status"] == "sent"


def test_msg_traceback_fires_for_logger_exception(neelix, mail):
    """`MSG = Traceback` was written to catch tracebacks: logger.exception() puts the
    traceback in exc_text, not in the message, and MSG is searched in both."""
    inst = neelix(OLD_FORMAT)
    handler = logging.handlers.SocketHandler("127.0.0.1", inst.port)
    service = logging.Logger("ch2eu.payments")
    service.addHandler(handler)
    try:
        try:
            {}["card"]
        except KeyError:
            service.exception("payment failed", extra={"SYSTEM_ID": "ch2eu"})
    finally:
        handler.close()
    mailed = wait_until(mail.received, 10, "a mail for the exception", inst.diagnostics)
    assert "payment failed" in mailed[0].body and "KeyError: 'card'" in mailed[0].body
    inst.wait_count(1, "message = 'payment failed' AND exc_text LIKE 'Traceback%'")
