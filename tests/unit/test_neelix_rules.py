"""neelix's pure cores without a process: the rules file (old and new format) is read and
checked, rules match and throttle, heartbeats go DOWN and RECOVER, maintenance windows cover.

Plain data and a clock passed in; only the last two tests start `python3 -m appliance`.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance import converters as c
from appliance.errors import EXIT_CONFIG, ConfigError
from appliance.neelix.actions import Defaults
from appliance.neelix.heartbeats import HeartbeatWatch
from appliance.neelix.notice import Notice
from appliance.neelix.rulebook import RuleBook, load
from appliance.neelix.rules import RuleMatcher, key_of, matches
from appliance.spine.record import COLUMNS, INDEX

DEFAULTS = Defaults(smtp_host="smtp.example.org", smtp_port=2525,
                    mail_from="neelix@example.org", retry_for=3600.0)
TABLE = "[action:table]\ntype = record\n"  # an action for rules and heartbeats to name
T0 = datetime.datetime(2026, 3, 2, 12, 0, tzinfo=datetime.UTC).timestamp()
ZURICH = ZoneInfo("Europe/Zurich")

OLD_FORMAT = """\
[ch2eu]
MAIL_TO = ops@example.org,oncall@example.org
MSG = Traceback
AGE = 60*60*2
"""


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "neelix.ini"
    path.write_text(text, encoding="utf-8")
    return path


def book(tmp_path: Path, text: str) -> RuleBook:
    return load(rules_file(tmp_path, text), DEFAULTS)


def refused(tmp_path: Path, text: str) -> ConfigError:
    path = rules_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, DEFAULTS)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return caught.value


def record(**fields: object) -> list:
    """A record's values in COLUMNS order, every field not given None."""
    values: list = [None] * len(COLUMNS)
    for name, value in fields.items():
        values[INDEX[name]] = value
    return values


def zurich(*when: int) -> float:
    return datetime.datetime(*when, tzinfo=ZURICH).timestamp()


# --- the old per-system format ---------------------------------------------------------------

@pytest.mark.parametrize("text", [
    OLD_FORMAT,
    OLD_FORMAT.replace("MAIL_TO", "mail_to").replace("MSG", "msg").replace("AGE", "age"),
    OLD_FORMAT.replace("MAIL_TO", "Mail_To").replace("MSG", "Msg").replace("AGE", "Age"),
], ids=["upper", "lower", "mixed"])
def test_old_format_becomes_a_rule_a_heartbeat_and_a_mail_action(tmp_path, text):
    rules = book(tmp_path, text)
    [rule] = rules.rules
    [heartbeat] = rules.heartbeats
    assert rule.name == heartbeat.name == "ch2eu"
    assert rule.actions == heartbeat.actions == ("ch2eu-mail",)
    assert heartbeat.systems == ("ch2eu",) and heartbeat.silence == 7200
    assert heartbeat.grace == 0 and heartbeat.remind == 0
    action = rules.actions["ch2eu-mail"]
    assert action.type == "mail" and action.retry_for == 3600.0
    assert action.options == {"to": ["ops@example.org", "oncall@example.org"],
                              "host": "smtp.example.org", "port": 2525,
                              "from": "neelix@example.org"}
    assert matches(rule, record(system_id="ch2eu", message="Traceback (most recent call)"))
    assert not matches(rule, record(system_id="other", message="Traceback (most recent call)"))
    assert not matches(rule, record(system_id="ch2eu", message="all fine"))
    assert not matches(rule, record(system_id="ch2eu", message="traceback"))  # as written


def test_old_format_msg_is_a_plain_substring_not_a_regex(tmp_path):
    [rule] = book(tmp_path, "[ch2eu]\nMAIL_TO = ops@example.org\nMSG = a.b(\n").rules
    assert matches(rule, record(system_id="ch2eu", message="before a.b( after"))
    assert not matches(rule, record(system_id="ch2eu", message="aXb("))


def test_old_format_without_msg_or_age_makes_only_what_is_given(tmp_path):
    rules = book(tmp_path, "[batch]\nMAIL_TO = ops@example.org\nAGE = 2*3\n")
    assert rules.rules == ()
    assert [(h.name, h.silence) for h in rules.heartbeats] == [("batch", 6)]
    assert list(rules.actions) == ["batch-mail"]


def test_keys_are_case_insensitive_except_field_names(tmp_path):
    [rule] = book(tmp_path, "[rule:r]\nLevel = ERROR\nfield.requestId = 7\nACTIONS = table\n"
                  + TABLE).rules
    assert rule.level == 40 and rule.fields == (("requestId", "7"),)


def test_missing_rules_file_is_refused(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path / "absent.ini", DEFAULTS)
    assert "no rules file" in raised.value.reason
    assert load_text(tmp_path, "") == RuleBook()


