"""Injected network faults against the real stream server, and on the wire.

The server places each frame by its ``chunk`` (its true place in the call), so reordered, bunched
and jittered frames must record sample for sample and dropped frames as silence exactly where they
were. One thing the server cannot know is when the first frame should have come: it places the
first frame where it arrived. So a recording may start with a few frames of silence when the first
frame was late (jitter, bunching, or a loaded machine); the tests find that offset and check it is
no more than the first frame's delay, or ``ARRIVAL_SLACK`` frames where no delay was injected.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.e2e.conftest import DATA, StartServer, read_wav, run_cli, serve_app, speech, url_of
from vobiz_stream.emulator import CallOptions, CallReport, Faults, run_call
from vobiz_stream.store import StreamRecord

FIXTURE = DATA / "speech_male_8k.wav"
RATE = 8000
FRAME = RATE // 50
ARRIVAL_SLACK = 2
"""Frames a first frame may arrive late on a loaded machine (each 20 ms late is one frame of
silence before the recording's audio)."""


def caller_audio() -> np.ndarray:
    """The fixture as the emulator sends it: whole 20 ms frames."""
    samples = speech()[0]
    return np.concatenate([samples, np.zeros(-len(samples) % FRAME, dtype=np.int16)])


async def record(
    start_server: StartServer, faults: Faults, speed: float
) -> tuple[CallReport, np.ndarray, list[StreamRecord]]:
    """One faulty call to a record-only server: the report, the recording's caller track and
    the stream as the server stored it."""
    running = await start_server()
    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=speed, faults=faults))
    await running.wait_idle()
    assert report.completed, report.failure
    [path] = running.recordings()
    recorded, rate, _ = read_wav(path)
    assert rate == RATE
    [call] = running.server.store.list_calls()
    return report, recorded[:, 0], call["streams"]


def assert_recorded(recorded: np.ndarray, expected: np.ndarray, most_frames: int) -> None:
    """The recording is ``expected``, sample for sample, after at most ``most_frames`` frames
    of silence, then only silence."""
    padded = np.concatenate([recorded, np.zeros(len(expected) + most_frames * FRAME, np.int16)])
    for k in range(most_frames + 1):
        start = k * FRAME
        if not padded[:start].any() and np.array_equal(
            padded[start : start + len(expected)], expected
        ):
            assert not padded[start + len(expected) :].any()
            return
    raise AssertionError(f"the recording is not the caller audio after 0-{most_frames} frames")


async def test_reordered_frames_are_put_back_sample_for_sample(
    start_server: StartServer,
) -> None:
    """In real time, with the very first two frames swapped too."""
    faults = Faults(reorder=0.2, seed=3)
    report, recorded, _ = await record(start_server, faults, speed=1)
    assert report.faults is not None
    reordered = report.faults.reordered
    assert 0 in reordered and len(reordered) > 10, reordered
    assert report.frames_sent == len(caller_audio()) // FRAME
    assert_recorded(recorded, caller_audio(), most_frames=ARRIVAL_SLACK)


@pytest.mark.parametrize(
    "faults", [Faults(drop_every=7), Faults(drop_probability=0.1, seed=5)], ids=["every", "random"]
)
async def test_dropped_frames_record_as_silence_exactly_there(
    start_server: StartServer, faults: Faults
) -> None:
    report, recorded, [stream] = await record(start_server, faults, speed=4)
    assert report.faults is not None
    dropped = report.faults.dropped
    assert dropped and 0 not in dropped  # the first frame anchors the recording
    expected = caller_audio()
    for frame in dropped:
        expected[frame * FRAME : (frame + 1) * FRAME] = 0
    assert expected.any()
    assert_recorded(recorded, expected, most_frames=ARRIVAL_SLACK)
    frames = len(caller_audio()) // FRAME
    assert report.frames_sent == stream["frames_received"] == frames - len(dropped)


