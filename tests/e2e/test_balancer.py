"""nginx in front of ``serve --workers 2`` on one PostgreSQL: 200 emulated calls, one worker killed
in the middle of them (docs/deploy.md's set-up, run for real)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from tests.e2e.conftest import free_port, wait_healthy
from tests.e2e.test_workers import children
from tests.services.nginx import Nginx, nginx_missing

CALLS = 200
SECONDS = 8.0
FRAMES = int(SECONDS * 50)


async def load(url: str, calls: int, report: Path) -> dict[str, Any]:
    """``vobiz-stream load`` as users run it; its JSON summary."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "vobiz_stream", "load", url, "--calls", str(calls), "--rate", "50"),
        *("--duration", str(SECONDS), "--report", str(report), "--quiet"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(calls / 50 + SECONDS + 120):
        await process.wait()
    summary: dict[str, Any] = orjson.loads(report.read_bytes())
    return summary


def streams_by_pid(url: str) -> dict[int, list[tuple[str, str | None, int, str | None]]]:
    """Each worker process's streams: call id, end reason, frames, recording path."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT w.pid, s.call_id, s.end_reason, s.frames_received, s.recording_path"
            " FROM streams s JOIN workers w ON w.id = s.worker"
        ).fetchall()
    found: dict[int, list[tuple[str, str | None, int, str | None]]] = {}
    for pid, *stream in rows:
        found.setdefault(pid, []).append(tuple(stream))  # type: ignore[arg-type]
    return found


def wav_frames(path: str) -> int:
    with wave.open(path) as recording:
        return recording.getnframes() // 160  # 20 ms frames at 8 kHz


@dataclass
class Run:
    """What the run through nginx left: the worker pids, the two loads' summaries, the log."""

    victim: int
    survivor: int
    newcomer: int
    summary: dict[str, Any]
    after: dict[str, Any]
    log: str


async def run_through_nginx(tmp_path: Path, database: str, data: Path) -> Run:
    """``serve --workers 2`` behind nginx: 200 calls, one worker SIGKILLed in the middle of
    them, then 40 calls more once the supervisor replaced it; SIGTERM at the end."""
    port = free_port()
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "vobiz_stream", "serve", "--workers", "2", "--port", str(port)),
        *("--database", database, "--data-dir", str(data), "--shutdown-grace", "2"),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        with Nginx.start(tmp_path / "nginx", [f"127.0.0.1:{port}"]) as proxy:
            await wait_healthy(f"http://127.0.0.1:{port}")
            async with asyncio.timeout(60):  # both workers up and listening
                while len(children(supervisor.pid)) < 2:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(3)
            run = asyncio.create_task(load(proxy.base + "/", CALLS, tmp_path / "load.json"))
            await asyncio.sleep(6)  # every call started (at 50/s), none ended: kill mid-call
            victim, survivor = children(supervisor.pid)[:2]
            os.kill(victim, signal.SIGKILL)
            summary = await run
            async with asyncio.timeout(60):  # the supervisor started a new worker
                while len(set(children(supervisor.pid)) - {survivor}) < 1:
                    await asyncio.sleep(0.1)
            (newcomer,) = set(children(supervisor.pid)) - {survivor}
            await wait_healthy(f"http://127.0.0.1:{port}")
            await asyncio.sleep(3)
            after = await load(proxy.base + "/", 40, tmp_path / "after.json")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            _, stderr = await supervisor.communicate()
    log = stderr.decode()
    assert supervisor.returncode == 0, log[-3000:]
    return Run(victim, survivor, newcomer, summary, after, log)


@pytest.mark.timeout(400)
async def test_two_workers_behind_nginx_survive_a_killed_worker(
    tmp_path: Path, postgres_url: str
) -> None:
    missing = nginx_missing()
    if missing is not None:
        pytest.skip(f"NO NGINX, the balancer test is skipped: {missing}")
    data = tmp_path / "data"
    run = await run_through_nginx(tmp_path, postgres_url, data)
    victim, survivor, newcomer = run.victim, run.survivor, run.newcomer
    summary, after = run.summary, run.after
    assert f"(pid {victim}) exited with signal SIGKILL" in run.log

    streams = streams_by_pid(postgres_url)
    kept, cut, new = streams[survivor], streams.get(victim, []), streams.get(newcomer, [])
    # Every call on the surviving worker (and the new one): ended by the carrier, recorded whole.
    for call_id, reason, frames, path in kept + new:
        assert reason != "interrupted" and frames == FRAMES, (call_id, reason, frames)
        assert path is not None and wav_frames(path) >= FRAMES - 1, call_id
    # The killed worker's calls: interrupted, with the audio they had on disk.
    assert cut, "the killed worker held no call"
    # (the recorder flushes every second: a call that began less than that before the kill
    # may have nothing on disk yet)
    for call_id, reason, _frames, path in cut:
        assert reason == "interrupted", call_id
        assert path is not None and wav_frames(path) < FRAMES, call_id
    assert sum(wav_frames(path) for *_, path in cut if path) > 0
    # A call whose stream row was still in the killed worker's write queue has no row; its
    # recording is on disk all the same, cut short like the others.
    stored_paths = {path for *_, path in kept + cut + new}
    unlisted = [
        path for path in (data / "recordings").glob("*.wav") if str(path) not in stored_paths
    ]
    for path in unlisted:
        assert wav_frames(str(path)) < FRAMES, path
    # Every call the carrier saw to its end is a whole stream; the calls cut off (the carrier
    # saw the socket close early: "app_closed") were the killed worker's.
    ended: dict[str, int] = summary["end_reasons"]
    after_ended: dict[str, int] = after["end_reasons"]
    assert len(kept) + len(new) == ended.get("hangup", 0) + after_ended.get("hangup", 0)
    assert len(cut) + len(unlisted) <= ended.get("app_closed", 0)
    early = summary["failed"]
    print(
        f"killed worker: {len(cut)} calls marked interrupted, {len(unlisted)} without a row;"
        f" survivor {len(kept)}, new worker {len(new)}; failed before their stream {early}"
    )
    # The new worker took new calls, all whole.
    assert after["failed"] == 0 and new

    with psycopg.connect(postgres_url) as db:
        stored = db.execute(
            "SELECT call_uuid, event, count(*) FROM status_callbacks"
            " GROUP BY call_uuid, event, fields::text"
        ).fetchall()
    assert max(count for _, _, count in stored) == 1  # whichever worker got it: stored once
    # (The emulated carrier does not retry a callback nginx answered 502 while the killed
    # worker's connections failed, so a few whole calls may lack one; most have theirs.)
    started = {call for call, event, _ in stored if event == "StartStream"}
    whole = {call_id for call_id, *_ in kept + new}
    print(f"whole calls without a stored StartStream callback: {len(whole - started)}")
    assert len(whole & started) >= 0.8 * len(whole)
