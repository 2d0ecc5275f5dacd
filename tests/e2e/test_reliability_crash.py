"""Crashes: ``serve`` killed with SIGKILL mid-call leaves WAVs that open and hold the caller's audio
to within a second of the kill, a database that passes SQLite's integrity check, and calls marked
interrupted at the next start; a carrier that vanishes without a close frame is found by the
heartbeat and its call finalised within seconds."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

from tests.e2e.conftest import (
    Carrier,
    StartServer,
    frames_of,
    free_port,
    read_wav,
    serve_process,
    speech,
)
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.report import CallReport
from vobiz_stream.emulator.source import CallerSource

RATE = 8000
FRAME = RATE // 50
CALLS = 4
IN_FLIGHT = 0.1
"""Seconds of frames that may still be in the kernel's buffers, sent but not yet read, when the
server dies: they come on top of the recorder's one-second bound (200 ms jitter buffer and 800 ms
between WAV flushes of what it has read), which leaves no margin of its own."""


def caller_audio(number: int, seconds: float = 12.0) -> np.ndarray:
    """Speech looped to ``seconds``, different per call (a little noise of its own)."""
    male, _ = speech("speech_male_8k")
    female, _ = speech("speech_female_8k")
    looped = np.tile(np.concatenate([male, female] if number % 2 else [female, male]), 4)
    noise = np.random.default_rng(number).integers(-300, 300, len(looped))
    return np.clip(looped + noise, -32768, 32767).astype(np.int16)[: int(seconds * RATE)]


async def serve(port: int, data: Path, *flags: str, **spawn: Any) -> asyncio.subprocess.Process:
    # little-endian: what the emulator sends, so no frames are held back for detection
    return await serve_process(port, data, "--l16-byte-order", "little", *flags, **spawn)


def leading_frames(recorded: np.ndarray, sent: np.ndarray) -> int:
    """Whole 20 ms frames of silence before ``sent`` begins in ``recorded``, which must then hold
    a prefix of ``sent`` exactly and, past its end, only silence."""
    for offset in range(0, min(len(recorded), 50 * FRAME), FRAME):
        held = recorded[offset:]
        length = min(len(held), len(sent))
        if (
            not recorded[:offset].any()
            and np.array_equal(held[:length], sent[:length])
            and not held[length:].any()
        ):
            return offset // FRAME
    raise AssertionError("the recording is not the caller's audio, sample for sample")


async def kill_mid_call(
    port: int, data: Path, audio: list[np.ndarray], seconds: float
) -> list[CallReport]:
    """Serve, place one emulated call per ``audio``, SIGKILL the server ``seconds`` after every
    call is streaming; the calls' reports once they have noticed."""
    base = f"http://127.0.0.1:{port}"
    process = await serve(port, data)
    calls = [
        asyncio.create_task(run_call(base + "/", CallerSource(pcm, RATE), CallOptions()))
        for pcm in audio
    ]
    async with aiohttp.ClientSession() as client, asyncio.timeout(10):
        while True:
            async with client.get(base + "/stats") as reply:
                if (await reply.json())["open_streams"] == len(audio):
                    break
            await asyncio.sleep(0.02)
    await asyncio.sleep(seconds)
    process.kill()  # SIGKILL: no handler runs, nothing is flushed or closed
    await process.wait()
    return list(await asyncio.wait_for(asyncio.gather(*calls), 30))


def seconds_lost(data: Path, reports: list[CallReport], audio: list[np.ndarray]) -> list[float]:
    """Per recording: check it is a valid WAV holding a prefix of its caller's audio sample for
    sample; return the seconds of audio sent before the kill that it does not hold."""
    sent_by_call = {
        report.call_uuid: (report, pcm) for report, pcm in zip(reports, audio, strict=True)
    }
    recordings = sorted((data / "recordings").glob("*.wav"))
    assert len(recordings) == len(reports)
    lost = []
    for path in recordings:
        with wave.open(str(path)) as reader:  # a valid WAV: the header counts what is there
            assert (reader.getframerate(), reader.getnchannels()) == (RATE, 1)  # record: mono
            assert reader.getnframes() * 2 + 44 <= path.stat().st_size
        recorded = read_wav(path)[0][:, 0]
        report, sent = sent_by_call[path.stem.split("-", 3)[-1]]
        kept = min(len(sent), len(recorded) - leading_frames(recorded, sent) * FRAME)
        sent_before_kill = report.frames_sent * FRAME
        assert sent_before_kill >= 2 * RATE, "the call did not run long enough to test anything"
        lost.append((sent_before_kill - kept) / RATE)
    return lost