def load_text(tmp_path: Path, text: str) -> RuleBook:
    path = tmp_path / "empty.ini"
    path.write_text(text)
    return load(path, DEFAULTS)


# --- AGE is a product of integers, never evaluated --------------------------------------------

@pytest.mark.parametrize("age", [
    "__import__('os').system('touch {marker}')",
    "2**10",
    "60*60*two",
    "1e9",
    "60*-1",
    "",
], ids=["import", "power", "name", "float", "negative", "empty"])
def test_age_is_never_evaluated(tmp_path, age):
    marker = tmp_path / "x"
    error = refused(tmp_path, f"[ch2eu]\nMAIL_TO = ops@example.org\nAGE = {age}\n"
                    .replace("{marker}", str(marker)))
    assert (error.section, error.key) == ("ch2eu", "AGE")
    assert "product" in error.reason
    assert not marker.exists()


def test_heartbeat_silence_takes_a_duration_or_a_product_but_never_an_expression(tmp_path):
    text = "[heartbeat:h]\nsystems = a\nsilence = {}\nactions = table\n" + TABLE
    for silence, seconds in (("2h", 7200), ("90s", 90), ("60*60*2", 7200)):
        assert book(tmp_path, text.format(silence)).heartbeats[0].silence == seconds
    error = refused(tmp_path, text.format("2**10"))
    assert (error.section, error.key) == ("heartbeat:h", "silence")


def test_product_converter():
    assert c.product("60*60*2") == 7200
    assert c.product(" 60 * 60 * 2 ") == 7200
    assert c.product("7") == 7
    with pytest.raises(ValueError, match="too large"):
        c.product("1000000*1000000*10")
    assert c.seconds("15m") == 900 and c.seconds("3*5") == 15


# --- validation: every mistake names file, section and key ------------------------------------

RULE = "[rule:r]\nmessage = boom\nactions = table\n"
MAIL = "[action:m]\ntype = mail\nto = ops@example.org\n"
WINDOW = "[maintenance:w]\ndaily = 02:00-04:00\n"

