"""Who may read call data: the admin token in front of every page but the carrier's own.

The carrier needs four routes and they stay open, each with its own check: ``/`` (the answer
XML), ``/stream`` (stream tokens, :mod:`vobiz_stream.app.admission`), ``/webhook`` (callback
signatures) and ``/healthz`` (which shows nothing about calls). Every other path is guarded by
:func:`admin_guard`: ``/calls`` and ``/calls/<id>``, ``/stats``, ``/admission``, and any page added
later, without anyone having to remember to guard it.

A guarded path needs ``Authorization: Bearer <admin token>`` (401 without it). With no admin token
set, it is served only when the server listens on loopback (development), the request did not
come through a proxy or tunnel (none of :data:`PROXY_HEADERS`: a tunnel to a loopback port is how a
carrier reaches a developer's machine, and it would reach these pages as well), and its ``Host``
names this machine (a web page whose own name was made to resolve to 127.0.0.1, DNS rebinding,
sends its own name there); otherwise it answers 403 saying which setting to give.
:func:`unsafe_settings` is what start-up says about all this, one line per setting left unsafe.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from vobiz_stream.app.config import Settings

__all__ = ["OPEN_PATHS", "REALM", "admin_guard", "is_loopback", "unsafe_settings"]

OPEN_PATHS = frozenset({"/", "/stream", "/webhook", "/healthz"})
"""The carrier's routes and the liveness probe; every other path needs the admin token."""
REALM = "vobiz-stream"
TOKEN_SETTING = "--admin-token (or VOBIZ_STREAM_ADMIN_TOKEN)"
PROXY_HEADERS = (
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "Via",
    "CF-Connecting-IP",
    "True-Client-IP",
)
"""Headers a proxy or tunnel adds to what it passes on (a stranger cannot take them off); each
common proxy sets at least one of them (nginx's usual configuration only ``X-Real-IP``)."""


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only (127.0.0.0/8, ::1, localhost).
    Anything else, all interfaces (``0.0.0.0``, ``::``, ``""``) and host names included, is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_guard(admin_token: str | None, host: str) -> Middleware:
    """The middleware that guards every path but :data:`OPEN_PATHS` (see the module's docstring).

    The token is compared in constant time (``hmac.compare_digest``); its length is the only thing
    a wrong guess can time.
    """
    expected = None if admin_token is None else admin_token.encode()
    exposed = not is_loopback(host)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        if expected is not None:
            if _bearer_matches(request.headers.get("Authorization", ""), expected):
                return await handler(request)
            return web.Response(
                status=401,
                text="this page needs the admin token: send the header "
                f"'Authorization: Bearer <token>' with the token given to the server as "
                f"{TOKEN_SETTING}\n",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )
        proxied = any(header in request.headers for header in PROXY_HEADERS)
        if exposed or proxied or not _names_this_machine(request.headers.get("Host")):
            where = (
                f"on {host or 'all addresses'}"
                if exposed
                else "through a proxy or tunnel"
                if proxied
                else "for a Host header naming another machine"
            )
            return web.Response(
                status=403,
                text=f"call data and server internals are not served {where} without an admin "
                f"token: start the server with {TOKEN_SETTING}, then send "
                "'Authorization: Bearer <token>'\n",
            )
        return await handler(request)  # loopback without a token: open for development

    return guard


def _names_this_machine(host_header: str | None) -> bool:
    """Whether a request's ``Host`` is a loopback name (any port), or absent (HTTP/1.0: browsers
    always send one)."""
    if host_header is None:
        return True
    try:
        hostname = urlsplit(f"//{host_header}").hostname
    except ValueError:
        return False
    return hostname is not None and is_loopback(hostname)


def _bearer_matches(header: str, expected: bytes) -> bool:
    scheme, _, credentials = header.strip().partition(" ")
    given = credentials.strip().encode("utf-8", "surrogateescape")
    matches = hmac.compare_digest(given, expected)  # compared whatever the scheme: same time
    return matches and scheme.lower() == "bearer"


def unsafe_settings(settings: Settings) -> list[str]:
    """One line per setting that leaves the server open to strangers, each naming its fix;
    start-up logs each once, as a warning."""
    lines = []
    if settings.stream_secret is None:
        lines.append(
            "no --stream-secret: anyone who reaches /stream can open a media socket for any "
            "call; set --stream-secret (or VOBIZ_STREAM_STREAM_SECRET) so only sockets of calls "
            "this server answered are admitted"
        )
    if not settings.auth_token:
        lines.append(
            "no --auth-token: anyone can post status callbacks to /webhook and they are stored "
            "as the carrier's; set --auth-token (or VOBIZ_STREAM_AUTH_TOKEN) to the Vobiz "
            "account's auth token so only signed callbacks are accepted"
        )
    exposed = not is_loopback(settings.host)
    if settings.admin_token is None:
        lines.append(
            "no --admin-token: "
            + (
                f"/calls, /stats and /admission answer 403 on {settings.host or 'all addresses'}"
                if exposed
                else "/calls, /stats and /admission are open to this machine (development) and "
                "refused (403) through a proxy or tunnel"
            )
            + f"; set {TOKEN_SETTING} to a random string of 16+ characters"
        )
    if exposed:
        guarded = (
            "call data needs the admin token"
            if settings.admin_token is not None
            else "call data is refused until an admin token is set"
        )
        lines.append(
            f"listening on {settings.host or 'all addresses'}, beyond loopback: {guarded}; "
            "the server speaks plain HTTP and WS, so put TLS (a reverse proxy or tunnel) in front "
            "and give its address as --public-url"
        )
    return lines
