"""``vobiz-stream serve`` as users run it: a subprocess, SIGTERM, logs, finalised recordings."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
import orjson

from tests.e2e.conftest import b64, frames_of, free_port, read_wav, serve_process, speech
from vobiz_stream.audio import ByteOrder, encode_l16


async def test_sigterm_drains_then_finalises_open_calls(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    process = await serve_process(
        port, data, *("--shutdown-grace", "1", "--l16-byte-order", "little")
    )
    base = f"http://127.0.0.1:{port}"
    try:
        samples, rate = speech("speech_male_8k")
        frames = frames_of(samples, rate)
        async with aiohttp.ClientSession() as client:
            carrier = await client.ws_connect(base.replace("http", "ws") + "/stream")
            start = {
                "event": "start",
                "start": {
                    "callId": "term-call",
                    "streamId": "s-1",
                    "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": rate},
                },
            }
            await carrier.send_str(orjson.dumps(start).decode())
            for chunk, frame in enumerate(frames):
                media = {"payload": b64(encode_l16(frame, ByteOrder.LITTLE)), "chunk": chunk}
                await carrier.send_str(orjson.dumps({"event": "media", "media": media}).decode())
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)  # the signal reaches the server's loop
            async with client.get(base + "/healthz") as reply:
                assert (await reply.json())["status"] == "draining"
            async with client.get(base.replace("http", "ws") + "/stream") as refused:
                assert refused.status == 503
            closing = await carrier.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "call term-call: stream s-1 started" in log
    assert "shutting down" in log
    [path] = sorted((data / "recordings").glob("*.wav"))
    recorded, _, _ = read_wav(path)
    np.testing.assert_array_equal(recorded[: len(samples), 0], samples)
    with sqlite3.connect(data / "vobiz-stream.db") as db:
        (ended_at,) = db.execute("SELECT ended_at FROM streams").fetchone()
    assert ended_at is not None


def test_help_teaches_and_version_answers() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vobiz_stream", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--handler" in out and "VOBIZ_STREAM_" in out and "examples:" in out
    version = subprocess.run(
        [sys.executable, "-m", "vobiz_stream", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.startswith("vobiz-stream ")


def test_bad_settings_exit_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vobiz_stream",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--bidirectional",
            "true",
            "--audio-track",
            "both",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "audioTrack" in result.stderr
