"""Overload: past ``max_calls`` new sockets are refused with 503 and counted while the admitted
calls record whole; ``max_calls_per_ip`` refuses one address with 429 and not another; a carrier
that stops reading is dropped after ``send_timeout`` instead of piling up what the app plays."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import Carrier, RunningServer, StartServer, read_wav, speech
from tests.e2e.test_reliability_hostile import assert_recorded
from tests.e2e.test_server_recording import ONE_WAY, send_call
from vobiz_stream.app.session import CallSession

Connect = Callable[[str], Awaitable[Carrier]]


async def upgrade_status(url: str, local_address: str = "127.0.0.1") -> tuple[int, str]:
    """The HTTP status a WebSocket upgrade to ``url`` gets (101 when accepted, then closed)."""
    connector = aiohttp.TCPConnector(local_addr=(local_address, 0))
    async with aiohttp.ClientSession(connector=connector) as client:
        try:
            socket = await client.ws_connect(url)
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status, refused.message
        await socket.close()
        return 101, ""


async def admission(running: RunningServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, client.get(running.base + "/admission") as reply:
        body: dict[str, Any] = await reply.json()
        return body


async def test_past_the_cap_sockets_are_refused_with_503_and_counted(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(max_calls=3, l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carriers = [await connect(running.ws_url) for _ in range(3)]
    for number, carrier in enumerate(carriers):
        await carrier.start(call_id=f"admitted-{number}")
    for _ in range(4):
        assert (await upgrade_status(running.ws_url))[0] == 503
    async with aiohttp.ClientSession() as client, client.get(running.base + "/stream") as reply:
        assert reply.status == 503
        assert "cap of 3 concurrent calls" in await reply.text()
    counters = await admission(running)
    assert counters["open_calls"] == 3 and counters["admitted"] == 3
    assert counters["refused"]["at_capacity"] == 5

    sent = await asyncio.gather(*(send_call(carrier, samples, rate) for carrier in carriers))
    await carriers[0].socket.close()
    async with asyncio.timeout(5):  # the slot comes back once the stream has ended
        while (await upgrade_status(running.ws_url))[0] != 101:
            await asyncio.sleep(0.05)
    for carrier in carriers[1:]:
        await carrier.socket.close()
    await running.wait_idle()
    for number, expected in enumerate(sent):
        [path] = [path for path in running.recordings() if path.stem.endswith(f"admitted-{number}")]
        assert_recorded(read_wav(path)[0][:, 0], expected)
    assert (await admission(running))["open_calls"] == 0


async def test_the_per_ip_cap_refuses_one_address_with_429_and_not_another(
    start_server: StartServer,
) -> None:
    running = await start_server(max_calls_per_ip=2, **ONE_WAY)
    async with aiohttp.ClientSession() as client:
        held = [await client.ws_connect(running.ws_url) for _ in range(2)]
        assert (await upgrade_status(running.ws_url))[0] == 429
        async with client.get(running.base + "/stream") as reply:  # the refusal says why
            assert reply.status == 429
            assert "127.0.0.1 already has 2 open calls" in await reply.text()
        assert (await upgrade_status(running.ws_url, local_address="127.0.0.2"))[0] == 101
        await held[0].close()
        async with asyncio.timeout(5):
            while (await upgrade_status(running.ws_url))[0] != 101:
                await asyncio.sleep(0.05)
        await held[1].close()
    assert (await admission(running))["refused"]["peer_limit"] >= 1


async def play_two_minutes(session: CallSession) -> None:
    """An app that queues two minutes of audio at once (with max_lead 120 s, all sent at once:
    more than the kernel's socket buffers hold, so a carrier that reads nothing stalls it)."""
    await session.play((np.sin(np.arange(24000 * 120) / 5) * 8000).astype(np.int16), 24000)
    async for _ in session.events():
        pass


def small_receive_buffer(address: Any) -> socket.socket:
    family, kind, protocol, _, _ = address
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_a_carrier_that_stops_reading_is_dropped_after_send_timeout(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """It keeps sending media (so it is not silent: the heartbeat never fires) but reads
    nothing: the app's audio backs up until a send waits ``send_timeout``; then its socket goes,
    and with it everything queued for it."""
    running = await start_server(
        play_two_minutes,
        heartbeat=0.0,
        send_timeout=1.0,
        max_lead=120.0,
        outbound_content_type="audio/x-l16;rate=24000",
        l16_byte_order="little",
    )
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    frame = b"\x00\x01" * 160
    with caplog.at_level(logging.WARNING):
        async with aiohttp.ClientSession(connector=connector) as client:
            socket_ = await client.ws_connect(running.ws_url + "?call=stalled", autoping=False)
            carrier = Carrier(socket_)  # no reader task: nothing the app sends is ever read
            await carrier.start(call_id="stalled")
            loop = asyncio.get_running_loop()
            began = loop.time()
            chunk = 0
            with pytest.raises((ConnectionError, aiohttp.ClientError, RuntimeError)):
                while loop.time() - began < 20:
                    await carrier.media(frame, chunk)
                    chunk += 1
                    await asyncio.sleep(0.02)
                    if not running.server.sockets:
                        raise ConnectionError("dropped by the server")
            dropped_after = loop.time() - began
    await running.wait_idle()
    assert dropped_after < 15, f"a carrier that read nothing was kept {dropped_after:.1f} s"
    assert "read nothing for 1 s (send_timeout)" in caplog.text
    [stream] = running.server.store.get_call("stalled")["streams"]  # type: ignore[index]
    assert stream["ended_at"] is not None
    assert stream["frames_received"] >= chunk - 5


async def test_without_send_timeout_a_carrier_that_stops_reading_is_kept(
    start_server: StartServer,
) -> None:
    """The control for the test above: the send timeout is what drops it."""
    running = await start_server(
        play_two_minutes,
        heartbeat=0.0,
        send_timeout=0.0,
        max_lead=120.0,
        outbound_content_type="audio/x-l16;rate=24000",
    )
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as client:
        carrier = Carrier(await client.ws_connect(running.ws_url, autoping=False))
        await carrier.start(call_id="kept")
        for chunk in range(150):  # three seconds
            await carrier.media(b"\x00\x01" * 160, chunk)
            await asyncio.sleep(0.02)
        assert len(running.server.sockets) == 1
        await carrier.socket.close()
