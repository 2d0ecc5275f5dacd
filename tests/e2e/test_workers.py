"""``serve --workers``: the supervisor as users run it, with real processes and signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import b64, free_port, run_cli, wait_healthy

PAYLOAD = b64(b"\x00\x01" * 160)
"""20 ms of 8 kHz L16."""


async def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    code, _, stderr = await run_cli(
        "serve", "--workers", "2", "--port", str(free_port()), "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert b"--database postgresql://" in stderr
    assert not (tmp_path / "vobiz-stream.db").exists()  # refused before touching anything


async def start_supervised(port: int, data: Path, *flags: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "vobiz_stream", "serve", "--port", str(port), "--data-dir", str(data)),
        *flags,
        stderr=asyncio.subprocess.PIPE,
    )
    await wait_healthy(f"http://127.0.0.1:{port}")
    return process


def children(pid: int) -> list[int]:
    """The worker processes of the supervisor ``pid`` (Linux /proc; not multiprocessing's
    resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


async def one_call(base: str, call_id: str, frames: int) -> None:
    """A call of ``frames`` media frames stamped now, ended with ``stop``."""
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(base.replace("http", "ws") + "/stream")
        start = {
            "event": "start",
            "start": {
                "callId": call_id,
                "streamId": f"s-{call_id}",
                "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
            },
        }
        await socket.send_str(orjson.dumps(start).decode())
        for chunk in range(frames):
            media = {
                "event": "media",
                "media": {
                    "track": "inbound",
                    "timestamp": str(int(time.time() * 1000)),
                    "chunk": chunk,
                    "payload": PAYLOAD,
                },
            }
            await socket.send_str(orjson.dumps(media).decode())
        await socket.send_str(orjson.dumps({"event": "stop", "stop": {}}).decode())
        await socket.receive()  # the server closes after the stop
        await socket.close()


def metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not on the page")


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as client, client.get(url) as reply:
        assert reply.status == 200
        return await reply.text()


async def test_supervisor_restarts_a_killed_worker_and_metrics_outlive_it(tmp_path: Path) -> None:
    port, metrics_port, data = free_port(), free_port(), tmp_path / "data"
    base, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    flags = ("--workers", "1", "--metrics-port", str(metrics_port), "--shutdown-grace", "1")
    supervisor = await start_supervised(port, data, *flags)
    try:
        # The supervisor holds the data folder for its workers: another server stops there.
        code, _, stderr = await run_cli(
            "serve", "--port", str(free_port()), "--data-dir", str(data)
        )
        assert code == 2 and b"in use by another vobiz-stream server" in stderr
        await one_call(base, "before-kill", 40)
        page = await scrape(metrics_url)  # no admin token on the metrics port
        assert metric(page, "vobiz_frames_in_total") == 40
        (worker,) = children(supervisor.pid)

        os.kill(worker, signal.SIGKILL)
        async with asyncio.timeout(30):  # a new worker, on the same port
            while not (found := children(supervisor.pid)) or found == [worker]:
                await asyncio.sleep(0.1)
        await wait_healthy(base)
        await one_call(base, "after-kill", 10)
        async with asyncio.timeout(10):  # the stream ends (recording finalised) after its stop
            while metric(page := await scrape(metrics_url), "vobiz_active_calls") != 0:
                await asyncio.sleep(0.05)
        # The dead worker's counts stay in the sum (multiprocess mode); its gauges do not.
        assert metric(page, "vobiz_frames_in_total") == 50
        ended = [
            sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "vobiz_calls_ended_total"
        ]
        assert ended == [2.0]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, stderr = await supervisor.communicate()
    log = stderr.decode()
    assert supervisor.returncode == 0, log
    assert re.search(
        r"worker 1 \(pid \d+\) exited with signal SIGKILL.*starting a new worker 1", log
    )
    assert "[worker 1] stopped" in log and "supervisor stopped" in log
    assert children(supervisor.pid) == []
    with sqlite3.connect(data / "vobiz-stream.db") as db:
        rows = dict(db.execute("SELECT call_id, frames_received FROM streams").fetchall())
    assert rows == {"before-kill": 40, "after-kill": 10}


async def test_sigterm_drains_the_workers_open_calls(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    supervisor = await start_supervised(port, data, "--workers", "1", "--shutdown-grace", "1")
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(f"ws://127.0.0.1:{port}/stream")
        start = {
            "event": "start",
            "start": {
                "callId": "open-at-sigterm",
                "streamId": "s-1",
                "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
            },
        }
        await socket.send_str(orjson.dumps(start).decode())
        for chunk in range(20):
            media = {"event": "media", "media": {"chunk": chunk, "payload": PAYLOAD}}
            await socket.send_str(orjson.dumps(media).decode())
        await asyncio.sleep(0.5)
        supervisor.send_signal(signal.SIGTERM)
        closed = await socket.receive(timeout=30)  # the worker closes it after the grace
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    async with asyncio.timeout(60):
        _, stderr = await supervisor.communicate()
    assert supervisor.returncode == 0, stderr.decode()
    with sqlite3.connect(data / "vobiz-stream.db") as db:
        (row,) = db.execute("SELECT frames_received, ended_at, recording_path FROM streams")
    assert row[0] == 20 and row[1] is not None
    assert Path(row[2]).stat().st_size == 44 + 20 * 320  # the WAV finalised, header and all
