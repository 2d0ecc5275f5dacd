"""Hanging up a call from the API: ``POST /api/calls/<id>/hangup``."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import psycopg

from tests.e2e.conftest import Carrier, StartServer, b64, free_port, serve_process

ADMIN = "control-admin-token-0123456789"


async def post_hangup(base: str, call_id: str, token: str | None = ADMIN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{base}/api/calls/{call_id}/hangup", headers=headers) as reply,
    ):
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


async def test_hangup_sent_to_another_server_reaches_the_one_holding_the_call(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two servers on one PostgreSQL (as workers or machines are): the hang-up goes to the one
    that does not hold the call, and the one that does closes it (LISTEN/NOTIFY)."""
    flags = ("--database", postgres_url, "--admin-token", ADMIN)
    port_a, port_b = free_port(), free_port()
    holder = await serve_process(port_a, tmp_path / "a", *flags)
    other = await serve_process(port_b, tmp_path / "b", *flags)
    try:
        async with aiohttp.ClientSession() as client:
            socket = await client.ws_connect(f"ws://127.0.0.1:{port_a}/stream")
            start = {
                "event": "start",
                "start": {
                    "callId": "held-by-a",
                    "streamId": "s-1",
                    "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
                },
            }
            await socket.send_str(orjson.dumps(start).decode())
            media = {"event": "media", "media": {"chunk": 0, "payload": b64(b"\0\1" * 160)}}
            for _ in range(10):
                await socket.send_str(orjson.dumps(media).decode())
            async with asyncio.timeout(10):  # until the stream's row is in the shared database
                status, body = 404, {}
                while status == 404:
                    status, body = await post_hangup(f"http://127.0.0.1:{port_b}", "held-by-a")
            assert (status, body["outcome"]) == (202, "sent")
            closed = await socket.receive(timeout=10)
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1000
    finally:
        for process in (holder, other):
            process.send_signal(signal.SIGTERM)
            await process.communicate()
    with psycopg.connect(postgres_url) as db:
        row = db.execute("SELECT end_reason FROM streams WHERE call_id = 'held-by-a'").fetchone()
    assert row == ("hangup",)
