"""Two ``vobiz-stream serve`` processes sharing one PostgreSQL call store, as behind a balancer
that sends a call's media socket to one process and its status callbacks to the other: the
callbacks still join their call, a reconnect landing on the other process adds its stream to
the same call, and the call reads back whole, in time order, from either process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

from tests.e2e.conftest import b64, free_port, serve_process
from tests.e2e.test_server_webhooks import callback, post
from vobiz_stream.audio import ByteOrder, encode_l16

CALL = "shared-call"
SILENCE = encode_l16(np.zeros(160, dtype=np.int16), ByteOrder.LITTLE)


async def stream(client: aiohttp.ClientSession, port: int, stream_id: str, digit: str) -> None:
    """One socket of the call on the process at ``port``: start, 25 frames, a digit, 25 more."""
    socket = await client.ws_connect(f"ws://127.0.0.1:{port}/stream")
    start = {"event": "start", "start": {"callId": CALL, "streamId": stream_id,
             "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000}}}  # fmt: skip
    await socket.send_str(orjson.dumps(start).decode())
    for chunk in range(50):
        if chunk == 25:
            dtmf = {"event": "dtmf", "streamId": stream_id, "dtmf": {"digit": digit}}
            await socket.send_str(orjson.dumps(dtmf).decode())
        media = {"chunk": chunk, "timestamp": str(20 * chunk), "payload": b64(SILENCE)}
        await socket.send_str(orjson.dumps({"event": "media", "media": media}).decode())
        await asyncio.sleep(0.005)
    await socket.close()


async def read_call(client: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with client.get(f"http://127.0.0.1:{port}/calls/{CALL}") as reply:
        assert reply.status == 200, await reply.text()
        call: dict[str, Any] = await reply.json()
        return call


async def test_callbacks_on_another_process_join_the_call_and_read_back_in_order(
    postgres_url: str, tmp_path: Path
) -> None:
    ports = free_port(), free_port()
    with_password = postgres_url.replace("vobiz@", "vobiz:hunter2-secret@")  # trusted: any works
    flags = ("--database", with_password, "--l16-byte-order", "little")
    processes = [
        await serve_process(port, tmp_path / f"data-{n}", *flags) for n, port in enumerate(ports)
    ]
    try:
        async with aiohttp.ClientSession() as client:
            on_a, on_b = (f"http://127.0.0.1:{port}/webhook" for port in ports)
            assert (await post(client, on_b, callback("StartStream", CALL)))[0] == 200
            await stream(client, ports[0], "stream-a", "1")  # the media socket on process A
            assert (await post(client, on_b, callback("DroppedStream", CALL)))[0] == 200
            await stream(client, ports[1], "stream-b", "2")  # its reconnect lands on B
            assert (await post(client, on_a, callback("StopStream", CALL)))[0] == 200
            async with asyncio.timeout(20):
                while (call := await read_call(client, ports[0]))["status"] != "ended":
                    await asyncio.sleep(0.1)
            from_b = await read_call(client, ports[1])
    finally:
        logs = []
        for process in processes:
            process.terminate()
            logs.append((await asyncio.wait_for(process.communicate(), 40))[1].decode())
    for log in logs:  # each names the shared store, never its password
        assert f"calls stored in {postgres_url}" in log
        assert "hunter2" not in log
    assert from_b == call, "both processes read the same call"
    assert [s["stream_id"] for s in call["streams"]] == ["stream-a", "stream-b"]
    assert all(s["ended_at"] is not None and s["frames_received"] == 50 for s in call["streams"])
    assert [c["event"] for c in call["status_callbacks"]] == [
        "StartStream", "DroppedStream", "StopStream"
    ]  # fmt: skip
    received = [c["received_at"] for c in call["status_callbacks"]]
    assert received == sorted(received)
    assert [e["at"] for e in call["events"]] == sorted(e["at"] for e in call["events"]), "in time"
    events = [e for e in call["events"] if e["stream_row"] is not None]  # the streams' own
    rows = {s["stream_id"]: s["id"] for s in call["streams"]}
    digits = [(e["stream_row"], e["detail"]["digit"]) for e in events if e["kind"] == "dtmf"]
    assert digits == [(rows["stream-a"], "1"), (rows["stream-b"], "2")]
    assert [e["stream_row"] for e in events] == sorted(e["stream_row"] for e in events), (
        "stream A's events, then B's"
    )
