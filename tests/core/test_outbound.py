"""The app's audio on its way out: the frames the carrier gets, byte for byte, and their PCM."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.app.test_session import (
    FakeTransport,
    finish,
    make_session,
    nested_start,
    padded,
    sine,
    until,
)
from vobiz_stream.app import session as session_module
from vobiz_stream.app.session import CallSession, SessionOptions
from vobiz_stream.audio import (
    ByteOrder,
    Pcm,
    Resampler,
    decode_l16,
    decode_mulaw,
    encode_l16,
    encode_mulaw,
)
from vobiz_stream.core.outbound import PlayAudioEncoder
from vobiz_stream.core.protocol import Checkpoint, PlayAudio, encode
from vobiz_stream.formats import AudioFormat, Encoding

FORMATS = [
    (Encoding.L16, 8000, ByteOrder.LITTLE),
    (Encoding.L16, 8000, ByteOrder.BIG),
    (Encoding.L16, 16000, ByteOrder.LITTLE),
    (Encoding.L16, 16000, ByteOrder.BIG),
    (Encoding.MULAW, 8000, ByteOrder.LITTLE),
]


def reference_payload(chunk: bytes, encoding: Encoding, order: ByteOrder) -> bytes:
    """What the outbound format holds for a chunk of little-endian L16, by the codecs themselves."""
    samples = decode_l16(chunk, ByteOrder.LITTLE)
    return encode_mulaw(samples) if encoding is Encoding.MULAW else encode_l16(samples, order)


def samples_of(play: PlayAudio, order: ByteOrder) -> Pcm:
    if play.encoding is Encoding.MULAW:
        return decode_mulaw(play.payload)
    return decode_l16(play.payload, order)


def resampled(pcm: Pcm, in_rate: int, out_rate: int) -> Pcm:
    resampler = Resampler(in_rate, out_rate)
    return np.concatenate([resampler.process(pcm), resampler.flush()])


@pytest.mark.parametrize(("encoding", "rate", "order"), FORMATS)
@pytest.mark.parametrize("stream_id", ["MZ0a1b2c", None, 'odd "id" 100% \\ é\u2028', "%b%d%s"])
def test_frames_are_byte_for_byte_what_the_reference_encoder_writes(
    encoding: Encoding, rate: int, order: ByteOrder, stream_id: str | None
) -> None:
    frame_bytes = rate // 50 * 2
    pcm = sine(440, 0.1, rate).astype("<i2").tobytes() + b"\x01\x80\xff\x7f"  # a short tail
    chunks = [pcm[start : start + frame_bytes] for start in range(0, len(pcm), frame_bytes)]
    frames = PlayAudioEncoder(AudioFormat(encoding, rate), order, stream_id).frames(chunks)
    assert [frame.pcm for frame in frames] == chunks
    for frame, chunk in zip(frames, chunks, strict=True):
        reference = encode(
            PlayAudio(reference_payload(chunk, encoding, order), encoding, rate, stream_id)
        )
        assert type(frame.wire) is bytes
        assert frame.wire == reference.encode()


class FramesOnly(FakeTransport):
    """A socket that takes frames as bytes only: a ``str`` round trip fails the test."""

    async def send_text(self, text: str) -> None:
        raise AssertionError(f"sent as str, not bytes: {text[:60]!r}")


async def test_every_command_reaches_the_socket_as_bytes() -> None:
    transport = FramesOnly()
    session = CallSession(transport, SessionOptions(max_lead=1.0))
    session.feed(nested_start("S1"))
    await session.play(sine(440, 0.1, 8000), 8000)
    await session.checkpoint("after")
    await until(lambda: Checkpoint("after", "S1") in transport.commands())
    await session.clear()
    await session.stop()
    assert [type(command).__name__ for command in transport.commands()] == [
        *["PlayAudio"] * 5,
        "Checkpoint",
        "Checkpoint",
        "ClearAudio",
        "StopCommand",
    ]
    assert all(type(data) is bytes for _, data in transport.sent)
    await finish(session)


async def play_and_collect(
    pcm: Pcm, handler_rate: int, encoding: Encoding, rate: int, order: ByteOrder
) -> tuple[list[PlayAudio], Pcm]:
    """Play ``pcm`` through a session with no pacing: the ``playAudio`` frames it sent, and the
    PCM it reported as heard once the session's clock says it all played out."""
    clock = [1000.0]
    with patch.object(session_module, "_monotonic", lambda: clock[0]):
        session, transport, hooks = make_session(
            outbound_format=AudioFormat(encoding, rate), outbound_byte_order=order, max_lead=60.0
        )
        session.feed(nested_start("S1"))
        handle = await session.play(pcm, handler_rate)
        await until(lambda: Checkpoint(handle.name, "S1") in transport.commands())
        clock[0] += 60.0
        await finish(session)
    heard = [decode_l16(audio.pcm, ByteOrder.LITTLE) for audio in hooks.heard_audio]
    return transport.plays(), np.concatenate([np.zeros(0, np.int16), *heard])


@settings(max_examples=80, deadline=None)
@given(
    samples=st.lists(st.integers(-32768, 32767), min_size=1, max_size=2000),
    outbound=st.sampled_from(FORMATS),
    handler_rate=st.sampled_from([8000, 16000, 24000]),
)
def test_the_frames_sent_hold_exactly_the_audio_the_handler_played(
    samples: list[int], outbound: tuple[Encoding, int, ByteOrder], handler_rate: int
) -> None:
    encoding, rate, order = outbound
    pcm = np.array(samples, dtype=np.int16)
    plays, heard = asyncio.run(play_and_collect(pcm, handler_rate, encoding, rate, order))
    assert all(play.media_format == AudioFormat(encoding, rate) for play in plays)
    assert all(play.stream_id == "S1" for play in plays)
    sent = np.concatenate([np.zeros(0, np.int16), *(samples_of(play, order) for play in plays)])
    # The heard recording keeps the PCM the frames were encoded from, not the decoded frames.
    if encoding is Encoding.MULAW:
        np.testing.assert_array_equal(sent, decode_mulaw(encode_mulaw(heard)))
    else:
        np.testing.assert_array_equal(sent, heard)
    # The last frame is filled up with silence: the carrier plays whole 20 ms frames.
    expected = padded(resampled(pcm, handler_rate, rate), rate // 50)
    if handler_rate == rate:
        np.testing.assert_array_equal(heard, expected)  # the handler's samples, untouched
    else:
        # The resampler dithers its int16 output (at most 2 steps, differing from run to run).
        assert len(heard) == len(expected)
        assert np.abs(heard.astype(np.int32) - expected).max(initial=0) <= 2
