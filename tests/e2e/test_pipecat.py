"""A real Pipecat pipeline (the pipecat_echo example: a tone, then an echo, no AI services)
behind FastAPI and uvicorn, called by the emulator in the seeds' legacy shapes with little-endian
L16. Observers on the pipeline check that "bot stopped speaking" reached the pipeline only after
the carrier's playedStream for it, and what the caller heard is checked sample for sample.

Real time: about 9 s.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs the extra: pip install 'vobiz-stream[pipecat]'")

from fastapi import FastAPI, WebSocket
from pipecat.frames.frames import BotStoppedSpeakingFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from tests.e2e.conftest import speech
from vobiz_stream.audio import ByteOrder
from vobiz_stream.audio.speech import tone
from vobiz_stream.emulator import CallOptions, CarrierProfile, run_call
from vobiz_stream.emulator.pytest_plugin import read_heard
from vobiz_stream.emulator.source import CallerSource
from vobiz_stream.integrations.pipecat import VobizCheckpointPlayedFrame, VobizPlaybackTracker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RATE = 8000


class Probe(BaseObserver):
    """When each "bot stopped speaking" happened: by Pipecat's clock (the output transport),
    by the carrier (the tracker letting it go), and when each playedStream came in."""

    def __init__(self) -> None:
        super().__init__()
        self.local: list[int] = []
        self.confirmed: list[int] = []
        self.played: list[tuple[int, str]] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        now = data.timestamp  # the pipeline clock at the push (observers hear of it later)
        frame, source = data.frame, data.source
        if isinstance(frame, BotStoppedSpeakingFrame) and data.direction is FrameDirection.UPSTREAM:
            if isinstance(source, BaseOutputTransport):
                self.local.append(now)
            elif isinstance(source, VobizPlaybackTracker):
                self.confirmed.append(now)
        elif isinstance(frame, VobizCheckpointPlayedFrame) and isinstance(
            source, BaseInputTransport
        ):
            self.played.append((now, frame.checkpoint))


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_pipecat_pipeline_against_the_emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    echo = load("pipecat_echo", monkeypatch)
    demo = load("demo", monkeypatch)
    probe = Probe()
    app = FastAPI()
    app.add_api_route("/", echo.answer, methods=["GET", "POST"])

    @app.websocket("/ws")
    async def call(websocket: WebSocket) -> None:
        await websocket.accept()
        await echo.run_bot(websocket, observers=[probe])

    male, _ = speech("speech_male_8k")
    # The greeting starts once the caller's first 0.5 s are decoded (the byte order is still
    # undecided in silence) and lasts 1 s: the caller speaks after it, and nobody interrupts.
    lead = np.zeros(2 * RATE, np.int16)
    caller = np.concatenate([lead, male, np.zeros(4 * RATE, np.int16)])
    heard_path = tmp_path / "heard.wav"
    options = CallOptions(
        heard_path=heard_path, carrier=CarrierProfile.DOCUMENTED, l16_byte_order=ByteOrder.LITTLE
    )
    async with demo.serving_asgi(app)(None) as answer_url:
        report = await run_call(answer_url, CallerSource(caller, RATE), options)
        await asyncio.sleep(0.2)  # the pipeline's last frames
    assert report.completed, report.failure
    assert report.malformed_commands == 0 and report.ignored_commands == 0
    assert report.clears == []

    # Two turns (the greeting, the echo), each confirmed by its checkpoint's playedStream.
    assert [c.name for c in report.checkpoints] == ["bot-stopped-1", "bot-stopped-2"]
    assert all(c.played_at is not None for c in report.checkpoints)
    assert [name for _, name in probe.played] == ["bot-stopped-1", "bot-stopped-2"]
    assert len(probe.local) == len(probe.confirmed) == 2
    for local, (played, _), confirmed in zip(
        probe.local, probe.played, probe.confirmed, strict=True
    ):
        assert local < played <= confirmed  # sent, then heard, then said to be over

    # The caller heard the tone, then their own words, sample for sample.
    heard, _ = read_heard(heard_path)
    loud = np.flatnonzero(heard)
    greeting = tone(echo.GREETING_SECONDS, RATE)
    start = loud[0] - 1  # the tone's first sample is 0
    np.testing.assert_array_equal(heard[start : start + len(greeting)], greeting)
    rest = heard[start + len(greeting) :]
    echoed = rest[np.flatnonzero(rest)[0] :]
    anchor = echoed[:160]
    offset = next(i for i in range(len(caller)) if np.array_equal(caller[i : i + 160], anchor))
    played = echoed[: np.flatnonzero(echoed)[-1] + 1]
    np.testing.assert_array_equal(played, caller[offset : offset + len(played)])
    voiced = np.flatnonzero(np.abs(caller) > 300)
    assert offset <= voiced[0] and offset + len(played) > voiced[-1]  # all the words came back
    # The echo's checkpoint played out after its last sound, in the silence that ends the
    # utterance (up to 0.34 s of the fixture's, 0.1 s of margin, a 40 ms chunk's padding).
    echo_end = (len(heard) - len(echoed) + len(played)) / RATE
    played_at = report.checkpoints[1].played_at
    assert played_at is not None and echo_end <= played_at <= echo_end + 0.5
