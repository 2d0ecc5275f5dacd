"""``/calls`` over real calls: what the server learns of a stream (its byte order), pages of
calls, and one call by its id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Carrier, RunningServer, StartServer, b64, frames_of, speech
from tests.e2e.test_server_recording import ONE_WAY, send_call
from vobiz_stream.audio import ByteOrder, encode_l16

Connect = Callable[[str], Awaitable[Carrier]]


async def get_json(running: RunningServer, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.get(running.base + path) as reply:
        return reply.status, await reply.json(content_type=None)


async def only_stream(running: RunningServer) -> dict[str, Any]:
    status, listing = await get_json(running, "/calls")
    assert status == 200
    [call] = listing["calls"]
    [stream] = call["streams"]
    assert isinstance(stream, dict)
    return stream


# --- what a stream's row shows -----------------------------------------------------------------


@pytest.mark.parametrize("order", [ByteOrder.LITTLE, ByteOrder.BIG])
async def test_calls_shows_the_detected_byte_order(
    start_server: StartServer, connect: Connect, order: ByteOrder
) -> None:
    running = await start_server(**ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start(rate=rate)
    await send_call(carrier, samples, rate, order)
    await carrier.socket.close()
    await running.wait_idle()
    stream = await only_stream(running)
    assert stream["byte_order"] == order.value


async def test_calls_shows_the_configured_byte_order_while_the_call_runs(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(l16_byte_order="big", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start(rate=rate)
    await send_call(carrier, samples[: rate // 2], rate, ByteOrder.BIG)
    await running.server.store.settled()
    stream = await only_stream(running)
    assert (stream["byte_order"], stream["ended_at"]) == ("big", None)
    await carrier.socket.close()
    await running.wait_idle()


async def test_a_mulaw_stream_has_no_byte_order(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    carrier = await connect(running.ws_url)
    await carrier.start(encoding="audio/x-mulaw")
    for chunk in range(10):
        await carrier.media(b"\xff" * 160, chunk)
    await carrier.socket.close()
    await running.wait_idle()
    assert (await only_stream(running))["byte_order"] is None


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
async def test_calls_shows_the_direction_the_start_gives(
    start_server: StartServer, connect: Connect, direction: str
) -> None:
    running = await start_server(**ONE_WAY)
    samples, rate = speech("speech_female_8k")
    carrier = await connect(running.ws_url)
    await carrier.send(
        {
            "event": "start",
            "streamId": "20170ada",
            "callId": "CALL_abc123xyz",
            "from": "+14155551111",
            "to": "+14155552222",
            "direction": direction,
            "contentType": "audio/x-l16;rate=8000",
            "audioTrack": "inbound",
        }
    )
    for chunk, frame in enumerate(frames_of(samples[:rate], rate)):
        media = {"payload": b64(encode_l16(frame, ByteOrder.LITTLE)), "chunk": chunk}
        await carrier.send({"event": "media", "streamId": "20170ada", "media": media})
    await carrier.socket.close()
    await running.wait_idle()
    [call] = (await get_json(running, "/calls"))[1]["calls"]
    assert (call["direction"], call["streams"][0]["byte_order"]) == (direction, "little")
