"""Who may use the web viewer: the login gate, sessions, API tokens, CSRF-checked POSTs and
the admin purge. Installed on the bottle app by web.py; the crypto lives in auth.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import bottle

from appliance import auth

log = logging.getLogger("appliance.web")

OPEN_PATHS = ("/login", "/static/")


class Access:
    """Who may do what: login on or off, users, API tokens, the signing secret."""

    def __init__(self, web: object, secret_path: Path) -> None:
        self.login = web.login  # type: ignore[attr-defined]
        self.users = web.users  # type: ignore[attr-defined]
        self.tokens = {digest: auth.Principal(name, role)
                       for name, (role, digest) in web.tokens.items()}  # type: ignore[attr-defined]
        self.session_seconds = web.session  # type: ignore[attr-defined]
        self.secret = auth.load_secret(secret_path)

    def principal(self) -> auth.Principal | None:
        header = bottle.request.get_header("Authorization", "")
        if header.startswith("Bearer "):
            return self.tokens.get(auth.token_digest(header[7:].strip()))
        return auth.read_session(self.secret, bottle.request.get_cookie(auth.SESSION_COOKIE),
                                 time.time())

    def csrf(self) -> str:
        cookie = bottle.request.get_cookie(auth.SESSION_COOKIE)
        return auth.csrf_token(self.secret, cookie) if cookie else ""


def safe_next(target: str | None) -> str:
    """Only local paths: a login must never bounce someone to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def install(app: bottle.Bottle, access: Access, render: Callable[..., str],
            purge: Callable[[float], int] | None) -> None:
    """The login gate before every request, and the login, logout and admin routes."""

    @app.hook("before_request")
    def require_login() -> None:
        path = bottle.request.path
        user = access.principal()
        bottle.request.environ["herald.user"] = user
        if not access.login or user is not None or path.startswith(OPEN_PATHS):
            return
        if path.startswith("/api/"):
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
        entry = access.users.get(name)
        if entry is None or not auth.check_password(password, entry[1]):
            log.warning("failed login for %r from %s", name[:40], bottle.request.remote_addr)
            bottle.response.status = 403
            return render("login", next=target, failed=True)
        cookie = auth.make_session(access.secret, auth.Principal(name, entry[0]),
                                   access.session_seconds, time.time())
        bottle.response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True,
                                   samesite="strict", path="/",
                                   max_age=int(access.session_seconds))
        bottle.redirect(target, 303)

    @app.post("/logout")
    def logout() -> None:
        check_csrf()
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
        return render("admin", message=bottle.request.query.getunicode("done", ""))

    @app.post("/admin/purge")
    def admin_purge() -> None:
        user = require_admin()
        check_csrf()
        days = bottle.request.forms.get("days", "")
        if not days.isdigit() or not 1 <= int(days) <= 36500:
            raise bottle.HTTPError(400, "days must be a whole number from 1 to 36500")
        assert purge is not None
        deleted = purge(time.time() - int(days) * 86400)
        log.warning("%s purged %d records older than %s days", user.name, deleted, days)
        bottle.redirect("/admin?" + urlencode(
            {"done": f"deleted {deleted} records older than {days} days"}), 303)
