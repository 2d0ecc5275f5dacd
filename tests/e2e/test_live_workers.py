"""The console's live view across workers: two ``serve`` processes on one PostgreSQL (as
workers or machines are); a call held by one shows in the live feed followed on the other, and
the workers publish their calls only while someone follows."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import psycopg

from tests.e2e.conftest import b64, free_port, serve_process
from vobiz_stream.app.live_peers import FOLLOWED_FOR
from vobiz_stream.store.postgres_schema import LIVE_TABLE

ADMIN = "live-workers-admin-token-0123456789"


async def speak(socket: aiohttp.ClientWebSocketResponse, call_id: str, seconds: float) -> None:
    """A call: its start, then a loud tone in 20 ms frames at the pace of a real call."""
    start = {
        "event": "start",
        "start": {
            "callId": call_id,
            "streamId": "s-1",
            "from": "+15550001111",
            "to": "+15550002222",
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
        },
    }
    await socket.send_str(orjson.dumps(start).decode())
    tone = (np.sin(np.arange(160) * 2 * np.pi / 20) * 12000).astype("<i2").tobytes()
    for chunk in range(int(seconds / 0.02)):
        media = {"event": "media", "media": {"chunk": chunk, "payload": b64(tone)}}
        await socket.send_str(orjson.dumps(media).decode())
        await asyncio.sleep(0.02)


def live_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(f"SELECT worker FROM {LIVE_TABLE}").fetchall()


async def test_the_live_feed_on_one_worker_shows_the_calls_another_holds(
    tmp_path: Path, postgres_url: str
) -> None:
    flags = ("--database", postgres_url, "--admin-token", ADMIN)
    port_a, port_b = free_port(), free_port()
    holder = await serve_process(port_a, tmp_path / "a", *flags)
    other = await serve_process(port_b, tmp_path / "b", *flags)
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    try:
        async with aiohttp.ClientSession(headers=bearer) as client:
            socket = await client.ws_connect(f"ws://127.0.0.1:{port_a}/stream")
            call = asyncio.create_task(speak(socket, "live-on-a", 30.0))
            await asyncio.sleep(1.0)
            assert live_rows(postgres_url) == []  # nobody follows: nothing is published
            junk = [
                ("junk-text", "not json"),
                ("junk-shape", '{"calls": 5, "more": 0}'),
                ("junk-call", '{"calls": [{"elapsed": "long"}, 7], "more": 0, "at": "x"}'),
            ]
            with psycopg.connect(postgres_url) as db:  # rows no worker wrote: skipped
                for worker, text in junk:
                    db.execute(
                        f"INSERT INTO {LIVE_TABLE} VALUES (%s, %s, now() + interval '1 hour')",
                        (worker, text),
                    )

            seen: dict[str, Any] = {}
            async with (
                asyncio.timeout(20),
                client.get(f"http://127.0.0.1:{port_b}/api/live") as feed,
            ):
                async for line in feed.content:
                    if not line.startswith(b"data: "):
                        continue
                    calls = orjson.loads(line[6:])["calls"]
                    seen = next((c for c in calls if c["call_id"] == "live-on-a"), {})
                    if seen.get("level_caller") is not None and seen["level_caller"] > -30:
                        break
            assert seen["from_number"] == "+15550001111"
            assert seen["elapsed"] >= 1.0
            assert len(live_rows(postgres_url)) == 1 + len(junk)  # the holder publishes
            with psycopg.connect(postgres_url) as db:
                db.execute(f"DELETE FROM {LIVE_TABLE} WHERE worker LIKE 'junk-%%'")

            async with asyncio.timeout(FOLLOWED_FOR + 5):  # the follower left: it stops
                while live_rows(postgres_url):
                    await asyncio.sleep(0.2)
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
            await socket.close()
    finally:
        for process in (holder, other):
            process.send_signal(signal.SIGTERM)
            await process.communicate()
