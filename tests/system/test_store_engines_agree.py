"""The same records stored through each engine (SQLite, a real PostgreSQL server) give the same
answers to every query the web and the CLI ask: pages both ways, filters, each form of the
search syntax, histograms, drop-downs, systems; malformed searches are refused on both."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from appliance.harness.postgres import PASSWORD, PASSWORD_ENV
from appliance.spine.record import INDEX, Caps, normalize
from appliance.store import url as store_url
from appliance.store.engine import open_store
from appliance.store.query import QueryError, parse
from appliance.store.reader import RecordStore

NOW = time.time()
MESSAGES = [
    "connection-refused to db01:5432 after 3 retries",
    "order 17 paid by card",
    "order 18 declined: card expired",
    "payment gateway timeout (card) on db.example.org",
    "user_login ok for ada",
    "Größe überschritten: café au lait",
    "refusing to start: config_v2 missing",
    "paid twice? order 17 again",
    "heartbeat",
    "a b c d e",
]
SEARCHES = [
    "card", "paid card", "connection-refused", "db01:5432", "db01", "5432", "example",
    "user_login", "user", "login", "größe", "GRÖSSE", "café", '"paid by card"', '"card expired"',
    '"by paid"', "refus*", "pa*", '"order 1"*', "card AND order", "card OR heartbeat",
    "order NOT declined", "card paid OR heartbeat", "heartbeat OR card paid",
    "card NOT paid OR heartbeat", "(card OR heartbeat) NOT paid", "order AND (paid OR declined)",
    "Traceback", "ValueError", "trace*", "17", "b c", '"a b" AND e', "c NOT (d OR zz)",
    '"b d"', "zz*",
]
BAD = ['"unclosed', "AND", "(foo", "card OR", "NOT card", "a:b AND c", "card )"]


def records() -> list[list]:
    rows = []
    for n, (message, system, level) in enumerate(itertools.islice(zip(
            itertools.cycle(MESSAGES), itertools.cycle(["alpha", "beta", "gamma", None]),
            itertools.cycle([10, 20, 20, 30, 40, 50])), 240), start=1):
        record = {"msg": f"{message} #{n}", "levelno": level, "name": f"svc.{system}",
                  "SUB_SYSTEM_ID": f"host-{n % 3}"}
        if system:
            record["SYSTEM_ID"] = system
        if n % 7 == 0:
            record["exc_text"] = f"Traceback (most recent call last):\nValueError: bad {n}"
        values = normalize(record, "127.0.0.1:1", NOW - 86400 * 3 + n * 1000, Caps())
        values[INDEX["seq"]], values[INDEX["origin"]] = n, "o-1"
        rows.append(values)
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory, postgres_server):
    os.environ[PASSWORD_ENV] = PASSWORD
    base = tmp_path_factory.mktemp("agree")
    made = {}
    for name, text in (("sqlite", "sqlite:///herald.sqlite"),
                       ("postgresql", postgres_server.create_database())):
        engine = open_store(store_url.parse(text, Path(base), PASSWORD_ENV))
        engine.open(create=True)
        data = records()
        engine.store_batch(data[:100], ("writer-0of1", "o-1", 100), _refuse)
        engine.store_batch(data[100:], ("writer-0of1", "o-1", 240), _refuse)
        made[name] = RecordStore(engine)
    yield made
    for store in made.values():
        store.engine.close()


def _refuse(values: list, error: BaseException) -> None:
    raise AssertionError(f"row {values[0]} refused: {error}")


def seqs(store: RecordStore, params: dict) -> tuple[list[int], bool]:
    rows, more = store.page(parse(params, now=NOW))
    return [row["seq"] for row in rows], more


@pytest.mark.parametrize("search", SEARCHES)
def test_each_search_form_finds_the_same_records(stores, search):
    results = {name: seqs(store, {"q": search, "limit": "1000"})
               for name, store in stores.items()}
    assert results["sqlite"] == results["postgresql"], search


def test_the_searches_are_not_trivial(stores):
    counts = [len(seqs(stores["sqlite"], {"q": s, "limit": "1000"})[0]) for s in SEARCHES]
    empty = {search for search, count in zip(SEARCHES, counts, strict=True) if count == 0}
    # no match by design: case folding keeps ß, word order, NOT of a word every such
    # record has, a phrase with a gap, a prefix nothing has
    assert empty == {"GRÖSSE", '"by paid"', "c NOT (d OR zz)", '"b d"', "zz*"}
    assert max(counts) < 240


@pytest.mark.parametrize("search", BAD)
def test_malformed_searches_are_refused_on_both(stores, search):
    for store in stores.values():
        with pytest.raises(QueryError):
            store.check_search(search)
            store.page(parse({"q": search}))


@pytest.mark.parametrize("params", [
    {}, {"limit": "7"}, {"limit": "7", "before": "100"}, {"limit": "7", "after": "100"},
    {"order": "oldest", "limit": "9"}, {"order": "oldest", "limit": "9", "before": "50"},
    {"system_id": "alpha", "limit": "1000"}, {"level": "ERROR", "limit": "1000"},
    {"since": "2d", "level": "WARNING", "limit": "1000"}, {"until": "1d", "limit": "1000"},
    {"sub_system_id": "host-1", "q": "card", "limit": "1000"},
    {"system_id": "never-seen"}, {"since": "12h", "q": "paid OR declined", "limit": "1000"},
])
def test_pages_and_filters_give_the_same_rows_in_the_same_order(stores, params):
    results = {name: seqs(store, params) for name, store in stores.items()}
    assert results["sqlite"] == results["postgresql"]


def test_histograms_drop_downs_systems_and_neighbours_agree(stores):
    answers = {}
    for name, store in stores.items():
        start = (NOW // 3600 - 80) * 3600
        record = store.page(parse({"system_id": "beta", "limit": "1"}, now=NOW))[0][0]
        newer, older = store.around(record)
        answers[name] = (
            store.level_counts(parse({}, now=NOW), start, 3600, 90),
            store.level_counts(parse({"q": "card", "since": "3d"}, now=NOW), start, 600, 500),
            store.options(),
            [{k: v for k, v in s.items() if k != "last_seen"} for s in store.systems(NOW)],
            [r["seq"] for r in newer + older],
            [row[INDEX["seq"]] for row in store.values_since(NOW - 86400)],
            [r["seq"] for r in store.export(parse({"q": "order"}, now=NOW), 50)])
    assert answers["sqlite"] == answers["postgresql"]
    assert sum(sum(bucket.values()) for bucket in answers["sqlite"][0]) == 240
