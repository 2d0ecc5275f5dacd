"""What a scripted caller (a scenario) costs per 20 ms frame, on top of a plain emulated call.

    .venv/bin/python bench/bench_scenario.py      # a few seconds on one core

A plain call sends frames made before the call; a scenario's caller makes each frame when it is
due (its samples, encoded as L16 and base64) and listens to what it heard (the voice activity
detector on one 20 ms heard frame). Both are timed here over ``FRAMES`` frames of one call at
8 kHz, the caller saying a long sentence while the agent's audio (speech) comes in, in CPU
microseconds per frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vobiz_stream.audio import ByteOrder
from vobiz_stream.emulator.live import LivePayloads
from vobiz_stream.emulator.scenario.caller import ScriptedCaller
from vobiz_stream.emulator.scenario.parse import parse_scenario
from vobiz_stream.emulator.source import CallerSource, read_caller_audio
from vobiz_stream.formats import AudioFormat, Encoding

FRAMES = 30_000
RATE = 8000
SPEECH = Path(__file__).resolve().parent.parent / "tests" / "data" / "speech_male_8k.wav"


class _NoControl:
    """The caller in this benchmark never presses a key or hangs up."""

    def press(self, digit: str, at: float) -> None:
        raise AssertionError(digit)

    def hang_up(self, at: float) -> None:
        raise AssertionError(at)


def main() -> None:
    speech = read_caller_audio(SPEECH).at_rate(RATE)
    long_turn = CallerSource(np.tile(speech, FRAMES * 160 // len(speech) + 1), RATE)
    scenario = parse_scenario('[[step]]\nsay = "x"\n', Path("bench.toml"))
    caller = ScriptedCaller(scenario, {0: long_turn})
    caller.begin(_NoControl(), RATE)  # type: ignore[arg-type]  # a stand-in for the call
    media_format = AudioFormat(Encoding.L16, RATE)
    frames = LivePayloads(caller, media_format, ByteOrder.LITTLE, FRAMES)
    heard = np.tile(speech, FRAMES * 160 // len(speech) + 1)
    began = time.process_time()
    for index in range(FRAMES):
        frames[index]
        caller.hear(heard[index * 160 : (index + 1) * 160])
    per_frame = (time.process_time() - began) / FRAMES * 1e6
    plain = long_turn.payloads(media_format, ByteOrder.LITTLE)
    began = time.process_time()
    for index in range(FRAMES):
        plain[index]
    plain_per_frame = (time.process_time() - began) / FRAMES * 1e6
    print(f"scripted caller: {per_frame:.1f} us per frame (make, encode, listen)")
    print(f"plain caller:    {plain_per_frame:.2f} us per frame (frames made before the call)")


if __name__ == "__main__":
    main()
