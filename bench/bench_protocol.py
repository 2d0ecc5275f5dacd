"""Protocol core micro-benchmark: how many frames one core parses and encodes per second.

    .venv/bin/python bench/bench_protocol.py [--seconds S]

Each row is the median of several timed repeats of a tight loop over one typical frame. The
"seed sample" row is what the 60-line samples do (stdlib json + base64) with no validation, shown
side by side as the floor to compare against. Media frames in the live and seed shapes take the
parser's fast path; the "general path" row is a media frame it leaves to the field-by-field
reading (a chunk number sent as a string), what every frame cost before the fast path.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import time
from collections.abc import Callable

from vobiz_stream.core.protocol import (
    Checkpoint,
    Media,
    PlayAudio,
    Start,
    encode,
    parse_command,
    parse_event,
)
from vobiz_stream.formats import AudioFormat, Encoding


def _media_frame(payload_bytes: int, sequence: int = 206, *, seed_shape: bool = False) -> str:
    """A live-shape frame as Vobiz sends it (``extra_headers`` too), or the seeds' shape."""
    media = Media(
        payload=os.urandom(payload_bytes),
        timestamp=1778574097426,
        chunk=None if seed_shape else sequence,
        sequence_number=None if seed_shape else sequence,
        stream_id="c4dfd815-0c1e-4a3c-9a8e-1f0c6f1e2a11",
        media_format=AudioFormat(Encoding.L16, 8000) if seed_shape else None,
    )
    text = encode(media)
    return text if seed_shape else text[:-1] + ',"extra_headers":"{}"}'


def _seed_sample_parse(frame: str) -> bytes:
    data = json.loads(frame)
    return base64.b64decode(data["media"]["payload"])


def _time_per_call(function: Callable[[], object], seconds: float) -> float:
    """Median seconds per call over five repeats of a loop sized to run ``seconds`` in total."""
    loops = 1000
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            function()
        elapsed = time.perf_counter() - started
        if elapsed > seconds / 25:
            break
        loops *= 2
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(loops):
            function()
        samples.append((time.perf_counter() - started) / loops)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per row")
    seconds = parser.parse_args().seconds

    media_8k = _media_frame(320)
    media_16k = _media_frame(640)
    media_seed = _media_frame(320, seed_shape=True)
    media_unusual = media_8k.replace('"chunk":206', '"chunk":"206"')
    start = encode(
        Start(
            stream_id="c4df",
            call_id="5401fd2e",
            account_id="500025",
            media_format=AudioFormat(Encoding.L16, 16000),
            sequence_number=0,
            extra_headers="{}",
        )
    )
    play = PlayAudio(
        payload=os.urandom(640), encoding=Encoding.L16, sample_rate=16000, stream_id="S"
    )
    play_frame = encode(play)
    rows: list[tuple[str, Callable[[], object]]] = [
        ("parse_event media L16 8 kHz (320 B)", lambda: parse_event(media_8k)),
        ("parse_event media L16 16 kHz (640 B)", lambda: parse_event(media_16k)),
        ("parse_event media seed shape, 8 kHz", lambda: parse_event(media_seed)),
        ("parse_event media, general path, 8 kHz", lambda: parse_event(media_unusual)),
        ("seed sample json+base64, 8 kHz, no checks", lambda: _seed_sample_parse(media_8k)),
        ("parse_event start (nested)", lambda: parse_event(start)),
        ("parse_command playAudio 16 kHz", lambda: parse_command(play_frame)),
        ("encode playAudio 16 kHz (640 B)", lambda: encode(play)),
        ("encode checkpoint", lambda: encode(Checkpoint(name="turn-3", stream_id="S"))),
        (
            "encode media L16 8 kHz (emulator side)",
            lambda: encode(Media(payload=b"\x00" * 320, timestamp=1, chunk=2, sequence_number=3)),
        ),
    ]
    print(f"{'operation':<44} {'us/frame':>9} {'frames/s/core':>14}")
    for name, function in rows:
        per_call = _time_per_call(function, seconds)
        print(f"{name:<44} {per_call * 1e6:>9.2f} {1 / per_call:>14,.0f}")


if __name__ == "__main__":
    main()
