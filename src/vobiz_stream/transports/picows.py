"""The media socket on picows: a WebSocket-only server beside the aiohttp app, for throughput.

picows parses WebSocket frames in C and hands each one to a plain callback, with no task, queue
or message object per frame; on the server's hot path (50 small frames a second per call) that
costs less CPU per frame than aiohttp's socket (``bench/RESULTS.md`` has the figures). It
answers only WebSocket upgrades, so it listens on its own port (``media_port``) while aiohttp
keeps the answer XML, the status callbacks and the pages; the answer XML points the carrier's
``<Stream>`` at this port.

Admission, sessions, recordings and handlers are :mod:`vobiz_stream.app.media_socket`'s, shared with
the aiohttp socket; this module only moves frames. One difference: picows tells the peer's
address only once the upgrade is done, so a socket the admission rules refuse is closed right
after it opens, with close code 1008 (a token problem) or 1013 (at capacity, try again later) and
the refusal's text as the reason, where the aiohttp socket refuses the upgrade with an HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from vobiz_stream.core.kinds import EndReason
from vobiz_stream.transports import first_values
from vobiz_stream.transports.gateway import (
    MAX_CLOSE_REASON_BYTES,
    MediaStream,
    SocketRefusal,
    StreamGateway,
)

STREAM_PATH = "/stream"
ABNORMAL_CLOSURE = 1006
"""The close code of a socket that went away without a close frame (RFC 6455)."""

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


class PicowsTransport:
    """The session's view of a picows socket.

    picows writes without waiting; when the kernel's buffer is full it says so
    (``pause_writing``), and sends wait here until it drains, as aiohttp's do. A send that waits
    longer than ``send_timeout`` seconds (0: no limit) means the carrier stopped reading: its
    connection is dropped at once and the send raises :class:`ConnectionError`.
    """

    def __init__(self, socket: WSTransport, send_timeout: float = 0.0) -> None:
        self._socket = socket
        self._send_timeout = send_timeout
        self._writable = asyncio.Event()
        self._writable.set()

    def _check_open(self) -> None:
        if self._socket.is_disconnected or self._socket.is_close_frame_sent:
            raise ConnectionResetError("the media socket is closed")

    async def send_text(self, text: str) -> None:
        await self.send_frame(text.encode())

    async def send_frame(self, data: bytes) -> None:
        self._check_open()
        if not self._writable.is_set():
            await self._wait_writable()
            self._check_open()
        self._socket.send(_TEXT, data)

    def can_send_now(self) -> bool:
        """Whether a send would go out at once: the socket is open and writable."""
        socket = self._socket
        return not (
            socket.is_disconnected or socket.is_close_frame_sent or not self._writable.is_set()
        )

    def send_now(self, data: bytes) -> None:
        """Send ``data`` without waiting (after :meth:`can_send_now`; the frames of one pacing
        tick go out together even if the first fills the kernel's buffer)."""
        self._check_open()
        self._socket.send(_TEXT, data)

    async def _wait_writable(self) -> None:
        try:
            async with asyncio.timeout(self._send_timeout or None):
                await self._writable.wait()
        except TimeoutError:
            self._socket.disconnect(graceful=False)  # a close would wait for the unread data
            raise ConnectionError(
                f"the carrier read nothing for {self._send_timeout:g} s (send_timeout); "
                "dropped its socket"
            ) from None

    async def close(self) -> None:
        self._socket.send_close(WSCloseCode.OK)
        self._socket.disconnect()

    async def shut_down(self) -> None:
        self._socket.send_close(WSCloseCode.GOING_AWAY, b"server shutting down")
        self._socket.disconnect()

    async def close_with(self, code: int, reason: str) -> None:
        self._socket.send_close(WSCloseCode(code), reason.encode()[:MAX_CLOSE_REASON_BYTES])
        self._socket.disconnect()

    def pause(self) -> None:
        self._writable.clear()

    def resume(self) -> None:
        """Writable again (or gone: a waiting send then finds the socket closed)."""
        self._writable.set()


class MediaListener(WSListener):
    """One carrier socket: frames in, to its :class:`MediaStream`."""

    def __init__(
        self,
        streams: StreamGateway[Any],
        query: Mapping[str, str],
        max_message_bytes: int,
        send_timeout: float,
    ) -> None:
        super().__init__()
        self._streams = streams
        self._query = query
        self._max_message_bytes = max_message_bytes
        self._send_timeout = send_timeout
        self._stream: MediaStream | None = None
        self._transport: PicowsTransport | None = None
        self._fragments: tuple[WSMsgType, bytearray] | None = None
        self._ending: asyncio.Task[None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        peer = transport.underlying_transport.get_extra_info("peername")
        admitted = self._streams.admit(self._query, str(peer[0]) if peer else "")
        if isinstance(admitted, SocketRefusal):
            reason = admitted.text.strip().encode()[:MAX_CLOSE_REASON_BYTES]
            transport.send_close(WSCloseCode(admitted.close_code), reason)
            transport.disconnect()
            return
        self._transport = PicowsTransport(transport, self._send_timeout)
        self._stream = self._streams.open_stream(self._transport, self._query, admitted)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        stream = self._stream
        if stream is None:
            return
        kind = frame.msg_type
        if kind is _TEXT and frame.fin:
            if stream.receive(frame.get_payload_as_bytes()):  # the carrier's stop, say
                transport.send_close(WSCloseCode(stream.close_code), stream.close_reason)
                transport.disconnect()
        elif kind is _CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif kind is _BINARY and frame.fin:
            stream.receive_binary(frame.payload_size)
        elif kind is _TEXT or kind is _BINARY or kind is _CONTINUATION:
            self._fragment(transport, frame, stream)

    def _fragment(self, transport: WSTransport, frame: WSFrame, stream: MediaStream) -> None:
        """A message in several frames (rare from a carrier): gathered, then handled whole."""
        if frame.msg_type is not _CONTINUATION:
            self._fragments = (frame.msg_type, bytearray())
        if self._fragments is None:
            stream.reject("a continuation frame without a message to continue")
            return
        kind, gathered = self._fragments
        gathered += frame.get_payload_as_memoryview()
        if len(gathered) > self._max_message_bytes:
            self._fragments = None
            transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"message too big")
            transport.disconnect()
            return
        if not frame.fin:
            return
        self._fragments = None
        if kind is _BINARY:
            stream.receive_binary(len(gathered))
        elif stream.receive(bytes(gathered)):
            transport.send_close(WSCloseCode(stream.close_code), stream.close_reason)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        stream, self._stream = self._stream, None
        if self._transport is not None:
            self._transport.resume()
        if stream is None:
            return
        ending = stream.end(EndReason.SOCKET_CLOSED, _close_code(transport))
        self._ending = asyncio.ensure_future(ending)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume()


def _close_code(transport: WSTransport) -> int:
    """The code the socket ended with: the server's own if it closed first (1009 for a frame
    too big, say), else the carrier's, else 1006 (gone without a close frame)."""
    handshake = transport.close_handshake
    if handshake is None:
        return ABNORMAL_CLOSURE
    first = handshake.recv if handshake.recv_then_sent else handshake.sent
    first = first or handshake.recv or handshake.sent
    return ABNORMAL_CLOSURE if first is None else int(first.code.value)


async def start_media_server(
    streams: StreamGateway[Any],
    host: str,
    port: int,
    *,
    max_message_bytes: int,
    heartbeat: float,
    send_timeout: float,
    handshake_timeout: float = 0.0,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen for carrier sockets on ``host:port`` (0: any free port); close the returned server
    to stop listening. ``heartbeat``, ``send_timeout`` and ``max_message_bytes`` mean what the
    settings of those names say, as on the aiohttp socket; a connection whose upgrade request
    is not whole within ``handshake_timeout`` seconds (0: no limit) is dropped. ``reuse_port``:
    the port is shared with the other workers of ``serve --workers`` (``SO_REUSEPORT``)."""

    def route(request: WSUpgradeRequest) -> WSListener | None:
        target = request.path.decode("latin-1")
        if urlsplit(target).path != STREAM_PATH:
            return None  # picows answers 404
        return MediaListener(
            streams, first_values(urlsplit(target).query), max_message_bytes, send_timeout
        )

    # picows logs every connection at INFO without the call id; the session logs what matters.
    logging.getLogger("picows").setLevel(logging.WARNING)
    server: asyncio.Server = await ws_create_server(
        route,
        host,
        port,
        max_frame_size=max_message_bytes,
        websocket_handshake_timeout=handshake_timeout or None,
        enable_auto_ping=heartbeat > 0,  # ping a carrier gone silent; no pong in half: drop it
        auto_ping_idle_timeout=heartbeat or 20.0,
        auto_ping_reply_timeout=heartbeat / 2 or 10.0,
        reuse_port=reuse_port or None,
    )
    return server
