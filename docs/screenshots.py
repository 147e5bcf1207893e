"""Screenshots of the web viewer for the docs: `python3 docs/screenshots.py`.

Starts throwaway instances in a temporary folder (appliance.harness's Instance, each under its
own supervisord): "core-zrh", the upstream whose pages are shown, with a relay and neelix
rules; "dmz-edge", a downstream forwarding to it, so the shop's records have a path; and a
third one with [web] login on, for the login page. Sends a mix of records through the stdlib
SocketHandler, waits until they are stored and neelix has acted (by predicate), then saves
PNGs of the pages with Debian's chromium (through Playwright, never a downloaded browser)
into docs/screenshots/. Every instance is stopped by PID at the end, whatever happens.
"""

from __future__ import annotations

import http.client
import logging
import logging.handlers
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

from appliance.harness.instance import Instance, chained, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
MAX_HEIGHT = 1800  # px: a longer page is cut here, to keep the PNGs small
TIMEOUT = 90  # s: for each wait

RULES = """\
; what neelix does on core-zrh (the screenshots' instance)
[action:table]
; an alert record in the web table
type = record
level = WARNING

[action:chat]
type = webhook
url = http://127.0.0.1:{chat_port}/hooks/ops
format = slack

[action:pager]
; nobody listens there: deliveries are retried, with their last error on /alerts
type = webhook
url = http://127.0.0.1:{pager_port}/v2/enqueue
timeout = 2s

[rule:errors]
level = ERROR
realert = 1m
actions = table, chat

[rule:payment-timeouts]
level = ERROR
system = shop*
traceback = Timeout
realert = 10m
actions = pager

[heartbeat:batch]
systems = nightly-batch
silence = 5s
actions = table, chat

[heartbeat:services]
systems = shop, billing, inventory, auth
silence = 30m
remind = 6h
actions = chat
"""