@pytest.mark.parametrize(
    "faults",
    [Faults(bunch=5), Faults(jitter_ms=60, seed=2), Faults(bunch=3, jitter_ms=30, seed=9)],
    ids=["bunch", "jitter", "both"],
)
async def test_bunched_and_jittered_frames_record_identically(
    start_server: StartServer, faults: Faults
) -> None:
    speed = 2.0
    report, recorded, _ = await record(start_server, faults, speed=speed)
    assert report.faults is not None and report.faults.max_delay_ms > 0
    # Pacing is measured against the schedule: were the injected delays counted as lateness,
    # the mean would be half the most delay (10-20 ms of wall time here), not a millisecond or
    # two. (A count of late frames would be noisy: on a loaded machine one stall makes a whole
    # bunch late.)
    assert report.mean_lateness_ms < 5, report.summary()
    assert report.frames_sent == len(caller_audio()) // FRAME
    first_delay = report.faults.max_delay_ms / 1000 / speed  # wall seconds, at most
    assert_recorded(
        recorded, caller_audio(), most_frames=math.ceil(first_delay / 0.02) + ARRIVAL_SLACK
    )


async def test_drop_at_cuts_the_connection_and_the_recording_keeps_the_audio(
    start_server: StartServer,
) -> None:
    running = await start_server()
    report = await run_call(
        running.base + "/", FIXTURE, CallOptions(speed=2, faults=Faults(drop_at=1.5))
    )
    await running.wait_idle()
    assert report.completed and report.end_reason == "cut", report.summary()
    assert report.duration == 1.5
    assert report.frames_sent == 75  # frames 0-74 left before 1.5 s
    assert report.faults is not None and report.faults.cut_at == 1.5
    assert report.faults.lost_to_cut == len(caller_audio()) // FRAME - 75
    assert "cut" in [entry.event for entry in report.timeline]
    [path] = running.recordings()
    recorded, _, _ = read_wav(path)
    assert_recorded(recorded[:, 0], caller_audio()[: 75 * FRAME], most_frames=ARRIVAL_SLACK)
    [call] = running.server.store.list_calls()
    [stream] = call["streams"]
    assert stream["frames_received"] == 75 and stream["ended_at"] is not None
    # The carrier saw its socket drop: DroppedStream, and no StopStream.
    events = [record["event"] for record in call["status_callbacks"]]
    assert events == ["StartStream", "DroppedStream"]
    assert "drop_at" in call["status_callbacks"][1]["fields"]["Error"]


# --- on the wire ---------------------------------------------------------------------------------


