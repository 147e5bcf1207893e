"""The herald web viewer over HTTP on a real instance: the table, filters in the URL, full-text
search, keyset pages, record details, the JSON API, escaping and clear 400s."""

import json
import logging
import logging.handlers
import urllib.error
import urllib.parse
import urllib.request

import pytest

from appliance.harness.instance import Instance, wait_until
from appliance.web.export import spreadsheet_safe
from conftest import ENGINES

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def get(inst: Instance, path: str) -> tuple[int, dict, str]:
    url = f"http://127.0.0.1:{inst.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):
            return 0, {}, "not listening yet"  # the web starts once the writer made the DB
        raise


def api(inst: Instance, path: str) -> dict:
    status, _, body = get(inst, path)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module", params=ENGINES)
def viewer(tmp_path_factory, request):
    """One instance per engine, shared by the module's tests: every API test runs on both."""
    store = None
    if request.param == "postgresql":
        store = request.getfixturevalue("postgres_server").create_database()
    inst = Instance(tmp_path_factory.mktemp("web") / "instance", store=store)
    inst.start(wait_programs=("ingestor", "writer", "web"))
    try:
        handler = logging.handlers.SocketHandler("127.0.0.1", inst.port)
        logger = logging.Logger("shop.billing")
        logger.addHandler(handler)
        for n in range(30):
            logger.info("order %d paid by card", n, extra={"SYSTEM_ID": "alpha",
                                                             "SUB_SYSTEM_ID": "host-a"})
        try:
            raise ConnectionRefusedError("db01:5432 refused")
        except ConnectionRefusedError:
            logger.exception("connection-refused to database", extra={"SYSTEM_ID": "beta"})
        hostile = logging.Logger(XSS)
        hostile.addHandler(handler)
        hostile.warning(XSS, extra={"SYSTEM_ID": XSS, "note": XSS})
        handler.close()
        inst.wait_count(32)
        wait_until(lambda: get(inst, "/")[0] == 200, 30, "the web viewer", inst.diagnostics)
        yield inst
    finally:
        inst.stop()


def test_the_table_shows_records_newest_first_with_safe_headers(viewer):
    status, headers, html = get(viewer, "/")
    assert status == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert html.index("connection-refused to database") < html.index("order 29 paid")
    assert html.count('class="record level-INFO"') == 30
    assert "ConnectionRefusedError: db01:5432 refused" in html  # the traceback, collapsed


def test_hostile_text_is_shown_as_text(viewer):
    record_id = api(viewer, "/api/records?level=WARNING&system_id=" +
                    urllib.parse.quote(XSS))["records"][0]["id"]
    for path in ("/", f"/record/{record_id}"):
        _, _, html = get(viewer, path)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html


def test_filters_and_search_narrow_the_records(viewer):
    assert {r["system_id"] for r in api(viewer, "/api/records?system_id=alpha")["records"]} \
        == {"alpha"}
    errors = api(viewer, "/api/records?level=error")["records"]
    assert [r["system_id"] for r in errors] == ["beta"]
    for search in ("connection-refused", "db01:5432", '"paid by card"', "card AND order",
                   "refus*"):
        found = api(viewer, "/api/records?" + urllib.parse.urlencode({"q": search}))["records"]
        assert found, search
    assert len(api(viewer, "/api/records?q=paid&system_id=alpha")["records"]) == 30
    assert api(viewer, "/api/records?q=nonexistentword")["records"] == []
    _, _, html = get(viewer, "/?system_id=beta")
    assert html.count('class="record ') == 1 and 'value="beta"' in html


def test_keyset_pages_cover_everything_once(viewer):
    seen, path = [], "/api/records?limit=7"
    while path:
        page = api(viewer, path)
        seen += [r["id"] for r in page["records"]]
        nxt = page["next"]
        path = f"/api/records?limit=7&{urllib.parse.urlencode(nxt)}" if nxt else None
    everything = [r["id"] for r in api(viewer, "/api/records?limit=1000")["records"]]
    assert seen == everything == sorted(everything, reverse=True)
    assert len(seen) == viewer.count()
    older = get(viewer, f"/?limit=7&before={seen[6]}")[2]
    assert f'data-id="{seen[7]}"' in older and 'id="newer"' in older


def test_a_record_page_shows_every_field_extras_and_its_neighbours(viewer):
    beta = api(viewer, "/api/records?system_id=beta")["records"][0]
    status, _, html = get(viewer, f"/record/{beta['id']}")
    assert status == 200
    assert 'id="trace"' in html and "db01:5432 refused" in html
    assert "field-func_name" in html and "field-peer" in html
    assert api(viewer, f"/api/records/{beta['id']}")["message"] == "connection-refused to database"
    alpha = [r["id"] for r in api(viewer, "/api/records?system_id=alpha")["records"]]
    _, _, html = get(viewer, f"/record/{alpha[15]}")
    shown = [int(part.split('"')[0]) for part in html.split('data-id="')[1:]]
    assert shown == alpha[5:15] + alpha[16:26]  # ten newer and ten older of the same system
    assert get(viewer, "/record/999999")[0] == 404
    assert "alpha" in api(viewer, "/api/options")["system_id"]


@pytest.mark.parametrize("query", ["level=abc", "limit=1000000000", "limit=0", "nonsense=1",
                                   "since=yesterday", "before=-3", "order=sideways",
                                   "q=%22unclosed", "q=AND", "q=(foo"])
