"""The herald web viewer in a real browser (Playwright driving Debian's chromium, never a
downloaded one): filters, search, record details, live tail, history, escaping, isolation."""

import json
import logging
import logging.handlers
import re
import uuid

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from appliance.harness.instance import Instance

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ROWS = "#records tr.record"
WAIT = 10_000  # ms: generous for a loaded CI machine, bounded so a hang fails
SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=2">'
SYSTEMS = {"alpha": 5, "beta": 4}


def send(inst: Instance, message: str, *, logger: str = "shop.web", exception: bool = False,
         **extra: object) -> None:
    """One record through the stdlib SocketHandler, as a service would log it."""
    handler = logging.handlers.SocketHandler("127.0.0.1", inst.port)
    log = logging.Logger(logger)
    log.addHandler(handler)
    try:
        if exception:
            try:
                raise TimeoutError("payment gateway did not answer")
            except TimeoutError:
                log.exception(message, extra=extra)
        else:
            log.warning(message, extra=extra)
    finally:
        handler.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    inst = Instance(tmp_path_factory.mktemp("browser") / "instance")
    try:
        inst.start(wait_programs=("ingestor", "writer", "web"))
        for system, count in SYSTEMS.items():
            for n in range(count):
                send(inst, f"{system} order {n} shipped", SYSTEM_ID=system)
        for n in range(3):
            send(inst, f"zanzibar parcel {n} delayed", SYSTEM_ID=("alpha", "beta", "gamma")[n])
        send(inst, "charge failed for order 81", logger="shop.payments", exception=True,
             SYSTEM_ID="gamma", ticket="T-4711-extra")
        for payload in (SCRIPT, IMG):
            send(inst, payload, logger=payload, SYSTEM_ID=payload, note=payload)
        inst.wait_count(sum(SYSTEMS.values()) + 6)
        inst.wait_web()
        yield inst
    finally:
        inst.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context()
    context.set_default_timeout(WAIT)
    try:
        yield context.new_page()
    finally:
        context.close()


def url(inst: Instance, path: str = "/") -> str:
    return f"http://127.0.0.1:{inst.web_port}{path}"


def filter_by(page: Page, **fields: str) -> None:
    for name, value in fields.items():
        page.fill(f"form#filters input[name={name}]", value)
    with page.expect_navigation():
        page.click("form#filters button[type=submit]")


def shown(page: Page, column: str) -> list[str]:
    return [text.strip() for text in page.locator(f"{ROWS} td.{column}").all_inner_texts()]


def test_filter_by_system_shows_only_that_system(site, page):
    page.goto(url(site))
    filter_by(page, system_id="beta")
    assert "system_id=beta" in page.url
    expect(page.locator(ROWS)).to_have_count(SYSTEMS["beta"] + 1, timeout=WAIT)  # + zanzibar
    assert set(shown(page, "system")) == {"beta"}


def test_full_text_search_shows_exactly_the_matching_records(site, page):
    page.goto(url(site))
    filter_by(page, q="zanzibar")
    assert "q=zanzibar" in page.url
    expect(page.locator(ROWS)).to_have_count(3, timeout=WAIT)
    assert sorted(shown(page, "message")) == [f"zanzibar parcel {n} delayed" for n in range(3)]


def test_a_detail_page_shows_fields_extra_and_traceback(site, page):
    page.goto(url(site, "/?system_id=gamma"))
    row = page.locator(ROWS, has_text="charge failed for order 81")
    record_id = row.get_attribute("data-id")
    row.locator("a.detail").click()
    expect(page).to_have_url(url(site, f"/record/{record_id}"), timeout=WAIT)
    fields = page.locator("dl#fields")
    expect(fields.locator("dd.field-id")).to_have_text(record_id, timeout=WAIT)
    expect(fields.locator("dd.field-message")).to_have_text("charge failed for order 81")
    expect(fields.locator("dd.field-system_id")).to_have_text("gamma")
    expect(fields.locator("dd.field-logger")).to_have_text("shop.payments")
    expect(fields.locator("dd.field-levelname")).to_have_text("ERROR")
    expect(page.locator("pre#extra")).to_contain_text('"ticket": "T-4711-extra"')
    expect(page.locator("pre#trace")).to_contain_text(
        "TimeoutError: payment gateway did not answer")


