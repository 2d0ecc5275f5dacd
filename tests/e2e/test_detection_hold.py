"""A server detecting the L16 byte order decides on a stream's first sounds, so it holds back
at most a few frames once per stream (the cost bench/bench_detection.py measures as latency)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from tests.e2e.conftest import StartServer, frames_of, read_wav, speech
from vobiz_stream.audio import ByteOrder, encode_l16

pytestmark = pytest.mark.all_transports

MOST_FRAMES_HELD = 4
"""Informative frames of speech the detector may need (clipped speech; natural speech: 1-2)."""


@pytest.mark.parametrize("order", [ByteOrder.LITTLE, ByteOrder.BIG])
@pytest.mark.parametrize("name", ["speech_female_8k", "speech_male_16k"])
async def test_the_order_is_decided_within_a_few_frames_of_the_first_sound(
    start_server: StartServer, connect, order: ByteOrder, name: str
) -> None:
    running = await start_server(bidirectional=False, keep_call_alive=False)
    samples, rate = speech(name)
    frames = frames_of(samples, rate)
    quiet_lead = next(i for i, frame in enumerate(frames) if (frame.byteswap() != frame).any())
    carrier = await connect(running.ws_url)
    await carrier.start(rate=rate)
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, order), chunk)
    await carrier.socket.close()
    await running.wait_idle()

    with sqlite3.connect(running.server.settings.database_path) as db:
        [(detail,)] = db.execute("SELECT detail FROM call_events WHERE kind = 'byte_order'")
    decision = json.loads(detail)
    assert decision["order"] == order.value
    assert quiet_lead < decision["frames"] <= quiet_lead + MOST_FRAMES_HELD
    [path] = running.recordings()
    recorded, _, _ = read_wav(path)
    np.testing.assert_array_equal(recorded[: len(samples), 0], samples)
