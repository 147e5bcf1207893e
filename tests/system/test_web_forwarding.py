"""The web viewer shows the path a forwarded record took (origin first, each relay with its
receive time and delay), escaped, and hops of any other shape as plain text, never a 500; and
/systems shows this appliance's forwarders from their stats files: link, how far behind,
stale when the forwarder stopped reporting, no box without forwarders."""

import json
import logging
import time
import urllib.error
import urllib.request

import pytest
from bottle import html_escape

from appliance.harness.instance import Instance, api, chained, get, send_records, wait_until
from appliance.spine.record import COLUMNS
from appliance.store import schema as models

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
HOSTILE_ID = 'edge<b onmouseover="x">&amp;'  # an appliance's instance name becomes its origin
T0 = 1795867200.123  # 2026-11-28 12:00:00.123 UTC


def serving(inst: Instance) -> bool:
    """The web answers (RUNNING in supervisord comes before its port is bound)."""
    try:
        return get(inst, "/")[0] == 200
    except urllib.error.URLError:
        return False


def origin_of(inst: Instance) -> str:
    return (inst.journal_dir / "origin").read_text().strip()


def path_row(page: str) -> str:
    return page.split('id="path">', 1)[1].split("</dd>", 1)[0]


def test_a_forwarded_record_shows_its_path_origin_first(instance):
    down, up = chained(instance)
    down.set(appliance={"instance": HOSTILE_ID})
    up.start(("ingestor", "writer", "web"))
    down.start(("ingestor", "writer", "forwarder-core", "web"))
    send_records(down.port, (logging.WARNING, "through the link", "far-away"))
    up.wait_count(1, "message = 'through the link'")
    wait_until(lambda: serving(up), 30, "the upstream's web", up.diagnostics)
    (record_id,), = up.query("SELECT id FROM record WHERE message = 'through the link'")
    first, relay = origin_of(down), origin_of(up)
    assert first.startswith(HOSTILE_ID)

    status, page = get(up, f"/record/{record_id}")
    assert status == 200
    shown = path_row(page)
    assert html_escape(first) in shown and HOSTILE_ID not in page
    assert shown.index(html_escape(first)) < shown.index("→") < shown.index(relay)
    assert "(received 20" in shown and " s)" in shown
    detail = api(up, f"/api/records/{record_id}")
    assert [hop["appliance"] for hop in detail["path"]] == [first, relay]
    assert detail["path"][0]["after"] is None and detail["path"][1]["after"] >= 0
    assert 'class="system forwarded"' in get(up, "/")[1]  # the table marks it

    # The downstream received it itself: no path there; its forwarder shows on /systems.
    wait_until(lambda: serving(down), 30, "the downstream's web", down.diagnostics)
    (local_id,), = down.query("SELECT id FROM record WHERE message = 'through the link'")
    page = get(down, f"/record/{local_id}")[1]
    assert 'id="path"' not in page and "field-hops" not in page
    assert api(down, f"/api/records/{local_id}")["path"] is None
    assert 'class="system forwarded"' not in get(down, "/")[1]

    def core() -> dict | None:
        links = api(down, "/api/systems")["forwarders"]
        return links[0] if links and links[0]["forwarded"] else None

    link = wait_until(core, 30, "the forwarder's stats on /api/systems", down.diagnostics)
    assert link["name"] == "core" and link["link_up"] is True and link["stale"] is False
    assert 'id="forwarders"' in get(down, "/systems")[1]
    assert api(up, "/api/systems")["forwarders"] == []


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    inst = Instance(tmp_path_factory.mktemp("web-forwarding") / "instance")
    inst.start(wait_programs=("ingestor", "writer", "web"))
    try:
        send_records(inst.port, (logging.INFO, "received here", "local"))
        inst.wait_count(1)
        wait_until(lambda: serving(inst), 30, "the web viewer", inst.diagnostics)
        yield inst
    finally:
        inst.stop()


def insert_record(inst: Instance, hops: str | None, received: float = T0) -> int:
    """A record as a relay might have stored it, written beside the running writer the way
    the writer writes (same transaction: full-text index, facets, hourly counts)."""
    values = dict.fromkeys(COLUMNS)
    values.update(seq=int(time.time() * 1e6), origin="inserted", received=received,
                  levelno=logging.ERROR, levelname="ERROR", message="inserted record",
                  system_id="inserted", hops=hops)
    db = models.open_database(inst.db_path)
    try:
        with db.atomic(lock_type="IMMEDIATE"):
            before = models.newest_id()
            record_id = models.Record.insert(**values).execute()
            models.after_insert(before)
    finally:
        db.close()
    return record_id


