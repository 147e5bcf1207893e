"""Who may use the web viewer: the login gate, sessions, API tokens, CSRF-checked POSTs and
the admin purge. Installed on the bottle app by web.py; the crypto lives in auth.py.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import bottle

from appliance import auth

log = logging.getLogger("appliance.web")

# /health answers everyone (load balancers, monitors); without a login it says only whether
# the appliance is healthy, not why.
OPEN_PATHS = ("/login", "/static/", "/health")
LOGIN_FAILURES, LOGIN_WINDOW = 5, 300.0  # failed logins per address before a pause


class Access:
    """Who may do what: login on or off, users, API tokens, the signing secret, and the
    sessions ended by logout (kept in memory: a restart forgets them; deleting var/web.secret
    ends every session)."""

    def __init__(self, web: object, secret_path: Path, bind: str) -> None:
        self.login = web.login  # type: ignore[attr-defined]
        self.users = web.users  # type: ignore[attr-defined]
        self.tokens = {digest: auth.Principal(name, role)
                       for name, (role, digest) in web.tokens.items()}  # type: ignore[attr-defined]
        self.session_seconds = web.session  # type: ignore[attr-defined]
        self.secret = auth.load_secret(secret_path)
        self.hosts = allowed_hosts(web.hosts, bind)  # type: ignore[attr-defined]
        self.ended: dict[str, float] = {}  # nonce → expiry
        self.failures: dict[str, list[float]] = {}  # remote address → recent failed logins
        self.lock = threading.Lock()

    def principal(self) -> auth.Principal | None:
        header = bottle.request.get_header("Authorization", "")
        if header.startswith("Bearer "):
            return self.tokens.get(auth.token_digest(header[7:].strip()))
        session = auth.read_session(
            self.secret, bottle.request.get_cookie(auth.SESSION_COOKIE), time.time())
        if session is None or session.nonce in self.ended:
            return None
        entry = self.users.get(session.user.name)
        # A user removed, given another role or a new password is logged out at once.
        if entry is None or entry[0] != session.user.role \
                or auth.fingerprint(entry[1]) != session.fingerprint:
            return None
        return session.user

    def end_session(self) -> None:
        session = auth.read_session(
            self.secret, bottle.request.get_cookie(auth.SESSION_COOKIE), time.time())
        if session is not None:
            with self.lock:
                now = time.time()
                self.ended = {n: t for n, t in self.ended.items() if t > now}
                self.ended[session.nonce] = session.expires

    def throttled(self, address: str) -> bool:
        """More than LOGIN_FAILURES failed logins from one address in LOGIN_WINDOW."""
        now = time.time()
        with self.lock:
            recent = [t for t in self.failures.get(address, []) if now - t < LOGIN_WINDOW]
            self.failures[address] = recent
            return len(recent) >= LOGIN_FAILURES

    def failed(self, address: str) -> None:
        with self.lock:
            if len(self.failures) > 10000:
                self.failures.clear()
            self.failures.setdefault(address, []).append(time.time())

    def csrf(self) -> str:
        cookie = bottle.request.get_cookie(auth.SESSION_COOKIE)
        return auth.csrf_token(self.secret, cookie) if cookie else ""


def allowed_hosts(configured: list[str], bind: str) -> frozenset[str] | None:
    """Host names the viewer answers to. Bound to loopback, a page on another site cannot
    reach it through DNS rebinding, since its Host header names that site. None: any."""
    if configured:
        return frozenset(host.lower() for host in configured)
    if bind in ("127.0.0.1", "::1"):
        return frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
    return None


def request_host() -> str:
    host = bottle.request.get_header("Host", "").lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def safe_next(target: str | None) -> str:
    """Only a path on this site: a login must never send someone elsewhere (urljoin drops
    tabs and newlines, so '/\t/evil' would become '//evil')."""
    if not target or any(ord(c) < 0x21 or c in "\\\x7f" for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def install(app: bottle.Bottle, access: Access, render: Callable[..., str],
            purge: Callable[[float], int] | None) -> None:
    """The login gate before every request, and the login, logout and admin routes."""

    @app.hook("before_request")
    def require_login() -> None:
        if access.hosts is not None and request_host() not in access.hosts:
            raise bottle.HTTPError(421, "this viewer does not answer to that host name "
                                        "([web] hosts)")
        path = bottle.request.path
        user = access.principal()
        bottle.request.environ["herald.user"] = user
        if not access.login or user is not None or path.startswith(OPEN_PATHS):
            return
        if path.startswith(("/api/", "/metrics")):
            bottle.abort(401, "log in or send Authorization: Bearer <token>")
        target = bottle.request.fullpath + ("?" + bottle.request.query_string
                                            if bottle.request.query_string else "")
        bottle.redirect("/login?" + urlencode({"next": target}), 303)

    @app.get("/login")
    def login_page() -> str:
        return render("login", next=safe_next(bottle.request.query.get("next")), failed=False)

    @app.post("/login")
    def login() -> str:
        name = bottle.request.forms.getunicode("name", "")
        password = bottle.request.forms.getunicode("password", "")
        target = safe_next(bottle.request.forms.getunicode("next"))
        address = bottle.request.remote_addr or "?"
        if access.throttled(address):
            bottle.response.status = 429
            return render("login", next=target, failed=True)
        entry = access.users.get(name)
        # Unknown names cost a hash too: the answer's timing tells nothing.
        valid = auth.check_password(password, entry[1] if entry else auth.DUMMY_HASH)
        if entry is None or not valid:
            access.failed(address)
            log.warning("failed login for %r from %s", name[:40], address)
            bottle.response.status = 403
            return render("login", next=target, failed=True)
        cookie = auth.make_session(access.secret, auth.Principal(name, entry[0]), entry[1],
                                   access.session_seconds, time.time())
        bottle.response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True,
                                   samesite="strict", path="/",
                                   max_age=int(access.session_seconds))
        bottle.redirect(target, 303)

    @app.post("/logout")
    def logout() -> None:
        check_csrf()
        access.end_session()
        bottle.response.delete_cookie(auth.SESSION_COOKIE, path="/")
        bottle.redirect("/login", 303)

    def check_csrf() -> None:
        cookie = bottle.request.get_cookie(auth.SESSION_COOKIE)
        if not auth.csrf_ok(access.secret, cookie, bottle.request.forms.get("csrf")):
            raise bottle.HTTPError(403, "missing or wrong CSRF token: reload the page")

    def require_admin() -> auth.Principal:
        user = bottle.request.environ.get("herald.user")
        if not access.login:
            raise bottle.HTTPError(403, "admin actions need [web] login = true")
        if user is None or not user.admin:
            raise bottle.HTTPError(403, "admin role needed")
        return user

    @app.get("/admin")
    def admin_page() -> str:
        require_admin()
        deleted, days = (bottle.request.query.get(k, "") for k in ("deleted", "days"))
        message = (f"Deleted {int(deleted)} records older than {int(days)} days."
                   if re.fullmatch(r"[0-9]{1,12}", deleted) and re.fullmatch(r"[0-9]{1,5}", days)
                   else "")
        return render("admin", message=message)

    purging = threading.Lock()

    @app.post("/admin/purge")
    def admin_purge() -> None:
        user = require_admin()
        check_csrf()
        days = bottle.request.forms.get("days", "")
        if not re.fullmatch(r"[0-9]{1,5}", days) or not 1 <= int(days) <= 36500:
            raise bottle.HTTPError(400, "days must be a whole number from 1 to 36500")
        assert purge is not None
        if not purging.acquire(blocking=False):
            raise bottle.HTTPError(409, "a purge is already running")
        try:
            deleted = purge(time.time() - int(days) * 86400)
        finally:
            purging.release()
        log.warning("%s purged %d records older than %s days", user.name, deleted, days)
        bottle.redirect("/admin?" + urlencode({"deleted": deleted, "days": days}), 303)
