"""``bench/floor_server.py``: the picows server with its media frames dropped unread, the floor
the benchmarks set the server's CPU per frame against. Its figure means something only if it
really drops 63 frames in 64 and still counts every one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import numpy as np
import orjson

from tests.e2e.conftest import free_port, read_wav, run_cli, wait_healthy, write_wav

ROOT = Path(__file__).resolve().parents[2]
FRAME = 160  # samples in 20 ms at 8 kHz


async def test_floor_server_drops_frames_unread_and_counts_them(tmp_path: Path) -> None:
    port, media_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "floor_server.py"),
        *("serve", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        *("--media-transport", "picows", "--media-port", str(media_port)),
        *("--l16-byte-order", "little", "--log-level", "WARNING"),
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base)
        report = tmp_path / "report.json"
        tone = np.sin(2 * np.pi * 440 * np.arange(3 * 8000) / 8000) * 8000  # no silent frame
        caller = write_wav(tmp_path / "tone.wav", tone.astype(np.int16))
        code, _, stderr = await run_cli(
            "call", base + "/", "--audio", str(caller), "--speed", "4", "--quiet",
            "--report", str(report),
        )  # fmt: skip
        assert code == 0, stderr.decode()
        sent = orjson.loads(report.read_bytes())["frames_sent"]
        async with aiohttp.ClientSession() as client, client.get(base + "/stats") as reply:
            stats = await reply.json()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    assert sent >= 140
    assert stats["frames"] == sent
    (recording,) = sorted((tmp_path / "data" / "recordings").glob("*.wav"))
    samples = read_wav(recording)[0][:, 0]  # the caller's channel
    whole = len(samples) // FRAME * FRAME
    heard_frames = int(np.count_nonzero(np.abs(samples[:whole].reshape(-1, FRAME)).max(axis=1)))
    assert sent // 64 - 1 <= heard_frames <= sent // 64 + 1
    assert heard_frames >= 2
