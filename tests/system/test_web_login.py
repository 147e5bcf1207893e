"""With [web] login on: anonymous visitors get the login page (UI) or 401 (API); sessions and
API tokens work; purge needs POST, a CSRF token and the admin role; a GET deletes nothing."""

import http.cookiejar
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from appliance.harness.instance import Instance, wait_until

PASSWORD = "correct horse battery"


def passwd(*args: str, password: str = PASSWORD) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "appliance", "passwd", *args],
                          input=password + "\n", capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects (so tests see them)."""

    def __init__(self, base: str) -> None:
        self.base, self.jar = base, http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def call(self, path: str, form: dict | None = None, headers: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                return 0, {}, "not listening yet"  # the web starts once the DB exists
            raise

    def login(self, name: str, password: str = PASSWORD) -> int:
        return self.call("/login", {"name": name, "password": password, "next": "/"})[0]

    def csrf(self, path: str = "/admin") -> str:
        html = self.call(path)[2]
        return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    admin = passwd("ada", "--role", "admin")[0]
    viewer = passwd("vic", "--role", "viewer")[0]
    token_line, entry = passwd("robot", "--token")
    token = token_line.rsplit(" ", 1)[1]
    inst = Instance(tmp_path_factory.mktemp("login") / "instance")
    inst.set(web={"login": "true", "users": f"{admin}, {viewer}", "tokens": entry})
    inst.start(wait_programs=("ingestor", "writer", "web"))
    try:
        inst.wait_ready()
        base = f"http://127.0.0.1:{inst.web_port}"
        wait_until(lambda: Browser(base).call("/login")[0] == 200, 30, "the web viewer",
                   inst.diagnostics)
        yield inst, base, token
    finally:
        inst.stop()


def test_anonymous_visitors_are_sent_to_log_in(secured):
    _, base, _ = secured
    anonymous = Browser(base)
    status, headers, _ = anonymous.call("/?system_id=probe")
    assert status == 303 and headers["Location"].endswith(
        "/login?next=%2F%3Fsystem_id%3Dprobe")
    status, _, body = anonymous.call("/api/records")
    assert status == 401 and "error" in json.loads(body)
    assert anonymous.call("/record/1")[0] == 303
    assert anonymous.login("ada", "wrong password") == 403


def test_sessions_and_tokens_open_the_viewer(secured):
    inst, base, token = secured
    user = Browser(base)
    assert user.login("vic") == 303
    status, _, html = user.call("/")
    assert status == 200 and 'class="record ' in html and "vic" in html
    status, _, body = Browser(base).call("/api/records", headers={
        "Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["records"]
    assert Browser(base).call("/api/records", headers={
        "Authorization": "Bearer not-the-token"})[0] == 401
    assert user.call("/login?next=//evil.example/")[2].count('value="/"') == 1


def test_purge_needs_post_csrf_and_admin(secured):
    inst, base, _ = secured
    before = inst.count()
    assert before > 0
    ada, vic = Browser(base), Browser(base)
    assert ada.login("ada") == 303 and vic.login("vic") == 303
    assert ada.call("/admin/purge?days=1")[0] == 405  # a GET deletes nothing
    assert ada.call("/admin/purge", {"days": "1"})[0] == 403  # no CSRF token
    assert ada.call("/admin/purge", {"days": "1", "csrf": vic.csrf("/")})[0] == 403
    assert vic.call("/admin")[0] == 403
    assert vic.call("/admin/purge", {"days": "1", "csrf": vic.csrf("/")})[0] == 403
    assert inst.count() == before
    # the records are minutes old: purging those older than a day keeps them all
    status, headers, _ = ada.call("/admin/purge", {"days": "1", "csrf": ada.csrf()})
    assert status == 303 and headers["Location"].endswith("/admin?deleted=0&days=1")
    assert "Deleted 0 records older than 1 days." in ada.call("/admin?deleted=0&days=1")[2]
    assert inst.count() == before


def test_logout_ends_the_session_even_for_a_copied_cookie(secured):
    _, base, _ = secured
    ada = Browser(base)
    assert ada.login("ada") == 303
    copied = [cookie.value for cookie in ada.jar][0]
    thief = {"Cookie": f"herald_session={copied}"}
    assert Browser(base).call("/", headers=thief)[0] == 200
    assert ada.call("/logout", {"csrf": ada.csrf("/")})[0] == 303
    assert Browser(base).call("/", headers=thief)[0] == 303  # back to the login page


def test_login_sends_nobody_elsewhere_and_slows_guessing(secured):
    _, base, _ = secured
    for target in ("//evil.example/", "/\t/evil.example", "/\n/evil.example",
                   "https://evil.example/", "/\\evil.example"):
        user = Browser(base)
        status, headers, _ = user.call("/login", {"name": "vic", "password": PASSWORD,
                                                  "next": target})
        assert status == 303 and headers["Location"].endswith("127.0.0.1:"
                                                               + base.rsplit(":", 1)[1] + "/")
    assert Browser(base).call("/", headers={"Host": "attacker.example"})[0] == 421
    guesser = Browser(base)  # same address as the other tests: some failures are counted
    statuses = [guesser.login("nobody", "guess") for _ in range(6)]
    paused = statuses.index(429)
    assert set(statuses[:paused]) == {403} and set(statuses[paused:]) == {429}
    assert guesser.login("vic") == 429  # paused, even with the right password
