"""What the caller heard matches what an app pacing in real time sent, over loopback.

A small aiohttp app answers the emulator's call and plays utterances back the way a live app
does: each 20 ms frame leaves at its time give or take up to 15 ms, some three at once, with
silences of 1-2 s between utterances. The emulator plays them out on its 20 ms clock behind the
jitter buffer; the heard WAV must hold each utterance intact, no underrun, and the report must
give the silences between them as pauses. An app that stalls longer than the buffer in the
middle of an utterance gets exactly one underrun.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.e2e.conftest import run_cli, serve_app, speech, url_of, write_wav
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.load import LoadOptions, load_calls, summarize
from vobiz_stream.emulator.pytest_plugin import read_heard

RATE = 8000
FRAME = RATE // 50
SECOND = RATE


@dataclass(frozen=True)
class Utterance:
    """Audio the app says from ``at`` seconds after the stream's ``start``, then a checkpoint
    if ``checkpoint`` is set."""

    at: float
    audio: np.ndarray
    checkpoint: str | None = None

    @property
    def end(self) -> float:
        return self.at + len(self.audio) / RATE


Schedule = Callable[[Utterance], list[tuple[float, np.ndarray]]]
"""When each frame of an utterance leaves (seconds after ``start``), and the frame."""


def jittered(seed: int) -> Schedule:
    """Each frame at its time +-15 ms; every tenth frame with the next two at once, at the
    middle one's time (one frame 20 ms late, one 20 ms early). In order, as TCP keeps it."""
    randomly = random.Random(seed)

    def schedule(utterance: Utterance) -> list[tuple[float, np.ndarray]]:
        chunks = [utterance.audio[i : i + FRAME] for i in range(0, len(utterance.audio), FRAME)]
        times = [utterance.at + index * 0.02 for index in range(len(chunks))]
        times = [max(utterance.at, at + randomly.uniform(-0.015, 0.015)) for at in times]
        for first in range(5, len(chunks) - 2, 10):
            times[first] = times[first + 2] = times[first + 1]
        for index in range(1, len(times)):
            times[index] = max(times[index], times[index - 1])
        return list(zip(times, chunks, strict=True))

    return schedule


def stalled(at_frame: int, seconds: float) -> Schedule:
    """Each frame on its time, except that from ``at_frame`` on all come ``seconds`` late."""

    def schedule(utterance: Utterance) -> list[tuple[float, np.ndarray]]:
        chunks = [utterance.audio[i : i + FRAME] for i in range(0, len(utterance.audio), FRAME)]
        return [
            (utterance.at + index * 0.02 + (seconds if index >= at_frame else 0.0), chunk)
            for index, chunk in enumerate(chunks)
        ]

    return schedule


class PacedApp:
    """Answers with a bidirectional ``<Stream>`` to itself and plays ``utterances`` on it."""

    def __init__(self, utterances: list[Utterance], schedule: Schedule) -> None:
        self.utterances = utterances
        self.schedule = schedule
        self.runner: web.AppRunner | None = None
        self.sent_late = 0.0
        """The most any frame left after the time planned for it, in seconds."""

    @property
    def base(self) -> str:
        assert self.runner is not None
        return url_of(self.runner)

    async def answer(self, _request: web.Request) -> web.Response:
        ws_url = self.base.replace("http://", "ws://") + "stream"
        stream = f'<Stream bidirectional="true" keepCallAlive="true">{ws_url}</Stream>'
        xml = f"<Response>{stream}</Response>"
        return web.Response(text=xml, content_type="application/xml")

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        stream_id = ""
        async for message in ws:  # the start, then play while the caller's frames come
            if message.type is WSMsgType.TEXT:
                frame = orjson.loads(message.data)
                if frame.get("event") == "start":
                    stream_id = frame["start"]["streamId"]
                    break
        began = loop.time()
        player = asyncio.create_task(self._play(ws, stream_id, began))
        async for _ in ws:
            pass
        player.cancel()
        return ws

    async def _play(self, ws: web.WebSocketResponse, stream_id: str, began: float) -> None:
        loop = asyncio.get_running_loop()
        for utterance in self.utterances:
            for at, chunk in self.schedule(utterance):
                await asyncio.sleep(max(0.0, began + at - loop.time()))
                self.sent_late = max(self.sent_late, loop.time() - began - at)
                payload = base64.b64encode(encode_l16(chunk, ByteOrder.LITTLE)).decode()
                media = {"contentType": "audio/x-l16", "sampleRate": RATE, "payload": payload}
                await ws.send_json({"event": "playAudio", "streamId": stream_id, "media": media})
            if utterance.checkpoint is not None:
                await ws.send_json(
                    {"event": "checkpoint", "streamId": stream_id, "name": utterance.checkpoint}
                )


