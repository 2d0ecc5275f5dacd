"""The console reads recordings from wherever they live: with ``--recordings s3://...`` the
local copy is gone after upload, and the console still plays the recording (with Range) and
draws its waveform from the bucket (a real SeaweedFS), its peaks read once and kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.e2e.conftest import StartServer
from tests.e2e.test_recordings_s3_calls import a_call, call_events, s3_settings
from tests.s3_server import SeaweedS3, s3_bucket

TOKEN = "console-s3-admin-token-0123456789"


async def test_the_console_serves_an_uploaded_recording_and_its_peaks_from_the_bucket(
    start_server: StartServer, connect, tmp_path: Path
) -> None:
    weed = SeaweedS3(tmp_path / "weed")
    weed.start()
    try:
        bucket = await asyncio.to_thread(s3_bucket, weed, "calls", "console")
        running = await start_server(**s3_settings(weed, "console", admin_token=TOKEN))
        await a_call(await connect(running.ws_url), "call-console-s3", seconds=2.0)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=bearer) as http:
            [saved] = await call_events(
                running.base, "call-console-s3", "recording.saved", client=http
            )
            name, size = saved["detail"]["file"], saved["detail"]["bytes"]
            assert running.recordings() == []  # only the bucket has it now
            stored = await asyncio.to_thread(bucket.read, name, 0, size)
            call = f"{running.base}/api/calls/call-console-s3"

            async with http.get(call + "/peaks") as reply:
                assert reply.status == 200
                [stream] = (await reply.json())["streams"]
            assert "error" not in stream
            assert stream["duration"] >= 1.9
            [caller] = stream["channels"]
            assert max(caller["max"]) > 0.05  # speech, not silence: the real file was read

            recording = running.base + stream["recording"]
            async with http.get(recording) as reply:
                assert (reply.status, await reply.read()) == (200, stored)
            async with http.get(recording, headers={"Range": "bytes=44-143"}) as reply:
                assert (reply.status, await reply.read()) == (206, stored[44:144])
            async with http.get(recording + "?download=1") as reply:
                assert reply.headers["Content-Disposition"] == f'attachment; filename="{name}"'

            await asyncio.to_thread(weed.kill)  # the peaks were kept: no second read
            async with http.get(call + "/peaks") as reply:
                [again] = (await reply.json())["streams"]
            assert again["channels"] == stream["channels"]
            async with http.get(f"{running.base}/ui/calls/call-console-s3") as reply:
                assert reply.status == 200
                assert "the recording file is missing" not in await reply.text()
    finally:
        weed.kill()
