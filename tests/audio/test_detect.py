"""ByteOrderDetector on real speech (espeak-ng fixtures, see tests/data/make_fixtures.sh),
on comfort-noise-like noise and on silence."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from vobiz_stream.audio import ByteOrder, ByteOrderDetector, Pcm
from vobiz_stream.errors import AudioError

DATA = Path(__file__).parents[1] / "data"
SPEECH = sorted(DATA.glob("speech_*.wav"))
MAX_SPEECH_FRAMES = 6
"""Frames (of 20 ms) the detector may take on speech: the leading frames of the utterances that
read the same both ways (espeak starts with two of silence) and at most four informative ones
(clipped speech; natural speech decides on its first or second)."""
MAX_NOISE_FRAMES = 2
"""On comfort noise the wrong reading is about 250 times rougher: one or two frames decide."""


def read_speech(path: Path) -> tuple[int, Pcm]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    assert rate in (8000, 16000)
    return rate, samples


def payloads(samples: Pcm, rate: int, order: ByteOrder) -> list[bytes]:
    """20 ms payloads of ``samples`` as the carrier would send them in ``order``."""
    dtype = "<i2" if order is ByteOrder.LITTLE else ">i2"
    frame = rate // 50
    return [
        samples[start : start + frame].astype(dtype).tobytes()
        for start in range(0, len(samples) - frame + 1, frame)
    ]


def frames_to_decide(detector: ByteOrderDetector, frames: list[bytes]) -> int | None:
    """Feed ``frames`` one by one; the 1-based count at which the detector decided, or None."""
    for count, frame in enumerate(frames, start=1):
        detector.observe(frame)
        if detector.decided:
            return count
    return None


def test_fixtures_are_real_speech_at_both_rates() -> None:
    rates = set()
    for path in SPEECH:
        rate, samples = read_speech(path)
        rates.add(rate)
        assert len(samples) >= rate  # at least a second of audio
        assert np.abs(samples).max() > 3000  # not silence
    assert rates == {8000, 16000}


@pytest.mark.parametrize("path", SPEECH, ids=lambda path: path.stem)
@pytest.mark.parametrize("sent", list(ByteOrder))
@pytest.mark.parametrize("default", list(ByteOrder))
@pytest.mark.parametrize("gain", [1.0, 0.03, 3.0], ids=["natural", "minus30dB", "clipped"])
def test_speech_decides_the_order_it_was_sent_in(
    path: Path, sent: ByteOrder, default: ByteOrder, gain: float
) -> None:
    rate, samples = read_speech(path)
    scaled = np.clip(np.round(samples * gain), -32768, 32767).astype(np.int16)
    detector = ByteOrderDetector(default)
    needed = frames_to_decide(detector, payloads(scaled, rate, sent))
    assert needed is not None, "never decided"
    assert needed <= MAX_SPEECH_FRAMES
    assert detector.order is sent


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("std", [10.0, 30.0, 50.0])
@pytest.mark.parametrize("sent", list(ByteOrder))
def test_comfort_noise_decides_the_order_it_was_sent_in(
    rate: int, std: float, sent: ByteOrder
) -> None:
    rng = np.random.default_rng(int(std) + rate)
    noise = np.round(rng.normal(0.0, std, rate)).astype(np.int16)
    default = ByteOrder.BIG if sent is ByteOrder.LITTLE else ByteOrder.LITTLE
    detector = ByteOrderDetector(default)
    needed = frames_to_decide(detector, payloads(noise, rate, sent))
    assert needed is not None, "never decided"
    assert needed <= MAX_NOISE_FRAMES
    assert detector.order is sent


@pytest.mark.parametrize("fill", [0x00, 0xFF])
@pytest.mark.parametrize("default", list(ByteOrder))
def test_digital_silence_leaves_it_undecided_on_the_default(fill: int, default: ByteOrder) -> None:
    detector = ByteOrderDetector(default)
    for _ in range(500):  # 10 s
        detector.observe(bytes([fill]) * 320)
    assert not detector.decided
    assert detector.order is default


def test_frames_that_read_the_same_both_ways_give_no_evidence() -> None:
    rng = np.random.default_rng(7)
    detector = ByteOrderDetector()
    for _ in range(200):
        high_and_low = rng.integers(0, 256, 160, dtype=np.uint8).repeat(2)  # bytes AB -> AA BB
        detector.observe(high_and_low.tobytes())
    assert not detector.decided
    assert detector.order is ByteOrder.LITTLE


def test_loud_white_noise_is_rough_both_ways_and_does_not_decide() -> None:
    rng = np.random.default_rng(8)
    detector = ByteOrderDetector(ByteOrder.BIG)
    for _ in range(200):
        detector.observe(rng.integers(-32768, 32768, 160, dtype=np.int16).tobytes())
    assert not detector.decided
    assert detector.order is ByteOrder.BIG


@pytest.mark.parametrize("sent", list(ByteOrder))
def test_silence_before_speech_only_delays_the_decision(sent: ByteOrder) -> None:
    rate, samples = read_speech(DATA / "speech_male_8k.wav")
    detector = ByteOrderDetector(ByteOrder.BIG if sent is ByteOrder.LITTLE else ByteOrder.LITTLE)
    silence = [bytes(320)] * 100 + [b"\xff" * 320] * 100
    needed = frames_to_decide(detector, silence + payloads(samples, rate, sent))
    assert needed is not None
    assert len(silence) < needed <= len(silence) + MAX_SPEECH_FRAMES
    assert detector.order is sent


def test_once_decided_it_stays_decided() -> None:
    rate, samples = read_speech(DATA / "speech_female_16k.wav")
    detector = ByteOrderDetector()
    assert frames_to_decide(detector, payloads(samples, rate, ByteOrder.BIG)) is not None
    for frame in payloads(samples, rate, ByteOrder.LITTLE):
        detector.observe(frame)
    assert detector.decided
    assert detector.order is ByteOrder.BIG


def roughness_ratio(payload: bytes) -> float:
    """How many times rougher the big-endian reading of ``payload`` is than the little one."""
    little = np.frombuffer(payload, "<i2").astype(np.int64)
    big = np.frombuffer(payload, ">i2").astype(np.int64)
    return float(np.abs(np.diff(big)).sum() / np.abs(np.diff(little)).sum())


@pytest.mark.parametrize("above", [True, False], ids=["clear", "weak"])
def test_one_frame_decides_only_if_it_clears_the_first_frames_bar(above: bool) -> None:
    """The bar after n frames is margin * min_frames / n: the first frame alone must be
    margin * min_frames times rougher in the losing reading."""
    rate, samples = read_speech(DATA / "speech_male_8k.wav")
    first = payloads(samples, rate, ByteOrder.LITTLE)[0]
    ratio = roughness_ratio(first)
    margin = ratio / 10 * (0.99 if above else 1.01)
    detector = ByteOrderDetector(ByteOrder.BIG, min_frames=10, margin=margin)
    detector.observe(first)
    assert detector.decided is above
    assert detector.order is (ByteOrder.LITTLE if above else ByteOrder.BIG)


def test_weak_evidence_waits_for_min_frames_at_the_plain_margin() -> None:
    """Speech clipped by 10 dB of overdrive: some frames are under twice as rough in the wrong
    reading. With a margin that such frames never clear early, the decision waits for
    min_frames frames of evidence, and is still right."""
    rate, samples = read_speech(DATA / "speech_female_8k.wav")
    clipped = np.clip(np.round(samples * 3.0), -32768, 32767).astype(np.int16)
    frames = [f for f in payloads(clipped, rate, ByteOrder.BIG) if f != swapped(f)]
    weakest = min(range(len(frames)), key=lambda index: 1 / roughness_ratio(frames[index]))
    detector = ByteOrderDetector(min_frames=40, margin=1.5)
    needed = frames_to_decide(detector, frames[weakest:])
    assert needed is not None and needed > 1
    assert detector.order is ByteOrder.BIG


def swapped(payload: bytes) -> bytes:
    return np.frombuffer(payload, "<i2").byteswap().tobytes()


def test_odd_length_payload_is_refused() -> None:
    with pytest.raises(AudioError, match="even number of bytes"):
        ByteOrderDetector().observe(b"\x01\x02\x03")


@pytest.mark.parametrize(("min_frames", "margin"), [(0, 3.0), (10, 1.0)])
def test_nonsense_settings_are_refused(min_frames: int, margin: float) -> None:
    with pytest.raises(AudioError, match="must be"):
        ByteOrderDetector(min_frames=min_frames, margin=margin)
