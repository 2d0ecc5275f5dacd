"""What one outbound frame costs: a handler's ``play`` to the bytes a socket would send.

    .venv/bin/python bench/bench_outbound.py [--calls 200] [--seconds 5] [--format l16-8k-big]

Builds ``--calls`` sessions (a :class:`~vobiz_stream.app.session.CallSession` each, started by a
live-shape ``start``), has each play ``--seconds`` of speech given at 8 kHz, and waits until every
``playAudio`` frame has reached a transport that keeps nothing. The figure is the CPU time from
the first ``play`` to the last frame sent, per frame: resampling, framing, encoding, the frame's
JSON, pacing, the sender task. ``--max-lead`` sets how far ahead of real time the carrier may be
fed: the default 0.2 s paces frames at 50 a second per call, as a live call does (the event loop's
timers are in the figure); a large value sends everything at once (the encode path alone). It
runs on the server's event loop (uvloop where installed), with a transport that can send without
waiting as picows's does (the sessions then send from the shared pacer's tick); ``--async-only``
gives one that only sends by awaiting, as aiohttp's.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import wave
from pathlib import Path

import numpy as np

from vobiz_stream.app.session import CallSession, SessionOptions
from vobiz_stream.audio import ByteOrder
from vobiz_stream.core.protocol import Start, encode
from vobiz_stream.formats import AudioFormat, Encoding
from vobiz_stream.loop import run as run_on_loop

SPEECH = Path(__file__).resolve().parent.parent / "tests" / "data" / "speech_male_8k.wav"
FORMATS = {
    "l16-8k-little": (Encoding.L16, 8000, ByteOrder.LITTLE),
    "l16-8k-big": (Encoding.L16, 8000, ByteOrder.BIG),
    "l16-16k-little": (Encoding.L16, 16000, ByteOrder.LITTLE),
    "mulaw-8k": (Encoding.MULAW, 8000, ByteOrder.LITTLE),
}


class _CountingTransport:
    """Counts the frames sent and keeps none (text or bytes, whichever the session uses)."""

    def __init__(self) -> None:
        self.frames = 0

    async def send_text(self, text: str) -> None:
        self.frames += 1

    async def send_frame(self, data: bytes) -> None:
        self.frames += 1

    async def close(self) -> None:
        pass


class _AtOnceTransport(_CountingTransport):
    """As picows's transport: it can also send without waiting, so the sessions send their due
    frames from the shared pacer's tick (``--async-only``: without this, as aiohttp's)."""

    def can_send_now(self) -> bool:
        return True

    def send_now(self, data: bytes) -> None:
        self.frames += 1


def _speech(seconds: float) -> np.ndarray:
    with wave.open(str(SPEECH)) as reader:
        speech = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return np.resize(speech, int(seconds * 8000)).astype(np.int16)


async def run(
    calls: int, seconds: float, name: str, max_lead: float, at_once: bool = True
) -> float:
    encoding, rate, order = FORMATS[name]
    options = SessionOptions(
        outbound_format=AudioFormat(encoding, rate), outbound_byte_order=order, max_lead=max_lead
    )
    pcm = _speech(seconds)
    frames_each = int(seconds * 50)
    pairs = []
    for index in range(calls):
        transport = _AtOnceTransport() if at_once else _CountingTransport()
        session = CallSession(transport, options)
        session.feed(encode(Start(stream_id=f"stream-{index}", call_id=f"call-{index}")))
        pairs.append((session, transport))
    began = time.process_time()  # CPU time: a busy machine slows the wall clock, not this
    deadline = time.monotonic() + seconds * 4 + 30
    for session, _ in pairs:
        await session.play(pcm, 8000)
    while any(transport.frames < frames_each + 1 for _, transport in pairs):  # +1: the checkpoint
        if time.monotonic() > deadline:
            raise SystemExit("the sessions did not send everything in time")
        await asyncio.sleep(0.01)
    elapsed = time.process_time() - began
    for session, _ in pairs:
        session.close("done")
        await session.aclose()
    count = frames_each * calls
    print(
        f"{name}, {calls} calls x {frames_each} frames, max lead {max_lead:g} s"
        f"{'' if at_once else ', async sends only'}: "
        f"{elapsed / count * 1e6:.2f} us CPU per frame sent"
    )
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="audio each call plays")
    parser.add_argument("--format", choices=sorted(FORMATS), default="l16-8k-big")
    parser.add_argument("--max-lead", type=float, default=0.2, help="seconds; 600 = no pacing")
    parser.add_argument(
        "--async-only",
        action="store_true",
        help="a transport that only sends by awaiting (as aiohttp's; default: as picows's)",
    )
    args = parser.parse_args()
    if not 1 <= args.calls <= 2000 or not 1 <= args.seconds <= 60:
        parser.error("calls must be 1-2000 and seconds 1-60")
    run_on_loop(run(args.calls, args.seconds, args.format, args.max_lead, not args.async_only))


if __name__ == "__main__":
    main()
