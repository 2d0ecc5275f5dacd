"""What the emulator's playout costs per 20 ms frame: the carrier's side of what the app plays.

    .venv/bin/python bench/bench_playout.py

The playout runs on the load generator's per-frame path: each caller frame advances it one tick,
and each ``playAudio`` queues into it. Two apps, in CPU microseconds per 20 ms tick of one call,
the heard audio handed out every tick as a call writing ``--heard`` does:

* **paced**: one 20 ms ``playAudio`` per tick, each up to 15 ms late (the usual live app);
* **bursts**: one second of audio every 50 ticks, in one ``playAudio`` (a TTS reply).

No I/O, no event loop: the model alone, on times passed in. Runs in a few seconds.
"""

from __future__ import annotations

import random
import time

import numpy as np

from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.core.protocol import PlayAudio
from vobiz_stream.emulator.playout import Playout
from vobiz_stream.formats import Encoding

RATE = 8000
TICK = 0.02
TICKS = 100_000
REPEATS = 3


def command(samples: int) -> PlayAudio:
    pcm = (np.arange(samples) % 2000 - 1000).astype(np.int16)
    return PlayAudio(encode_l16(pcm, ByteOrder.LITTLE), Encoding.L16, RATE)


def paced() -> list[tuple[float, PlayAudio | None]]:
    randomly = random.Random(1)
    frame = command(RATE // 50)
    return [(n * TICK + randomly.uniform(0, 0.015), frame) for n in range(TICKS)]


def bursts() -> list[tuple[float, PlayAudio | None]]:
    second = command(RATE)
    return [(n * TICK + 0.001, second if n % 50 == 0 else None) for n in range(TICKS)]


def per_tick_us(app: list[tuple[float, PlayAudio | None]]) -> float:
    """Best of ``REPEATS`` runs: CPU us per tick of play, advance to the tick, hand out heard."""
    best = float("inf")
    for _ in range(REPEATS):
        model = Playout(RATE)
        began = time.process_time()
        for n, (at, played) in enumerate(app):
            model.advance(n * TICK)  # the caller frame of tick n leaves
            model.pop_heard()
            if played is not None:
                model.play(played, at)
        best = min(best, (time.process_time() - began) / TICKS * 1e6)
    return best


def main() -> None:
    for name, app in (("paced", paced()), ("bursts", bursts())):
        print(f"{name:<8} {per_tick_us(app):6.2f} us CPU per 20 ms tick")


if __name__ == "__main__":
    main()
