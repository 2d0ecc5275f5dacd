"""What runs beside the server's app in :func:`~vobiz_stream.app.server.serve`: the metrics port
(``--metrics-port``), the orders bus between workers (PostgreSQL LISTEN/NOTIFY, for hang-ups,
plays and clears that reach another worker than the one holding the call, and the console's
live view of every worker's calls), and, in a worker,
the watch that stops it when its supervisor is gone."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from vobiz_stream.app.console.live import live_snapshot
from vobiz_stream.app.metrics import metrics_app
from vobiz_stream.app.workers import watch_supervisor
from vobiz_stream.store.database import POSTGRES_SCHEMES

if TYPE_CHECKING:
    from vobiz_stream.app.control_bus import PostgresControlBus
    from vobiz_stream.app.live_peers import PostgresLivePeers
    from vobiz_stream.app.server import StreamServer


class SideServices:
    """Started after the server's app listens, closed before it stops."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._watch: asyncio.Task[None] | None = None
        self._bus: PostgresControlBus | None = None
        self._peers: PostgresLivePeers | None = None

    @classmethod
    async def start(
        cls, server: StreamServer, stop: asyncio.Event, supervisor_pid: int | None
    ) -> SideServices:
        """Start what ``server``'s settings ask for; ``stop`` is set when the supervisor
        (``supervisor_pid``, in a worker) is gone."""
        services = cls()
        settings = server.settings
        if settings.metrics_port:
            services._runner = web.AppRunner(metrics_app(server.metrics), access_log=None)
            await services._runner.setup()
            site = web.TCPSite(
                services._runner,
                settings.metrics_host,
                settings.metrics_port,
                reuse_port=server.reuse_port,
            )
            await site.start()
        if settings.database_url.startswith(POSTGRES_SCHEMES):
            # Whichever worker an API hang-up, play or clear reaches, the call's holder does it.
            from vobiz_stream.app.control_bus import PostgresControlBus  # noqa: PLC0415 (extra)

            services._bus = PostgresControlBus(settings.database_url, server.control)
            await services._bus.start()
            server.control.bus = services._bus
            await services._share_live_calls(server, services._bus)
        if supervisor_pid is not None:
            services._watch = asyncio.create_task(watch_supervisor(supervisor_pid, stop))
        return services

    async def _share_live_calls(self, server: StreamServer, bus: PostgresControlBus) -> None:
        """The console's live feed on any worker shows every worker's calls."""
        from vobiz_stream.app.live_peers import PostgresLivePeers  # noqa: PLC0415 (extra)

        live = server.console.live
        self._peers = PostgresLivePeers(
            server.settings.database_url, bus, lambda: live_snapshot(server.streams.open)
        )
        bus.on_follow = self._peers.followed
        live.peers = self._peers

    async def close(self) -> None:
        if self._peers is not None:
            await self._peers.close()
        if self._watch is not None:
            self._watch.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._bus is not None:
            await self._bus.close()