@contextlib.asynccontextmanager
async def serving(app: PacedApp) -> AsyncIterator[PacedApp]:
    """``app`` on a loopback port while the block runs."""
    app.runner = await serve_app([web.post("/", app.answer), web.get("/stream", app.stream)])
    try:
        yield app
    finally:
        await app.runner.cleanup()


def place(heard: np.ndarray, audio: np.ndarray) -> tuple[int, float]:
    """Where ``audio`` best lines up in ``heard`` (cross-correlation), and the correlation of
    ``audio`` with the heard samples there."""
    size = 1 << (len(heard) + len(audio)).bit_length()
    spectrum = np.fft.rfft(heard.astype(np.float64), size)
    spectrum *= np.conj(np.fft.rfft(audio.astype(np.float64), size))
    lags = np.fft.irfft(spectrum, size)[: len(heard) - len(audio) + 1]
    start = int(np.argmax(lags))
    segment = heard[start : start + len(audio)].astype(np.float64)
    return start, float(np.corrcoef(segment, audio.astype(np.float64))[0, 1])


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


async def test_what_the_caller_heard_is_what_a_jittery_real_time_app_sent(
    tmp_path: Path,
) -> None:
    male, female = speech("speech_male_8k")[0], speech("speech_female_8k")[0]
    utterances = [
        Utterance(0.3, male[:SECOND], checkpoint="first"),
        Utterance(2.3, female[:SECOND]),  # 1.0 s after the first
        Utterance(5.1, male[SECOND : 2 * SECOND], checkpoint="third"),  # 1.8 s after
        Utterance(7.4, female[SECOND : 2 * SECOND]),  # 1.3 s after
    ]
    heard_path = tmp_path / "heard.wav"
    async with serving(PacedApp(utterances, jittered(seed=11))) as app:
        report = await run_call(
            app.base,
            write_wav(tmp_path / "caller.wav", silence(9.2)),
            CallOptions(heard_path=heard_path),
        )
    assert report.completed and report.end_reason == "hangup", report.summary()
    assert app.sent_late < 0.02, "the test machine fell behind: the app's pacing was off"
    heard, rate = read_heard(heard_path)
    assert rate == RATE

    places = [place(heard, utterance.audio) for utterance in utterances]
    for (start, correlation), utterance in zip(places, utterances, strict=True):
        assert correlation >= 0.99, (utterance.at, correlation, report.summary())
        assert start % FRAME == 0  # on the frame clock
        delay = start / RATE - utterance.at
        assert 0 <= delay <= 0.06 + 0.035, delay  # the buffer, a tick, the first frame's jitter
        np.testing.assert_array_equal(heard[start : start + len(utterance.audio)], utterance.audio)

    assert report.underruns == [], report.summary()
    heard_pauses = [
        (start - (earlier + len(before.audio))) / RATE
        for (earlier, _), (start, _), before in zip(places, places[1:], utterances, strict=False)
    ]
    planned = [after.at - before.end for before, after in itertools.pairwise(utterances)]
    reported = [gap.seconds for gap in report.pauses]
    assert reported == pytest.approx(heard_pauses, abs=1 / RATE)
    assert reported == pytest.approx(planned, abs=0.04)
    data = report.to_json()
    assert data["underruns"] == {"count": 0, "seconds": 0.0}
    assert data["pauses"]["count"] == 3
    assert data["pauses"]["seconds"] == pytest.approx(sum(planned), abs=0.06)

    # Each checkpoint is answered when the last sample of its utterance has played.
    timings = {timing.name: timing for timing in report.checkpoints}
    for (start, _), utterance in zip(places, utterances, strict=True):
        if utterance.checkpoint is not None:
            end = (start + len(utterance.audio)) / RATE
            timing = timings[utterance.checkpoint]
            assert timing.played_at == pytest.approx(end, abs=1 / RATE)
            assert timing.answered_at is not None
            assert 0 <= timing.answered_at - end < 0.04  # playedStream left then


