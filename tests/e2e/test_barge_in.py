"""Barge-in over a real socket: the agent plays a long tone, the emulated caller speaks over it,
the session clears it by itself, and what the caller heard goes silent soon after they spoke.

Real time (the server paces playback on the wall clock): about 5 s per call.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.conftest import StartServer, speech
from vobiz_stream.app.session import CallSession, SpeechDetection
from vobiz_stream.audio import Pcm
from vobiz_stream.audio.speech import tone
from vobiz_stream.audio.vad import DEFAULT_START_MS
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.pytest_plugin import read_heard
from vobiz_stream.emulator.source import CallerSource

LEAD = 1.5
"""Seconds of the tone the caller hears before speaking."""
SILENT_WITHIN = DEFAULT_START_MS / 1000 + 0.2
"""How soon after the caller's first word the tone must stop: the detector's start_ms, plus
generous room for a loaded machine (clear round trips here take a few ms)."""


async def tone_agent(session: CallSession) -> None:
    session.detect_speech(SpeechDetection(barge_in=True))
    rate = session.inbound_format.sample_rate  # the outbound format too: nothing is resampled
    await session.play(tone(8.0, rate), rate)
    async for _ in session.events():
        pass


def first_voiced(samples: Pcm, rate: int) -> float:
    """Seconds to the first 20 ms frame at -40 dBFS or louder."""
    size = rate // 50
    frames = samples[: len(samples) // size * size].reshape(-1, size).astype(np.float64)
    levels = 20 * np.log10(np.maximum(np.sqrt(np.mean(frames**2, axis=1)), 1e-9) / 32768)
    return float(np.flatnonzero(levels >= -40)[0] * 0.02)


def last_sound(heard: Pcm, rate: int) -> float:
    """Seconds to the end of the last non-silent sample."""
    return float((np.flatnonzero(heard)[-1] + 1) / rate)


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_the_tone_stops_soon_after_the_caller_speaks_over_it(
    start_server: StartServer, rate: int
) -> None:
    running = await start_server(tone_agent, content_type=f"audio/x-l16;rate={rate}")
    words, words_rate = speech(f"speech_female_{rate // 1000}k")
    assert words_rate == rate
    caller = np.concatenate([np.zeros(round(LEAD * rate), np.int16), words])
    onset = LEAD + first_voiced(words, rate)
    heard_path = running.data_dir / "heard.wav"
    report = await run_call(
        running.base + "/",
        CallerSource(caller, rate),
        CallOptions(heard_path=heard_path, hangup_after=onset + 1.5),
    )
    await running.wait_idle()
    assert report.completed, report.failure

    heard, heard_rate = read_heard(heard_path)
    assert heard_rate == rate
    # Until the caller spoke, the tone played as sent, sample for sample.
    start = np.flatnonzero(heard)[0] - 1  # the tone's first sample is 0
    expected = tone(8.0, rate)
    before = heard[start : round(onset * rate)]
    np.testing.assert_array_equal(before, expected[: len(before)])
    # Then it went silent within the detector's delay and a margin, and stayed silent.
    stopped = last_sound(heard, rate)
    assert onset + 0.1 < stopped <= onset + SILENT_WITHIN, (onset, stopped)
    [clear] = report.clears
    assert clear.round_trip is not None and clear.round_trip < 0.1
    # The server kept the barge-in with its delay: speech onset to the clear leaving.
    [call] = running.server.store.list_calls()
    clears = [event for event in call["events"] if event["kind"] == "clear"]  # type: ignore[index]
    assert len(clears) == 1
    delay_ms = clears[0]["detail"]["barge_in_onset_to_clear_ms"]  # type: ignore[index]
    assert DEFAULT_START_MS - 20 <= delay_ms <= SILENT_WITHIN * 1000


async def test_no_barge_in_on_comfort_noise(start_server: StartServer) -> None:
    running = await start_server(tone_agent)
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 32768 * 10 ** (-55 / 20), 4 * 8000).astype(np.int16)
    heard_path = running.data_dir / "heard.wav"
    report = await run_call(
        running.base + "/", CallerSource(noise, 8000), CallOptions(heard_path=heard_path)
    )
    await running.wait_idle()
    assert report.completed, report.failure
    assert report.clears == []

    heard, _ = read_heard(heard_path)
    assert last_sound(heard, 8000) > 3.9  # the tone played to the end of the call
