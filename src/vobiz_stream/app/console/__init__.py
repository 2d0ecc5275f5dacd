"""The web console: find any call, see it, hear it, watch live ones, on the server's own port.

Pages under ``/ui`` (:mod:`.pages`), their JSON under ``/api`` (:mod:`.api`), live calls as
Server-Sent Events (:mod:`.live`), signing in with the admin token (:mod:`.auth`). Everything the
browser loads ships in this package (``templates/``, ``static/``): no build step, nothing
fetched from elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from vobiz_stream.app.console.api import ConsoleApi
from vobiz_stream.app.console.auth import ConsoleLogins
from vobiz_stream.app.console.live import LiveFeed
from vobiz_stream.app.console.pages import ConsolePages
from vobiz_stream.app.console.peaks import PeaksCache
from vobiz_stream.recordings import RecordingStore
from vobiz_stream.store import CallHistory

if TYPE_CHECKING:
    from vobiz_stream.app.media_socket import OpenStream

__all__ = ["Console"]

STATIC = Path(__file__).parent / "static"


class Console:
    """The console of one server: its routes, its sign-ins and its live feed."""

    def __init__(
        self,
        store: CallHistory,
        recordings: RecordingStore,
        open_streams: Callable[[], Collection[OpenStream]],
        logins: ConsoleLogins,
    ) -> None:
        self.logins = logins
        self.api = ConsoleApi(store, recordings, PeaksCache())
        self.pages = ConsolePages(self.api, logins)
        self.live = LiveFeed(open_streams)

    def add_to(self, app: web.Application) -> None:
        """Add the console's routes to ``app``, and end the live feeds when it shuts down."""
        pages, api = self.pages, self.api
        call = "/api/calls/{call_id}"
        app.add_routes(
            [
                web.get("/ui", pages.calls),
                web.get("/ui/calls/{call_id}", pages.call),
                web.get("/ui/login", pages.login_form),
                web.post("/ui/login", pages.login),
                web.post("/ui/logout", pages.logout),
                web.static("/ui/static", STATIC),
                web.get("/api/calls", api.calls),
                web.get(call, api.call),
                web.get(call + "/events", api.events),
                web.get(call + "/peaks", api.peaks),
                web.get(call + r"/streams/{row:\d{1,18}}/recording", api.recording),
                web.get("/api/live", self.live.serve),
            ]
        )
        app.on_shutdown.append(self._end_live_feeds)

    async def _end_live_feeds(self, _app: web.Application) -> None:
        self.live.close()