def test_a_path_of_hostile_names_is_shown_escaped(viewer):
    hops = json.dumps([[XSS, T0], [f"relay{XSS}", T0 + 0.333], ["core", T0 + 86400.5]])
    record_id = insert_record(viewer, hops)
    status, page = get(viewer, f"/record/{record_id}")
    assert status == 200 and "<script>alert" not in page and "<img src=x" not in page
    shown = path_row(page)
    assert f"{ESCAPED}</span> (received 2026-11-28 12:00:00.123)" in shown
    assert f"relay{ESCAPED}</span> (12:00:00.456, +0.333 s)" in shown
    assert "core</span> (2026-11-29 12:00:00.623, +86400.167 s)" in shown  # a new day: dated
    assert [hop["appliance"] for hop in api(viewer, f"/api/records/{record_id}")["path"]] == \
        [XSS, f"relay{XSS}", "core"]


@pytest.mark.parametrize("hops", [
    f'[["edge", {T0}], {XSS}',  # broken JSON
    json.dumps({"origin": XSS}), json.dumps([]), json.dumps(XSS), json.dumps([[XSS]]),
    json.dumps([[XSS, "yesterday"]]), json.dumps([[1, T0]]), json.dumps([[XSS, T0, 3]]),
    json.dumps([["edge", 1e300]]), json.dumps([["edge", True]]), "[" * 100000 + "]" * 100000,
    json.dumps([["edge", T0]] * 1000),
])
def test_hops_of_another_shape_are_shown_as_text(viewer, hops):
    record_id = insert_record(viewer, hops)
    status, page = get(viewer, f"/record/{record_id}")
    assert status == 200, page
    assert 'id="path"' not in page and "<script>alert" not in page
    assert html_escape(hops)[:200] in page.split('class="field-hops">', 1)[1]
    detail = api(viewer, f"/api/records/{record_id}")
    assert detail["path"] is None and detail["hops"] == hops
    assert get(viewer, "/?system_id=inserted")[0] == 200


def test_a_local_record_has_no_path_and_a_time_beyond_the_calendar_no_500(viewer):
    (local_id,), = viewer.query("SELECT id FROM record WHERE message = 'received here'")
    page = get(viewer, f"/record/{local_id}")[1]
    assert 'id="path"' not in page and "field-hops" not in page
    record_id = insert_record(viewer, json.dumps([["edge", 1e300], ["relay", T0]]),
                              received=1e300)  # a downstream's relay checks only finiteness
    for path in (f"/record/{record_id}", "/?system_id=inserted", f"/api/records/{record_id}"):
        assert get(viewer, path)[0] == 200, path


def write_stats(inst: Instance, name: str, text: str) -> None:
    (inst.dir / "var" / "run" / f"forwarder-{name}.stats.json").write_text(text)


def test_systems_show_each_forwarder_and_none_without_stats_files(viewer):
    run = viewer.dir / "var" / "run"
    assert not list(run.glob("forwarder-*"))
    assert api(viewer, "/api/systems")["forwarders"] == []
    assert 'id="forwarders"' not in get(viewer, "/systems")[1]

    now = time.time()
    stats = {"forwarded": 10, "skipped": 2, "failures": 7, "cursor": 5, "behind_records": 123,
             "behind_seconds": 42.5, "link_up": False, "pid": 1}
    write_stats(viewer, "core", json.dumps({**stats, "time": now}))
    write_stats(viewer, "old", json.dumps({**stats, "link_up": True, "time": now - 60}))
    write_stats(viewer, XSS.replace("</script>", ""), json.dumps({**stats, "time": now}))
    write_stats(viewer, "torn", '{"forwarded": 1')
    links = {link["name"]: link for link in api(viewer, "/api/systems")["forwarders"]}
    assert links["core"] == {"name": "core", "link_up": False, "behind_records": 123,
                             "behind_seconds": 42.5, "forwarded": 10, "failures": 7,
                             "skipped": 2, "time": pytest.approx(now), "stale": False}
    assert links["old"]["stale"] is True and links["old"]["link_up"] is True
    assert links["torn"]["stale"] is True and links["torn"]["forwarded"] is None
    assert len(links) == 4

    status, page = get(viewer, "/systems")
    assert status == 200
    box = page.split('id="forwarders"', 1)[1].split("</section>", 1)[0]
    rows = {row.split('class="name">', 1)[1].split("<", 1)[0]: row
            for row in box.split('<tr class="forwarder')[1:]}
    assert set(rows) == {"core", "old", "torn",
                         html_escape(XSS.replace("</script>", ""))}
    core = rows["core"]
    assert 'class="link">down<' in core and 'class="behind-records">123<' in core
    assert 'class="behind-seconds">42.5<' in core and 'class="failures">7<' in core
    assert "stale" not in core
    assert "stale" in rows["old"] and 'class="link">up<' in rows["old"]
    assert "unreadable" in rows["torn"] and "stale" in rows["torn"]
    assert "<script>" not in page and "<img src=x" not in page

    for path in run.glob("forwarder-*.stats.json"):
        path.unlink()
    assert api(viewer, "/api/systems")["forwarders"] == []
    assert 'id="forwarders"' not in get(viewer, "/systems")[1]
