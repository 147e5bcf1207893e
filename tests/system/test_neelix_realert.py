"""Throttling: 100 matching records within a minute and realert 1 min → one notice at once,
then one digest saying "99 more" when the minute is over; never an alert storm."""

from __future__ import annotations

import logging

from appliance.harness.instance import send_records, wait_until

RULES = """\
[action:ops]
type = mail
to = ops@example.org

[rule:disk-full]
message = No space left
realert = 1m
actions = ops
"""


def test_hundred_matches_make_one_notice_then_one_digest(neelix, mail):
    inst = neelix(RULES)
    records = [(logging.ERROR, f"write {n}: No space left on device", "ch2eu")
               for n in range(100)]
    send_records(inst.port, *records[:50])
    first = wait_until(mail.received, 10, "the first notice", inst.diagnostics)[0]
    send_records(inst.port, *records[50:])
    wait_until(lambda: inst.stats("neelix-0of1").get("matched") == 100, 20,
               "neelix matched all 100", inst.diagnostics)
    assert len(mail.received()) == 1, [m.subject for m in mail.received()]
    assert "write 0:" in first.body
    digest = wait_until(lambda: mail.received("99 more"), 90, "the digest notice",
                        inst.diagnostics)[0]
    assert 55 <= digest.at - first.at <= 70, f"digest {digest.at - first.at:.1f}s later"
    assert "write 99:" in digest.body  # the last record held back is shown
    assert len(mail.received()) == 2
    rows = inst.alerts()
    assert [r["event"] for r in rows] == ["match", "digest"]
