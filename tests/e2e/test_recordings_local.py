"""Local recordings: ``recording.saved`` names the file, ``--recordings FOLDER`` is honoured,
and ``GET /recordings/<name>`` serves it with Range behind the admin token."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.e2e.conftest import StartServer, run_cli
from tests.e2e.test_recordings_s3_calls import ONE_WAY, a_call, call_events

ADMIN = "an-admin-token-of-16-chars"


async def test_a_local_recording_is_announced_and_served(
    start_server: StartServer, connect, tmp_path: Path
) -> None:
    folder = tmp_path / "calls"
    running = await start_server(**ONE_WAY, recordings=str(folder), admin_token=ADMIN)
    await a_call(await connect(running.ws_url), "call-local")
    await running.wait_idle()
    [path] = sorted(folder.glob("*.wav"))
    assert not (running.data_dir / "recordings").exists() or not list(
        (running.data_dir / "recordings").iterdir()
    )
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(headers=bearer) as client:
        [event] = await call_events(running.base, "call-local", "recording.saved", client=client)
        assert event["detail"]["location"] == str(path)
        assert event["detail"]["bytes"] == path.stat().st_size
        data = path.read_bytes()
        async with client.get(f"{running.base}/recordings/{path.name}") as reply:
            assert (reply.status, await reply.read()) == (200, data)
        ranged = {"Range": "bytes=44-143"}
        async with client.get(f"{running.base}/recordings/{path.name}", headers=ranged) as reply:
            assert (reply.status, await reply.read()) == (206, data[44:144])
        for name in ("..%2Fvobiz-stream.db", "x.txt", "nothing.wav"):
            async with client.get(f"{running.base}/recordings/{name}") as reply:
                assert reply.status == 404
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.get(f"{running.base}/recordings/{path.name}") as reply,
    ):
        assert reply.status in (401, 403)


async def test_serve_refuses_an_unusable_recordings_url_with_a_clear_line(tmp_path: Path) -> None:
    code, _, stderr = await run_cli(
        "serve", "--data-dir", str(tmp_path), "--recordings", "ftp://calls/rec"
    )
    assert code != 0
    assert b"use a folder (data/recordings) or s3://bucket/prefix" in stderr
    assert b"Traceback" not in stderr
