"""The media socket on ASGI: the stream endpoint served by uvicorn inside ``serve``'s process.

``--media-transport asgi`` runs :class:`~vobiz_stream.transports.asgi.AsgiStreamEndpoint` (the
endpoint a Starlette or FastAPI app mounts) under uvicorn on a port of its own (``media_port``),
beside the aiohttp app that keeps the answer XML, the status callbacks and the pages, as the
picows transport does. It shares the server's admission, sessions, recordings and store; the
server, not uvicorn, owns the process's signals and closes the open streams when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

from vobiz_stream.config import Settings
from vobiz_stream.transports.asgi import AsgiStreamEndpoint, Receive, Scope, Send

STREAM_PATH = "/stream"
STARTUP_SECONDS = 10.0
"""How long uvicorn gets to listen before the server gives up starting."""


class UvicornMediaServer:
    """uvicorn serving the stream endpoint on ``media_port``; :meth:`start`, then :meth:`close`."""

    def __init__(self, settings: Settings, endpoint: AsgiStreamEndpoint) -> None:
        import uvicorn  # noqa: PLC0415 (the optional asgi extra, checked at start-up)

        class InProcessServer(uvicorn.Server):
            """uvicorn without its signal handlers: the stream server handles SIGTERM/SIGINT."""

            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                yield

        self._endpoint = endpoint
        config = uvicorn.Config(
            self._route,
            host=settings.host,
            port=settings.media_port,
            interface="asgi3",
            ws="websockets-sansio",
            lifespan="off",  # the stream server closes the streams and the store itself
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # the peer's address is the socket's, as on the other transports
            server_header=False,
            # The endpoint closes a message over max_message_bytes (1009) after the frames before
            # it; uvicorn's own limit would also drop the frames read in the same chunk as it. A
            # text of max_message_bytes characters is at most 4 times as many bytes (UTF-8).
            ws_max_size=4 * settings.max_message_bytes,
            ws_ping_interval=settings.heartbeat or None,  # a carrier gone silent is pinged
            ws_ping_timeout=settings.heartbeat / 2 or None,  # and dropped with no pong in half
        )
        self._server = InProcessServer(config)
        self._serving: asyncio.Task[None] | None = None
        self._address = (settings.host, settings.media_port)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/stream`` to the endpoint; any other path gets a 404 before any upgrade."""
        if scope.get("path") == STREAM_PATH:
            await self._endpoint(scope, receive, send)
            return
        prefix = "websocket." if scope["type"] == "websocket" else ""
        if prefix:
            await receive()  # websocket.connect
        text = f"no such path; the carrier's stream is at {STREAM_PATH}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": f"{prefix}http.response.start", "status": 404, "headers": headers})
        await send({"type": f"{prefix}http.response.body", "body": text})

    async def start(self) -> int:
        """Listen; the port listened on (the setting, or the free one picked for 0). Raises
        :class:`OSError` when the port cannot be had (taken, say)."""
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.create_server((host, port), family=family)  # uvicorn would exit
        server = self._server
        self._serving = asyncio.create_task(server.serve([listening]), name="media-socket-uvicorn")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        while not server.started and not self._serving.done() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not server.started:
            await self.close()
            raise OSError("the ASGI media socket (uvicorn) did not start")
        return int(listening.getsockname()[1])

    async def close(self) -> None:
        """Stop uvicorn, after the stream server closed the open streams (else uvicorn would
        close them itself, with 1012)."""
        serving, self._serving = self._serving, None
        if serving is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # no wait for connections: the server closed the streams
        await serving
