"""The web viewer shows neelix's state file: /alerts (open incidents, alert history, filters,
pages), /api/alerts, heartbeat states on /systems; escaped, clear 400s, and it works before
neelix ever ran. The state file is written here with neelix_state's own models; the web is the
real process of a real instance, whose neelix is kept from starting so the file stays ours."""

import json
import logging
import logging.handlers
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from appliance.harness.instance import Instance, api, get, wait_until
from appliance.neelix import history as alert_store
from appliance.neelix import state as neelix_state
from appliance.neelix.history import AlertHistory, AlertQuery
from appliance.store.query import QueryError

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
OLD_ALERTS = 205  # more than one page of the history


def without_neelix(inst: Instance) -> None:
    """neelix would write the state file (and fail alerts naming unknown actions)."""
    text = inst.conf.read_text()
    assert "[program:neelix]\n" in text
    inst.conf.write_text(text.replace("[program:neelix]\n",
                                      "[program:neelix]\nautostart=false\n", 1))


def log_records(port: int, systems: list[str]) -> None:
    handler = logging.handlers.SocketHandler("127.0.0.1", port)
    logger = logging.Logger("service")
    logger.addHandler(handler)
    try:
        for system in systems:
            logger.warning("hello from %s", system, extra={"SYSTEM_ID": system})
    finally:
        handler.close()


def build_state(path, now: float) -> None:
    """alpha up; beta down with an open incident; gamma snoozed; quiet listed but silent;
    a hostile system down; a history of alerts in every status."""
    db = neelix_state.open_state(path)
    try:
        with db.atomic():
            beat = neelix_state.PulseRow
            beat.create(heartbeat="everyone", system="alpha", last_seen=now - 10)
            beat.create(heartbeat="everyone", system="beta", last_seen=now - 3600,
                        down_since=now - 1800, notified=now - 1800)
            beat.create(heartbeat="everyone", system="gamma", last_seen=now - 60)
            beat.create(heartbeat="listed", system="quiet", last_seen=now - 5, seen=False)
            beat.create(heartbeat=XSS, system=XSS, last_seen=now - 7200,
                        down_since=now - 3000)
            incident = neelix_state.Incident
            incident.create(heartbeat="everyone", system="beta", opened=now - 1800,
                            last_seen=now - 3600)
            incident.create(heartbeat=XSS, system=XSS, opened=now - 3000, last_seen=now - 7200)
            incident.create(heartbeat="everyone", system="alpha", opened=now - 9000,
                            last_seen=now - 9600, closed=now - 8000)
            neelix_state.Snooze.create(system="gamma", until=now + 7200, reason=XSS,
                                       created=now - 60)
            neelix_state.Snooze.create(system="alpha", until=now - 100, created=now - 900)
            neelix_state.Alert.insert_many([
                {"created": now - 99000 + n, "time": now - 99000 + n, "event": "match",
                 "source": "errors", "key": "alpha", "system": "alpha", "action": "ops-mail",
                 "summary": f"old alert {n}", "notice": "{}", "status": "sent",
                 "attempts": 1, "sent": now - 99000 + n} for n in range(OLD_ALERTS)]).execute()
            for event, system, action, status, error in (
                    ("down", "beta", "ops-mail", "sent", None),
                    ("match", "alpha", "chat", "failed", "HTTP 500 from hooks.example.org"),
                    ("reminder", "gamma", "ops-mail", "held", None),
                    ("match", None, "table", "pending", None),
                    ("down", XSS, XSS, "failed", XSS)):
                neelix_state.Alert.create(
                    created=now, time=now, event=event, source="everyone", key=system or "k",
                    system=system, action=action, summary=f"{event} of {system}: {XSS}",
                    notice="{}", status=status, attempts=3 if status == "failed" else 1,
                    last_error=error)
    finally:
        db.close()


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    """(instance, what the web said before the state file existed)."""
    inst = Instance(tmp_path_factory.mktemp("web-alerts") / "instance")
    without_neelix(inst)
    inst.start(wait_programs=("ingestor", "writer", "web"))
    try:
        log_records(inst.port, ["alpha", "beta", "gamma"])
        inst.wait_count(3)
        wait_until(lambda: get(inst, "/")[0] == 200, 30, "the web viewer", inst.diagnostics)
        assert not inst.state_path.exists()
        before = {path: get(inst, path) for path in
                  ("/alerts", "/api/alerts", "/systems", "/api/systems", "/alerts?status=held")}
        build_state(inst.state_path, time.time())
        yield inst, before
    finally:
        inst.stop()


