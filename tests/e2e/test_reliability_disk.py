"""A full disk while recording.

First a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored so writes fail with EFBIG): the call whose
recording hits it goes on to its end, with a clear error in the log and in its call record; the
calls beside it are recorded whole; nothing is corrupt.

Then a real full filesystem (a small tmpfs, mounted as root, filled with a ballast file): the
recording stops as a valid WAV of what was written, its stream ends for ``disk_full``
(stored once the database has room again: the store holds its writes meanwhile), one ERROR line
per call, and the next call records whole once space returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sqlite3
import subprocess
import time
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import free_port, read_wav
from tests.e2e.test_reliability_crash import RATE, caller_audio, leading_frames, serve
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.source import CallerSource
from vobiz_stream.store import QueuedCallStore

FILE_SIZE_LIMIT = 1_000_000
"""Bytes any one file of the server may hold: about 62 s of a mono 8 kHz recording (the default
handler never plays, so its recordings are mono). The limit holds for the database's files too:
its write-ahead log, which grows by a few pages per commit, stays well under it."""


def limit_file_size() -> None:
    """In the server's process, before it starts: files stop growing at the limit."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


async def test_a_recording_that_fills_the_disk_ends_cleanly_and_the_calls_go_on(
    tmp_path: Path,
) -> None:
    port, data = free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    process = await serve(port, data, preexec_fn=limit_file_size)
    try:
        long_audio = np.tile(caller_audio(0, seconds=20.0), 4)  # 1.28 MB of mono WAV: past it
        short_audio = [caller_audio(number, seconds=3.0) for number in (1, 2, 3)]
        reports = await asyncio.gather(
            run_call(base + "/", CallerSource(long_audio, RATE), CallOptions(speed=32.0)),
            *(
                run_call(base + "/", CallerSource(pcm, RATE), CallOptions(speed=2.0))
                for pcm in short_audio
            ),
        )
        async with aiohttp.ClientSession() as client:
            deadline = asyncio.get_running_loop().time() + 15
            while True:  # a stream's row is closed once its socket's end is handled
                async with client.get(base + "/calls") as reply:
                    calls = {call["call_id"]: call for call in (await reply.json())["calls"]}
                streams = [stream for call in calls.values() for stream in call["streams"]]
                closed = len(streams) == 4 and all(s["ended_at"] for s in streams)
                if closed or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            async with client.get(base + "/healthz") as reply:
                assert (await reply.json())["status"] == "ok"
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()

    for report in reports:  # every call, the one whose recording failed too, ran to its end
        assert report.completed and report.end_reason == "hangup", report.summary()
    long_id = reports[0].call_uuid
    [long_stream] = calls[long_id]["streams"]
    assert "recording failed" in long_stream["error"]
    assert "File too large" in long_stream["error"]
    assert long_stream["frames_received"] == reports[0].frames_sent  # the session went on
    assert long_stream["end_reason"] == "socket_closed"
    assert f"call {long_id}: recording failed: [Errno 27] File too large" in log

    long_path = Path(long_stream["recording_path"])
    with wave.open(str(long_path)) as reader:  # still a valid WAV, the header counting its data
        assert reader.getnframes() > 5 * RATE
    assert long_path.stat().st_size <= FILE_SIZE_LIMIT
    recorded = read_wav(long_path)[0][:, 0]
    leading_frames(recorded, long_audio)  # a prefix of the caller's audio, sample for sample

    for report, pcm in zip(reports[1:], short_audio, strict=True):
        [stream] = calls[report.call_uuid]["streams"]
        assert stream["error"] is None
        recorded = read_wav(Path(stream["recording_path"]))[0][:, 0]
        held = len(recorded) - leading_frames(recorded, pcm) * (RATE // 50)
        assert held >= len(pcm)  # whole

    with sqlite3.connect(data / "vobiz-stream.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- a real full disk -----------------------------------------------------------------------------

DISK_BYTES = 2 << 20
"""The size of the small filesystem the data folder lives on."""
ROOM_BYTES = 160_000
"""Space left for recordings once the disk is filled: about 10 s of a mono 8 kHz recording."""


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    """A tmpfs of ``DISK_BYTES`` mounted at ``path`` (the test runs as root)."""
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(path)]
    subprocess.run(mount, check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path, room: int) -> Path:
    """Fill ``disk`` but ``room`` bytes with a ballast file; the file, to delete later."""
    ballast = disk / "ballast"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with ballast.open("wb") as out:
        out.write(b"\0" * max(0, free - room))
    return ballast


async def calls_by_id(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, client.get(base + "/calls") as reply:
        return {call["call_id"]: call for call in (await reply.json())["calls"]}


async def test_a_full_disk_stops_one_recording_cleanly_and_new_calls_record_once_space_returns(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        process = await serve(port, data)
        try:
            ballast = fill(disk, ROOM_BYTES)
            long_audio = caller_audio(0, seconds=20.0)  # 320 kB of mono WAV: twice the room
            full = await run_call(
                base + "/", CallerSource(long_audio, RATE), CallOptions(speed=8.0)
            )
            async with aiohttp.ClientSession() as client, client.get(base + "/healthz") as reply:
                assert (await reply.json())["status"] == "ok"  # still serving on a full disk
            ballast.unlink()  # space returns
            short_audio = caller_audio(1, seconds=3.0)
            after = await run_call(
                base + "/", CallerSource(short_audio, RATE), CallOptions(speed=2.0)
            )
            calls = await calls_by_id(base)
        finally:
            process.terminate()
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
        log = stderr.decode()

        # The call whose recording hit the full disk ran to its end, and its stream ended once
        # the store had room again, with the reason.
        for report in (full, after):
            assert report.completed and report.end_reason == "hangup", report.summary()
        [failed] = calls[full.call_uuid]["streams"]
        assert failed["ended_at"] is not None
        assert failed["frames_received"] == full.frames_sent
        assert failed["end_reason"] == "disk_full"
        assert failed["error"] == (
            "disk_full: recording failed: [Errno 28] No space left on device;"
            " the call went on until socket_closed"
        )
        errors = [line for line in log.splitlines() if " ERROR " in line]
        assert len([line for line in errors if full.call_uuid in line]) == 1  # not one per frame
        assert len(errors) <= 2, errors  # and the store says it holds its writes, once

        path = Path(failed["recording_path"])
        with wave.open(str(path)) as reader:  # a valid WAV whose header counts what is there
            frames = reader.getnframes()
        assert 5 * RATE < frames < 10 * RATE
        assert 44 + 2 * frames <= path.stat().st_size
        leading_frames(read_wav(path)[0][:, 0], long_audio)  # the caller's audio, as sent

        # Once space returned, the next call is recorded whole.
        [stream] = calls[after.call_uuid]["streams"]
        assert stream["error"] is None
        recorded = read_wav(Path(stream["recording_path"]))[0][:, 0]
        assert len(recorded) - leading_frames(recorded, short_audio) * (RATE // 50) >= len(
            short_audio
        )
        with sqlite3.connect(data / "vobiz-stream.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_store_holds_its_writes_while_the_disk_is_full_and_says_what_it_lost_at_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        store = QueuedCallStore(disk / "calls.db")
        try:
            ballast = fill(disk, 0)
            started = datetime.now(UTC)
            with caplog.at_level(logging.ERROR, logger="vobiz_stream.store"):
                for number in range(50):  # more than the journal's spare room
                    row = store.open_stream(
                        call_id=f"call-{number}",
                        stream_id=None,
                        started_at=started,
                        tracks=["inbound"],
                        encoding="audio/x-l16",
                        sample_rate=8000,
                        recording_path=None,
                    )
                    store.close_stream(
                        row,
                        ended_at=started,
                        end_reason="stop",
                        frames_received=1,
                        frames_malformed=0,
                        frames_sent=0,
                        error="x" * 2000,
                    )
                assert store.list_calls() == []  # held, not stored
                holding = [r.getMessage() for r in caplog.records]
                assert len(holding) == 1 and "holding the writes until there is room" in holding[0]

                ballast.unlink()  # room again: the held writes are stored, none lost
                for _ in range(100):
                    if len(store.list_calls()) == 50:
                        break
                    time.sleep(0.05)
                assert {call["status"] for call in store.list_calls()} == {"ended"}

                ballast = fill(disk, 0)
                for number in range(50):
                    store.add_event(f"call-{number}", None, "dtmf", {"pad": "x" * 2000}, at=started)
                store.close()
            lines = [r.getMessage() for r in caplog.records]
            assert "still no room at stop: 50 held writes lost" in lines[-1]
        finally:
            store.close()
