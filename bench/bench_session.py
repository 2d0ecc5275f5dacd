"""The server's per-frame work without a socket: how many media frames one core handles per second.

    .venv/bin/python bench/bench_session.py [--calls 100] [--seconds 20] [--profile]

Builds ``--calls`` sessions as the server does with its ``record`` handler (a
:class:`~vobiz_stream.app.session.CallSession` per stream, recorded by a
:class:`~vobiz_stream.app.keeper.StreamKeeper` into a real mono WAV and a real SQLite store), then
feeds them live-shape media frames of speech (big-endian L16, 8 kHz, the seeds' format),
round-robin as a paced load would, for ``--seconds`` of call audio each. The figure is the CPU
time of ``feed`` per frame: parse, inbound decode, clock placement, the recording, the latency
histogram. What the socket library and the event loop add comes on top
(bench/bench_servers.py measures the whole server).

``--byte-order auto`` detects the byte order as the server's default does; ``big`` is told.
``--profile`` prints where the time goes (cProfile, sorted by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from vobiz_stream.app.keeper import HandlingLatency, StreamKeeper
from vobiz_stream.app.session import CallSession, SessionOptions
from vobiz_stream.audio import ByteOrder
from vobiz_stream.core.protocol import Media, Start, Track, encode
from vobiz_stream.store import QueuedCallStore

SPEECH = Path(__file__).resolve().parent.parent / "tests" / "data" / "speech_male_8k.wav"
FRAME_SAMPLES = 160


class _NullTransport:
    async def send_text(self, text: str) -> None:
        pass

    async def send_frame(self, data: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


def _frames(seconds: float, stream_id: str, epoch_ms: int) -> list[str]:
    with wave.open(str(SPEECH)) as reader:
        speech = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    count = int(seconds * 50)
    pcm = np.resize(speech, count * FRAME_SAMPLES).astype(">i2").tobytes()
    texts = []
    for n in range(count):
        payload = pcm[n * 2 * FRAME_SAMPLES : (n + 1) * 2 * FRAME_SAMPLES]
        text = encode(
            Media(
                payload=payload,
                track=Track.INBOUND,
                timestamp=epoch_ms + 20 * n,
                chunk=n + 1,
                sequence_number=n + 1,
                stream_id=stream_id,
            )
        )
        texts.append(text[:-1] + ',"extra_headers":"{}"}')
    return texts


async def run(calls: int, seconds: float, byte_order: ByteOrder | None, profile: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-session-") as scratch:
        folder = Path(scratch)
        store = QueuedCallStore(folder / "calls.db")
        latency = HandlingLatency()
        options = SessionOptions(byte_order=byte_order)
        sessions = []
        for index in range(calls):
            keeper = StreamKeeper(folder / "recordings", store, latency, record_heard=False)
            session = CallSession(_NullTransport(), options, keeper, {"call": f"call-{index}"})
            start = Start(stream_id=f"stream-{index}", call_id=f"call-{index}")
            session.feed(encode(start))
            sessions.append(session)
        frames = _frames(seconds, "stream-0", int(time.time() * 1000))
        profiler = cProfile.Profile() if profile else None
        began = time.process_time()  # CPU time: a busy machine slows the wall clock, not this
        if profiler is not None:
            profiler.enable()
        for text in frames:
            for session in sessions:
                session.feed(text)
        if profiler is not None:
            profiler.disable()
        elapsed = time.process_time() - began
        for session in sessions:
            session.close("done")
        store.close()
    count = len(frames) * calls
    print(
        f"{calls} calls x {len(frames)} frames, byte order {byte_order or 'auto'}: "
        f"{elapsed / count * 1e6:.2f} us/frame, {count / elapsed:,.0f} frames/s/core "
        f"(= {count / elapsed / 50:,.0f} paced calls)"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="call audio per call")
    parser.add_argument("--byte-order", choices=["auto", "little", "big"], default="big")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.calls <= 5000 or not 1 <= args.seconds <= 120:
        parser.error("calls must be 1-5000 and seconds 1-120")
    order = None if args.byte_order == "auto" else ByteOrder(args.byte_order)
    asyncio.run(run(args.calls, args.seconds, order, args.profile))


if __name__ == "__main__":
    main()
