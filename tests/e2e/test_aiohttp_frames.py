"""The aiohttp socket hands text frames straight from aiohttp's parser to the stream.

Checked on real sockets on 127.0.0.1: that the installed aiohttp takes that path at all (an
upgrade that moved aiohttp's internals would quietly fall back to the slower queue: this fails
first), that frames reach the stream while the reading task is not reading, that nothing is
reordered around a message that still waits in the queue, that frames sent in the same packet
as the upgrade request are kept, and that the heartbeat still pings a silent carrier.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.e2e.conftest import Carrier, StartServer, read_wav
from tests.one_route import one_route_app
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.transports.aiohttp import DirectAiohttpTransport
from vobiz_stream.transports.aiohttp_frames import (
    DIRECT,
    STREAM_ENDED,
    DirectQueue,
    DirectWebSocketResponse,
    can_write_now,
    write_text_frame,
)
from vobiz_stream.transports.gateway import SendsAtOnce


class _Stream:
    """A stream that keeps what it was handed; the frame ``stop`` ends it."""

    def __init__(self) -> None:
        self.received: list[bytes | str] = []

    def receive(self, frame: str | bytes) -> bool:
        self.received.append(frame)
        return frame == b"stop"


class _App:
    """An aiohttp app with one socket whose reading task waits for :attr:`read` before it reads
    anything, and then keeps what the queue gives it."""

    def __init__(self) -> None:
        self.stream = _Stream()
        self.read = asyncio.Event()
        self.opened = asyncio.Event()
        self.from_queue: list[object] = []
        self.direct_queue: DirectQueue | None = None
        self.socket: web.WebSocketResponse | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        socket = DirectWebSocketResponse(compress=False)
        await socket.prepare(request)
        self.socket = socket
        self.direct_queue = socket.direct_queue
        assert self.direct_queue is not None
        self.direct_queue.stream = self.stream
        self.opened.set()
        await self.read.wait()
        async for message in socket:
            self.from_queue.append(message if message is STREAM_ENDED else message.data)
            if message is STREAM_ENDED:
                await socket.close()
        return socket


@pytest.fixture
async def app() -> AsyncIterator[tuple[_App, str]]:
    served = _App()
    async with one_route_app("/ws", served.handle) as url:
        yield served, url.replace("ws://", "http://")


@asynccontextmanager
async def _connected(served: _App, url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A client socket to the app, once the app has set its stream."""
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as socket:
        await served.opened.wait()
        yield socket


async def _until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def test_the_installed_aiohttp_takes_the_direct_path() -> None:
    assert DIRECT, "aiohttp's WebSocket queue moved: sockets read through the slower queue"


async def test_text_frames_reach_the_stream_while_the_reading_task_waits(
    app: tuple[_App, str],
) -> None:
    served, url = app
    async with _connected(served, url) as socket:
        for number in range(50):
            await socket.send_str(f"frame {number}")
        await _until(lambda: len(served.stream.received) == 50)
        assert served.stream.received == [f"frame {n}".encode() for n in range(50)]
        assert served.direct_queue is not None and served.direct_queue.messages == 50
        await socket.send_str("stop")
        await _until(lambda: len(served.stream.received) == 51)
        await socket.send_str("after the stop")  # the stream ended: this one is the task's
        served.read.set()
        await _until(lambda: served.from_queue)
        assert served.from_queue[0] is STREAM_ENDED
        await socket.receive()  # the server's close
    assert served.stream.received[-1] == b"stop"
    assert b"after the stop" not in served.stream.received


async def test_a_text_frame_behind_a_queued_message_waits_its_turn(
    app: tuple[_App, str],
) -> None:
    """A binary frame goes to the reading task's queue; the text frames after it must not
    overtake it, so they wait in the queue too until the task has read it."""
    served, url = app
    async with _connected(served, url) as socket:
        await socket.send_str("first")
        await _until(lambda: served.stream.received == [b"first"])
        await socket.send_bytes(b"\x00binary")
        await socket.send_str("second")
        await socket.send_str("third")
        await asyncio.sleep(0.3)
        assert served.stream.received == [b"first"], "a text frame overtook a queued message"
        served.read.set()
        await _until(lambda: len(served.from_queue) == 3)
        assert served.from_queue == [b"\x00binary", b"second", b"third"]
        await socket.send_str("fourth")  # the queue is empty again: straight to the stream
        await _until(lambda: served.stream.received == [b"first", b"fourth"])


async def test_frames_written_without_waiting_arrive_whole_and_in_order(
    app: tuple[_App, str],
) -> None:
    """The paced frames' path on aiohttp: written from the frame clock's tick with no task."""
    served, url = app
    async with _connected(served, url) as socket:
        assert served.socket is not None and can_write_now(served.socket)
        for number in range(200):
            write_text_frame(served.socket, f"frame {number} ".encode() * 20)
        for number in range(200):
            message = await socket.receive()
            assert (message.type, message.data) == (WSMsgType.TEXT, f"frame {number} " * 20)
        served.read.set()
        await socket.close()
        await _until(lambda: served.socket is not None and served.socket.closed)
        assert not can_write_now(served.socket)
        with pytest.raises(ConnectionError):
            write_text_frame(served.socket, b"after the close")


def test_the_aiohttp_socket_sends_paced_frames_without_a_task() -> None:
    """What the session looks for to send from the frame clock's tick (as on picows)."""
    assert issubclass(DirectAiohttpTransport, SendsAtOnce)


