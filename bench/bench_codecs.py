"""Per-frame costs of the audio building blocks, and what each soxr quality does to latency.

    .venv/bin/python bench/bench_codecs.py

Prints two tables: the median cost of each operation on one 20 ms frame (microseconds, and frames
per second on one core), and per soxr quality and rate pair, the audio held back while streaming
20 ms chunks (mean and worst), the largest single burst of output, and the fidelity on the speech
fixtures against VHQ. Runs in about 6 seconds.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr  # type: ignore[import-untyped]

from vobiz_stream.audio import (
    ByteOrder,
    ByteOrderDetector,
    Pcm,
    Quality,
    Resampler,
    WavWriter,
    decode_l16,
    decode_mulaw,
    encode_mulaw,
    swap_bytes,
)

REPEATS = 7
TARGET_NS = 20_000_000  # each repeat runs for about 20 ms
RATE_PAIRS = [(8000, 16000), (16000, 8000), (16000, 24000), (24000, 8000)]
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data"
RNG = np.random.default_rng(0)


def per_call_ns(call: Callable[[], object]) -> float:
    """Median over REPEATS of the mean time of one call, in nanoseconds."""
    number = 1
    while True:  # find a loop count that runs for about TARGET_NS
        start = time.perf_counter_ns()
        for _ in range(number):
            call()
        elapsed = time.perf_counter_ns() - start
        if elapsed >= TARGET_NS // 10:
            number = max(1, number * TARGET_NS // max(elapsed, 1))
            break
        number *= 10
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(number):
            call()
        samples.append((time.perf_counter_ns() - start) / number)
    return statistics.median(samples)


def noise(rate: int, seconds: float, std: float = 3000.0) -> Pcm:
    samples = RNG.normal(0.0, std, int(rate * seconds))
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def frame_costs() -> list[tuple[str, float]]:
    """(operation, ns per 20 ms frame)."""
    pcm_8k = noise(8000, 0.02)
    l16_320 = noise(8000, 0.02).tobytes()
    l16_640 = noise(16000, 0.02).tobytes()
    mulaw_160 = encode_mulaw(pcm_8k)
    comfort = noise(8000, 0.02, std=20.0).tobytes()

    undecided = ByteOrderDetector(min_frames=sys.maxsize)  # never decides: always does the work
    decided = ByteOrderDetector()
    for _ in range(10):
        decided.observe(comfort)
    assert decided.decided

    rows = [
        ("mu-law encode, 160 samples", per_call_ns(lambda: encode_mulaw(pcm_8k))),
        ("mu-law decode, 160 bytes", per_call_ns(lambda: decode_mulaw(mulaw_160))),
        ("L16 swap_bytes, 320 bytes", per_call_ns(lambda: swap_bytes(l16_320))),
        ("L16 swap_bytes, 640 bytes", per_call_ns(lambda: swap_bytes(l16_640))),
        (
            "  (numpy byteswap, 640 bytes, not used)",
            per_call_ns(lambda: np.frombuffer(l16_640, np.uint16).byteswap().tobytes()),
        ),
        (
            "L16 decode little, 320 bytes",
            per_call_ns(lambda: decode_l16(l16_320, ByteOrder.LITTLE)),
        ),
        ("L16 decode big, 320 bytes", per_call_ns(lambda: decode_l16(l16_320, ByteOrder.BIG))),
        ("L16 decode big, 640 bytes", per_call_ns(lambda: decode_l16(l16_640, ByteOrder.BIG))),
        ("detector observe, undecided, 320 B", per_call_ns(lambda: undecided.observe(l16_320))),
        ("detector observe, undecided, 640 B", per_call_ns(lambda: undecided.observe(l16_640))),
        ("detector observe, digital silence", per_call_ns(lambda: undecided.observe(bytes(640)))),
        ("detector observe, decided", per_call_ns(lambda: decided.observe(l16_640))),
    ]
    for in_rate, out_rate in RATE_PAIRS:
        for quality in Quality:
            rows.append(
                (
                    f"resample {in_rate // 1000}k->{out_rate // 1000}k {quality.value}",
                    resample_cost_ns(in_rate, out_rate, quality),
                )
            )
    with tempfile.TemporaryDirectory() as folder:
        for rate in (8000, 16000):
            frame = noise(rate, 0.02)
            with WavWriter(Path(folder) / f"bench_{rate}.wav", rate) as writer:
                rows.append(
                    (
                        f"WavWriter.write, {rate // 1000} kHz mono (1 s flushes)",
                        per_call_ns(lambda w=writer, f=frame: w.write(f)),  # type: ignore[misc]
                    )
                )
    return rows


def resample_cost_ns(in_rate: int, out_rate: int, quality: Quality) -> float:
    """Mean cost of one 20 ms chunk over 5 s of streaming (bursts and quiet chunks averaged)."""
    chunk = in_rate // 50
    audio = noise(in_rate, 5.0)
    chunks = [audio[start : start + chunk] for start in range(0, len(audio), chunk)]
    resampler = Resampler(in_rate, out_rate, quality)

    def run() -> None:
        for part in chunks:
            resampler.process(part)

    return per_call_ns(run) / len(chunks)


def latency(in_rate: int, out_rate: int, quality: Quality) -> tuple[float, float, float]:
    """(mean ms held back, worst ms held back, largest single output in ms), in 20 ms chunks.

    soxr's output is aligned with its input, so the output not yet given for the input already
    taken is exactly the delay the resampler adds at that moment.
    """
    chunk = in_rate // 50
    audio = noise(in_rate, 6.0)
    resampler = Resampler(in_rate, out_rate, quality)
    taken = given = 0
    held, bursts = [], []
    for start in range(0, len(audio), chunk):
        out = resampler.process(audio[start : start + chunk])
        taken += chunk
        given += len(out)
        held.append(taken * out_rate / in_rate - given)
        bursts.append(len(out))
    steady = held[len(held) // 3 :]  # past the start-up
    to_ms = 1000 / out_rate
    return statistics.mean(steady) * to_ms, max(held) * to_ms, max(bursts) * to_ms


def speech_at(rate: int) -> list[Pcm]:
    """The speech fixtures at ``rate``; 24 kHz is made from the 16 kHz ones (VHQ, one shot)."""
    source_rate = 16000 if rate == 24000 else rate
    utterances = []
    for path in sorted(FIXTURES.glob(f"speech_*_{source_rate // 1000}k.wav")):
        with wave.open(str(path), "rb") as wav:
            speech = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)
        if rate != source_rate:
            converted = soxr.resample(speech.astype(np.float64), source_rate, rate, quality="VHQ")
            speech = np.clip(np.round(converted), -32768, 32767).astype(np.int16)
        utterances.append(speech)
    return utterances


def speech_snr_db(in_rate: int, out_rate: int, quality: Quality) -> float:
    """Worst SNR over the speech fixtures against one-shot VHQ in float (streamed in 20 ms)."""
    snrs = []
    for speech in speech_at(in_rate):
        reference = soxr.resample(speech.astype(np.float64), in_rate, out_rate, quality="VHQ")
        resampler = Resampler(in_rate, out_rate, quality)
        chunk = in_rate // 50
        parts = [resampler.process(speech[i : i + chunk]) for i in range(0, len(speech), chunk)]
        out = np.concatenate([*parts, resampler.flush()]).astype(np.float64)
        length = min(len(out), len(reference))
        error = out[:length] - reference[:length]
        snrs.append(10 * np.log10(np.sum(reference[:length] ** 2) / np.sum(error**2)))
    return float(min(snrs))


def main() -> None:
    began = time.perf_counter()
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, soxr {soxr.__version__} "
        f"(libsoxr {soxr.__libsoxr_version__}); medians of {REPEATS} repeats\n"
    )
    print(f"{'per 20 ms frame':<46}{'us':>9}{'frames/s/core':>16}")
    for name, ns in frame_costs():
        print(f"{name:<46}{ns / 1000:>9.2f}{1e9 / ns:>16,.0f}")

    print(
        f"\n{'streaming in 20 ms chunks':<28}{'held mean ms':>13}{'held max ms':>12}"
        f"{'burst ms':>10}{'speech SNR vs VHQ':>19}"
    )
    for in_rate, out_rate in RATE_PAIRS:
        for quality in Quality:
            mean_ms, max_ms, burst_ms = latency(in_rate, out_rate, quality)
            snr_text = (
                "reference"
                if quality is Quality.VHQ
                else f"{speech_snr_db(in_rate, out_rate, quality):.1f} dB"
            )
            print(
                f"{in_rate // 1000:>2}k->{out_rate // 1000}k {quality.value:<19}"
                f"{mean_ms:>13.1f}{max_ms:>12.1f}{burst_ms:>10.1f}{snr_text:>19}"
            )
    print(f"\n(ran in {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
