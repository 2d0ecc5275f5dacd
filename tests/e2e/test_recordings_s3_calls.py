"""Real calls recorded to a real S3-compatible server (SeaweedFS started here): the recording
lands in the bucket byte for byte, the local copy goes, the server serves it back from the
bucket, ``recording.saved`` is stored and posted; S3 down or a crashed server loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import (
    Carrier,
    StartServer,
    frames_of,
    free_port,
    read_wav,
    serve_app,
    serve_process,
    speech,
    url_of,
)
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3, s3_bucket
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.core.signatures import sign_v3
from vobiz_stream.recordings import PENDING_SUFFIX, Bucket

ONE_WAY = {"bidirectional": False, "keep_call_alive": False}
AUTH_TOKEN = "account-auth-token-for-signing"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed-calls"))
    server.start()
    yield server
    server.kill()


def s3_settings(server: SeaweedS3, prefix: str, **more: Any) -> dict[str, Any]:
    return {
        **ONE_WAY,
        "recordings": f"s3://calls/{prefix}",
        "s3_endpoint_url": server.endpoint,
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
        **more,
    }


async def a_call(carrier: Carrier, call_id: str, seconds: float = 3.0) -> np.ndarray:
    """Speech for ``seconds`` as little-endian L16 frames, then stop; what was sent."""
    samples, rate = speech("speech_male_8k")
    samples = np.resize(samples, int(seconds * rate))
    await carrier.start(call_id=call_id, rate=rate)
    frames = frames_of(samples, rate)
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
    await carrier.send({"event": "stop", "sequenceNumber": len(frames) + 1})
    await carrier.socket.close()
    return np.concatenate(frames)


async def call_events(
    base: str,
    call_id: str,
    kind: str,
    timeout: float = 30.0,
    client: aiohttp.ClientSession | None = None,
) -> list[Any]:
    """The call's events of ``kind`` once there is one (``GET /calls/<id>``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(aiohttp.ClientSession())
        while True:
            async with client.get(f"{base}/calls/{call_id}") as reply:
                if reply.status == 200:
                    events = [e for e in (await reply.json())["events"] if e["kind"] == kind]
                    if events:
                        return events
            if loop.time() > deadline:
                raise AssertionError(f"no {kind} event for {call_id}")
            await asyncio.sleep(0.1)


async def call_ended(base: str, call_id: str) -> None:
    """Until ``GET /calls/<id>`` shows the call ended (its recording final)."""
    async with aiohttp.ClientSession() as client:
        for _ in range(200):
            async with client.get(f"{base}/calls/{call_id}") as reply:
                if reply.status == 200 and (await reply.json())["status"] == "ended":
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{call_id} did not end")


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers) as reply:
        return reply.status, await reply.read(), reply.headers


async def test_a_call_lands_in_the_bucket_and_is_served_from_it(
    seaweed: SeaweedS3, start_server: StartServer, connect, tmp_path: Path
) -> None:
    bucket: Bucket = await asyncio.to_thread(s3_bucket, seaweed, "calls", "happy")
    posted: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        posted.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    hook = await serve_app([web.post("/saved", receive)])
    try:
        webhook = url_of(hook) + "saved"
        running = await start_server(
            **s3_settings(seaweed, "happy", recording_webhook=webhook, auth_token=AUTH_TOKEN)
        )
        sent = await a_call(await connect(running.ws_url), "call-s3-happy")
        [event] = await call_events(running.base, "call-s3-happy", "recording.saved")
        detail = event["detail"]
        name = detail["file"]
        assert detail["location"] == f"s3://calls/happy/{name}"
        assert running.recordings() == []  # the local copy is gone
        assert list((running.data_dir / "recordings").iterdir()) == []  # its marker too
        stored = await asyncio.to_thread(bucket.read, name, 0, detail["bytes"])
        wav = tmp_path / "from-bucket.wav"
        wav.write_bytes(stored)
        recorded, rate, channels = read_wav(wav)
        assert (rate, channels) == (8000, 1)
        np.testing.assert_array_equal(recorded[: len(sent), 0], sent)

        status, body, _ = await fetch(f"{running.base}/recordings/{name}")
        assert (status, body) == (200, stored)  # served from the bucket
        status, body, headers = await fetch(
            f"{running.base}/recordings/{name}", {"Range": "bytes=40-99"}
        )
        assert (status, body) == (206, stored[40:100])
        assert headers["Content-Range"] == f"bytes 40-99/{len(stored)}"
        assert (await fetch(f"{running.base}/recordings/none.wav"))[0] == 404

        for _ in range(100):
            if posted:
                break
            await asyncio.sleep(0.05)
        [(headers, payload)] = posted
        notice = orjson.loads(payload)
        assert notice["event"] == "recording.saved"
        assert notice["call_id"] == "call-s3-happy"
        assert notice["location"] == detail["location"]
        nonce = headers["X-Vobiz-Signature-V3-Nonce"]
        assert headers["X-Vobiz-Signature-V3"] == sign_v3(AUTH_TOKEN, webhook, nonce)
    finally:
        await hook.cleanup()