# --- through the server ------------------------------------------------------------------------


def _masked_text_frame(text: bytes) -> bytes:
    """One client-to-server text frame, masked as RFC 6455 requires."""
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(text) < 126:
        header += bytes([0x80 | len(text)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(text))
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(text))
    return header + mask + masked


def _media(chunk: int) -> bytes:
    payload = base64.b64encode(bytes(320)).decode()
    return orjson.dumps(
        {"event": "media", "streamId": "s", "media": {"payload": payload, "chunk": chunk}}
    )


async def test_frames_sent_with_the_upgrade_request_are_not_lost(
    start_server: StartServer,
) -> None:
    """A carrier may send its first frames without waiting for the 101: they arrive in the
    same read as the upgrade request, before the socket's own parser exists."""
    running = await start_server(bidirectional=False, keep_call_alive=False)
    port = int(running.base.rsplit(":", 1)[1])
    start = orjson.dumps(
        {
            "event": "start",
            "sequenceNumber": 0,
            "start": {
                "callId": "pipelined",
                "streamId": "s",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
            },
        }
    )
    request = (
        b"GET /stream?call=pipelined HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    early = b"".join(_masked_text_frame(_media(chunk)) for chunk in range(1, 4))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request + _masked_text_frame(start) + early)  # one write, one packet
    await writer.drain()
    status = await reader.readline()
    assert b" 101 " in status, status
    writer.write(b"".join(_masked_text_frame(_media(chunk)) for chunk in range(4, 11)))
    writer.write(_masked_text_frame(b'{"event": "stop", "streamId": "s"}'))
    await writer.drain()
    async with asyncio.timeout(5):
        while b"\x88" not in await reader.read(4096):  # until the server's close frame
            pass
    writer.close()
    await running.wait_idle()
    [stream] = running.server.store.get_call("pipelined")["streams"]  # type: ignore[index]
    assert stream["end_reason"] == "stop"
    assert stream["frames_received"] == 10


async def test_the_heartbeat_pings_a_silent_carrier_that_answers_and_keeps_it(
    start_server: StartServer,
) -> None:
    """Silent but answering: pinged every second or two, never dropped (the control of the
    vanished carrier, which answers nothing and is dropped)."""
    running = await start_server(heartbeat=0.5, start_timeout=0.0)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url + "?call=quiet", autoping=False)
        await Carrier(socket).start(call_id="quiet")
        pings = 0
        async with asyncio.timeout(6):
            while pings < 3:
                message = await socket.receive()
                if message.type is WSMsgType.PING:
                    pings += 1
                    await socket.pong(message.data)
        assert len(running.server.sockets) == 1
        await socket.close()


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_a_text_frame_that_is_not_utf8_is_counted_and_the_call_goes_on(
    start_server: StartServer, transport: str
) -> None:
    """Text frames reach the stream as bytes on both sockets, so one that is not UTF-8 is a
    malformed frame like any other: counted, skipped, and the frames around it recorded."""
    running = await start_server(
        media_transport=transport,
        l16_byte_order="little",
        bidirectional=False,
        keep_call_alive=False,
    )
    audio = np.arange(160 * 10, dtype=np.int16) * 7
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url + "?call=not-utf8")
        carrier = Carrier(socket)
        await carrier.start(call_id="not-utf8")
        for chunk in range(10):
            if chunk == 5:
                await socket.send_frame(b'{"event": "media", "note": "\xff\xfe"}', WSMsgType.TEXT)
            frame = audio[160 * chunk : 160 * (chunk + 1)]
            await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
        await carrier.send({"event": "stop", "reason": "hangup", "streamId": "stream-1"})
        assert (await socket.receive()).type is WSMsgType.CLOSE  # answered by the client
        await running.wait_idle()
    [stream] = running.server.store.get_call("not-utf8")["streams"]  # type: ignore[index]
    assert (stream["frames_received"], stream["frames_malformed"]) == (10, 1)
    assert stream["end_reason"] == "stop"
    [path] = running.recordings()
    recorded = read_wav(path)[0][:, 0]
    np.testing.assert_array_equal(recorded[: len(audio)], audio)


async def test_without_the_direct_path_frames_go_through_aiohttps_queue(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aiohttp whose internals moved: the socket reads through aiohttp's own queue and
    heartbeat, and the call is the same, sample for sample."""
    monkeypatch.setattr("vobiz_stream.transports.aiohttp.DIRECT", False)
    running = await start_server(
        l16_byte_order="little", bidirectional=False, keep_call_alive=False, heartbeat=0.5
    )
    audio = np.arange(160 * 20, dtype=np.int16) * -5
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url + "?call=queued")
        carrier = Carrier(socket)
        await carrier.start(call_id="queued")
        for chunk in range(20):
            await carrier.media(
                encode_l16(audio[160 * chunk : 160 * (chunk + 1)], ByteOrder.LITTLE), chunk
            )
        await carrier.send({"event": "stop", "reason": "hangup", "streamId": "stream-1"})
        assert (await socket.receive()).type is WSMsgType.CLOSE
        await running.wait_idle()
    [stream] = running.server.store.get_call("queued")["streams"]  # type: ignore[index]
    assert (stream["frames_received"], stream["end_reason"]) == (20, "stop")
    [path] = running.recordings()
    np.testing.assert_array_equal(read_wav(path)[0][: len(audio), 0], audio)
