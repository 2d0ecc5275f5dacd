"""``/calls`` over real calls: what the server learns of a stream (its byte order), pages of
calls, and one call by its id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.conftest import (
    Carrier,
    RunningServer,
    StartServer,
    b64,
    frames_of,
    on_database,
    speech,
)
from tests.e2e.test_server_recording import ONE_WAY, send_call
from tests.e2e.test_server_webhooks import callback, post
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.source import CallerSource

Connect = Callable[[str], Awaitable[Carrier]]


@pytest.fixture
def start_server(start_server: StartServer, store_database: str | None) -> StartServer:
    """Every test here runs on each store engine: SQLite, then PostgreSQL."""
    return on_database(start_server, store_database)


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


# --- pages of calls, and one call ------------------------------------------------------------


async def callbacks_for(running: RunningServer, names: list[str]) -> None:
    async with aiohttp.ClientSession() as client:
        for name in names:
            assert (await post(client, running.base + "/webhook", callback("X", name)))[0] == 200


async def fetch(running: RunningServer, path: str) -> tuple[int, Mapping[str, str], Any]:
    async with aiohttp.ClientSession() as client, client.get(running.base + path) as reply:
        body = await reply.read()
        is_json = reply.content_type == "application/json"
        return reply.status, reply.headers, orjson.loads(body) if is_json else body.decode()


async def test_calls_come_in_pages_that_say_where_the_next_starts(
    start_server: StartServer,
) -> None:
    running = await start_server()
    names = [f"call-{number:03d}" for number in range(12)]
    await callbacks_for(running, names)
    newest_first = names[::-1]
    seen: list[str] = []
    path: str | None = "/calls?limit=5"
    while path is not None:
        status, headers, page = await fetch(running, path)
        assert status == 200
        assert set(page) == {"calls"}  # the shape scripts already read
        seen += [call["call_id"] for call in page["calls"]]
        if "Link" in headers:
            link, rel = headers["Link"].split(";")
            assert rel.strip() == 'rel="next"'
            path = link.strip("<> ")
            assert f"offset={headers['X-Next-Offset']}" in path
        else:
            assert "X-Next-Offset" not in headers
            path = None
    assert seen == newest_first
    status, headers, page = await fetch(running, "/calls?limit=4&offset=10")
    assert [call["call_id"] for call in page["calls"]] == newest_first[10:]
    assert "X-Next-Offset" not in headers
    status, headers, page = await fetch(running, "/calls?offset=50")
    assert (status, page["calls"]) == (200, [])


async def test_a_page_holds_at_most_500_calls(start_server: StartServer) -> None:
    running = await start_server()
    names = [f"call-{number:03d}" for number in range(503)]
    await callbacks_for(running, names)
    status, headers, page = await fetch(running, "/calls?limit=1000")
    assert (status, len(page["calls"]), headers["X-Next-Offset"]) == (200, 500, "500")
    status, headers, page = await fetch(running, "/calls?limit=1000&offset=500")
    assert [call["call_id"] for call in page["calls"]] == ["call-002", "call-001", "call-000"]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=%D9%A5", "limit=+5",
     "offset=-1", "offset=x", "offset=1e3", "offset=9999999999", "limit=5&offset= 5"],
)  # fmt: skip
async def test_bad_page_values_get_400_saying_what_is_expected(
    start_server: StartServer, query: str
) -> None:
    running = await start_server()
    status, _, text = await fetch(running, "/calls?" + query)
    name = query.split("=", maxsplit=1)[0] if "&" not in query else "offset"
    assert status == 400
    assert f"{name} must be a whole number" in text and "/calls?limit=" in text


async def test_one_call_by_its_id(start_server: StartServer, connect: Connect) -> None:
    running = await start_server(**ONE_WAY)
    await callbacks_for(running, ["5401fd2e-5e1c-4f3c-9a59-0d6f0a1b2c3d", "other-call"])
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="5401fd2e-5e1c-4f3c-9a59-0d6f0a1b2c3d", rate=rate)
    await send_call(carrier, samples[:rate], rate)
    await carrier.socket.close()
    await running.wait_idle()
    status, _, call = await fetch(running, "/calls/5401fd2e-5e1c-4f3c-9a59-0d6f0a1b2c3d")
    assert status == 200
    _, _, listing = await fetch(running, "/calls")
    assert call == next(c for c in listing["calls"] if c["call_id"] == call["call_id"])
    assert call["streams"][0]["byte_order"] == "little"
    assert [cb["event"] for cb in call["status_callbacks"]] == ["X"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/calls/unknown-call", 404, "no call 'unknown-call' is known"),
        ("/calls/" + "a" * 129, 400, "1 to 128"),
        ("/calls/bad%0Aid", 400, "1 to 128"),
        ("/calls/bad%20id", 400, "1 to 128"),
        ("/calls/%F0%9F%93%9E", 400, "1 to 128"),
    ],
)
async def test_an_unknown_or_bad_call_id_gets_a_json_error(
    start_server: StartServer, path: str, status: int, says: str
) -> None:
    running = await start_server()
    await callbacks_for(running, ["known-call"])
    got, _, body = await fetch(running, path)
    assert got == status
    assert says in body["error"]
    assert "\n" not in body["error"]


@pytest.mark.parametrize("stream_secret", [None, "stream-secret-for-tests-0123456789"])
async def test_a_live_call_shows_what_its_answer_request_said(
    start_server: StartServer, stream_secret: str | None
) -> None:
    """The live nested start names no numbers and no direction: the call's row takes them from
    the answer request of the same CallUUID, as an emulated call sends it."""
    running = await start_server(stream_secret=stream_secret, l16_byte_order="little")
    samples, rate = speech("speech_male_8k")
    options = CallOptions(from_number="+15550001111", to_number="+918000000001", speed=4.0)
    report = await run_call(running.base + "/", CallerSource(samples[:rate], rate), options)
    assert report.completed, report.summary()
    await running.wait_idle()
    status, call = await get_json(running, f"/calls/{report.call_uuid}")
    assert status == 200
    assert (call["from_number"], call["to_number"], call["direction"]) == (
        "+15550001111",
        "+918000000001",
        "inbound",
    )
    assert call["streams"][0]["byte_order"] == "little"


async def test_an_answer_alone_stores_nothing(start_server: StartServer) -> None:
    """A stranger posting to the answer URL creates no call row: only a stream of it does."""
    running = await start_server()
    async with aiohttp.ClientSession() as client:
        for number in range(20):
            form = {"CallUUID": f"fake-{number}", "From": "x", "Direction": "inbound"}
            async with client.post(running.base + "/", data=form) as reply:
                assert reply.status == 200
    assert (await get_json(running, "/calls"))[1] == {"calls": []}
