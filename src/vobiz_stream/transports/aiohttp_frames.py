"""Text frames from aiohttp's parser straight to the stream, with no task woken per frame.

aiohttp's WebSocket parser puts each message it reads in a queue and wakes the task reading the
socket, which takes it out through ``receive()``; aiohttp's heartbeat also schedules a reset per
chunk read. On the server's path (50 small frames a second per call) that is a third of the
server's CPU per frame (``bench/RESULTS.md``). Here the queue is aiohttp's own class with one
method overridden: a text frame is handed to the stream the moment the parser has it, as the
picows socket does. Everything else (close, ping, pong, binary frames, errors) still goes through
the queue to the reading task, so aiohttp answers pings and closes as before; a text frame also
waits in the queue while older messages do, so the stream sees every frame in order.

The heartbeat is then this module's (:class:`Heartbeat`): one timer per socket that looks at the
count of messages read, where aiohttp's did work for every chunk. And paced ``playAudio`` frames
can be written from the shared frame clock's tick (:func:`write_text_frame`), with aiohttp's frame
writer but no task woken per frame, as on picows.

The queue and parser classes are aiohttp's internals, not its public API: :data:`DIRECT` says
whether the installed aiohttp has them, and without them sockets read through aiohttp's queue and
heartbeat as before (the same behaviour, more CPU). The test suite pins that the installed
aiohttp takes this path.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import WSMessage, WSMsgType, web
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from aiohttp.web_protocol import RequestHandler

from vobiz_stream.transports.gateway import MediaStream

try:
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from aiohttp._websocket.writer import WebSocketWriter
except ImportError:  # pragma: no cover - an aiohttp that moved its internals
    DIRECT = False
    WebSocketDataQueue = object  # type: ignore[assignment,misc]
else:
    DIRECT = all(
        hasattr(owner, name)
        for owner, name in [
            (web.WebSocketResponse, "_post_start"),
            (RequestHandler, "_message_tail"),
            (RequestHandler, "_payload_parser"),
            (RequestHandler, "set_parser"),
            (WebSocketDataQueue, "_buffer"),
            (web.WebSocketResponse, "_writer"),
            (WebSocketWriter, "_write_websocket_frame"),
        ]
    )

_TEXT = WSMsgType.TEXT

STREAM_ENDED = WSMessage(WSMsgType.TEXT, None, "the stream ended")
"""Put in the queue, in place of the frame, when a text frame handed straight to the stream
ended it (the carrier's ``stop``): the reading task then closes the socket."""


class DirectQueue(WebSocketDataQueue):
    """aiohttp's message queue, with text frames given straight to :attr:`stream` once set."""

    def __init__(self, protocol: Any, limit: int, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(protocol, limit, loop=loop)
        self.stream: MediaStream | None = None
        """Where text frames go; None until the stream opens, and again once it ended."""
        self.messages = 0
        """Messages read from the socket, of every kind: what the heartbeat watches."""

    def feed_data(self, data: Any, size: int) -> None:
        self.messages += 1
        stream = self.stream
        if stream is not None and data[0] is _TEXT and not self._buffer:
            if not stream.receive(data[1]):
                return
            self.stream = None  # what follows goes to the reading task, which closes
            data = STREAM_ENDED
        super().feed_data(data, size)


class DirectWebSocketResponse(web.WebSocketResponse):
    """aiohttp's WebSocket response, reading through a :class:`DirectQueue` (see the module)."""

    direct_queue: DirectQueue | None = None
    """The socket's queue once upgraded: set its ``stream`` to have text frames handed to it."""

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        handler: Any = request.protocol
        tail = handler._message_tail  # bytes that came with the upgrade request, if any
        handler._message_tail = b""
        super()._post_start(request, protocol, writer)  # aiohttp's queue and parser, fed nothing
        assert self._loop is not None
        queue = DirectQueue(handler, DEFAULT_CHUNK_SIZE, loop=self._loop)
        parser = WebSocketReader(queue, self._max_msg_size, compress=False, decode_text=False)
        handler._payload_parser = None
        handler._message_tail = tail  # set_parser feeds it to the new parser, in order
        handler.set_parser(parser)
        self._reader = queue
        self._parser = parser
        self.direct_queue = queue


def can_write_now(socket: web.WebSocketResponse) -> bool:
    """Whether a frame written now goes out at once: the socket is open and the kernel's buffer
    has room (aiohttp's ``send_frame`` would not wait)."""
    writer: Any = socket._writer
    return not socket.closed and writer is not None and not writer.protocol.writing_paused


def write_text_frame(socket: web.WebSocketResponse, data: bytes) -> None:
    """Write ``data`` as one text frame now, with aiohttp's own frame writer but no coroutine:
    what aiohttp's ``send_frame`` does when it need not wait (no compression, as these sockets
    have none). :class:`ConnectionError` if the socket is closed or closing."""
    writer: Any = socket._writer
    if socket.closed or writer is None:
        raise ConnectionResetError("the media socket is closed")
    writer._write_websocket_frame(data, _TEXT, 0)


_STEPS_PER_INTERVAL = 4
"""How often per ``heartbeat`` interval a socket's message count is looked at."""


class Heartbeat:
    """Pings a carrier that sent nothing for ``interval`` seconds, and drops its connection if
    nothing at all (not even the pong) comes back within half that.

    It looks at the queue's message count every quarter ``interval``, so the ping goes after
    1 to 1.25 ``interval`` of silence, and a carrier that answers nothing is dropped 1.5 to 1.75
    ``interval`` after its last frame; frames pay nothing for it.
    """

    def __init__(
        self, socket: web.WebSocketResponse, queue: DirectQueue, request: web.BaseRequest,
        interval: float,
    ) -> None:  # fmt: skip
        self._socket = socket
        self._queue = queue
        self._request = request
        self._step = interval / _STEPS_PER_INTERVAL
        self._loop = asyncio.get_running_loop()
        self._seen = queue.messages
        self._quiet_steps = 0
        self._ping: asyncio.Task[None] | None = None
        self._timer = self._loop.call_later(self._step, self._check)

    def _check(self) -> None:
        if self._socket.closed:
            return
        if self._queue.messages != self._seen:
            self._seen = self._queue.messages
            self._quiet_steps = 0
        else:
            self._quiet_steps += 1
        if self._quiet_steps == _STEPS_PER_INTERVAL:  # silent for an interval: ping it
            self._ping = self._loop.create_task(self._send_ping())
        elif self._quiet_steps >= _STEPS_PER_INTERVAL * 3 // 2:  # no answer in half that: gone
            if self._request.transport is not None:
                self._request.transport.abort()  # a close would wait on a peer that is gone
            return
        self._timer = self._loop.call_later(self._step, self._check)

    async def _send_ping(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing meanwhile
            await self._socket.ping()

    def stop(self) -> None:
        self._timer.cancel()
        if self._ping is not None:
            self._ping.cancel()
