"""Hanging up a call from the API: ``POST /api/calls/<id>/hangup``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import orjson

from tests.e2e.conftest import Carrier, StartServer

ADMIN = "control-admin-token-0123456789"


async def post_hangup(base: str, call_id: str, token: str | None = ADMIN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as client, client.post(
        f"{base}/api/calls/{call_id}/hangup", headers=headers
    ) as reply:
        text = await reply.text()
        return reply.status, orjson.loads(text) if reply.status != 401 else {}


async def test_hangup_closes_the_stream_and_keeps_its_recording(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    running = await start_server(admin_token=ADMIN)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="hang-me")
    for chunk in range(25):
        await carrier.media(b"\x00\x10" * 160, chunk)
    other = await connect(running.ws_url)
    await other.start(call_id="keep-me", stream_id="stream-2")

    assert (await post_hangup(running.base, "hang-me", token=None))[0] == 401
    status, body = await post_hangup(running.base, "hang-me")
    assert (status, body["outcome"]) == (200, "hung_up")
    assert carrier.reader is not None
    await carrier.reader  # the server closed the socket
    assert carrier.socket.close_code == 1000

    status, body = await post_hangup(running.base, "no-such-call")
    assert (status, body["outcome"]) == (404, "not_found")
    await other.socket.close()
    await running.wait_idle()

    record = running.server.store.get_call("hang-me")
    assert record is not None
    (stream,) = record["streams"]
    assert stream["end_reason"] == "hangup"
    assert stream["frames_received"] == 25
    assert stream["recording_path"]
    kept = running.server.store.get_call("keep-me")
    assert kept is not None and kept["streams"][0]["end_reason"] != "hangup"
