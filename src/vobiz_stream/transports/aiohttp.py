"""The media socket on aiohttp: ``GET /stream`` upgraded on the app's own port (the default).

The server routes ``/stream`` here (:func:`serve_stream`); a socket the admission rules refuse
gets its HTTP status before any upgrade. Text frames reach the stream straight from aiohttp's
parser (:mod:`vobiz_stream.transports.aiohttp_frames`). Admission, sessions, recordings and
handlers are :mod:`vobiz_stream.app.media_socket`'s; this module only moves frames.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from vobiz_stream.core.kinds import EndReason
from vobiz_stream.transports.aiohttp_frames import (
    DIRECT,
    STREAM_ENDED,
    DirectWebSocketResponse,
    Heartbeat,
    can_write_now,
    write_text_frame,
)
from vobiz_stream.transports.gateway import SlotT, SocketLimits, SocketRefusal, StreamGateway


class AiohttpTransport:
    """The session's view of an aiohttp WebSocket.

    A send still waiting after ``send_timeout`` seconds (0: no limit) means the carrier stopped
    reading: its connection is dropped at once, so what the app queued for it is freed instead of
    piling up, and the send raises :class:`ConnectionError` saying so. One timer per socket checks
    every half ``send_timeout``; a send itself only notes when it began (a timeout around every
    send would cost ~9 us each: 40 % of a core at 1000 calls).
    """

    def __init__(
        self,
        socket: web.WebSocketResponse,
        request: web.BaseRequest | None = None,
        send_timeout: float = 0.0,
    ) -> None:
        self._socket = socket
        self._request = request
        self._send_timeout = send_timeout
        self._loop = asyncio.get_running_loop()
        self._sending_since: float | None = None
        self._stalled = False
        if send_timeout and request is not None:
            self._loop.call_later(send_timeout / 2, self._check_stall)

    async def send_text(self, text: str) -> None:
        await self.send_frame(text.encode())

    async def send_frame(self, data: bytes) -> None:
        self._sending_since = self._loop.time()
        try:
            await self._socket.send_frame(data, WSMsgType.TEXT)
        except ConnectionError:
            if self._stalled:
                raise ConnectionError(
                    f"the carrier read nothing for {self._send_timeout:g} s (send_timeout); "
                    "dropped its socket"
                ) from None
            raise
        finally:
            self._sending_since = None

    def _check_stall(self) -> None:
        if self._socket.closed or self._request is None:
            return
        since = self._sending_since
        if since is not None and self._loop.time() - since >= self._send_timeout:
            self._stalled = True
            if self._request.transport is not None:
                self._request.transport.abort()  # a close would wait for the unread data
            return
        self._loop.call_later(self._send_timeout / 2, self._check_stall)

    async def close(self) -> None:
        await self._socket.close()

    async def shut_down(self) -> None:
        await self._socket.close(code=1001, message=b"server shutting down")

    async def close_with(self, code: int, reason: str) -> None:
        await self._socket.close(code=code, message=reason.encode()[:123])


class DirectAiohttpTransport(AiohttpTransport):
    """An aiohttp socket that can also send without waiting (see
    :mod:`~vobiz_stream.transports.aiohttp_frames`): a session on it sends its paced frames from
    the shared frame clock's tick, with no task woken per frame; while the kernel's buffer is
    full it sends through :meth:`send_frame`, which waits (and times out) as before."""

    def can_send_now(self) -> bool:
        return can_write_now(self._socket)

    def send_now(self, data: bytes) -> None:
        write_text_frame(self._socket, data)


async def serve_stream(
    streams: StreamGateway[SlotT], request: web.Request, limits: SocketLimits
) -> web.StreamResponse:
    """Admit ``request`` (or refuse it with an HTTP status), upgrade it and run its stream."""
    admitted = streams.admit(request.query, request.remote or "")
    if isinstance(admitted, SocketRefusal):
        return web.Response(status=admitted.status, text=admitted.text)
    try:
        return await _run_stream(streams, request, limits, admitted)
    finally:
        admitted.release()  # also when the upgrade failed and no stream opened


async def _run_stream(
    streams: StreamGateway[SlotT], request: web.Request, limits: SocketLimits, admitted: SlotT
) -> web.StreamResponse:
    response = DirectWebSocketResponse if DIRECT else web.WebSocketResponse
    socket = response(
        max_msg_size=limits.max_message_bytes,
        # a carrier gone silent is pinged, then dropped: by aiohttp, or by our Heartbeat below
        heartbeat=None if DIRECT else limits.heartbeat or None,
        autoping=True,
        compress=False,  # a 1 KB deflated frame would cost 1 MB of inflating: no deflate
    )
    await socket.prepare(request)
    shell = DirectAiohttpTransport if DIRECT else AiohttpTransport
    transport = shell(socket, request, limits.send_timeout)
    stream = streams.open_stream(transport, request.query, admitted)
    queue = socket.direct_queue if isinstance(socket, DirectWebSocketResponse) else None
    heartbeat = None
    if queue is not None:
        queue.stream = stream  # text frames now go straight to it (after any queued before)
        if limits.heartbeat:
            heartbeat = Heartbeat(socket, queue, request, limits.heartbeat)
    reason: str = EndReason.SOCKET_CLOSED
    try:
        async for message in socket:
            if message is STREAM_ENDED or (
                message.type is WSMsgType.TEXT and stream.receive(message.data)
            ):  # the carrier's stop: the stream is over
                reason = EndReason.STOP
                await socket.close(code=stream.close_code, message=stream.close_reason)
                break
            if message.type is WSMsgType.BINARY:
                stream.receive_binary(len(message.data))
            elif message.type is WSMsgType.ERROR:
                reason = f"{EndReason.SOCKET_ERROR}: {socket.exception()}"
    except (ConnectionError, asyncio.CancelledError) as exc:
        reason = f"{EndReason.SOCKET_DROPPED}: {type(exc).__name__}"
        raise
    finally:
        if queue is not None:
            queue.stream = None
        if heartbeat is not None:
            heartbeat.stop()
        await stream.end(reason, socket.close_code)
    return socket