def assert_store_whole(data: Path, open_streams: int) -> None:
    """SQLite's integrity check passes, the streams of the killed run are still open, and every
    line of the webhook log is whole."""
    with sqlite3.connect(data / "vobiz-stream.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        still_open = db.execute("SELECT count(*) FROM streams WHERE ended_at IS NULL")
        assert still_open.fetchone() == (open_streams,)
    for line in (data / "webhook-events.log").read_bytes().splitlines():
        orjson.loads(line)


async def restart_and_list_calls(port: int, data: Path) -> tuple[list[dict[str, Any]], bytes]:
    """Start ``serve`` again on ``data``; its call list and its log."""
    process = await serve(port, data)
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}/calls") as reply,
        ):
            calls: list[dict[str, Any]] = (await reply.json())["calls"]
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    return calls, stderr


async def test_sigkill_mid_call_loses_at_most_a_second_and_marks_calls_interrupted(
    tmp_path: Path,
) -> None:
    port, data = free_port(), tmp_path / "data"
    audio = [caller_audio(number) for number in range(CALLS)]
    reports = await kill_mid_call(port, data, audio, seconds=3.0)
    lost = seconds_lost(data, reports, audio)
    assert max(lost) <= 1.0 + IN_FLIGHT, f"lost {lost} s of the audio sent before the kill"
    assert_store_whole(data, open_streams=CALLS)

    calls, log = await restart_and_list_calls(port, data)
    assert {call["call_id"] for call in calls} == {report.call_uuid for report in reports}
    for call in calls:
        assert call["status"] == "interrupted"
        [stream] = call["streams"]
        assert stream["end_reason"] == "interrupted"
    assert f"marked {CALLS} stream(s) of a previous run as interrupted".encode() in log


async def test_a_carrier_that_vanishes_without_a_close_is_dropped_by_the_heartbeat(
    start_server: StartServer,
) -> None:
    """The carrier stops sending and answers no ping (a cable pulled, a frozen process): no close
    frame, no FIN. The heartbeat (1 s here) finds it and the call is finalised in seconds."""
    running = await start_server(heartbeat=1.0, bidirectional=False, keep_call_alive=False)
    samples, rate = speech("speech_male_8k")
    async with aiohttp.ClientSession() as client:
        # autoping off and nothing ever reads: this client answers no ping.
        socket = await client.ws_connect(running.ws_url + "?call=vanished", autoping=False)
        carrier = Carrier(socket)
        await carrier.start(call_id="vanished")
        frames = frames_of(samples, rate)
        for chunk, frame in enumerate(frames):
            await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
        silent_since = time.monotonic()
        async with asyncio.timeout(10):
            while running.server.sockets:
                await asyncio.sleep(0.05)
        detected_after = time.monotonic() - silent_since
    assert detected_after < 4.0, f"a vanished carrier was found only after {detected_after:.1f} s"
    [stream] = running.server.store.get_call("vanished")["streams"]  # type: ignore[index]
    assert stream["ended_at"] is not None
    assert stream["end_reason"].startswith("socket_")
    recorded = read_wav(running.recordings()[0])[0][:, 0]
    np.testing.assert_array_equal(recorded[: len(samples)], np.concatenate(frames)[: len(samples)])


async def test_without_a_heartbeat_a_vanished_carrier_is_never_dropped(
    start_server: StartServer,
) -> None:
    """The control for the test above: the heartbeat is what finds it."""
    running = await start_server(heartbeat=0.0, bidirectional=False, keep_call_alive=False)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url, autoping=False)
        await Carrier(socket).start(call_id="kept")
        await asyncio.sleep(3.0)
        assert len(running.server.sockets) == 1
        await socket.close()
