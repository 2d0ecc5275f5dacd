"""Speech from espeak-ng and the fallback tone."""

from __future__ import annotations

import numpy as np
import pytest

from vobiz_stream.audio.speech import (
    TONE_AMPLITUDE,
    SpeechUnavailable,
    asynthesize,
    speech_available,
    synthesize,
    tone,
)
from vobiz_stream.errors import AudioError

needs_espeak = pytest.mark.skipif(
    not speech_available(), reason="espeak-ng is not installed (apt install espeak-ng)"
)


def _dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("rate", [8000, 16000])
def test_tone_has_its_length_pitch_and_level(rate: int) -> None:
    pcm = tone(0.5, rate, hz=440)
    assert pcm.dtype == np.int16
    assert len(pcm) == rate // 2
    assert _dominant_hz(pcm, rate) == pytest.approx(440, abs=2)
    assert int(np.abs(pcm).max()) == pytest.approx(TONE_AMPLITUDE, rel=0.01)


def test_tone_refuses_negative_length() -> None:
    with pytest.raises(AudioError, match="0 or more seconds"):
        tone(-1, 8000)


@needs_espeak
def test_speech_is_audible_and_at_the_rate_asked() -> None:
    at_8k = synthesize("Hello, thank you for calling.", 8000)
    at_16k = synthesize("Hello, thank you for calling.", 16000)
    assert at_8k.dtype == np.int16
    assert 1.0 < len(at_8k) / 8000 < 4.0
    assert len(at_16k) == pytest.approx(2 * len(at_8k), abs=2)
    rms = np.sqrt(np.mean(at_8k.astype(np.float64) ** 2))
    assert rms > 500  # speech, not silence


@needs_espeak
async def test_async_speech_matches_the_blocking_one() -> None:
    text = "-v looks like an option but is text"
    spoken = await asynthesize(text, 8000)
    assert len(spoken) == pytest.approx(len(synthesize(text, 8000)), abs=2)
    assert len(spoken) / 8000 > 1.0  # the whole sentence was spoken, not parsed as a flag


@needs_espeak
def test_a_missing_voice_is_a_clear_error() -> None:
    with pytest.raises(SpeechUnavailable, match="voice does not exist"):
        synthesize("hi", 8000, voice="nosuchvoice")


def test_without_espeak_on_the_path_speech_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not speech_available()
    with pytest.raises(SpeechUnavailable, match="apt install espeak-ng"):
        synthesize("hi", 8000)