async def test_s3_down_keeps_the_file_then_uploads_it_byte_identical(
    start_server: StartServer, connect, tmp_path: Path
) -> None:
    server = SeaweedS3(tmp_path / "weed")
    server.start()
    try:
        bucket: Bucket = await asyncio.to_thread(s3_bucket, server, "calls", "down")
        server.kill()
        running = await start_server(**s3_settings(server, "down"))
        await a_call(await connect(running.ws_url), "call-s3-down")
        await running.wait_idle()
        outlet = running.server.outlet
        assert outlet.uploads is not None
        for _ in range(200):
            if outlet.uploads.failures >= 2:
                break
            await asyncio.sleep(0.05)
        assert outlet.uploads.failures >= 2
        [local] = running.recordings()
        kept = local.read_bytes()
        assert (local.parent / (local.name + PENDING_SUFFIX)).exists()
        await asyncio.to_thread(server.start)
        [event] = await call_events(running.base, "call-s3-down", "recording.saved", 90.0)
        assert event["detail"]["file"] == local.name
        assert not local.exists()
        stored = await asyncio.to_thread(bucket.read, local.name, 0, len(kept))
        assert stored == kept  # byte-identical to the local WAV
    finally:
        server.kill()


async def test_wrong_credentials_log_once_and_keep_the_recording(
    seaweed: SeaweedS3, start_server: StartServer, connect, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(s3_bucket, seaweed, "calls", "wrong")
    settings = s3_settings(seaweed, "wrong", s3_secret_access_key="not-the-secret")
    running = await start_server(**settings)
    with caplog.at_level(logging.INFO):
        await a_call(await connect(running.ws_url), "call-s3-wrong")
        await a_call(await connect(running.ws_url), "call-s3-wrong-2")
        await running.wait_idle()
        uploads = running.server.outlet.uploads
        assert uploads is not None
        for _ in range(300):
            if uploads.failures >= 4:
                break
            await asyncio.sleep(0.05)
    refused = [r for r in caplog.records if "not uploaded" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]
    assert "SignatureDoesNotMatch" in refused[0].getMessage()
    assert len(running.recordings()) == 2  # both kept
    status, body, _ = await fetch(f"{running.base}/recordings/{running.recordings()[0].name}")
    assert status == 200 and body == running.recordings()[0].read_bytes()


async def test_serve_killed_with_uploads_pending_uploads_them_at_the_next_start(
    tmp_path: Path,
) -> None:
    server = SeaweedS3(tmp_path / "weed")
    server.start()
    port, data = free_port(), tmp_path / "data"
    flags = ("--recordings", "s3://calls/crash")
    try:
        bucket: Bucket = await asyncio.to_thread(s3_bucket, server, "calls", "crash")
        server.kill()  # S3 away: the uploads stay pending
        env = {**os.environ, **server.environment()}
        process = await serve_process(port, data, *flags, env=env)
        async with aiohttp.ClientSession() as client:
            socket = await client.ws_connect(f"ws://127.0.0.1:{port}/stream")
            await a_call(Carrier(socket), "call-s3-crash")
        await call_ended(f"http://127.0.0.1:{port}", "call-s3-crash")
        await asyncio.sleep(0.5)  # its upload is tried and fails: S3 is away
        os.kill(process.pid, signal.SIGKILL)
        await process.communicate()
        [local] = sorted((data / "recordings").glob("*.wav"))
        kept = local.read_bytes()
        assert (local.parent / (local.name + PENDING_SUFFIX)).exists()

        await asyncio.to_thread(server.start)
        process = await serve_process(port, data, *flags, env=env)
        try:
            [event] = await call_events(
                f"http://127.0.0.1:{port}", "call-s3-crash", "recording.saved", 60.0
            )
        finally:
            process.terminate()
            _, log = await process.communicate()
        assert event["detail"]["location"] == f"s3://calls/crash/{local.name}"
        assert not local.exists()
        assert await asyncio.to_thread(bucket.read, local.name, 0, len(kept)) == kept
        assert b"1 recording(s) of a previous run queued for upload" in log
    finally:
        server.kill()
