"""EnergyVad on the espeak-ng speech fixtures, on silence and on comfort noise."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from vobiz_stream.audio import Pcm
from vobiz_stream.vad import EnergyVad, VoiceChange

DATA = Path(__file__).parent / "data"
SPEECH = ["speech_male_8k", "speech_female_8k", "speech_male_16k", "speech_female_16k"]
THRESHOLD_DBFS = -40.0


def read_speech(name: str) -> tuple[Pcm, int]:
    with wave.open(str(DATA / f"{name}.wav"), "rb") as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return samples.astype(np.int16), reader.getframerate()


def chunks(samples: Pcm, size: int) -> list[Pcm]:
    return [samples[start : start + size] for start in range(0, len(samples) - size + 1, size)]


def dbfs(pcm: Pcm) -> float:
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return -120.0 if rms == 0 else 20 * np.log10(rms / 32768)


def changes_of(vad: EnergyVad, pieces: list[Pcm]) -> list[tuple[int, VoiceChange]]:
    """(index of the chunk, change) for every change reported."""
    out = []
    for index, pcm in enumerate(pieces):
        change = vad.update(pcm)
        if change is not None:
            out.append((index, change))
    return out


def comfort_noise(seconds: float, rate: int, level_dbfs: float, seed: int = 0) -> Pcm:
    rng = np.random.default_rng(seed)
    sigma = 32768 * 10 ** (level_dbfs / 20)
    return np.clip(rng.normal(0, sigma, int(seconds * rate)), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("name", SPEECH)
def test_speech_starts_after_the_onset_and_ends_after_the_hangover(name: str) -> None:
    samples, rate = read_speech(name)
    frame = rate // 50
    pieces = chunks(samples, frame) + [np.zeros(frame, dtype=np.int16)] * 50  # then 1 s quiet
    levels = [dbfs(pcm) for pcm in pieces]
    loud = [index for index, level in enumerate(levels) if level >= THRESHOLD_DBFS]
    first_loud, last_loud = loud[0], loud[-1]
    # The fixture's pauses between words are shorter than the hangover, its start is loud.
    assert all(b - a <= 25 for a, b in itertools.pairwise(loud))
    assert all(levels[i] >= THRESHOLD_DBFS for i in range(first_loud, first_loud + 3))

    vad = EnergyVad(rate, threshold_dbfs=THRESHOLD_DBFS, onset_ms=60, hangover_ms=500)
    changes = changes_of(vad, pieces)
    # One utterance: started once 60 ms (3 chunks) were loud, ended 500 ms (25 chunks) after.
    assert changes == [
        (first_loud + 2, VoiceChange.SPEECH_STARTED),
        (last_loud + 25, VoiceChange.SPEECH_ENDED),
    ]
    assert not vad.speaking


def test_speaking_follows_the_changes() -> None:
    samples, rate = read_speech("speech_female_8k")
    vad = EnergyVad(rate)
    states = []
    for pcm in chunks(samples, rate // 50):
        change = vad.update(pcm)
        states.append(vad.speaking)
        if change is VoiceChange.SPEECH_STARTED:
            assert vad.speaking
    assert any(states)
    assert vad.speaking  # the fixture ends 340 ms after its last word: within the hangover


@pytest.mark.parametrize("rate", [8000, 16000])
def test_no_events_on_digital_silence(rate: int) -> None:
    vad = EnergyVad(rate)
    assert changes_of(vad, chunks(np.zeros(10 * rate, dtype=np.int16), rate // 50)) == []
    assert not vad.speaking


@pytest.mark.parametrize("level", [-70.0, -55.0, -45.0])
def test_no_events_on_comfort_noise(level: float) -> None:
    noise = comfort_noise(10.0, 8000, level)
    vad = EnergyVad(8000)
    assert changes_of(vad, chunks(noise, 160)) == []


def test_loud_noise_counts_as_voice() -> None:
    """An energy detector cannot tell: noise above the threshold starts 'speech'."""
    vad = EnergyVad(8000)
    changes = changes_of(vad, chunks(comfort_noise(1.0, 8000, -30.0), 160))
    assert changes == [(2, VoiceChange.SPEECH_STARTED)]


def test_a_blip_shorter_than_the_onset_is_ignored() -> None:
    loud = comfort_noise(0.04, 8000, -20.0)  # 40 ms < 60 ms onset
    quiet = np.zeros(160, dtype=np.int16)
    vad = EnergyVad(8000)
    pieces = [loud[:160], loud[160:], quiet] * 20  # blips never add up across quiet chunks
    assert changes_of(vad, pieces) == []


def test_a_pause_shorter_than_the_hangover_does_not_end_speech() -> None:
    loud = chunks(comfort_noise(0.2, 8000, -20.0), 160)
    quiet = [np.zeros(160, dtype=np.int16)] * 24  # 480 ms < 500 ms
    vad = EnergyVad(8000)
    changes = changes_of(vad, loud + quiet + loud + quiet + [quiet[0]])
    assert changes == [
        (2, VoiceChange.SPEECH_STARTED),
        (2 * len(loud) + len(quiet) + 24, VoiceChange.SPEECH_ENDED),  # 25th quiet chunk: 500 ms
    ]


def test_onset_and_hangover_are_measured_in_time_not_chunks() -> None:
    """10 ms chunks: speech starts after 6 of them and ends after 50."""
    vad = EnergyVad(8000, onset_ms=60, hangover_ms=500)
    loud = chunks(comfort_noise(0.2, 8000, -20.0), 80)
    quiet = [np.zeros(80, dtype=np.int16)] * 60
    assert changes_of(vad, loud + quiet) == [
        (5, VoiceChange.SPEECH_STARTED),
        (len(loud) + 49, VoiceChange.SPEECH_ENDED),
    ]


def test_threshold_is_in_dbfs() -> None:
    tone = (
        32768 * 10 ** (-35 / 20) * np.sqrt(2) * np.sin(np.arange(1600) * 2 * np.pi * 440 / 8000)
    ).astype(np.int16)  # -35 dBFS RMS
    assert changes_of(EnergyVad(8000, threshold_dbfs=-30.0), chunks(tone, 160)) == []
    assert changes_of(EnergyVad(8000, threshold_dbfs=-40.0), chunks(tone, 160)) == [
        (2, VoiceChange.SPEECH_STARTED)
    ]


def test_empty_chunk_changes_nothing() -> None:
    vad = EnergyVad(8000)
    loud = chunks(comfort_noise(0.04, 8000, -20.0), 160)
    assert vad.update(loud[0]) is None
    assert vad.update(np.zeros(0, dtype=np.int16)) is None
    assert vad.update(loud[1]) is None
    # The empty chunk did not break the loud run: one more loud chunk completes the onset.
    assert vad.update(loud[0]) is VoiceChange.SPEECH_STARTED
