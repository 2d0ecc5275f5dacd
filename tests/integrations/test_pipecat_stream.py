"""The Pipecat serializer on the stream core: a carrier's flood of bad frames costs a bounded
number of log lines, and the stream goes on."""

from __future__ import annotations

import base64
import logging

import numpy as np
import orjson
import pytest

pytest.importorskip("pipecat", reason="needs the extra: pip install 'vobiz-stream[pipecat]'")

from pipecat.frames.frames import InputAudioRawFrame

from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.integrations.pipecat import VobizFrameSerializer

FLOOD = 2000


async def test_a_flood_of_malformed_frames_logs_a_few_lines_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serializer = VobizFrameSerializer(
        params=VobizFrameSerializer.InputParams(l16_byte_order="little")
    )
    start = {"event": "start", "start": {"callId": "C1", "streamId": "S1", "tracks": ["inbound"]}}
    await serializer.deserialize(orjson.dumps(start).decode())
    with caplog.at_level(logging.INFO, logger="vobiz_stream"):
        for n in range(FLOOD):
            bad = "not json" if n % 2 else '{"event":"media","media":{"payload":"@@"}}'
            assert await serializer.deserialize(bad) is None
    assert 0 < len(caplog.records) <= 10  # not one line per frame: the log cannot be flooded
    pcm = np.arange(160, dtype=np.int16)
    payload = base64.b64encode(encode_l16(pcm, ByteOrder.LITTLE)).decode()
    media = {"event": "media", "media": {"payload": payload, "track": "inbound"}}
    frame = await serializer.deserialize(orjson.dumps(media).decode())
    assert isinstance(frame, InputAudioRawFrame)
    assert np.array_equal(np.frombuffer(frame.audio, dtype="<i2"), pcm)
