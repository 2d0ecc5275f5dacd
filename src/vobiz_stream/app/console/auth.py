"""Signing in to the console: the login form, its cookie, and the checks a browser needs.

The console's pages are read in a browser, which cannot send ``Authorization: Bearer``; so
``POST /ui/login`` with the admin token sets a cookie naming a sign-in of this server (a random
id kept in memory, :class:`ConsoleLogins`), HttpOnly (no script reads it) and SameSite=Strict
(no other site's page sends it along). The cookie opens ``/ui`` pages and the ``GET`` API the
pages read; scripts use the Bearer header. Nothing changes state on ``GET``: signing in and out
are ``POST`` only, and both check that the form came from this server's own page (the
``Origin`` header a browser sends with every ``POST``), so another site cannot sign a visitor
in or out. Wrong tokens are counted per address: past :data:`FAILED_LOGINS` in a minute, that
address waits for the minute to end (429).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from urllib.parse import quote, urlsplit

from aiohttp import web

__all__ = ["COOKIE", "FAILED_LOGINS", "ConsoleLogins", "LoginAttempts", "same_origin"]

COOKIE = "vobiz_console"
FAILED_LOGINS = 10
"""Wrong tokens one address may send in :data:`LOGIN_WINDOW` seconds before it must wait."""
LOGIN_WINDOW = 60.0
SIGN_IN_HOURS = 12
MAX_SIGN_INS = 1000
"""Sign-ins kept at once; the oldest is forgotten (signed out) past it."""
OPEN_PAGES = ("/ui/login", "/ui/static/")
"""The login form and the console's style and scripts (nothing about calls) need no sign-in."""

_clock = time.monotonic


def same_origin(request: web.Request, public_url: str | None) -> bool:
    """Whether a ``POST`` came from a page of this server: its ``Origin`` names the host the
    request was sent to, or the server's public URL (behind a TLS proxy)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    allowed = {request.host}
    if public_url:
        allowed.add(urlsplit(public_url).netloc)
    return netloc in allowed


class LoginAttempts:
    """Wrong tokens per address over the last minute, bounded in the addresses it keeps."""

    MAX_ADDRESSES = 10_000

    def __init__(self) -> None:
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allowed(self, address: str) -> bool:
        started, count = self._failures.get(address, (0.0, 0))
        return count < FAILED_LOGINS or _clock() - started >= LOGIN_WINDOW

    def failed(self, address: str) -> None:
        now = _clock()
        started, count = self._failures.pop(address, (now, 0))
        if now - started >= LOGIN_WINDOW:
            started, count = now, 0
        self._failures[address] = (started, count + 1)
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.popitem(last=False)


class ConsoleLogins:
    """The console's sign-ins: which cookies open the pages, for how long (``admin_token``
    None: no token is set, and the guard's loopback rule decides alone)."""

    def __init__(self, admin_token: str | None, public_url: str | None = None) -> None:
        self._token = None if admin_token is None else admin_token.encode()
        self.public_url = public_url
        self._sign_ins: OrderedDict[str, float] = OrderedDict()
        """Sign-in id -> when it ends (monotonic seconds)."""
        self.attempts = LoginAttempts()

    @property
    def needs_token(self) -> bool:
        return self._token is not None

    def is_open(self, path: str) -> bool:
        """Whether ``path`` is served without signing in (the form, the assets)."""
        return path == OPEN_PAGES[0] or path.startswith(OPEN_PAGES[1])

    def signed_in(self, request: web.Request) -> bool:
        """Whether the request carries a live sign-in cookie: it opens what the pages read
        (``GET`` of ``/ui`` and ``/api/``) and signing out, nothing else."""
        reads = request.method in ("GET", "HEAD") and request.path.startswith(("/ui", "/api/"))
        if not (reads or request.path == "/ui/logout"):
            return False
        return self._known(request.cookies.get(COOKIE))

    def _known(self, sign_in: str | None) -> bool:
        if not sign_in:
            return False
        ends = self._sign_ins.get(sign_in)
        if ends is None:
            return False
        if ends < _clock():
            del self._sign_ins[sign_in]
            return False
        return True

    def login_redirect(self, request: web.Request) -> web.StreamResponse | None:
        """The way to the login form for a page (None for the API, which answers 401)."""
        if not request.path.startswith("/ui"):
            return None
        target = request.path_qs if request.method == "GET" else "/ui"
        location = f"/ui/login?next={quote(target, safe='')}"
        return web.Response(status=303, headers={"Location": location})

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the admin token (compared in constant time)."""
        if self._token is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._token)

    def sign_in(self, response: web.StreamResponse, secure: bool) -> None:
        """Start a sign-in and set its cookie on ``response``."""
        sign_in = secrets.token_urlsafe(32)
        self._sign_ins[sign_in] = _clock() + SIGN_IN_HOURS * 3600
        while len(self._sign_ins) > MAX_SIGN_INS:
            self._sign_ins.popitem(last=False)
        response.set_cookie(
            COOKIE,
            sign_in,
            max_age=SIGN_IN_HOURS * 3600,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    def sign_out(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the request's sign-in (its cookie opens nothing any more) and drop the cookie."""
        self._sign_ins.pop(request.cookies.get(COOKIE, ""), None)
        response.del_cookie(COOKIE, path="/")