# --- a webhook receiver that accepts everything (the "chat" action) -------------------------
class Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # http.server's name for it
        length = int(self.headers.get("Content-Length") or 0)
        Hook.received.append(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


# --- services logging through the stdlib ----------------------------------------------------
class Service:
    """One service process as the appliance sees it: a logger with a SocketHandler and the
    ps.basic fields every record of it carries."""

    def __init__(self, port: int, logger: str, **fields: str) -> None:
        self.handler = logging.handlers.SocketHandler("127.0.0.1", port)
        self.log = logging.Logger(logger, logging.DEBUG)
        self.log.addHandler(self.handler)
        self.fields = fields

    def __call__(self, level: int, message: str, *args: object, **extra: object) -> None:
        self.log.log(level, message, *args, extra={**self.fields, **extra}, stacklevel=2)

    def exception(self, message: str, *args: object, **extra: object) -> None:
        self.log.exception(message, *args, extra={**self.fields, **extra}, stacklevel=2)

    def close(self) -> None:
        self.handler.close()


class GatewayTimeout(TimeoutError):
    pass


def charge(order: int, amount: str) -> None:
    authorise(f"ord-{order}", amount)


def authorise(reference: str, amount: str) -> None:
    raise GatewayTimeout(f"payment gateway psp-eu-2 did not answer within 8.0 s "
                         f"(ref {reference}, {amount} CHF)")


def import_prices(path: str) -> None:
    try:
        {"sku": "A-1009", "price": "12.90"}["currency"]  # noqa: B018 (the failing lookup)
    except KeyError as error:
        raise ValueError(f"{path}: line 4812 has no currency column") from error


def log_edge(port: int) -> int:
    """The shop's web servers log to dmz-edge (forwarded to core-zrh); returns the count."""
    sent = 0
    web = {1: Service(port, "shop.checkout", SYSTEM_ID="shop", SUB_SYSTEM_ID="web-01",
                      PACKAGE_VERSION="2.14.1", PRODUKT_ID="webshop"),
           2: Service(port, "shop.checkout", SYSTEM_ID="shop", SUB_SYSTEM_ID="web-02",
                      PACKAGE_VERSION="2.14.0", PRODUKT_ID="webshop")}
    try:
        for n in range(14):
            host = web[1 + n % 2]
            order = 48_210 + n
            host(logging.DEBUG, "cart %s: %d items, total %s CHF", f"c-{9000 + n}",
                 1 + n % 4, f"{19.9 + 7.5 * n:.2f}")
            host(logging.INFO, "order %d placed", order, USER_SPEC_1=f"cust-{3100 + n * 7}",
                 payment="card", items=1 + n % 4)
            if n % 5 == 3:
                host(logging.WARNING, "card declined for order %d (insufficient funds)", order,
                     USER_SPEC_1=f"cust-{3100 + n * 7}", psp="psp-eu-2", attempt=1)
            sent += 3 if n % 5 == 3 else 2
        for n, order in enumerate((48_219, 48_223)):
            try:
                charge(order, f"{129.0 + n * 40:.2f}")
            except TimeoutError:
                web[1 + n].exception("charge failed for order %d", order,
                                     USER_SPEC_1=f"cust-{3163 + n}", psp="psp-eu-2",
                                     retry_in="30s")
            sent += 1
        web[2](logging.CRITICAL, "checkout disabled: payment provider unreachable for 120 s",
               circuit="open", psp="psp-eu-2")
        return sent + 1
    finally:
        for service in web.values():
            service.close()


def log_batch(port: int) -> int:
    """The nightly batch job's last words before it goes silent; returns the count."""
    batch = Service(port, "batch.export", SYSTEM_ID="nightly-batch", SUB_SYSTEM_ID="batch-01",
                    SUB_SUB_SYSTEM_ID="export", PACKAGE_VERSION="0.8.2")
    try:
        batch(logging.INFO, "export started: 3 ledgers, 41,206 rows", job="ledger-export")
        batch(logging.INFO, "ledger EU written (18,004 rows, 2.1 MiB)", job="ledger-export")
        batch(logging.WARNING, "ledger CH: 12 rows without cost centre, exported as 0000",
              job="ledger-export")
        return 3
    finally:
        batch.close()


def log_core(port: int) -> int:
    """Services in the trusted zone log to core-zrh directly; returns the count."""
    billing = Service(port, "billing.invoices", SYSTEM_ID="billing", SUB_SYSTEM_ID="bill-01",
                      PACKAGE_VERSION="5.2.0", PRODUKT_ID="erp")
    auth = {host: Service(port, "auth.sso", SYSTEM_ID="auth", SUB_SYSTEM_ID=host,
                          PACKAGE_VERSION="1.9.3", PRODUKT_ID="sso")
            for host in ("sso-a", "sso-b")}
    inventory = Service(port, "inventory.sync", SYSTEM_ID="inventory", SUB_SYSTEM_ID="inv-01",
                        PACKAGE_VERSION="3.0.7", PRODUKT_ID="erp")
    sent = 0
    try:
        for n in range(10):
            billing(logging.INFO, "invoice %s issued (%s CHF)", f"INV-2026-{7310 + n}",
                    f"{240 + 13.5 * n:.2f}", USER_SPEC_1=f"cust-{3100 + n * 7}")
            billing(logging.DEBUG, "dunning run: %d accounts checked", 180 + n)
            sent += 2
        billing(logging.WARNING, "invoice INV-2026-7316 sent twice, second copy suppressed",
                USER_SPEC_2="mail")
        try:
            import_prices("/srv/billing/in/prices-2026-11.csv")
        except ValueError:
            billing.exception("price import failed", feed="prices-2026-11.csv")
        sent += 2
        for n in range(8):
            host = auth["sso-a" if n % 3 else "sso-b"]
            host(logging.INFO, "login ok for %s (mfa: totp)", f"user{40 + n}@example.org",
                 USER_SPEC_1=f"user{40 + n}")
            sent += 1
        for n in range(4):
            auth["sso-b"](logging.WARNING, "login failed for admin@example.org from 203.0.113.%d",
                          17 + n, USER_SPEC_1="admin", reason="bad password")
            sent += 1
        auth["sso-a"](logging.ERROR, "LDAP bind to ldap-2.corp failed: connection reset, "
                      "using ldap-1.corp", server="ldap-2.corp")
        sent += 1
        for sku, left in (("A-1009", 3), ("B-2210", 0), ("C-0042", 7)):
            inventory(logging.WARNING, "stock low: %s has %d left", sku, left, warehouse="ZRH-2")
            sent += 1
        inventory(logging.INFO, "sync with warehouse ZRH-2 done: 1,224 SKUs", duration_s=41.7)
        inventory(logging.ERROR, "sync with warehouse ZRH-2 aborted: HTTP 503 from "
                  "wms.zrh-2.corp", attempt=3)  # snoozed: neelix holds its notices
        sent += 2
        return sent
    finally:
        for service in (billing, *auth.values(), inventory):
            service.close()


# --- waiting ----------------------------------------------------------------------------
def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def state_rows(inst: Instance, sql: str) -> list[tuple]:
    if not inst.state_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{inst.state_path}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def wait(predicate: Callable[[], object], what: str, inst: Instance) -> None:
    print(f"  waiting for {what}")
    wait_until(predicate, TIMEOUT, what, inst.diagnostics)


def neelix_has_acted(core: Instance) -> bool:
    sent = set(state_rows(core, "SELECT action, source FROM alert WHERE status = 'sent'"))
    return ({("table", "errors"), ("table", "batch"), ("chat", "batch")} <= sent
            and state_rows(core, "SELECT 1 FROM alert WHERE action = 'pager' "
                                 "AND attempts >= 1 AND last_error IS NOT NULL")
            and state_rows(core, "SELECT 1 FROM alert WHERE status = 'held'"))


# --- screenshots ------------------------------------------------------------------------
def shoot(page: Page, name: str) -> Path:
    """A full-page PNG, cut at MAX_HEIGHT."""
    height = page.evaluate("document.documentElement.scrollHeight")
    path = OUT / name
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": 0, "y": 0, "width": VIEWPORT["width"],
                          "height": min(max(height, VIEWPORT["height"]), MAX_HEIGHT)})
    print(f"  {path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
    return path


def screenshots(core: Instance, login: Instance | None) -> None:
    from playwright.sync_api import sync_playwright

    (record_id,), = core.query(
        "SELECT id FROM record WHERE hops IS NOT NULL AND exc_text IS NOT NULL "
        "ORDER BY id DESC LIMIT 1")
    base = f"http://127.0.0.1:{core.web_port}"
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            context.set_default_timeout(15_000)
            page = context.new_page()

            def visit(path: str) -> None:
                response = page.goto(base + path, wait_until="networkidle")
                if response is None or response.status != 200:
                    raise RuntimeError(f"{path}: {response and response.status}")

            visit("/")
            page.wait_for_selector("#records tr.record")
            shoot(page, "records.png")

            visit("/?level=ERROR")
            page.wait_for_selector("#records tr.record")
            page.locator("#records details.trace").first.evaluate("d => d.open = true")
            shoot(page, "records-filtered.png")

            visit(f"/record/{record_id}")
            page.wait_for_selector("pre#trace")
            shoot(page, "record.png")

            visit("/systems")
            page.wait_for_selector("#systems td.hb-down")
            shoot(page, "systems.png")

            visit("/alerts")
            page.wait_for_selector("#incidents tr.incident")
            shoot(page, "alerts.png")

            if login is not None:
                page.goto(f"http://127.0.0.1:{login.web_port}/", wait_until="networkidle")
                page.wait_for_selector("form#login")
                page.fill("form#login input[name=name]", "ada")
                shoot(page, "login.png")
            context.close()
        finally:
            browser.close()


# --- the instances ----------------------------------------------------------------------
def login_instance(directory: Path) -> Instance | None:
    """An instance with [web] login on and one admin (a random password: nobody logs in)."""
    done = subprocess.run([sys.executable, "-m", "appliance", "passwd", "ada", "--role",
                           "admin", "--password-stdin"], input=secrets.token_urlsafe(16) + "\n",
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0 or not done.stdout.strip():
        print(f"note: no login.png, `appliance passwd` failed: {done.stderr.strip()}")
        return None
    inst = Instance(directory)
    inst.set(appliance={"instance": "core-zrh"},
             web={"login": "true", "users": done.stdout.strip().splitlines()[0]})
    return inst


def main() -> None:
    made: list[Instance] = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="herald-screenshots-") as tmp:
        def make() -> Instance:
            made.append(Instance(Path(tmp) / f"instance{len(made)}"))
            return made[-1]

        try:
            edge, core = chained(make)
            core.set(appliance={"instance": "core-zrh"},
                     neelix={"check_interval": "500ms", "retry_max_delay": "10s"})
            core.rules_path.write_text(RULES.format(chat_port=hook.server_address[1],
                                                    pager_port=free_port()))
            edge.set(appliance={"instance": "dmz-edge"})
            login = login_instance(Path(tmp) / "login")
            if login is not None:
                made.append(login)

            print("starting the login instance, core-zrh and dmz-edge")
            if login is not None:
                try:
                    login.start(("web",))
                except AssertionError as error:
                    print(f"note: no login.png, its instance did not start: {error}")
                    login = None
            # core's neelix watches nightly-batch from its start: its records follow at once,
            # so it goes DOWN once, 5 s after them (no probe records: they would show)
            core.start(("ingestor", "writer", "neelix", "web"))
            wait(lambda: listening(core.port), "core-zrh's ingest port", core)
            print("sending records")
            total = log_batch(core.port)
            edge.start(("ingestor", "writer", "forwarder-core"))
            wait(lambda: listening(edge.port), "dmz-edge's ingest port", edge)
            wait(core.state_path.exists, "neelix's state file", core)
            subprocess.run([sys.executable, "-m", "appliance", "neelix", "snooze", "inventory",
                            "2h", "--reason", "warehouse ZRH-2 migration", "-c",
                            str(core.ini)], check=True, capture_output=True, cwd=ROOT)
            total += log_core(core.port) + log_edge(edge.port)

            wait(lambda: core.count("system_id != 'neelix'")
                 >= total, f"{total} records on core-zrh", core)
            wait(lambda: core.count("hops IS NOT NULL AND exc_text IS NOT NULL") >= 2,
                 "forwarded tracebacks", core)
            wait(lambda: state_rows(core, "SELECT 1 FROM incident WHERE system = "
                                          "'nightly-batch' AND closed IS NULL"),
                 "nightly-batch DOWN", core)
            wait(lambda: neelix_has_acted(core), "neelix's notices delivered", core)
            wait(lambda: core.count("system_id = 'neelix'") >= 4  # 3 errors rule, 1 DOWN
                 and core.count("system_id = 'neelix' AND message LIKE '%is DOWN%'"),
                 "neelix's alert records", core)
            wait(lambda: get(core.web_port, "/") == 200, "core-zrh's web", core)
            if login is not None:
                wait(lambda: get(login.web_port, "/login") == 200, "the login page", login)
            print(f"  {core.count()} records stored")

            print("taking screenshots")
            screenshots(core, login)
            if login is None:
                print("note: login.png skipped")
        finally:
            for inst in made:
                inst.stop()
            hook.shutdown()
            hook.server_close()
    print(f"done: {len(Hook.received)} webhook deliveries received, PNGs in "
          f"{OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
