"""A flood of per-event rows against ``vobiz-stream serve``: the store's queue stays bounded.

Many sockets each send thousands of DTMF and malformed frames as fast as the socket takes them.
The store keeps the first rows of each kind per stream and counts the rest, so the server's
memory stays flat, every stream row is still stored and closed, and a clean call amid the flood
records whole. With the store's queue full (its database locked by another writer), a status
callback is answered 503 and stored when the carrier sends it again. Both on each store engine.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import orjson

from tests.e2e.conftest import (
    StartServer,
    b64,
    frames_of,
    free_port,
    read_wav,
    speech,
    wait_healthy,
)
from tests.e2e.test_server_webhooks import callback, post
from tests.store.engines import backend_of
from vobiz_stream.app.session import MALFORMED_KEPT
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.store import QueuedCallStore

SOCKETS = 20
FRAMES_PER_SOCKET = 10_000
RSS_GROWTH_LIMIT_MIB = 30.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def flood_socket(
    client: aiohttp.ClientSession, url: str, number: int, frames: int = FRAMES_PER_SOCKET
) -> None:
    socket = await client.ws_connect(url)
    start = {"event": "start", "start": {"callId": f"flood-{number}", "streamId": f"s-{number}"}}
    await socket.send_str(orjson.dumps(start).decode())
    dtmf = orjson.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}).decode()
    for index in range(frames):
        await socket.send_str(dtmf if index % 2 else "this is not JSON")
    await socket.close()  # answered once the server has read every frame


async def clean_call(client: aiohttp.ClientSession, url: str) -> list[int]:
    samples, rate = speech("speech_male_8k")
    socket = await client.ws_connect(url)
    start = {
        "event": "start",
        "start": {
            "callId": "clean",
            "streamId": "s-clean",
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": rate},
        },
    }
    await socket.send_str(orjson.dumps(start).decode())
    for chunk, frame in enumerate(frames_of(samples, rate)):
        media = {"payload": b64(encode_l16(frame, ByteOrder.LITTLE)), "chunk": chunk}
        await socket.send_str(orjson.dumps({"event": "media", "media": media}).decode())
    await socket.close()
    return [int(sample) for sample in samples]


async def test_a_flood_of_dtmf_and_malformed_frames_keeps_the_server_memory_flat(
    tmp_path: Path, store_database: str | None
) -> None:
    port, data = free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    store = backend_of(store_database, data)
    with (tmp_path / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "vobiz_stream", "serve", "--port", str(port), "--data-dir", str(data)),
            *("--l16-byte-order", "little", "--database", store.url),
            stderr=log,
        )
        try:
            await wait_healthy(base)
            url = base.replace("http", "ws") + "/stream"
            async with aiohttp.ClientSession() as client:
                await flood_socket(client, url, -1, 200)  # warm-up: imports, caches, first rows
                await asyncio.sleep(0.5)
                before = rss_mib(process.pid)
                peak = before
                flooding = asyncio.gather(
                    *(flood_socket(client, url, number) for number in range(SOCKETS))
                )
                sent = asyncio.create_task(clean_call(client, url))
                async with asyncio.timeout(240):
                    while not flooding.done():
                        peak = max(peak, rss_mib(process.pid))
                        await asyncio.wait({flooding}, timeout=0.1)
                    await flooding
                    samples = await sent
                    async with client.get(base + "/calls?limit=500") as reply:
                        listing = await reply.json()
            peak = max(peak, rss_mib(process.pid))
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)
    growth = peak - before
    print(f"RSS before {before:.1f} MiB, peak {peak:.1f} MiB, growth {growth:.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT_MIB

    # Every stream row is there and closed, with its frames counted in full.
    calls = {call["call_id"]: call for call in listing["calls"]}
    for number in range(SOCKETS):
        [stream] = calls[f"flood-{number}"]["streams"]
        assert stream["ended_at"] is not None
        assert stream["frames_malformed"] == FRAMES_PER_SOCKET // 2, stream
    # The first rows of each kind are kept; the rest are counted in one summary row.
    kept = dict(
        store.rows("SELECT kind, count(*) FROM call_events WHERE call_id = 'flood-0' GROUP BY kind")
    )
    # Malformed frames are kept by the session itself (the first MALFORMED_KEPT of a stream,
    # all counted in frames_malformed); digits by the store's budget per kind.
    limit = QueuedCallStore.EVENTS_PER_KIND
    assert kept["dtmf"] == limit and kept["malformed_frame"] == MALFORMED_KEPT
    [summary] = [e for e in calls["flood-0"]["events"] if e["kind"] == "events_not_stored"]
    assert summary["detail"] == {"dtmf": FRAMES_PER_SOCKET // 2 - limit}
    # The clean call amid the flood is recorded whole.
    [path] = [path for path in (data / "recordings").glob("*.wav") if "clean" in path.name]
    recorded = read_wav(path)[0][:, 0]
    assert [int(sample) for sample in recorded[: len(samples)]] == samples


async def test_a_callback_the_full_queue_cannot_take_gets_503_and_is_stored_on_retry(
    start_server: StartServer, store_database: str | None
) -> None:
    running = await start_server(database=store_database)
    running.server.store.max_pending = 2
    webhook = running.base + "/webhook"
    async with aiohttp.ClientSession() as client:
        # Another writer holds the store's write lock: its writer waits, its queue fills.
        with backend_of(store_database, running.data_dir).hold_writes():
            waiting = [
                asyncio.create_task(post(client, webhook, callback("StartStream", f"queued-{n}")))
                for n in range(2)
            ]
            await asyncio.sleep(0.3)
            status, _ = await post(client, webhook, callback("StartStream", "refused"))
            assert status == 503
        assert [(await task)[0] for task in waiting] == [200, 200]
        assert (await post(client, webhook, callback("StartStream", "refused")))[0] == 200
        async with client.get(running.base + "/calls") as reply:
            listing = await reply.json()
    stored = {call["call_id"]: len(call["status_callbacks"]) for call in listing["calls"]}
    assert stored == {"queued-0": 1, "queued-1": 1, "refused": 1}
    logged = (running.data_dir / "webhook-events.log").read_text().splitlines()
    assert len(logged) == 3, "a refused callback is not in the log either"
