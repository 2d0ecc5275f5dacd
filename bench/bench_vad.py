"""How well each voice-activity classifier finds the caller's speech in noise, and how fast.

    .venv/bin/python bench/bench_vad.py           # about 20 seconds on one core

The test signal is the four espeak-ng fixtures (tests/data/speech_*.wav), six utterances with 0.8
to 2 s of digital silence between them, at 8 kHz (L16 and mu-law) and 16 kHz. The reference
labels come from the clean signal: a 20 ms frame is speech when its level is at least -50 dBFS
(espeak-ng pauses are digital silence, so this is exact). Noise is then mixed in at a signal-to-
noise ratio measured against the speech frames' mean power:

* white (comfort noise, line hiss), pink (office), brown (traffic, rumble), each at 30, 20, 10, 5
  and 0 dB SNR, with the speech at its recorded level (about -20 dBFS) and 20 dB quieter (a
  distant or soft-spoken caller, about -40 dBFS);
* clicks: 40 or 80 ms bursts of white noise as loud as the speech, twice a second, over -70 dBFS
  hiss (a bumped handset, keyboard, door): every start during the clicks is a false start.

Printed per classifier and condition: frame-level agreement with the labels, misses (speech
frames called silence) and false alarms (silence frames called speech); then, through
:class:`VoiceActivityDetector` with the default ``start_ms``/``stop_ms``, utterances found (of 6
per signal), false starts in the noise between them (a detector that never stops counts one),
and the onset delay (detection minus the reference onset), median and worst. Then a summary,
the ``start_ms`` trade-off between false starts on clicks and onset delay, and the cost of one
20 ms frame.
"""

from __future__ import annotations

import statistics
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vobiz_stream.audio import Pcm, decode_mulaw, encode_mulaw
from vobiz_stream.audio.vad import (
    DEFAULT_START_MS,
    DEFAULT_STOP_MS,
    EnergyClassifier,
    FrameClassifier,
    SpeechStarted,
    VoiceActivityDetector,
    WebRtcClassifier,
)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data"
GAPS = (1.0, 1.5, 0.8, 2.0, 1.2, 1.0)
"""Seconds of silence before each utterance; the signal ends with 1 s more."""
REFERENCE_DBFS = -50.0
SNRS = (30, 20, 10, 5, 0)
NOISES = ("white", "pink", "brown")
LEVELS = {"normal": 0.0, "quiet": -20.0}
FORMATS = (("L16 8k", 8000, False), ("mu-law 8k", 8000, True), ("L16 16k", 16000, False))
START_MS = (60, 100, 150, 200)
CLICK_MS = (40, 80)
RNG = np.random.default_rng(7)

Classifiers = dict[str, Callable[[int], FrameClassifier]]
CLASSIFIERS: Classifiers = {
    "webrtc-0": lambda rate: WebRtcClassifier(rate, 0),
    "webrtc-1": lambda rate: WebRtcClassifier(rate, 1),
    "webrtc-2": lambda rate: WebRtcClassifier(rate, 2),
    "webrtc-3": lambda rate: WebRtcClassifier(rate, 3),
    "energy -40 dBFS": lambda rate: EnergyClassifier(rate, -40.0),
    "energy -50 dBFS": lambda rate: EnergyClassifier(rate, -50.0),
}


def read_fixture(name: str) -> Pcm:
    with wave.open(str(FIXTURES / f"{name}.wav"), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.int16)


def frames_of(samples: Pcm, rate: int) -> list[Pcm]:
    size = rate // 50
    return [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]


def levels_dbfs(samples: Pcm, rate: int) -> np.ndarray:
    blocks = np.stack(frames_of(samples, rate)).astype(np.float64)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-9) / 32768))


@dataclass
class Signal:
    """The clean signal, its frame labels and where each utterance is (seconds)."""

    rate: int
    clean: Pcm
    labels: np.ndarray
    utterances: list[tuple[float, float]] = field(default_factory=list)


def build_signal(rate: int) -> Signal:
    voices = [read_fixture(f"speech_{voice}_{rate // 1000}k") for voice in ("male", "female")]
    parts: list[Pcm] = []
    utterances = []
    position = 0
    for index, gap in enumerate(GAPS):
        parts.append(np.zeros(round(gap * rate), dtype=np.int16))
        position += round(gap * rate)
        speech = voices[index % 2]
        voiced = np.flatnonzero(levels_dbfs(speech, rate) >= REFERENCE_DBFS)
        frame = rate // 50
        utterances.append(
            ((position + voiced[0] * frame) / rate, (position + (voiced[-1] + 1) * frame) / rate)
        )
        parts.append(speech)
        position += len(speech)
    parts.append(np.zeros(rate, dtype=np.int16))
    clean = np.concatenate(parts)
    return Signal(rate, clean, levels_dbfs(clean, rate) >= REFERENCE_DBFS, utterances)