STALLED = Utterance(0.3, speech("speech_male_8k")[0][: round(1.4 * SECOND)])
"""1.4 s of speech whose frames from the 30th on (0.6 s in) come 200 ms late."""


async def run_stalled_call(
    tmp_path: Path, jitter_buffer_ms: int
) -> tuple[dict[str, Any], str, np.ndarray]:
    """The CLI's call against an app saying :data:`STALLED`: its JSON report, its printed
    summary, what the caller heard."""
    caller = write_wav(tmp_path / "caller.wav", silence(2.5))
    report_path, heard_path = tmp_path / "report.json", tmp_path / "heard.wav"
    async with serving(PacedApp([STALLED], stalled(at_frame=30, seconds=0.2))) as app:
        code, out, err = await run_cli(
            "call",
            app.base,
            *("--audio", str(caller), "--heard", str(heard_path), "--report", str(report_path)),
            *("--jitter-buffer", str(jitter_buffer_ms), "--quiet"),
        )
    assert code == 0, err.decode()
    heard, _ = read_heard(heard_path)
    return orjson.loads(report_path.read_bytes()), out.decode(), heard


async def test_a_stall_longer_than_the_buffer_is_one_underrun_and_no_pause(
    tmp_path: Path,
) -> None:
    report, out, heard = await run_stalled_call(tmp_path, jitter_buffer_ms=60)
    assert report["jitter_buffer"] == 0.06
    assert report["underruns"]["count"] == 1, out
    assert report["pauses"] == {"count": 0, "seconds": 0.0}, out
    [gap] = report["gaps"]
    # The buffer hides 60 ms of the stall; the caller hears the rest, plus the refill (60 ms).
    assert gap["seconds"] == pytest.approx(0.2, abs=0.025)
    assert "underruns: 1 (" in out and "pauses between utterances: 0 (0.000s)" in out
    [told] = [entry for entry in report["timeline"] if "underrun" in entry["detail"]]
    assert told["at"] == pytest.approx(gap["end"], abs=1e-4)
    assert told["detail"] == f"audio starts playing after a {gap['seconds']:.3f}s underrun"
    before, after = STALLED.audio[: 30 * FRAME], STALLED.audio[30 * FRAME :]
    start, correlation = place(heard, before)
    assert correlation >= 0.99
    resumed, correlation = place(heard, after)
    assert correlation >= 0.99
    assert (resumed - start - len(before)) / RATE == pytest.approx(gap["seconds"], abs=1 / RATE)


async def test_a_buffer_deeper_than_the_stall_hides_it(tmp_path: Path) -> None:
    report, out, heard = await run_stalled_call(tmp_path, jitter_buffer_ms=250)
    assert report["gaps"] == [], out
    start, correlation = place(heard, STALLED.audio)
    assert correlation >= 0.99
    assert 0.25 <= start / RATE - STALLED.at <= 0.25 + 0.02  # played a buffer after it came


async def test_the_cli_refuses_a_negative_jitter_buffer() -> None:
    code, _, err = await run_cli(
        "call", "http://127.0.0.1:9/", "--audio", "caller.wav", "--jitter-buffer", "-20"
    )
    assert code == 2
    assert "--jitter-buffer" in err.decode()


async def test_a_load_totals_underruns_and_pauses_over_its_calls(tmp_path: Path) -> None:
    """Three calls to the app that stalls 200 ms mid-utterance: three underruns, one a call,
    and no pause, in the load's summary and its JSON."""
    caller = write_wav(tmp_path / "caller.wav", silence(2.5))
    options = LoadOptions(calls=3, rate=10, duration=2.5, audio=caller)
    async with serving(PacedApp([STALLED], stalled(at_frame=30, seconds=0.2))) as app:
        began = time.monotonic()
        part = await load_calls(app.base, options)
        summary = summarize(app.base, options, [part], time.monotonic() - began)
    assert summary.completed == 3, summary.lines()
    assert (summary.underruns, summary.calls_with_underruns, summary.pauses) == (3, 3, 0)
    assert 3 * 0.15 < summary.underrun_seconds < 3 * 0.3
    assert any(line.startswith("underruns: 3 (") for line in summary.lines())
    assert summary.to_json()["underruns"] == 3
