"""The media socket as a pure ASGI app, to mount in a Starlette or FastAPI app at any path.

It speaks the ASGI WebSocket protocol itself (no framework needed) and drives
:mod:`vobiz_stream.app.media_socket` like the other shells: the same admission (stream tokens, call
caps), sessions, recordings, store rows and handlers as ``vobiz-stream serve``. It is there for
convenience, to put the stream inside an app you already run; the aiohttp and picows transports
hold more calls per core.

A socket the admission rules refuse gets its HTTP status and text before any upgrade where the
ASGI server offers the ``websocket.http.response`` extension (uvicorn does), else a plain refusal
of the upgrade (403). The server's own ping and message-size settings (uvicorn's ``ws_ping_*``,
``ws_max_size``) apply on top of ``max_message_bytes``, which is checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from vobiz_stream.transports import first_values
from vobiz_stream.transports.gateway import (
    MAX_CLOSE_REASON_BYTES,
    SocketLimits,
    SocketRefusal,
    StreamGateway,
)

AsgiMessage = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]

MESSAGE_TOO_BIG = 1009
"""The close code of a message over ``max_message_bytes`` (RFC 6455)."""


class AsgiTransport:
    """The session's view of an ASGI WebSocket.

    A send still waiting after ``send_timeout`` seconds (0: no limit) means the carrier stopped
    reading: the socket is closed and the send raises :class:`ConnectionError` (this needs an
    ASGI server whose send waits for the socket to drain; one that buffers without limit never
    makes a send wait). Once the socket is
    closed, by either side, a send raises :class:`ConnectionResetError` at once.
    """

    def __init__(self, send: Send, send_timeout: float = 0.0) -> None:
        self._send = send
        self._send_timeout = send_timeout
        self.closed = False

    async def send_frame(self, data: bytes) -> None:
        await self.send_text(data.decode())  # ASGI carries a text frame as str

    async def send_text(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("the media socket is closed")
        try:
            async with asyncio.timeout(self._send_timeout or None):
                await self._send({"type": "websocket.send", "text": text})
        except TimeoutError:
            self.closed = True
            raise ConnectionError(
                f"the carrier read nothing for {self._send_timeout:g} s (send_timeout); "
                "closed its socket"
            ) from None
        except (OSError, RuntimeError) as exc:  # the ASGI server's word for a socket gone
            self.closed = True
            raise ConnectionResetError(f"the media socket is closed: {exc}") from exc

    async def close(self) -> None:
        await self.close_with(1000, "")

    async def shut_down(self) -> None:
        await self.close_with(1001, "server shutting down")

    async def close_with(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        cut = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        with contextlib.suppress(OSError, RuntimeError):  # already gone: nothing to close
            await self._send({"type": "websocket.close", "code": code, "reason": cut})


class AsgiStreamEndpoint:
    """An ASGI app serving the carrier's stream socket; make one with
    :func:`vobiz_stream.app.server.stream_endpoint`.

    Mount it where the answer XML points the carrier (:meth:`answer_xml` writes that XML), and
    give the host app :meth:`lifespan` (or call :meth:`close` at shutdown): open streams then end
    and their recordings are finalised. Mounted as the whole ASGI app, it answers the ``lifespan``
    protocol itself.
    """

    def __init__(
        self,
        streams: StreamGateway[Any],
        limits: SocketLimits,
        *,
        answer_xml: Callable[[str, str | None], str],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        self._streams = streams
        self._limits = limits
        self._answer_xml = answer_xml
        self._on_close = on_close
        self._closed = False

    def answer_xml(self, stream_url: str, call_uuid: str | None) -> str:
        """The answer XML for the call ``call_uuid`` (the answer request's ``CallUUID``), with a
        ``<Stream>`` to ``stream_url`` (this endpoint's ``ws://`` or ``wss://`` URL) carrying the
        call's stream token when tokens are on, and the settings' stream attributes."""
        return self._answer_xml(stream_url, call_uuid)

    async def close(self) -> None:
        """Refuse new sockets, close the open ones (1001) and close the store; once."""
        if self._closed:
            return
        self._closed = True
        self._streams.draining = True
        await self._on_close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """A lifespan for the host app (Starlette's and FastAPI's ``lifespan=``)."""
        try:
            yield
        finally:
            await self.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._serve_socket(scope, receive, send)
        elif kind == "lifespan":
            await self._serve_lifespan(receive, send)
        else:
            await _http_response(send, 426, "this URL takes the carrier's WebSocket only\n")

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve_socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        query = first_values(scope.get("query_string", b"").decode("latin-1"))
        client = scope.get("client")
        admitted = self._streams.admit(query, str(client[0]) if client else "")
        if isinstance(admitted, SocketRefusal):
            if "websocket.http.response" in scope.get("extensions", {}):
                await _http_response(send, admitted.status, admitted.text, "websocket.")
            else:
                await send({"type": "websocket.close", "code": admitted.close_code})
            return
        try:
            await send({"type": "websocket.accept"})
            await self._run_stream(query, admitted, receive, send)
        finally:
            admitted.release()  # also when the accept failed and no stream opened

    async def _run_stream(
        self, query: dict[str, str], admitted: Any, receive: Receive, send: Send
    ) -> None:
        limits = self._limits
        transport = AsgiTransport(send, limits.send_timeout)
        stream = self._streams.open_stream(transport, query, admitted)
        reason, close_code = "socket_closed", None
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    transport.closed = True
                    close_code = message.get("code")
                    break
                text = message.get("text")
                if text is None:
                    stream.receive_binary(len(message.get("bytes") or b""))
                elif len(text) > limits.max_message_bytes:  # at least as many bytes as chars
                    close_code = MESSAGE_TOO_BIG  # the stream ends as "socket_closed (1009)"
                    await transport.close_with(MESSAGE_TOO_BIG, "message too big")
                    break
                elif stream.receive(text):  # the carrier's stop: the stream is over
                    reason = "stop"
                    await transport.close_with(stream.close_code, stream.close_reason.decode())
                    break
        except (ConnectionError, asyncio.CancelledError) as exc:
            reason = f"socket_dropped: {type(exc).__name__}"
            raise
        finally:
            await stream.end(reason, close_code)


async def _http_response(send: Send, status: int, text: str, prefix: str = "") -> None:
    """A plain-text HTTP response: ``http.response.*`` messages, or with ``prefix``
    ``websocket.`` the ``websocket.http.response.*`` ones that refuse an upgrade."""
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": f"{prefix}http.response.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}http.response.body", "body": body})