MISTAKES = [
    # (id, rules file, section, key, words the message must contain)
    ("rule-unknown-key", RULE + "actoins = table\n" + TABLE, "rule:r", "actoins",
     ["unknown key", "actions", "field.NAME"]),
    ("rule-key-twice-in-two-cases", "[rule:r]\nLevel = ERROR\nlevel = INFO\n"
     "actions = table\n" + TABLE, "rule:r", "level", ["given twice"]),
    ("heartbeat-unknown-key", "[heartbeat:h]\nsystems = a\nsilence = 1h\nactions = table\n"
     "reminder = 1h\n" + TABLE, "heartbeat:h", "reminder", ["unknown key", "remind", "grace"]),
    ("mail-unknown-key", MAIL + "smtp_host = x\n", "action:m", "smtp_host",
     ["unknown key", "host", "password_env"]),
    ("webhook-unknown-key", "[action:w]\ntype = webhook\nurl = https://hooks.example.org/x\n"
     "method = POST\n", "action:w", "method", ["unknown key", "url", "format"]),
    ("record-unknown-key", "[action:t]\ntype = record\nto = ops@example.org\n", "action:t", "to",
     ["unknown key", "level", "system_id"]),
    ("maintenance-unknown-key", WINDOW + "timezon = UTC\n", "maintenance:w", "timezon",
     ["unknown key", "timezone", "days"]),
    ("old-format-unknown-key", "[ch2eu]\nMAIL_TO = ops@example.org\nMAX_AGE = 5\n", "ch2eu",
     "MAX_AGE", ["unknown key", "mail_to", "msg", "age"]),
    ("unknown-section-kind", "[rules:x]\nmessage = boom\n", "rules:x", "",
     ["unknown section kind", "[rule:NAME]"]),
    ("section-without-name", "[rule:]\nmessage = boom\n", "rule:", "", ["needs a name"]),
    ("bad-message-regex", "[rule:r]\nmessage = (unclosed\nactions = table\n" + TABLE, "rule:r",
     "message", ["(unclosed", "regular expression"]),
    ("bad-traceback-regex", "[rule:r]\ntraceback = [a-\nactions = table\n" + TABLE, "rule:r",
     "traceback", ["regular expression"]),
    ("bad-level", "[rule:r]\nlevel = LOUD\nactions = table\n" + TABLE, "rule:r", "level",
     ["LOUD", "log level"]),
    ("bad-threshold", RULE + "threshold = 5 per 10m\n" + TABLE, "rule:r", "threshold",
     ["N in DURATION"]),
    ("bad-key-field", RULE + "key = hostname\n" + TABLE, "rule:r", "key",
     ["'hostname' is not a record field"]),
    ("empty-glob", "[rule:r]\nsystem =\nactions = table\n" + TABLE, "rule:r", "system",
     ["at least one value"]),
    ("rule-unknown-action", "[rule:r]\nmessage = boom\nactions = table, pager\n" + TABLE,
     "rule:r", "actions", ["unknown action 'pager'", "table"]),
    ("heartbeat-unknown-action", "[heartbeat:h]\nsystems = a\nsilence = 1h\nactions = pager\n",
     "heartbeat:h", "actions", ["unknown action 'pager'", "none"]),
    ("rule-without-conditions", "[rule:r]\nrealert = 5m\nactions = table\n" + TABLE, "rule:r",
     "", ["at least one condition"]),
    ("rule-without-actions", "[rule:r]\nmessage = boom\n", "rule:r", "actions",
     ["needs actions"]),
    ("heartbeat-without-silence", "[heartbeat:h]\nsystems = a\nactions = table\n" + TABLE,
     "heartbeat:h", "silence", ["needs silence"]),
    ("heartbeat-without-systems", "[heartbeat:h]\nsilence = 1h\nactions = table\n" + TABLE,
     "heartbeat:h", "systems", ["needs systems"]),
    ("action-without-type", "[action:m]\nto = ops@example.org\n", "action:m", "type",
     ["mail", "webhook", "record", "command"]),
    ("action-unknown-type", "[action:m]\ntype = pigeon\n", "action:m", "type",
     ["mail", "webhook"]),
    ("mail-without-to", "[action:m]\ntype = mail\nsubject = hi\n", "action:m", "to",
     ["needs to"]),
    ("bad-address", "[action:m]\ntype = mail\nto = ops@example.org, oncall\n", "action:m",
     "to", ["'oncall' is not an e-mail address"]),
    ("address-with-header", "[action:m]\ntype = mail\nto = <ops@example.org>\n", "action:m",
     "to", ["not an e-mail address"]),
    ("old-format-bad-address", "[ch2eu]\nMAIL_TO = ops@\n", "ch2eu", "MAIL_TO",
     ["not an e-mail address"]),
    ("old-format-without-mail-to", "[ch2eu]\nMSG = Traceback\n", "ch2eu", "MAIL_TO",
     ["needs MAIL_TO"]),
    ("webhook-file-url", "[action:w]\ntype = webhook\nurl = file:///etc/passwd\n", "action:w",
     "url", ["file:///etc/passwd", "http://"]),
    ("webhook-without-url", "[action:w]\ntype = webhook\n", "action:w", "url", ["needs url"]),
    ("unknown-template-field", MAIL + "subject = [herald] ${nope} ${summary}\n", "action:m",
     "subject", ["nope", "summary"]),
    ("invalid-template", MAIL + "body = costs $5\n", "action:m", "body", ["$$"]),
    ("user-without-password", MAIL + "user = neelix\n", "action:m", "user",
     ["password_env", "password_file"]),
    ("bad-port", MAIL + "port = 70000\n", "action:m", "port", ["port number"]),
    ("command-without-command", "[action:x]\ntype = command\ntimeout = 5s\n", "action:x",
     "command", ["needs command"]),
    ("default-section", "[DEFAULT]\nrealert = 5m\n" + RULE + TABLE, "DEFAULT", "",
     ["[DEFAULT]"]),
    ("end-before-start", "[maintenance:w]\nsystems = *\nstart = 2026-12-01 04:00\n"
     "end = 2026-12-01 02:00\n",
     "maintenance:w", "end", ["after start"]),
    ("start-without-end", "[maintenance:w]\nsystems = *\nstart = 2026-12-01 04:00\n",
     "maintenance:w", "",
     ["start and end"]),
    ("bad-moment", "[maintenance:w]\nstart = tomorrow\nend = 2026-12-01 02:00\n",
     "maintenance:w", "start", ["tomorrow"]),
    ("bad-time-zone", WINDOW + "timezone = Mars/Olympus\n", "maintenance:w", "timezone",
     ["Mars/Olympus", "time zone"]),
    ("bad-weekday", WINDOW + "days = sat, funday\n", "maintenance:w", "days",
     ["'funday' is not a weekday"]),
    ("bad-clock-range", "[maintenance:w]\ndaily = 2-4\n", "maintenance:w", "daily",
     ["time range"]),
    ("window-without-times", "[maintenance:w]\nsystems = a\n", "maintenance:w", "",
     ["daily"]),
]