def test_live_tail_adds_new_records_until_paused(site, page):
    page.goto(url(site))
    page.check("#tail")
    live = f"tail live {uuid.uuid4().hex}"
    send(site, live, SYSTEM_ID="tail")
    expect(page.locator(ROWS, has_text=live)).to_have_count(1, timeout=3000)
    expect(page.locator(ROWS).first).to_contain_text(live)

    page.uncheck("#tail")
    paused = f"tail paused {uuid.uuid4().hex}"
    send(site, paused, SYSTEM_ID="tail")
    site.wait_count(1, "message = ?", (paused,), timeout=30)  # stored: the page could show it
    with pytest.raises(PlaywrightTimeout):
        page.wait_for_selector(f"{ROWS} >> text={paused}", timeout=2000)
    expect(page.locator(ROWS, has_text=live)).to_have_count(1)  # and not duplicated


def test_live_tail_on_an_oldest_first_page_appends_without_duplicates(site, page):
    seeds = [f"oldest seed {n} {uuid.uuid4().hex}" for n in range(2)]
    for seed in seeds:
        send(site, seed, SYSTEM_ID="oldest")
    site.wait_count(2, "system_id = ?", ("oldest",), timeout=30)
    page.goto(url(site, "/?system_id=oldest&order=oldest"))
    page.check("#tail")
    live = f"oldest live {uuid.uuid4().hex}"
    send(site, live, SYSTEM_ID="oldest")
    expect(page.locator(f"{ROWS} a.detail")).to_have_text([*seeds, live], timeout=3000)


def test_a_tail_box_restored_as_ticked_is_live(site, page):
    page.goto(url(site))
    page.check("#tail")
    page.goto(url(site, "/?system_id=beta"))
    page.go_back()
    expect(page.locator("#tail")).to_have_count(1)
    if page.is_checked("#tail"):
        live = f"restored tail {uuid.uuid4().hex}"
        send(site, live, SYSTEM_ID="tail")
        expect(page.locator(ROWS, has_text=live)).to_have_count(1, timeout=3000)


def test_back_button_restores_the_previous_filter(site, page):
    page.goto(url(site))
    filter_by(page, system_id="alpha")
    filter_by(page, system_id="beta")
    assert set(shown(page, "system")) == {"beta"}
    page.go_back()
    expect(page).to_have_url(re.compile(r"system_id=alpha"), timeout=WAIT)
    expect(page.locator("form#filters input[name=system_id]")).to_have_value("alpha")
    expect(page.locator(ROWS)).to_have_count(SYSTEMS["alpha"] + 1, timeout=WAIT)
    assert set(shown(page, "system")) == {"alpha"}


def test_hostile_records_are_shown_as_text_and_never_run(site, page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    def assert_inert() -> None:
        assert page.evaluate("typeof window.__xss") == "undefined"
        expect(page.locator("img[src=x]")).to_have_count(0)
        assert not page.evaluate(
            "[...document.scripts].some(s => s.textContent.includes('__xss'))")
        assert dialogs == []

    page.goto(url(site))
    for payload in (SCRIPT, IMG):
        row = page.locator(ROWS).filter(has=page.locator("td.system", has_text=payload))
        expect(row).to_have_count(1, timeout=WAIT)
        expect(row.locator("td.system")).to_have_text(payload)
        expect(row.locator("a.detail")).to_have_text(payload)
        expect(row.locator("a.detail")).to_be_visible()
    assert_inert()

    for payload in (SCRIPT, IMG):
        page.goto(url(site))
        row = page.locator(ROWS).filter(has=page.locator("td.system", has_text=payload))
        row.locator("a.detail").click()
        expect(page).to_have_url(re.compile(r"/record/\d+$"), timeout=WAIT)
        for name in ("message", "system_id", "logger"):
            expect(page.locator(f"dl#fields dd.field-{name}")).to_have_text(payload)
        expect(page.locator("h1")).to_contain_text(payload)
        expect(page.locator("pre#extra")).to_contain_text(json.dumps(payload))
        expect(page.locator("pre#extra")).to_be_visible()
        assert_inert()


def test_two_browsers_keep_their_own_filters(site, browser):
    contexts = [browser.new_context(), browser.new_context()]
    try:
        pages = {system: context.new_page() for system, context in zip(SYSTEMS, contexts,
                                                                        strict=True)}

        def check(system: str) -> None:
            own = pages[system]
            expect(own.locator(ROWS)).to_have_count(SYSTEMS[system] + 1, timeout=WAIT)
            assert set(shown(own, "system")) == {system}
            expect(own.locator("form#filters input[name=system_id]")).to_have_value(system)

        for system, own in pages.items():
            own.goto(url(site))
            filter_by(own, system_id=system)
        for system, other in (("alpha", "beta"), ("beta", "alpha")):  # interleaved
            pages[other].goto(url(site, f"/?system_id={other}"))
            check(system)
            pages[system].reload()
            check(system)
            check(other)
    finally:
        for context in contexts:
            context.close()
