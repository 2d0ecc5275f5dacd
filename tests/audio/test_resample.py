"""The streaming resampler: frequency and amplitude kept, lengths, chunked vs one-shot, reset."""

from __future__ import annotations

import numpy as np
import pytest

from vobiz_stream.audio import Pcm, Quality, Resampler
from vobiz_stream.errors import AudioError

RATE_PAIRS = [(8000, 16000), (16000, 8000), (16000, 24000), (24000, 16000), (8000, 24000)]


def sine(rate: int, freq: float, amplitude: float, seconds: float) -> Pcm:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def in_chunks(resampler: Resampler, pcm: Pcm, chunk: int) -> Pcm:
    """Feed ``pcm`` chunk by chunk, then flush: the whole output."""
    parts = [resampler.process(pcm[start : start + chunk]) for start in range(0, len(pcm), chunk)]
    return np.concatenate([*parts, resampler.flush()])


def tone_of(pcm: Pcm, rate: int) -> tuple[float, float]:
    """(frequency, amplitude) of the strongest tone, away from the edges of ``pcm``.

    The frequency is the FFT peak refined by parabolic interpolation; the amplitude is the
    least-squares fit of a sine and cosine at that frequency.
    """
    middle = pcm[len(pcm) // 10 : -len(pcm) // 10].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    peak = int(np.argmax(spectrum))
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2])
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    freq = (peak + offset) * rate / len(middle)
    t = np.arange(len(middle)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, middle, rcond=None)
    return freq, float(np.hypot(a, b))


@pytest.mark.parametrize("quality", [Quality.MQ, Quality.HQ, Quality.VHQ])
@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0, 3400.0])
def test_up_and_back_down_keeps_frequency_and_amplitude(quality: Quality, freq: float) -> None:
    original = sine(8000, freq, 10000, 2.0)
    up = in_chunks(Resampler(8000, 16000, quality), original, 160)
    down = in_chunks(Resampler(16000, 8000, quality), up, 320)
    for pcm, rate in ((up, 16000), (down, 8000)):
        measured_freq, measured_amplitude = tone_of(pcm, rate)
        assert measured_freq == pytest.approx(freq, abs=0.5)
        assert measured_amplitude == pytest.approx(10000, rel=0.002)


def test_quick_quality_keeps_the_tone_but_not_the_level_near_the_band_edge() -> None:
    """QQ is cubic interpolation: right frequency, but -2 dB at 3 kHz going 8 -> 16 kHz."""
    up = in_chunks(Resampler(8000, 16000, Quality.QQ), sine(8000, 3000.0, 10000, 2.0), 160)
    freq, amplitude = tone_of(up, 16000)
    assert freq == pytest.approx(3000.0, abs=0.5)
    assert 0.7 * 10000 < amplitude < 0.9 * 10000


def test_the_default_filters_what_quick_quality_folds_back() -> None:
    """Going 16 -> 8 kHz, a 5 kHz tone must vanish; without a filter it folds to 3 kHz."""
    tone = sine(16000, 5000.0, 10000, 1.0)
    filtered = in_chunks(Resampler(16000, 8000), tone, 320)
    folded = in_chunks(Resampler(16000, 8000, Quality.QQ), tone, 320)
    assert np.abs(filtered[800:-800]).max() < 10  # below -60 dB of the tone
    freq, amplitude = tone_of(folded, 8000)
    assert freq == pytest.approx(3000.0, abs=0.5)
    assert amplitude > 9000


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_tone_survives_each_conversion(in_rate: int, out_rate: int) -> None:
    output = in_chunks(
        Resampler(in_rate, out_rate), sine(in_rate, 1234.0, 8000, 1.0), in_rate // 50
    )
    freq, amplitude = tone_of(output, out_rate)
    assert freq == pytest.approx(1234.0, abs=0.5)
    assert amplitude == pytest.approx(8000, rel=0.002)


@pytest.mark.parametrize("quality", list(Quality))
@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_total_length_after_flush_follows_the_rate_ratio(
    quality: Quality, in_rate: int, out_rate: int
) -> None:
    samples = in_rate * 3 + 37  # not a whole number of chunks
    pcm = sine(in_rate, 500.0, 5000, samples / in_rate)
    output = in_chunks(Resampler(in_rate, out_rate, quality), pcm, in_rate // 50)
    assert abs(len(output) - samples * out_rate / in_rate) <= 2


@pytest.mark.parametrize("quality", list(Quality))
@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_20ms_chunks_give_what_one_call_gives(
    quality: Quality, in_rate: int, out_rate: int
) -> None:
    pcm = np.round(np.random.default_rng(3).normal(0, 3000, in_rate)).astype(np.int16)
    streamed = in_chunks(Resampler(in_rate, out_rate, quality), pcm, in_rate // 50)
    whole = in_chunks(Resampler(in_rate, out_rate, quality), pcm, len(pcm))
    assert len(streamed) == len(whole)
    # soxr adds +-1 LSB of dither to int16 output, and its block boundaries differ: 2 LSB at most
    assert np.abs(streamed.astype(np.int32) - whole).max() <= 2


def test_the_default_holds_audio_back_and_flush_returns_it() -> None:
    resampler = Resampler(8000, 16000)
    assert resampler.quality is Quality.HQ
    pcm = sine(8000, 440.0, 10000, 0.2)
    out = np.concatenate([resampler.process(pcm[i : i + 160]) for i in range(0, len(pcm), 160)])
    assert len(out) < 2 * len(pcm)  # held back
    tail = resampler.flush()
    assert len(out) + len(tail) == 2 * len(pcm)
    assert np.abs(tail).max() > 5000  # the tail is the tone, not padding


def test_reset_drops_the_held_back_audio() -> None:
    resampler = Resampler(8000, 16000)
    tone = sine(8000, 440.0, 10000, 0.2)
    heard = sum(len(resampler.process(tone[i : i + 160])) for i in range(0, len(tone), 160))
    assert heard < 2 * len(tone)
    resampler.reset()
    silence = np.zeros(8000, dtype=np.int16)
    after = in_chunks(resampler, silence, 160)
    assert len(after) == 2 * len(silence)  # a fresh stream: nothing of the tone is owed
    assert np.abs(after).max() <= 1  # only soxr's dither, no trace of the tone


def test_flush_starts_a_new_stream() -> None:
    resampler = Resampler(16000, 8000)
    first = in_chunks(resampler, sine(16000, 300.0, 4000, 0.5), 320)
    second = in_chunks(resampler, sine(16000, 300.0, 4000, 0.5), 320)
    assert len(first) == len(second) == 4000
    assert np.abs(first.astype(np.int32) - second).max() <= 2  # the dither differs


def test_same_rate_passes_the_same_array_through() -> None:
    resampler = Resampler(16000, 16000)
    pcm = sine(16000, 440.0, 1000, 0.02)
    assert resampler.process(pcm) is pcm
    assert len(resampler.flush()) == 0
    resampler.reset()


def test_bad_rates_and_samples_are_refused() -> None:
    with pytest.raises(AudioError, match="positive"):
        Resampler(0, 8000)
    with pytest.raises(AudioError, match="int16"):
        Resampler(8000, 16000).process(np.zeros(160, dtype=np.float32))
