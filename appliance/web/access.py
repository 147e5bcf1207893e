"""Who may use the web viewer: login on or off, users, API tokens, sessions ended by logout,
login throttling and the host names it answers to. The views that use it (login, logout,
admin) are in gate.py; the crypto lives in auth.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import bottle

from appliance.web import auth

LOGIN_FAILURES, LOGIN_WINDOW = 5, 300.0  # failed logins per address before a pause


class Access:
    """Who may do what: login on or off, users, API tokens, the signing secret, and the
    sessions ended by logout (kept in memory: a restart forgets them; deleting var/web.secret
    ends every session)."""

    def __init__(self, web: object, secret_path: Path | bytes, bind: str) -> None:
        self.login = web.login  # type: ignore[attr-defined]
        self.users = web.users  # type: ignore[attr-defined]
        self.tokens = {digest: auth.Principal(name, role)
                       for name, (role, digest) in web.tokens.items()}  # type: ignore[attr-defined]
        self.session_seconds = web.session  # type: ignore[attr-defined]
        self.secret = secret_path if isinstance(secret_path, bytes) \
            else auth.load_secret(secret_path)
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