@dataclass
class Recorder:
    """A bare app: answers with a ``<Stream>`` to itself and keeps every frame of the socket,
    and how the socket ended (its last message's type)."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    last: WSMsgType | None = None
    close_code: int | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def answer(self, request: web.Request) -> web.Response:
        xml = (
            '<Response><Stream bidirectional="true" keepCallAlive="true">'
            f"ws://{request.host}/stream</Stream></Response>"
        )
        return web.Response(text=xml, content_type="application/xml")

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async with asyncio.timeout(20):
            while True:
                message = await ws.receive()
                if message.type is not WSMsgType.TEXT:
                    self.last, self.close_code = message.type, ws.close_code
                    break
                self.frames.append(orjson.loads(message.data))
        self.ended.set()
        return ws


async def serve(recorder: Recorder) -> tuple[web.AppRunner, str]:
    runner = await serve_app([web.post("/", recorder.answer), web.get("/stream", recorder.stream)])
    return runner, url_of(runner)


async def test_drop_at_sends_no_close_frame() -> None:
    recorder = Recorder()
    runner, url = await serve(recorder)
    try:
        report = await run_call(url, FIXTURE, CallOptions(speed=4, faults=Faults(drop_at=0.5)))
        async with asyncio.timeout(5):
            await recorder.ended.wait()
    finally:
        await runner.cleanup()
    assert report.end_reason == "cut"
    # No CLOSE message: the connection ended under the socket (EOF), not by the handshake.
    assert recorder.last in (WSMsgType.CLOSED, WSMsgType.ERROR), recorder.last
    assert len([f for f in recorder.frames if f["event"] == "media"]) == 25


async def test_an_ordinary_hangup_closes_with_a_close_frame() -> None:
    """The contrast to the cut: the same app sees the closing handshake."""
    recorder = Recorder()
    runner, url = await serve(recorder)
    try:
        report = await run_call(url, FIXTURE, CallOptions(speed=8, hangup_after=0.5))
        async with asyncio.timeout(5):
            await recorder.ended.wait()
    finally:
        await runner.cleanup()
    assert report.end_reason == "hangup"
    assert recorder.last is WSMsgType.CLOSE


async def test_chunk_and_timestamp_keep_the_true_place_and_sequence_numbers_the_send_order() -> (
    None
):
    recorder = Recorder()
    runner, url = await serve(recorder)
    try:
        report = await run_call(
            url, FIXTURE, CallOptions(speed=8, hangup_after=0.2, faults=Faults(reorder=1.0))
        )
        async with asyncio.timeout(5):
            await recorder.ended.wait()
    finally:
        await runner.cleanup()
    assert report.completed and report.frames_sent == 10
    media = [frame for frame in recorder.frames if frame["event"] == "media"]
    assert [frame["media"]["chunk"] for frame in media] == [2, 1, 4, 3, 6, 5, 8, 7, 10, 9]
    assert [frame["sequenceNumber"] for frame in media] == list(range(1, 11))
    base = int(media[1]["media"]["timestamp"])  # chunk 1
    for frame in media:
        assert int(frame["media"]["timestamp"]) - base == 20 * (frame["media"]["chunk"] - 1)


# --- the command line ----------------------------------------------------------------------------


async def test_call_cli_injects_faults_and_reports_them(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server()
    report_path = tmp_path / "report.json"
    returncode, stdout, stderr = await run_cli(
        "call",
        running.base + "/",
        "--audio",
        str(FIXTURE),
        "--speed",
        "8",
        "--drop-frames",
        "10",
        "--reorder",
        "0.1",
        "--jitter",
        "20",
        "--seed",
        "42",
        "--drop-at",
        "2",
        "--report",
        str(report_path),
        timeout=30,
    )
    assert returncode == 0, stderr.decode()
    output = stdout.decode()
    assert "faults: random seed 42; 10 frames dropped" in output
    assert "connection cut at 2.00s" in output
    report = orjson.loads(report_path.read_bytes())
    assert report["end_reason"] == "cut"
    assert report["faults"]["seed"] == 42
    assert report["faults"]["dropped"] == [9, 19, 29, 39, 49, 59, 69, 79, 89, 99]
    assert report["faults"]["options"]["drop_every"] == 10
    await running.wait_idle()


async def test_load_cli_passes_the_faults_to_every_call(start_server: StartServer) -> None:
    running = await start_server()
    returncode, stdout, stderr = await run_cli(
        "load",
        running.base + "/",
        "--calls",
        "2",
        "--duration",
        "1",
        "--bunch",
        "4",
        "--drop-frames",
        "5",
        "--quiet",
        timeout=30,
    )
    assert returncode == 0, stderr.decode()
    assert "2 completed, 0 failed" in stdout.decode()
    await running.wait_idle()
    calls = running.server.store.list_calls()
    assert [call["streams"][0]["frames_received"] for call in calls] == [40, 40]


async def test_help_says_what_each_fault_looks_like_on_the_wire() -> None:
    for command in ("call", "load"):
        returncode, stdout, _ = await run_cli(command, "--help")
        assert returncode == 0
        text = stdout.decode()
        for flag in ("--jitter", "--bunch", "--drop-frames", "--reorder", "--drop-at", "--seed"):
            assert flag in text
        assert "no close frame" in text and "sequenceNumber" in text
