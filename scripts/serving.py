"""What the scripts here share: ``vobiz-stream serve`` as a subprocess on 127.0.0.1, and a tone."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

import aiohttp
import numpy as np

from vobiz_stream.emulator.source import CallerSource

RATE = 8000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_serve(
    data: Path, log: IO[bytes], *flags: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``serve`` on a free port with ``data`` as its folder, once it answers; and its base URL.
    The carrier emulator sends big-endian L16, so the server is told so (nothing held back)."""
    port = free_port()
    serve = [sys.executable, "-m", "vobiz_stream", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*serve, "--data-dir", str(data), "--l16-byte-order", "big", *flags], stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as client:
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}")
            try:
                async with client.get(base + "/healthz") as reply:
                    if reply.status == 200:
                        return process, base
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError("serve did not come up in 10 s")


def tone(seconds: float) -> CallerSource:
    """A warbling tone with a little noise: not silence, so every stage has work to do."""
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = 6000 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 3 * t)) * t)
    pcm += np.random.default_rng(0).normal(0, 200, len(pcm))
    return CallerSource(pcm.astype(np.int16), RATE)
