"""The carrier socket (picows) against a real aiohttp WebSocket server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.one_route import one_route_app
from vobiz_stream.emulator.socket import CarrierSocket, Message, SocketError

AppSide = Callable[[web.WebSocketResponse], Awaitable[None]]


class _App:
    """A one-route WebSocket app; ``seen`` holds what it received, ``ended`` how it ended."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.ended: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.behaviour: AppSide | None = None
        self.autoping = True
        """False: pongs reach the handler instead of being answered inside aiohttp."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=None, autoping=self.autoping)
        await socket.prepare(request)
        if self.behaviour is not None:
            await self.behaviour(socket)
        async for message in socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.seen.append(message.data)
        if not self.ended.done():
            self.ended.set_result(socket.close_code)
        return socket


@pytest.fixture
async def app() -> AsyncIterator[tuple[_App, str]]:
    state = _App()
    async with one_route_app("/stream", state.handle) as url:
        yield state, url


async def _collect(socket: CarrierSocket) -> list[Message]:
    return [message async for message in socket.messages()]


async def test_sends_text_frames_in_order_and_closes_cleanly(app: tuple[_App, str]) -> None:
    state, url = app
    socket = await CarrierSocket.connect(url, timeout=5)
    for n in range(100):
        assert socket.send_text(f'{{"n":{n}}}')
    await socket.close()
    assert await asyncio.wait_for(state.ended, 5) == 1000
    assert state.seen == [f'{{"n":{n}}}' for n in range(100)]
    assert socket.closed
    assert not socket.send_text("after close")  # goes nowhere, no error


async def test_receives_the_apps_messages_and_its_close(app: tuple[_App, str]) -> None:
    state, url = app
    big = "x" * 200_000  # bigger than one read: arrives whole

    async def talk(socket: web.WebSocketResponse) -> None:
        await socket.send_str('{"event":"checkpoint","name":"a"}')
        await socket.send_str(big)
        await socket.send_bytes(b"\x00\x01")
        await socket.close(code=4001)

    state.behaviour = talk
    socket = await CarrierSocket.connect(url, timeout=5)
    received = await asyncio.wait_for(_collect(socket), 5)
    assert received == [
        Message(b'{"event":"checkpoint","name":"a"}', binary=False),
        Message(big.encode(), binary=False),
        Message(b"\x00\x01", binary=True),
    ]
    assert socket.close_code == 4001
    assert socket.closed


async def test_answers_the_apps_ping(app: tuple[_App, str]) -> None:
    state, url = app
    pong = asyncio.get_running_loop().create_future()

    async def ping(socket: web.WebSocketResponse) -> None:
        await socket.ping(b"are you there")
        message = await socket.receive()
        pong.set_result((message.type, message.data))

    state.behaviour, state.autoping = ping, False
    socket = await CarrierSocket.connect(url, timeout=5)
    assert await asyncio.wait_for(pong, 5) == (aiohttp.WSMsgType.PONG, b"are you there")
    await socket.close()


async def test_abort_cuts_the_connection_without_a_close_frame(app: tuple[_App, str]) -> None:
    state, url = app
    socket = await CarrierSocket.connect(url, timeout=5)
    socket.send_text("one")
    await asyncio.sleep(0.05)
    socket.abort()
    # aiohttp reports a connection lost without a close frame as 1006 (abnormal closure)
    assert await asyncio.wait_for(state.ended, 5) == 1006
    assert state.seen == ["one"]


async def test_when_closed_fires_once_on_the_apps_close_and_at_once_after(
    app: tuple[_App, str],
) -> None:
    state, url = app

    async def hang_up(socket: web.WebSocketResponse) -> None:
        await asyncio.sleep(0.05)
        await socket.close(code=4002)

    state.behaviour = hang_up
    socket = await CarrierSocket.connect(url, timeout=5)
    calls: list[str] = []
    closed = asyncio.Event()

    def note() -> None:
        calls.append("closed")
        closed.set()

    socket.when_closed(note)
    await asyncio.wait_for(closed.wait(), 5)
    assert socket.close_code == 4002
    await asyncio.sleep(0.05)  # the disconnect that follows the close does not call it again
    assert calls == ["closed"]
    socket.when_closed(lambda: calls.append("already"))  # closed: called at once
    assert calls == ["closed", "already"]
    socket.send_frame(b'{"n":2}')  # goes nowhere, no error


async def test_when_closed_fires_when_the_connection_is_lost(app: tuple[_App, str]) -> None:
    _, url = app
    socket = await CarrierSocket.connect(url, timeout=5)
    lost = asyncio.Event()
    socket.when_closed(lost.set)
    socket.abort()
    await asyncio.wait_for(lost.wait(), 5)
    assert socket.closed


async def test_connect_failures_say_why(unused_tcp_port: int) -> None:
    with pytest.raises(SocketError):
        await CarrierSocket.connect(f"ws://127.0.0.1:{unused_tcp_port}/stream", timeout=2)
    with pytest.raises(SocketError):
        await CarrierSocket.connect("not a url", timeout=2)


async def test_a_non_websocket_answer_is_a_socket_error(aiohttp_plain: str) -> None:
    with pytest.raises(SocketError):
        await CarrierSocket.connect(aiohttp_plain, timeout=2)


@pytest.fixture
async def aiohttp_plain() -> AsyncIterator[str]:
    """A URL answering 404 to the upgrade."""
    application = web.Application()
    runner = web.AppRunner(application, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"ws://127.0.0.1:{runner.addresses[0][1]}/nothing-here"
    await runner.cleanup()