def test_the_web_works_before_neelix_has_run(viewer):
    _, before = viewer
    assert all(status == 200 for status, _ in before.values()), before
    assert "neelix has not run yet" in before["/alerts"][1]
    assert "neelix has not run yet" in before["/systems"][1]
    assert json.loads(before["/api/alerts"][1]) == {
        "neelix_has_run": False, "incidents": [], "snoozes": [], "alerts": [], "next": None}
    systems = json.loads(before["/api/systems"][1])
    assert systems["neelix_has_run"] is False
    assert {s["system_id"]: s["heartbeat"]["state"] for s in systems["systems"]} == {
        "alpha": "unknown", "beta": "unknown", "gamma": "unknown"}


def test_alerts_page_lists_open_incidents_and_the_history_newest_first(viewer):
    inst, _ = viewer
    status, html = get(inst, "/alerts")
    assert status == 200 and 'href="/alerts"' in html  # in the nav
    incidents = html.split('id="incidents"', 1)[1].split("</table>", 1)[0]
    assert incidents.count('<tr class="incident') == 2  # alpha's is closed
    assert 'href="/?system_id=beta"' in incidents
    history = html.split('id="alerts"', 1)[1].split("</table>", 1)[0]
    statuses = [part.split("<", 1)[0] for part in history.split('<td class="status">')[1:]]
    assert statuses[:5] == ["failed", "pending", "held", "failed", "sent"]
    assert len(statuses) == alert_store.PAGE
    assert "HTTP 500 from hooks.example.org" in history
    assert 'class="alert status-failed event-match"' in history
    assert 'href="/?system_id=gamma"' in history
    assert html.index('id="incidents"') < html.index('id="alerts"')
    assert 'id="older"' in html and 'id="newest"' not in html


def test_hostile_text_is_shown_as_text(viewer):
    inst, _ = viewer
    for path in ("/alerts", "/systems", "/alerts?" + urllib.parse.urlencode({"system": XSS})):
        status, html = get(inst, path)
        assert status == 200, path
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert ESCAPED in html, path
    html = get(inst, "/alerts")[1]
    assert html.count(ESCAPED) >= 8  # incident system+heartbeat, snooze, alert fields


def test_filters_and_pages_of_the_history(viewer):
    inst, _ = viewer
    page = api(inst, "/api/alerts")
    assert page["neelix_has_run"] is True
    assert len(page["alerts"]) == alert_store.PAGE and page["next"]
    ids = [a["id"] for a in page["alerts"]]
    older = api(inst, f"/api/alerts?before={page['next']['before']}")
    assert older["next"] is None and len(older["alerts"]) == OLD_ALERTS + 5 - alert_store.PAGE
    everything = ids + [a["id"] for a in older["alerts"]]
    assert everything == sorted(everything, reverse=True) and len(set(everything)) == 210
    assert [a["status"] for a in api(inst, "/api/alerts?status=failed")["alerts"]] == \
        ["failed", "failed"]
    held = api(inst, "/api/alerts?status=held&system=gamma")["alerts"]
    assert [(a["event"], a["system"]) for a in held] == [("reminder", "gamma")]
    beta = api(inst, "/api/alerts?system=beta")
    assert [i["system"] for i in beta["incidents"]] == ["beta"]
    assert [a["event"] for a in beta["alerts"]] == ["down"]
    assert api(inst, "/api/alerts?event=down&status=sent")["alerts"][0]["system"] == "beta"
    assert [s["system"] for s in page["snoozes"]] == ["gamma"]  # alpha's has run out
    assert set(page["alerts"][0]) >= {"time", "event", "source", "system", "action", "status",
                                      "attempts", "last_error", "summary"}
    html = get(inst, f"/alerts?status=sent&before={page['next']['before']}")[1]
    assert 'id="newest" href="/alerts?status=sent"' in html
    assert 'selected>sent</option>' in html


@pytest.mark.parametrize("query", ["status=bogus", "event=exploded", "before=-1", "before=x",
                                   "before=99999999999999999999", "nonsense=1",
                                   "system=%01", "system=" + "s" * 201])