def noise(kind: str, length: int) -> np.ndarray:
    """Unit-power noise: white, or white shaped to 1/f (pink) or 1/f^2 (brown) power."""
    white = RNG.normal(0.0, 1.0, length)
    if kind == "white":
        shaped = white
    else:
        spectrum = np.fft.rfft(white)
        bins = np.arange(len(spectrum), dtype=np.float64)
        bins[0] = 1.0
        spectrum /= np.sqrt(bins) if kind == "pink" else bins
        shaped = np.fft.irfft(spectrum, length)
    return np.asarray(shaped / np.sqrt(np.mean(shaped**2)))


def clicks(length: int, rate: int, level_power: float, click_ms: int) -> np.ndarray:
    """``click_ms`` white bursts at ``level_power``, twice a second, over -70 dBFS hiss."""
    out = noise("white", length) * 32768 * 10 ** (-70 / 20)
    burst = rate * click_ms // 1000
    for start in range(rate // 4, length - burst, rate // 2):
        out[start : start + burst] += RNG.normal(0.0, np.sqrt(level_power), burst)
    return out


def mix(signal: Signal, kind: str, snr: float, gain_db: float) -> Pcm:
    speech = signal.clean.astype(np.float64) * 10 ** (gain_db / 20)
    blocks = np.stack(frames_of(signal.clean, signal.rate)).astype(np.float64)[signal.labels]
    speech_power = float(np.mean(blocks**2)) * 10 ** (gain_db / 10)
    added = noise(kind, len(speech)) * np.sqrt(speech_power / 10 ** (snr / 10))
    return np.clip(np.round(speech + added), -32768, 32767).astype(np.int16)


def through_codec(samples: Pcm, mulaw: bool) -> Pcm:
    return decode_mulaw(encode_mulaw(samples)) if mulaw else samples


@dataclass
class Tally:
    frames: int = 0
    correct: int = 0
    missed: int = 0
    speech: int = 0
    false_alarms: int = 0
    silence: int = 0
    found: int = 0
    utterances: int = 0
    false_starts: int = 0
    onset_delays: list[float] = field(default_factory=list)

    def row(self) -> str:
        delays = self.onset_delays or [float("nan")]
        return (
            f"{self.correct / self.frames:6.1%} {self.missed / self.speech:7.1%} "
            f"{self.false_alarms / self.silence:7.1%} {self.found:4d}/{self.utterances:<4d} "
            f"{self.false_starts:7d} {statistics.median(delays) * 1000:8.0f} "
            f"{max(delays) * 1000:6.0f}"
        )


def score_frames(tally: Tally, classifier: FrameClassifier, mixed: Pcm, labels: np.ndarray) -> None:
    predicted = np.array(
        [classifier.is_speech(frame) for frame in frames_of(mixed, classifier.sample_rate)]
    )
    labels = labels[: len(predicted)]
    tally.frames += len(predicted)
    tally.correct += int(np.sum(predicted == labels))
    tally.speech += int(np.sum(labels))
    tally.missed += int(np.sum(~predicted & labels))
    tally.silence += int(np.sum(~labels))
    tally.false_alarms += int(np.sum(predicted & ~labels))


def starts(detector: VoiceActivityDetector, mixed: Pcm) -> Iterator[SpeechStarted]:
    for frame in frames_of(mixed, detector.sample_rate):
        for event in detector.push(frame):
            if isinstance(event, SpeechStarted):
                yield event


def score_utterances(
    tally: Tally, detector: VoiceActivityDetector, mixed: Pcm, utterances: list[tuple[float, float]]
) -> None:
    """Each reference utterance is found by the first start within it (or 0.1 s before)."""
    found: set[int] = set()
    tally.utterances += len(utterances)
    for event in starts(detector, mixed):
        hit = next(
            (i for i, (begin, end) in enumerate(utterances) if begin - 0.1 <= event.onset < end),
            None,
        )
        if hit is None:
            tally.false_starts += 1
        elif hit not in found:
            found.add(hit)
            tally.onset_delays.append(event.detected - utterances[hit][0])
    tally.found += len(found)


def count_click_starts(
    signals: dict[int, Signal], make: Callable[[int], FrameClassifier], start_ms: int, click_ms: int
) -> int:
    """False starts over the three formats with clicks added to the clean signal."""
    false_starts = 0
    for _, rate, mulaw in FORMATS:
        signal = signals[rate]
        blocks = np.stack(frames_of(signal.clean, rate)).astype(np.float64)[signal.labels]
        noisy = signal.clean + clicks(len(signal.clean), rate, float(np.mean(blocks**2)), click_ms)
        mixed = through_codec(np.clip(noisy, -32768, 32767).astype(np.int16), mulaw)
        tally = Tally()
        detector = VoiceActivityDetector(
            rate, classifier=make(rate), start_ms=start_ms, stop_ms=DEFAULT_STOP_MS
        )
        score_utterances(tally, detector, mixed, signal.utterances)
        false_starts += tally.false_starts
    return false_starts


def frame_cost_us(classifier: FrameClassifier, mixed: Pcm) -> float:
    frames = frames_of(mixed, classifier.sample_rate)[:500]
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for frame in frames:
            classifier.is_speech(frame)
        best = min(best, (time.perf_counter() - began) / len(frames))
    return best * 1e6


HEADER = (
    f"{'':<18}{'agree':>6} {'missed':>7} {'f.alarm':>7} {'found':>9} {'f.start':>7} "
    f"{'onset ms':>8} {'worst':>6}"
)


def main() -> None:
    signals = {rate: build_signal(rate) for rate in (8000, 16000)}
    total = sum(len(s.utterances) for s in signals.values())
    print(f"{total * len(FORMATS) // 2} utterances per condition over {len(FORMATS)} formats")
    print(f"detector: start_ms={DEFAULT_START_MS}, stop_ms={DEFAULT_STOP_MS} unless said\n")
    summary: dict[tuple[str, int], Tally] = {}
    for level, gain in LEVELS.items():
        for kind in NOISES:
            for snr in SNRS:
                print(f"-- {kind} noise, {snr} dB SNR, {level} speech --")
                print(HEADER)
                mixes = [
                    (rate, through_codec(mix(signals[rate], kind, snr, gain), mulaw))
                    for _, rate, mulaw in FORMATS
                ]
                for name, make in CLASSIFIERS.items():
                    tally = Tally()
                    for rate, mixed in mixes:
                        signal = signals[rate]
                        score_frames(tally, make(rate), mixed, signal.labels)
                        detector = VoiceActivityDetector(
                            rate,
                            classifier=make(rate),
                            start_ms=DEFAULT_START_MS,
                            stop_ms=DEFAULT_STOP_MS,
                        )
                        score_utterances(tally, detector, mixed, signal.utterances)
                    print(f"{name:<18}{tally.row()}")
                    pooled = summary.setdefault((name, snr), Tally())
                    pooled.found += tally.found
                    pooled.utterances += tally.utterances
                    pooled.false_starts += tally.false_starts
                print()
    print("-- summary over the three noises and both speech levels:")
    print("   utterances found / false starts (of 108 utterances, 18 signals) --")
    print(f"{'':<18}" + "".join(f"{f'{snr} dB':>12}" for snr in SNRS))
    for name in CLASSIFIERS:
        cells = (summary[name, snr] for snr in SNRS)
        print(
            f"{name:<18}"
            + "".join(f"{f'{t.found / t.utterances:.0%} / {t.false_starts}':>12}" for t in cells)
        )
    print()
    print("-- start_ms: false starts on clicks (bursts as loud as the speech, 2/s, between the")
    print(
        "   utterances) against the onset delay on pink noise at 20 dB SNR (median / worst ms) --"
    )
    print(
        f"{'':<18}{'start_ms':>8}"
        + "".join(f"{f'{ms} ms clicks':>14}" for ms in CLICK_MS)
        + f"{'onset ms':>12}"
    )
    for name, make in CLASSIFIERS.items():
        for start_ms in START_MS:
            cells = [count_click_starts(signals, make, start_ms, click_ms) for click_ms in CLICK_MS]
            onsets = Tally()
            for _, rate, mulaw in FORMATS:
                mixed = through_codec(mix(signals[rate], "pink", 20, 0.0), mulaw)
                detector = VoiceActivityDetector(
                    rate, classifier=make(rate), start_ms=start_ms, stop_ms=DEFAULT_STOP_MS
                )
                score_utterances(onsets, detector, mixed, signals[rate].utterances)
            delays = onsets.onset_delays or [float("nan")]
            print(
                f"{name:<18}{start_ms:>8}"
                + "".join(f"{cell:>14d}" for cell in cells)
                + f"{statistics.median(delays) * 1000:>7.0f} / {max(delays) * 1000:.0f}"
            )
    print("\n-- cost of one 20 ms frame (us, best of 5 over 500 frames) --")
    for name, make in CLASSIFIERS.items():
        costs = [
            frame_cost_us(make(rate), mix(signals[rate], "pink", 10, 0)) for rate in (8000, 16000)
        ]
        print(f"{name:<18} 8 kHz {costs[0]:6.1f}   16 kHz {costs[1]:6.1f}")


if __name__ == "__main__":
    main()
