"""The web viewer's gate: the login check before every request (and the Host check against DNS
rebinding), the login and logout views, and the admin page with its CSRF-checked purge."""

from __future__ import annotations

import logging
import re
import threading
import time
from urllib.parse import urlencode

import bottle

from appliance.web import auth
from appliance.web.access import request_host, safe_next
from appliance.web.site import Site

log = logging.getLogger("appliance.web")

# /health answers everyone (load balancers, monitors); without a login it says only whether
# the appliance is healthy, not why.
OPEN_PATHS = ("/login", "/static/", "/health")


class GateViews:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.access = site.access
        self.purging = threading.Lock()

    def require_login(self) -> None:
        """Before every request: the Host must be one the viewer answers to, and with login
        on, the request must carry a session or a token (pages redirect to the login)."""
        access = self.access
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

    def login_page(self) -> str:
        return self.site.render("login", next=safe_next(bottle.request.query.get("next")),
                                failed=False)

    def login(self) -> str:
        access = self.access
        name = bottle.request.forms.getunicode("name", "")
        password = bottle.request.forms.getunicode("password", "")
        target = safe_next(bottle.request.forms.getunicode("next"))
        address = bottle.request.remote_addr or "?"
        if access.throttled(address):
            bottle.response.status = 429
            return self.site.render("login", next=target, failed=True)
        entry = access.users.get(name)
        # Unknown names cost a hash too: the answer's timing tells nothing.
        valid = auth.check_password(password, entry[1] if entry else auth.DUMMY_HASH)
        if entry is None or not valid:
            access.failed(address)
            log.warning("failed login for %r from %s", name[:40], address)
            bottle.response.status = 403
            return self.site.render("login", next=target, failed=True)
        cookie = auth.make_session(access.secret, auth.Principal(name, entry[0]), entry[1],
                                   access.session_seconds, time.time())
        bottle.response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True,
                                   samesite="strict", path="/",
                                   max_age=int(access.session_seconds))
        bottle.redirect(target, 303)

    def logout(self) -> None:
        self.check_csrf()
        self.access.end_session()
        bottle.response.delete_cookie(auth.SESSION_COOKIE, path="/")
        bottle.redirect("/login", 303)

    def admin_page(self) -> str:
        self.require_admin()
        deleted, days = (bottle.request.query.get(k, "") for k in ("deleted", "days"))
        message = (f"Deleted {int(deleted)} records older than {int(days)} days."
                   if re.fullmatch(r"[0-9]{1,12}", deleted) and re.fullmatch(r"[0-9]{1,5}", days)
                   else "")
        return self.site.render("admin", message=message)

    def admin_purge(self) -> None:
        user = self.require_admin()
        self.check_csrf()
        days = bottle.request.forms.get("days", "")
        if not re.fullmatch(r"[0-9]{1,5}", days) or not 1 <= int(days) <= 36500:
            raise bottle.HTTPError(400, "days must be a whole number from 1 to 36500")
        assert self.site.purge is not None
        if not self.purging.acquire(blocking=False):
            raise bottle.HTTPError(409, "a purge is already running")
        try:
            deleted = self.site.purge(time.time() - int(days) * 86400)
        finally:
            self.purging.release()
        log.warning("%s purged %d records older than %s days", user.name, deleted, days)
        bottle.redirect("/admin?" + urlencode({"deleted": deleted, "days": days}), 303)

    def check_csrf(self) -> None:
        cookie = bottle.request.get_cookie(auth.SESSION_COOKIE)
        if not auth.csrf_ok(self.access.secret, cookie, bottle.request.forms.get("csrf")):
            raise bottle.HTTPError(403, "missing or wrong CSRF token: reload the page")

    def require_admin(self) -> auth.Principal:
        user = bottle.request.environ.get("herald.user")
        if not self.access.login:
            raise bottle.HTTPError(403, "admin actions need [web] login = true")
        if user is None or not user.admin:
            raise bottle.HTTPError(403, "admin role needed")
        return user
