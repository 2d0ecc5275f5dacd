"""The media socket on a port of its own (``media_port``), beside the aiohttp app.

With ``--media-transport picows`` or ``asgi`` the aiohttp app keeps the answer XML, the status
callbacks and the pages, and the carrier's WebSocket is served here: by picows
(:mod:`vobiz_stream.transports.picows`), or by uvicorn running
:class:`~vobiz_stream.transports.asgi.AsgiStreamEndpoint` (the endpoint a Starlette or FastAPI
app mounts) inside the server's process. Both share the server's admission, sessions,
recordings and store; the server, not uvicorn, owns the process's signals and closes the open
streams when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator
from typing import Protocol

from vobiz_stream.app.config import Settings, socket_limits
from vobiz_stream.app.media_socket import MediaStreams
from vobiz_stream.transports.asgi import AsgiStreamEndpoint, Receive, Scope, Send

_STREAM_PATH = "/stream"
STARTUP_SECONDS = 10.0
"""How long uvicorn gets to listen before the server gives up starting."""


class MediaPort(Protocol):
    """A media socket listening on its own port."""

    port: int

    def stop_listening(self) -> None:
        """Accept no new sockets; the open ones go on until the server closes them."""

    async def close(self) -> None:
        """Stop serving, once the server has closed the open streams."""


async def open_media_port(
    streams: MediaStreams,
    settings: Settings,
    answer_xml: Callable[[str, str | None], str],
    *,
    reuse_port: bool = False,
) -> MediaPort:
    """Listen for carrier sockets on ``media_port`` with ``settings.media_transport`` (picows or
    asgi); ``reuse_port``: share the port with other workers (SO_REUSEPORT). Raises
    :class:`OSError` when the port cannot be had."""
    if settings.media_transport == "asgi":
        endpoint = AsgiStreamEndpoint(
            streams, socket_limits(settings), answer_xml=answer_xml, on_close=streams.shut_down
        )
        served = UvicornMediaServer(settings, endpoint)
        await served.start(reuse_port=reuse_port)
        return served
    from vobiz_stream.transports.picows import start_media_server  # noqa: PLC0415 (optional)

    server = await start_media_server(
        streams,
        settings.host,
        settings.media_port,
        max_message_bytes=settings.max_message_bytes,
        heartbeat=settings.heartbeat,
        send_timeout=settings.send_timeout,
        handshake_timeout=settings.start_timeout,
        reuse_port=reuse_port,
    )
    return PicowsMediaServer(server)


class PicowsMediaServer:
    """picows's listening server as a :class:`MediaPort`."""

    def __init__(self, server: asyncio.Server) -> None:
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    def stop_listening(self) -> None:
        self._server.close()

    async def close(self) -> None:
        self._server.close()


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
        self.port = settings.media_port

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/stream`` to the endpoint; any other path gets a 404 before any upgrade."""
        if scope.get("path") == _STREAM_PATH:
            await self._endpoint(scope, receive, send)
            return
        prefix = "websocket." if scope["type"] == "websocket" else ""
        if prefix:
            await receive()  # websocket.connect
        text = f"no such path; the carrier's stream is at {_STREAM_PATH}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": f"{prefix}http.response.start", "status": 404, "headers": headers})
        await send({"type": f"{prefix}http.response.body", "body": text})

    async def start(self, *, reuse_port: bool = False) -> None:
        """Listen on the setting's port (0: a free one, then in :attr:`port`), shared with other
        workers with ``reuse_port``. Raises :class:`OSError` when the port cannot be had."""
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.create_server(  # not uvicorn's own bind: it would exit the process
            (host, port), family=family, reuse_port=reuse_port
        )
        server = self._server
        self._serving = asyncio.create_task(server.serve([listening]), name="media-socket-uvicorn")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        while not server.started and not self._serving.done() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not server.started:
            await self.close()
            raise OSError("the ASGI media socket (uvicorn) did not start")
        self.port = int(listening.getsockname()[1])

    def stop_listening(self) -> None:
        for listening in self._server.servers:
            listening.close()

    async def close(self) -> None:
        """Stop uvicorn, after the stream server closed the open streams (else uvicorn would
        close them itself, with 1012)."""
        serving, self._serving = self._serving, None
        if serving is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # no wait for connections: the server closed the streams
        await serving
