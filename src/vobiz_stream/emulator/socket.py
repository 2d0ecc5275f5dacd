"""The carrier's end of a stream socket: a WebSocket client on picows with a synchronous send.

The emulator sends a media frame every 20 ms per call, so with a thousand calls the cost of one
send is the load generator's budget. aiohttp's ``send_str`` is a coroutine, so each frame needs a
task woken to await it; picows (Cython) frames, masks and writes in one plain call, so one timer
can send the frames of every call due at that moment (:mod:`vobiz_stream.frame_clock`) with
no task per call. ``bench/bench_emulator.py`` measures both.

picows hands over raw frames; this module makes them messages again (fragments joined), answers
a close, and exposes what the emulator needs: send, receive, close, and ``abort`` for a drop with
no close frame (a fault to inject).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import picows
from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport

from vobiz_stream.emulator.limits import MAX_APP_BYTES, describe_bytes
from vobiz_stream.logtext import loggable

__all__ = ["CarrierSocket", "Message", "SocketError"]

_MESSAGE_TOO_BIG = WSCloseCode.MESSAGE_TOO_BIG
_CAP = describe_bytes(MAX_APP_BYTES)

_PICOWS_LOG = logging.getLogger("vobiz_stream.emulator.picows")
"""Where picows logs. What it logs as an error (a frame it refused) also ends the connection's
future, from which the call reports it once, in its own words; so only critical lines show."""
_PICOWS_LOG.setLevel(logging.CRITICAL)


class SocketError(Exception):
    """The socket could not be opened; the message says why (for ``DroppedStream``)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One whole message from the app."""

    data: bytes
    binary: bool


class _Listener(picows.WSListener):
    """Collects whole messages into ``inbox`` and notes the close."""

    def __init__(self) -> None:
        self.inbox: deque[Message] = deque()
        self.arrived = asyncio.Event()
        self.close_code: int | None = None
        self.disconnected = False
        self.write_paused = False
        self.on_gone: Callable[[], None] | None = None
        """Called once, when the app's close frame comes or the connection is lost."""
        self.too_big: str | None = None
        """Set when the app sent a message over the cap: what it was (then the socket closes)."""
        self.protocol_error: str | None = None
        """Set when the connection ended over another breach of the WebSocket protocol."""
        self._parts: list[bytes] = []
        self._binary = False

    def _gone(self) -> None:
        callback, self.on_gone = self.on_gone, None
        if callback is not None:
            callback()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            self._gone()
            return
        if kind is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if kind in (WSMsgType.TEXT, WSMsgType.BINARY):
            self._parts, self._binary = [], kind is WSMsgType.BINARY
        elif kind is not WSMsgType.CONTINUATION:
            return
        self._parts.append(frame.get_payload_as_bytes())
        size = sum(map(len, self._parts))
        if size > MAX_APP_BYTES:
            self.too_big = f"fragments of one message adding up to over {_CAP}"
            self._parts = []
            transport.send_close(_MESSAGE_TOO_BIG)
            transport.disconnect()
            return
        if frame.fin:
            self.inbox.append(Message(b"".join(self._parts), self._binary))
            self._parts = []
            self.arrived.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        self._gone()
        self.arrived.set()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False


def _collect_error(listener: _Listener, ended: asyncio.Future[None]) -> None:
    """Note why the connection ended, if picows ended it over a protocol error."""
    if ended.cancelled():
        return
    error = ended.exception()
    if isinstance(error, picows.WSProtocolError) and error.args[:1] == (_MESSAGE_TOO_BIG,):
        listener.too_big = f"a frame over {_CAP}"
    elif error is not None:
        listener.protocol_error = loggable(str(error) or type(error).__name__, 200)


class CarrierSocket:
    """One stream socket, carrier side."""

    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self._transport = transport
        self._listener = listener
        # picows refuses a frame over max_frame_size itself (close 1009) and ends this future
        # with the error: collect it, or asyncio logs it with a traceback.
        self._ended = asyncio.ensure_future(transport.wait_disconnected())
        self._ended.add_done_callback(functools.partial(_collect_error, listener))
        self.send_frame: Callable[[bytes], None] = functools.partial(transport.send, WSMsgType.TEXT)
        """Send one text frame of UTF-8 bytes now, with no check in Python: the media frames'
        path (one C call per frame). Once the socket is closed it goes nowhere, as
        :meth:`send_text` (:meth:`when_closed` tells when)."""

    @classmethod
    async def connect(cls, url: str, timeout: float) -> CarrierSocket:
        """Open the socket to ``url`` (``ws://`` or ``wss://``); raise :class:`SocketError`."""
        try:
            async with asyncio.timeout(timeout):
                transport, listener = await picows.ws_connect(
                    _Listener,
                    url,
                    websocket_handshake_timeout=timeout,
                    enable_auto_pong=False,
                    max_frame_size=MAX_APP_BYTES,
                    logger_name=_PICOWS_LOG,
                )
        except TimeoutError:
            raise SocketError(f"no WebSocket handshake within {timeout:g}s") from None
        except (picows.WSError, OSError, ValueError) as exc:
            raise SocketError(str(exc) or type(exc).__name__) from None
        assert isinstance(listener, _Listener)
        return cls(transport, listener)

    @property
    def closed(self) -> bool:
        """True once the connection is gone (or closing): sends go nowhere."""
        return self._listener.disconnected or self._listener.close_code is not None

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the socket closes, or now if it is closed (one at a time)."""
        if self.closed:
            callback()
        else:
            self._listener.on_gone = callback

    @property
    def close_code(self) -> int | None:
        """The code of the app's close frame; None if it sent none (yet)."""
        return self._listener.close_code

    @property
    def too_big(self) -> str | None:
        """What the app sent over the size cap, if it did (the carrier closed with 1009)."""
        return self._listener.too_big

    @property
    def protocol_error(self) -> str | None:
        """How the app broke the WebSocket protocol, if the connection ended over it."""
        return self._listener.protocol_error

    @property
    def write_paused(self) -> bool:
        """True while the app is not reading and our send buffer is over its high mark."""
        return self._listener.write_paused

    def send_text(self, text: str | bytes) -> bool:
        """Send one text frame now; False when the socket is gone (not an error: on a real
        carrier such frames go nowhere)."""
        if self.closed:
            return False
        self._transport.send(WSMsgType.TEXT, text.encode() if isinstance(text, str) else text)
        return True

    async def messages(self) -> AsyncIterator[Message]:
        """The app's messages, in order, until the socket closes."""
        listener = self._listener
        while True:
            while listener.inbox:
                yield listener.inbox.popleft()
            if listener.disconnected:
                await asyncio.wait({self._ended}, timeout=1.0)  # why it ended (too_big...)
                return
            listener.arrived.clear()
            await listener.arrived.wait()

    async def close(self, timeout: float = 2.0) -> None:
        """Close the socket cleanly (close frame, then the connection)."""
        self._transport.send_close(WSCloseCode.OK)
        self._transport.disconnect()
        await self._wait_disconnected(timeout)

    def abort(self) -> None:
        """Cut the connection at once, with no close frame: what a network failure looks like."""
        self._transport.disconnect(graceful=False)

    async def _wait_disconnected(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not self._listener.disconnected:
                    self._listener.arrived.clear()
                    await self._listener.arrived.wait()
        except TimeoutError:
            self.abort()
