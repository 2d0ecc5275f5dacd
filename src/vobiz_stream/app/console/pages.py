"""The console's pages, rendered on the server (they work with JavaScript off; scripts add
the live calls, the waveform and the player's markers).

* ``GET /ui``: the calls, newest first, searched (:mod:`.queries`), with the live calls on top;
* ``GET /ui/calls/<id>``: one call: figures, waveforms, player, timeline, downloads;
* ``GET|POST /ui/login``, ``POST /ui/logout``: signing in and out (:mod:`.auth`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from vobiz_stream.app.console.api import ConsoleApi
from vobiz_stream.app.console.auth import ConsoleLogins, same_origin
from vobiz_stream.app.console.queries import MAX_NUMBER, SearchError, parse_search
from vobiz_stream.app.console.timeline import timeline
from vobiz_stream.app.console.views import call_row, duration_text, summaries_from_json, when
from vobiz_stream.store import CallStatus

__all__ = ["SECURITY_HEADERS", "ConsolePages"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Every page: its own scripts and styles only, never framed, never cached."""


def _next_page(target: str | None) -> str:
    """Where to go after signing in: a path of the console only (never another site)."""
    if not target or not target.startswith("/ui") or urlsplit(target).netloc:
        return "/ui"
    return target


class ConsolePages:
    """The pages' handlers; the data comes through the API's handlers' reads."""

    def __init__(self, api: ConsoleApi, logins: ConsoleLogins) -> None:
        self.api = api
        self.logins = logins
        self.templates = Environment(
            loader=PackageLoader("vobiz_stream.app.console", "templates"),
            autoescape=select_autoescape(default=True),
        )

    def render(self, name: str, status: int = 200, **values: object) -> web.Response:
        values.setdefault("signed_in", self.logins.needs_token)
        html = self.templates.get_template(name).render(**values)
        return web.Response(
            status=status, text=html, content_type="text/html", headers=SECURITY_HEADERS
        )

    async def calls(self, request: web.Request) -> web.Response:
        statuses = [status.value for status in CallStatus]
        try:
            search = parse_search(request.query)
        except SearchError as exc:
            filters = {key: value[:MAX_NUMBER] for key, value in request.query.items()}
            return self.render(
                "calls.html", 400, error=str(exc), rows=[], filters=filters, statuses=statuses
            )
        text, more = await self.api.store.search_calls_json(search.query)
        rows = [call_row(call) for call in summaries_from_json(text)]
        return self.render(
            "calls.html",
            rows=rows,
            filters=search.filters,
            statuses=statuses,
            page=search.page,
            next=search.link("/ui", search.page + 1) if more else None,
            previous=search.link("/ui", search.page - 1) if search.page > 1 else None,
        )

    async def call(self, request: web.Request) -> web.Response:
        call = await self.api.find_call(request)
        if isinstance(call, web.Response):
            message = call.text or ""
            return self.render("missing.html", call.status, message=message)
        recordings = await self.api.stream_peaks(call)
        figures = next((item["figures"] for item in recordings if "figures" in item), None)
        return self.render(
            "call.html",
            call=call,
            first_seen=when(call["first_seen"]),
            row=call_row(call),
            recordings=recordings,
            figures=figures,
            timeline=timeline(call),
            duration_text=duration_text,
        )

    async def login_form(self, request: web.Request) -> web.Response:
        return self.render(
            "login.html",
            next=_next_page(request.query.get("next")),
            needs_token=self.logins.needs_token,
            signed_in=False,
        )

    async def login(self, request: web.Request) -> web.Response:
        if not same_origin(request, self.logins.public_url):
            return web.Response(status=403, text="sign in from the console's own login form\n")
        address = request.remote or "-"
        if not self.logins.attempts.allowed(address):
            return self.render(
                "login.html",
                429,
                next="/ui",
                needs_token=True,
                signed_in=False,
                error="too many wrong tokens from this address: wait a minute and try again",
            )
        form = await request.post()
        token = form.get("token")
        target = _next_page(str(form.get("next", "")))
        if not isinstance(token, str) or not self.logins.token_matches(token):
            self.logins.attempts.failed(address)
            return self.render(
                "login.html",
                401,
                next=target,
                needs_token=self.logins.needs_token,
                signed_in=False,
                error="that is not the admin token the server was started with",
            )
        response = web.Response(status=303, headers={"Location": target})
        self.logins.sign_in(response, secure=request.secure)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        if not same_origin(request, self.logins.public_url):
            return web.Response(status=403, text="sign out from the console's own page\n")
        response = web.Response(status=303, headers={"Location": "/ui/login"})
        self.logins.sign_out(request, response)
        return response