def test_bad_parameters_get_a_400_with_a_message(viewer, query):
    inst, _ = viewer
    status, html = get(inst, f"/alerts?{query}")
    assert status == 400 and 'class="error"' in html and "Traceback" not in html
    status, body = get(inst, f"/api/alerts?{query}")
    assert status == 400 and json.loads(body)["error"]
    if query == "status=bogus":
        assert "status must be one of pending, sent, failed, held" in html


def test_systems_show_their_heartbeat_state(viewer):
    inst, _ = viewer
    data = api(inst, "/api/systems")
    systems = {s["system_id"]: s for s in data["systems"]}
    assert data["neelix_has_run"] is True
    expected = {"alpha": "up", "beta": "down", "gamma": "snoozed", "quiet": "up", XSS: "down"}
    assert {name: systems[name]["heartbeat"]["state"] for name in expected} == expected
    assert systems["quiet"]["records"] == 0 and systems["quiet"]["last_seen"] is None
    assert systems["quiet"]["heartbeat"]["heartbeats"] == ["listed"]
    assert systems["gamma"]["heartbeat"]["snoozed_until"] > time.time()
    _, html = get(inst, "/systems")
    rows = {part.split('">', 1)[1].split("<", 1)[0]: part for part in
            html.split('<td class="name"><a href="/?system_id=')[1:]}
    assert 'class="heartbeat hb-down">DOWN since ' in rows["beta"]
    assert 'class="heartbeat hb-snoozed">snoozed until ' in rows["gamma"]
    assert 'class="heartbeat hb-up">UP<' in rows["alpha"]
    assert "UP (no record yet)" in rows["quiet"]
    assert "DOWN since" in rows[ESCAPED]
    assert "neelix has not run yet" not in html and "Heartbeat states appear" not in html


def test_a_system_no_heartbeat_watches_is_not_watched(viewer):
    inst, _ = viewer
    log_records(inst.port, ["delta"])
    inst.wait_count(1, "system_id = ?", ("delta",))
    systems = {s["system_id"]: s for s in api(inst, "/api/systems")["systems"]}
    assert systems["delta"]["heartbeat"]["state"] == "not watched"
    assert 'class="heartbeat hb-none">not watched<' in get(inst, "/systems")[1]


def test_heartbeat_state_precedence_and_the_snooze_of_every_system():
    now = 1_000_000.0
    watch = alert_store.watch_from(
        beats=[{"heartbeat": "a", "system": "up", "last_seen": now - 1, "down_since": None,
                "seen": 1},
               {"heartbeat": "a", "system": "down", "last_seen": now - 99,
                "down_since": now - 50, "seen": 1},
               {"heartbeat": "b", "system": "down", "last_seen": now - 99,
                "down_since": now - 40, "seen": 1}],
        incidents=[{"system": "incident-only", "opened": now - 10}],
        snoozes=[{"system": "*", "until": now + 60}, {"system": "up", "until": now + 600},
                 {"system": "old", "until": now - 1}],
        now=now)
    assert watch.systems() == {"up", "down", "incident-only"}
    assert watch.state("down")["state"] == "down" and watch.state("down")["down_since"] == now - 50
    assert watch.state("down")["heartbeats"] == ["a", "b"]
    assert watch.state("up")["snoozed_until"] == now + 600  # its own snooze outlasts "*"
    assert watch.state("elsewhere") == {"state": "snoozed", "down_since": None,
                                        "snoozed_until": now + 60, "heartbeats": [],
                                        "last_seen": None}
    assert watch.state("incident-only")["state"] == "down"


def test_parse_checks_every_parameter():
    assert alert_store.parse({"system": " beta ", "status": "held", "before": "12",
                              "event": ""}) == AlertQuery("beta", "held", None, 12)
    for bad in ({"status": "SENT"}, {"before": "0"}, {"limit": "5"}, {"system": "a\nb"}):
        with pytest.raises(QueryError):
            alert_store.parse(bad)


def test_a_missing_file_or_missing_tables_mean_nothing_to_show(tmp_path):
    path = tmp_path / "neelix.sqlite"
    store = AlertHistory(path)
    assert store.watch(0) is None and not store.has_run()
    assert store.alerts(AlertQuery()) == ([], None) and store.incidents() == []
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.close()
    assert store.watch(0) is None and not store.has_run() and store.snoozes(0) == []
    path.unlink()
    build_state(path, 1_000_000.0)  # a new file in its place is read, not the old one
    assert store.has_run() and store.watch(1_000_000.0).state("beta")["state"] == "down"
