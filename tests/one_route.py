"""A real aiohttp app with one GET route on 127.0.0.1, for tests that need a peer to talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def one_route_app(path: str, handler: web.Handler) -> AsyncIterator[str]:
    """Serve ``handler`` at ``path`` on a free port; yields the route's ``ws://`` URL."""
    application = web.Application()
    application.router.add_get(path, handler)
    runner = web.AppRunner(application, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}{path}"
    finally:
        await runner.cleanup()