@pytest.mark.parametrize(("text", "section", "key", "words"),
                         [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistake_is_refused_with_section_and_key(tmp_path, text, section, key, words):
    error = refused(tmp_path, text)
    assert (error.section, error.key) == (section, key), str(error)
    if section:
        assert f"[{section}]" in str(error)
    if key:
        assert repr(key) in str(error)
    for word in words:
        assert word in error.reason, str(error)


@pytest.mark.parametrize("text", [
    RULE + RULE.replace("boom", "bang") + TABLE,
    OLD_FORMAT + "[rule:ch2eu]\nmessage = boom\nactions = table\n" + TABLE,
    OLD_FORMAT + "[heartbeat:ch2eu]\nsystems = a\nsilence = 1h\nactions = table\n" + TABLE,
], ids=["same-section-twice", "old-format-and-rule", "old-format-and-heartbeat"])
def test_two_rules_or_heartbeats_with_one_name_are_refused(tmp_path, text):
    error = refused(tmp_path, text)
    assert "given twice" in error.reason or "called 'ch2eu' is already defined" in error.reason


@pytest.mark.parametrize(("text", "section", "key"), [
    (RULE + RULE.replace("boom", "bang") + TABLE, "rule:r", ""),
    (RULE + "message = bang\n" + TABLE, "rule:r", "message"),
    (OLD_FORMAT + "[rule:ch2eu]\nmessage = boom\nactions = table\n" + TABLE, "rule:ch2eu", ""),
], ids=["same-section-twice", "same-key-twice", "old-format-and-rule"])
def test_duplicates_name_their_section_and_key(tmp_path, text, section, key):
    error = refused(tmp_path, text)
    assert (error.section, error.key) == (section, key)


@pytest.mark.parametrize("text", [
    OLD_FORMAT + "[action:ch2eu-mail]\ntype = webhook\nurl = https://hooks.example.org/x\n",
    "[action:ch2eu-mail]\ntype = webhook\nurl = https://hooks.example.org/x\n" + OLD_FORMAT,
], ids=["old-format-first", "action-first"])
def test_action_name_taken_by_the_old_format_is_refused(tmp_path, text):
    refused(tmp_path, text)


def test_semicolon_separated_addresses_are_refused(tmp_path):
    error = refused(tmp_path, "[ch2eu]\nMAIL_TO = ops@example.org;oncall@example.org\n")
    assert (error.section, error.key) == ("ch2eu", "MAIL_TO")


def test_clock_range_refuses_minutes_past_24_00():
    assert c.clock_range("22:00-24:00") == (1320, 1440)
    with pytest.raises(ValueError):
        c.clock_range("22:00-24:30")


def test_empty_days_is_refused(tmp_path):
    error = refused(tmp_path, WINDOW + "days =\n")
    assert (error.section, error.key) == ("maintenance:w", "days")


def test_new_format_file_from_init_example_loads(tmp_path):
    rules = book(tmp_path, """\
[action:ops-mail]
type = mail
to = ops@example.org
host = smtp.example.org
port = 587
security = starttls
user = neelix
password_env = NEELIX_SMTP_PASSWORD
subject = [herald] ${summary}

[action:chat]
type = webhook
url = https://hooks.example.org/services/T000/B000/XXXX
format = slack

[action:run]
type = command
command = /usr/local/bin/page --urgent "ops team"

[rule:errors]
level = ERROR
system = ch2*, web-01
threshold = 5 in 10m
key = system_id
realert = 10m
actions = ops-mail, chat

[heartbeat:everyone]
systems = *
silence = 2h
grace = 5m
remind = 12h
actions = ops-mail

[maintenance:sunday-patching]
systems = ch2eu
days = sun
daily = 02:00-04:00
timezone = Europe/Zurich
""")
    [rule] = rules.rules
    assert (rule.level, rule.threshold, rule.window, rule.realert) == (40, 5, 600, 600)
    assert rule.patterns == (("system_id", ("ch2*", "web-01")),)
    [heartbeat] = rules.heartbeats
    assert heartbeat.systems == () and heartbeat.patterns == ("*",)
    assert (heartbeat.grace, heartbeat.remind) == (300, 43200)
    mail = rules.actions["ops-mail"].options
    assert (mail["host"], mail["port"], mail["from"]) == ("smtp.example.org", 587,
                                                          "neelix@example.org")
    assert rules.actions["run"].options["command"] == ("/usr/local/bin/page", "--urgent",
                                                       "ops team")
    assert [w.name for w in rules.maintenance] == ["sunday-patching"]


# --- matching ---------------------------------------------------------------------------------

def one_rule(tmp_path: Path, conditions: str) -> object:
    [rule] = book(tmp_path, f"[rule:r]\n{conditions}\nactions = table\n{TABLE}").rules
    return rule


def test_level_matches_that_level_and_above(tmp_path):
    rule = one_rule(tmp_path, "level = warning")
    assert [matches(rule, record(levelno=n)) for n in (10, 20, 30, 40, 50)] == \
        [False, False, True, True, True]


@pytest.mark.parametrize(("condition", "column", "hits", "misses"), [
    ("system = ch2*, web-01", "system_id", ["ch2eu", "ch2", "web-01"], ["web-02", "CH2EU", "xch2"]),
    ("host = web-?", "sub_system_id", ["web-1", "web-a"], ["web-10", "db-1"]),
    ("logger = app.db.*", "logger", ["app.db.pool"], ["app.dbx", "app.web"]),
    ("package_version = 1.2.*", "package_version", ["1.2.0", "1.2.10"], ["1.20", "2.2.0"]),
])
def test_glob_patterns(tmp_path, condition, column, hits, misses):
    rule = one_rule(tmp_path, condition)
    assert all(matches(rule, record(**{column: value})) for value in hits)
    assert not any(matches(rule, record(**{column: value})) for value in misses)
    assert not matches(rule, record())


def test_message_is_a_regex_searched_anywhere(tmp_path):
    rule = one_rule(tmp_path, r"message = disk (full|quota)\b")
    assert matches(rule, record(message="error: disk full on /var"))
    assert matches(rule, record(message="disk quota"))
    assert not matches(rule, record(message="disk fullness"))
    assert not matches(rule, record(message=None))


def test_traceback_searches_exc_text_or_stack_info(tmp_path):
    rule = one_rule(tmp_path, "traceback = KeyError")
    assert matches(rule, record(exc_text="Traceback...\nKeyError: 'x'"))
    assert matches(rule, record(stack_info="Stack (most recent call last):\n  KeyError"))
    assert not matches(rule, record(exc_text="ValueError", message="KeyError"))
    assert not matches(rule, record())


def test_field_equality_on_a_column_and_on_an_extra_key(tmp_path):
    rule = one_rule(tmp_path, "field.produkt_id = P7\nfield.order = 42\nfield.host = web-1")
    assert rule.fields == (("produkt_id", "P7"), ("order", "42"), ("sub_system_id", "web-1"))
    hit = record(produkt_id="P7", sub_system_id="web-1", extra='{"order": 42}')
    assert matches(rule, hit)
    assert matches(rule, record(produkt_id="P7", sub_system_id="web-1",
                                extra='{"order": "42"}'))
    for miss in (record(produkt_id="P8", sub_system_id="web-1", extra='{"order": 42}'),
                 record(produkt_id="P7", sub_system_id="web-1", extra='{"order": 43}'),
                 record(produkt_id="P7", sub_system_id="web-1", extra='{"other": 42}'),
                 record(produkt_id="P7", sub_system_id="web-1", extra="not json"),
                 record(produkt_id="P7", sub_system_id="web-1", extra="[42]"),
                 record(produkt_id="P7", sub_system_id="web-1")):
        assert not matches(rule, miss)


def test_all_conditions_must_hold(tmp_path):
    rule = one_rule(tmp_path, "level = ERROR\nsystem = ch2eu\nmessage = boom")
    assert matches(rule, record(levelno=40, system_id="ch2eu", message="boom"))
    assert not matches(rule, record(levelno=30, system_id="ch2eu", message="boom"))
    assert not matches(rule, record(levelno=40, system_id="ch2us", message="boom"))
    assert not matches(rule, record(levelno=40, system_id="ch2eu", message="fine"))


def test_record_with_none_fields_never_raises(tmp_path):
    rule = one_rule(tmp_path, "level = DEBUG\nsystem = *\nhost = *\nlogger = *\n"
                              "package_version = *\nmessage = .\ntraceback = .\n"
                              "field.produkt_id = x\nfield.order = 1\nkey = system, host")
    empty = record()
    assert matches(rule, empty) is False
    assert key_of(rule, empty) == " "


# --- rules: realert, digests, keys, thresholds ------------------------------------------------

def realert_rules(tmp_path: Path, extra: str = "") -> RuleMatcher:
    return RuleMatcher(book(tmp_path, "[rule:r]\nmessage = boom\nrealert = 10m\nactions = table\n"
                      + extra + TABLE).rules)


def boom(number: int, when: float, **fields: object) -> list:
    return record(message=f"boom {number}", received=when,
                  **{"system_id": "ch2eu", **fields})


def test_realert_holds_back_then_sends_one_digest(tmp_path):
    rules = realert_rules(tmp_path)
    [first] = rules.observe(boom(0, T0))
    assert (first.event, first.source, first.key, first.system) == ("match", "r", "ch2eu",
                                                                     "ch2eu")
    assert first.suppressed == 0 and first.actions == ("table",)
    assert first.record["message"] == "boom 0"
    for number in range(1, 100):
        assert rules.observe(boom(number, T0 + number)) == []
    assert rules.matched == 100
    assert rules.due_digests(T0 + 599) == []
    [digest] = rules.due_digests(T0 + 600)
    assert (digest.event, digest.suppressed, digest.time) == ("digest", 99, T0 + 600)
    assert digest.record["message"] == "boom 99"
    assert digest.summary.startswith("99 more matches of rule r for ch2eu")
    assert rules.due_digests(T0 + 601) == []
    assert rules.due_digests(T0 + 5000) == []


def test_match_after_the_window_says_how_many_were_held_back(tmp_path):
    rules = realert_rules(tmp_path)
    rules.observe(boom(0, T0))
    for number in range(1, 8):
        rules.observe(boom(number, T0 + number))
    [notice] = rules.observe(boom(8, T0 + 700))  # the digest has not run yet
    assert (notice.event, notice.suppressed) == ("match", 7)
    assert "and 7 more since the last notice" in notice.summary
    assert notice.summary.endswith(": boom 8")
    assert rules.due_digests(T0 + 1300) == []  # counted once, not again in a digest


def test_key_per_field_notifies_each_key_once(tmp_path):
    rules = realert_rules(tmp_path, "key = host\n")
    notices = []
    for number, host in enumerate(("web-1", "web-2", "web-1", "web-2", "web-1")):
        notices += rules.observe(boom(number, T0 + number, sub_system_id=host))
    assert [n.key for n in notices] == ["web-1", "web-2"]
    # Each key has its own window: web-1 opened at T0, web-2 one second later.
    assert [d.key for d in rules.due_digests(T0 + 600)] == ["web-1"]
    assert [d.key for d in rules.due_digests(T0 + 601)] == ["web-2"]


def test_threshold_fires_on_the_nth_match_inside_the_window(tmp_path):
    rules = RuleMatcher(book(tmp_path, "[rule:r]\nmessage = boom\nthreshold = 3 in 10s\n"
                       "realert = 0\nactions = table\n" + TABLE).rules)
    assert rules.observe(boom(0, T0)) == []
    assert rules.observe(boom(1, T0 + 4)) == []
    [notice] = rules.observe(boom(2, T0 + 9))
    assert notice.count == 3 and "(3 records)" in notice.summary
    # Spread wider than 10 s: never three inside one window.
    for number, offset in enumerate((100, 106, 112, 118, 124), start=3):
        assert rules.observe(boom(number, T0 + offset)) == []


def test_idle_states_are_forgotten(tmp_path):
    rules = realert_rules(tmp_path, "key = host\n")
    for number in range(50):
        rules.observe(boom(number, T0, sub_system_id=f"web-{number}"))
    rules.observe(boom(99, T0 + 1, sub_system_id="web-0"))  # one held back
    assert len(rules.throttles) == 50
    assert len(rules.due_digests(T0 + 600)) == 1
    assert list(rules.throttles) == [("r", "web-0")]  # its window runs on after the digest
    rules.due_digests(T0 + 1200)
    assert rules.throttles == {}
    assert ("r", "web-7") in rules.dirty  # forgetting is saved too

    thresholds = RuleMatcher(book(tmp_path, "[rule:r]\nmessage = boom\nthreshold = 3 in 10s\n"
                            "actions = table\n" + TABLE).rules)
    thresholds.observe(boom(0, T0))
    thresholds.due_digests(T0 + 5)
    assert len(thresholds.throttles) == 1  # a match still counts towards the threshold
    thresholds.due_digests(T0 + 11)
    assert thresholds.throttles == {}


def test_states_of_rules_no_longer_in_the_book_are_dropped(tmp_path):
    rules = realert_rules(tmp_path)
    rules.observe(boom(0, T0))
    rules.rules = {}
    assert rules.due_digests(T0) == [] and rules.throttles == {}


# --- heartbeats -------------------------------------------------------------------------------

def heartbeats(tmp_path: Path, systems: str = "a, b", owns: object = None,
               remind: str = "0") -> HeartbeatWatch:
    rules = book(tmp_path, f"[heartbeat:h]\nsystems = {systems}\nsilence = 1h\ngrace = 5m\n"
                           f"remind = {remind}\nactions = table\n" + TABLE)
    return HeartbeatWatch(rules.heartbeats, owns or (lambda _system: True))


def loud(_system: str, _when: float) -> bool:
    return False


DUE = 3600 + 300  # silence + grace


def test_listed_system_never_seen_goes_down_counted_from_start(tmp_path):
    beats = heartbeats(tmp_path, "a")
    beats.start(T0)
    assert beats.check(T0 + DUE - 1, loud) == []
    [down] = beats.check(T0 + DUE, loud)
    assert (down.event, down.source, down.system, down.key) == ("down", "h", "a", "a")
    assert (down.time, down.since) == (T0 + DUE, T0)
    assert "a is DOWN: no record for 1h 5m" in down.summary


def test_one_down_then_reminders_then_one_recovered(tmp_path):
    beats = heartbeats(tmp_path, "a", remind="12h")
    beats.start(T0)
    assert beats.seen("a", T0 + 10) == []
    assert beats.check(T0 + 10 + DUE - 1, loud) == []
    [down] = beats.check(T0 + 10 + DUE + 30, loud)  # checked a little late
    assert (down.time, down.since) == (T0 + 10 + DUE, T0 + 10)
    for late in (60, 120, 3600):
        assert beats.check(T0 + 10 + DUE + late, loud) == []
    [reminder] = beats.check(T0 + 10 + DUE + 30 + 43200, loud)
    assert reminder.event == "reminder" and reminder.since == T0 + 10
    assert beats.check(T0 + 10 + DUE + 30 + 43201, loud) == []
    back = T0 + 10 + DUE + 50000
    [recovered] = beats.seen("a", back)
    assert (recovered.event, recovered.time, recovered.since) == ("recovered", back,
                                                                  T0 + 10 + DUE)
    assert "RECOVERED" in recovered.summary
    assert beats.seen("a", back + 1) == []
    assert beats.check(back + 1, loud) == []


def test_quiet_defers_down_until_it_ends(tmp_path):
    beats = heartbeats(tmp_path, "a")
    beats.start(T0)
    quiet_until = T0 + 2 * DUE
    asked = []

    def quiet(system: str, when: float) -> bool:
        asked.append(system)
        return when < quiet_until

    assert beats.check(T0 + DUE, quiet) == []
    assert beats.check(quiet_until - 1, quiet) == []
    [down] = beats.check(quiet_until, quiet)
    assert down.time == T0 + DUE and asked == ["a", "a", "a"]
    assert beats.check(quiet_until + 1, quiet) == []


def test_owns_leaves_other_shards_systems_alone(tmp_path):
    beats = heartbeats(tmp_path, "a, b", owns=lambda system: system == "a")
    beats.start(T0)
    assert list(beats.pulses) == [("h", "a")]
    assert [n.system for n in beats.check(T0 + DUE, loud)] == ["a"]


def test_star_watches_every_system_seen(tmp_path):
    beats = heartbeats(tmp_path, "*")
    beats.start(T0)
    assert beats.check(T0 + 10 * DUE, loud) == []  # nothing seen: nothing to miss
    beats.seen("x", T0)
    beats.seen("y", T0 + 100)
    beats.seen(None, T0 + 100)  # a record without system is nobody's heartbeat
    assert [n.system for n in beats.check(T0 + DUE, loud)] == ["x"]
    assert [n.system for n in beats.check(T0 + DUE + 100, loud)] == ["y"]


def test_heartbeat_states_removed_from_the_rules_are_forgotten_on_start(tmp_path):
    beats = heartbeats(tmp_path, "a")
    beats.start(T0)
    beats.heartbeats = {}
    beats.start(T0 + 1)
    assert beats.pulses == {} and ("h", "a") in beats.dirty


# --- maintenance windows ----------------------------------------------------------------------

def window(tmp_path: Path, text: str) -> object:
    if "systems" not in text:
        text = "systems = *\n" + text
    [found] = book(tmp_path, "[maintenance:w]\n" + text).maintenance
    return found


def test_one_off_window_in_its_time_zone(tmp_path):
    w = window(tmp_path, "systems = ch2eu, ch2us\nstart = 2026-12-01 02:00\n"
                         "end = 2026-12-01T04:00\ntimezone = Europe/Zurich\n")
    assert w.covers("ch2eu", zurich(2026, 12, 1, 2, 0))
    assert w.covers("ch2us", zurich(2026, 12, 1, 3, 59))
    assert not w.covers("ch2eu", zurich(2026, 12, 1, 4, 0))
    assert not w.covers("ch2eu", zurich(2026, 12, 1, 1, 59))
    assert not w.covers("other", zurich(2026, 12, 1, 3, 0))
    assert w.start == datetime.datetime(2026, 12, 1, 1, 0, tzinfo=datetime.UTC).timestamp()


def test_daily_window_on_sundays_in_zurich(tmp_path):
    w = window(tmp_path, "systems = ch2eu\ndays = sun\ndaily = 02:00-04:00\n"
                         "timezone = Europe/Zurich\n")
    assert datetime.datetime.fromtimestamp(zurich(2026, 3, 1, 0, 0), ZURICH).weekday() == 6
    assert w.covers("ch2eu", zurich(2026, 3, 1, 2, 0))
    assert w.covers("ch2eu", zurich(2026, 3, 1, 3, 59))
    assert w.covers("ch2eu", zurich(2026, 8, 2, 3, 0))  # summer time too
    assert not w.covers("ch2eu", zurich(2026, 3, 1, 4, 0))
    assert not w.covers("ch2eu", zurich(2026, 3, 1, 1, 59))
    assert not w.covers("ch2eu", zurich(2026, 2, 28, 3, 0))  # saturday
    assert not w.covers("ch2eu", zurich(2026, 3, 2, 3, 0))   # monday
    assert not w.covers("ch2us", zurich(2026, 3, 1, 3, 0))
    # 03:00 UTC is 04:00 in Zurich in winter: outside, though 03:00 UTC is inside 02-04.
    assert not w.covers("ch2eu", datetime.datetime(2026, 3, 1, 3, 0,
                                                   tzinfo=datetime.UTC).timestamp())


def test_window_wrapping_past_midnight_belongs_to_the_day_it_starts(tmp_path):
    w = window(tmp_path, "days = friday\ndaily = 22:00-02:00\ntimezone = Europe/Zurich\n")
    assert w.systems is None
    assert w.covers("any", zurich(2026, 2, 27, 22, 0))       # friday evening
    assert w.covers("any", zurich(2026, 2, 27, 23, 59))
    assert w.covers("any", zurich(2026, 2, 28, 1, 59))       # saturday, after midnight
    assert not w.covers("any", zurich(2026, 2, 28, 2, 0))
    assert not w.covers("any", zurich(2026, 2, 28, 22, 30))  # saturday evening
    assert not w.covers("any", zurich(2026, 2, 27, 1, 0))    # thursday's night
    assert not w.covers("any", zurich(2026, 2, 27, 21, 59))


def test_daily_window_without_days_or_zone_is_every_day_in_utc(tmp_path):
    w = window(tmp_path, "daily = 00:00-24:00\n")
    for day in range(1, 8):
        assert w.covers(None, datetime.datetime(2026, 3, day, 0, 0,
                                                tzinfo=datetime.UTC).timestamp())


# --- notices ----------------------------------------------------------------------------------

def match_notice(message: str) -> Notice:
    return Notice("match", "errors", "ch2eu", "ch2eu", T0, ("ops-mail", "chat"), count=2,
                  suppressed=3, record={"message": message, "system_id": "ch2eu",
                                        "levelname": "ERROR", "exc_text": None})


def test_subject_is_one_line_whatever_the_record_says(tmp_path):
    notice = match_notice("disk full\r\nBcc: victim@example.org\n\nbody\u2028more")
    subject = notice.subject()
    assert subject.startswith("[herald] rule errors matched for ch2eu (2 records), and 3 more")
    for template_text in (None, "${message}", r"[${system}] ${summary}\nBcc: x@example.org"):
        mail = book(tmp_path, MAIL + (f"subject = {template_text}\n" if template_text else ""))
        subject = notice.subject(mail.actions["m"].options.get("subject"))
        assert "\n" not in subject and "\r" not in subject and "\u2028" not in subject
        assert len(subject) <= 250


def test_template_fields_are_filled(tmp_path):
    mail = book(tmp_path, MAIL + "subject = ${event}/${source}/${system}/${count}/"
                          "${suppressed}/${levelname}/${url}\n"
                          r"body = ${summary}\n${time}\nsince: ${since}x" + "\n")
    notice = match_notice("disk full")
    subject = notice.subject(mail.actions["m"].options["subject"], url="http://web")
    assert subject == "match/errors/ch2eu/2/3/ERROR/http://web"
    body = notice.body(mail.actions["m"].options["body"])
    assert body == f"{notice.summary}\n2026-03-02T12:00:00+00:00\nsince: x"


def test_default_body_lists_the_record(tmp_path):
    body = match_notice("disk full").body(url="http://web/alerts")
    assert body.splitlines()[0] == match_notice("disk full").summary
    assert "held back by realert: 3 more" in body
    assert "message: disk full" in body and "levelname: ERROR" in body
    assert "exc_text" not in body  # empty fields are left out
    assert body.endswith("\nhttp://web/alerts\n")


def test_notice_survives_a_json_round_trip():
    notices = [match_notice("ünïcode ✓\nline two"),
               Notice("down", "h", "a", "a", T0 + 3900, ("table",), since=T0),
               Notice("recovered", "h", "a", "a", T0 + 9000, ("table",), since=T0 + 3900)]
    for notice in notices:
        text = notice.to_json()
        assert json.loads(text)["event"] == notice.event
        again = Notice.from_json(text)
        assert again == notice and again.actions == notice.actions
        assert again.summary == notice.summary


# --- the process: a bad rules file stops neelix with file, section and key --------------------

def appliance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def instance_dir(tmp_path):
    made = appliance("init", str(tmp_path / "inst"), "--stage", "TESTING", "--ports-in-use")
    assert made.returncode == 0, made.stderr
    return tmp_path / "inst"


def test_bad_rules_file_stops_neelix_with_exit_78(instance_dir):
    rules = instance_dir / "conf" / "neelix.ini"
    rules.write_text("[rule:errors]\nmessage = (unclosed\nactions = table\n" + TABLE)
    ran = appliance("neelix", "-c", str(instance_dir / "conf" / "appliance.ini"))
    assert ran.returncode == EXIT_CONFIG, ran.stderr
    assert f"{rules}, section [rule:errors], key 'message'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_dry_run_without_a_database_says_so(instance_dir):
    (instance_dir / "conf" / "neelix.ini").write_text(RULE + TABLE)
    ran = appliance("neelix", "test", "-c", str(instance_dir / "conf" / "appliance.ini"))
    assert ran.returncode != 0
    assert "no herald database at" in ran.stderr and "herald.sqlite" in ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