def test_bad_parameters_get_a_400_with_a_message(viewer, query):
    status, _, html = get(viewer, f"/?{query}")
    assert status == 400 and 'class="error"' in html and "Traceback" not in html
    status, _, body = get(viewer, f"/api/records?{query}")
    assert status == 400 and json.loads(body)["error"]


def test_histogram_counts_the_filter_and_its_bars_narrow_the_range(viewer):
    data = api(viewer, "/api/histogram?since=1h")
    assert data["groups"] == ["debug/info", "warning", "error+"]
    assert [sum(column) for column in zip(*data["buckets"], strict=True)] == [30, 1, 1]
    assert sum(map(sum, api(viewer, "/api/histogram?since=1h&system_id=beta")["buckets"])) == 1
    _, _, html = get(viewer, "/?since=1h&system_id=alpha")
    assert '<svg id="histogram"' in html
    bar = html.split('<a class="bar" href="/?', 1)[1].split('"', 1)[0]
    narrowed = urllib.parse.parse_qs(bar.replace("&amp;", "&"))
    assert narrowed["system_id"] == ["alpha"] and "until" in narrowed
    assert float(narrowed["until"][0]) - float(narrowed["since"][0]) == pytest.approx(60, abs=1)
    week = api(viewer, "/api/histogram?since=7d")  # hour-wide buckets, from hourly counts
    assert week["width"] % 3600 == 0 and week["start"] % 3600 == 0
    assert [sum(column) for column in zip(*week["buckets"], strict=True)] == [30, 1, 1]
    errors = api(viewer, "/api/histogram?since=7d&level=ERROR&system_id=beta")["buckets"]
    assert [sum(column) for column in zip(*errors, strict=True)] == [0, 0, 1]


def test_systems_page_summarises_each_system(viewer):
    systems = {s["system_id"]: s for s in api(viewer, "/api/systems")["systems"]}
    assert systems["alpha"]["hosts"] == ["host-a"] and systems["alpha"]["records"] == 30
    assert systems["alpha"]["last_hour"] == 30 and systems["beta"]["errors_last_hour"] == 1
    _, _, html = get(viewer, "/systems")
    assert html.count('<tr class="system') == len(systems)
    assert "&lt;script&gt;" in html and "<script>alert" not in html


def test_exports_stream_the_filtered_records(viewer):
    status, headers, body = get(viewer, "/api/export.csv?system_id=alpha")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    lines = body.strip().splitlines()
    assert lines[0].startswith("id,seq,origin,received") and len(lines) == 31
    status, _, body = get(viewer, "/api/export.ndjson?q=paid&limit=5")
    rows = [json.loads(line) for line in body.splitlines()]
    assert status == 200 and len(rows) == 5 and all("paid" in r["message"] for r in rows)
    assert get(viewer, "/api/export.csv?limit=100001")[0] == 400
    assert get(viewer, "/api/openapi.json")[0] == 200


def test_pages_move_both_ways_in_either_order(viewer):
    everything = [r["id"] for r in api(viewer, "/api/records?limit=1000")["records"]]

    def walk(path: str, link: str) -> list[int]:
        seen = []
        while path:
            html = get(viewer, path)[2]
            seen += [int(part.split('"')[0]) for part in html.split('data-id="')[1:]]
            found = html.split(f'id="{link}" href="', 1)
            path = found[1].split('"', 1)[0].replace("&amp;", "&") if len(found) > 1 else None
        return seen

    assert walk("/?limit=7", "older") == everything
    assert walk("/?limit=7&order=oldest", "newer") == everything[::-1]
    # oldest first, walking back from the newest end: each page ascending, pages descending
    ascending = everything[::-1]
    back = walk(f"/?limit=7&order=oldest&before={everything[0] + 1}", "older")
    assert back == [i for n in range(len(ascending), 0, -7)
                    for i in ascending[max(0, n - 7):n]]
    page = api(viewer, f"/api/records?limit=5&after={everything[-1]}")
    assert [r["id"] for r in page["records"]] == everything[-6:-1]
    assert page["next"] == {"after": everything[-6]}


def test_csv_cells_that_look_like_formulas_stay_text():
    assert [spreadsheet_safe(v) for v in ("=HYPERLINK(1)", "+1", "-x", "@A1", "ok", 3)] == \
        ["'=HYPERLINK(1)", "'+1", "'-x", "'@A1", "ok", 3]


def test_hostile_numbers_are_refused_cleanly(viewer):
    assert get(viewer, "/record/99999999999999999999")[0] == 404
    assert get(viewer, "/api/records/99999999999999999999")[0] == 404
    for query in ("before=9223372036854775808", f"since={'9' * 400}s", "limit=%C2%B2",
                  "q=" + "a" * 1001):
        assert get(viewer, f"/api/records?{query}")[0] == 400, query
    assert get(viewer, "/api/export.csv?limit=%C2%B2")[0] == 400


def test_histogram_totals_match_the_table_for_any_range(viewer):
    newest = api(viewer, "/api/records?limit=1")["records"][0]["received"]
    cut = f"{newest - 0.0001:.6f}"  # just before the newest record
    tables = []
    for params in ({"since": "70h"}, {"since": "30d"}, {"since": "3d", "until": cut},
                   {"since": "3d", "until": cut, "system_id": "alpha"}):
        query = urllib.parse.urlencode(params)
        table = len(api(viewer, f"/api/records?limit=1000&{query}")["records"])
        chart = sum(map(sum, api(viewer, f"/api/histogram?{query}")["buckets"]))
        assert chart == table, params
        tables.append(table)
    assert tables[2] < tables[1]  # the `until` really cut the newest record off
