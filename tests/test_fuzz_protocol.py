"""Short property runs (CI) of what fuzz/fuzz_protocol.py runs for millions of inputs: frames
built from the protocol's own names with JSON values of every type raise only ProtocolError and
round-trip, and a session fed any of them (or raw text) never raises and keeps going."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vobiz_stream.app.session import CallSession
from vobiz_stream.core.protocol import ProtocolError, encode, parse_command, parse_event

NAMES = [
    "event", "start", "media", "payload", "chunk", "timestamp", "track", "tracks", "streamId",
    "callId", "sequenceNumber", "mediaFormat", "encoding", "sampleRate", "contentType",
    "audioTrack", "name", "digit", "dtmf", "reason",
]  # fmt: skip
WORDS = [
    "start", "media", "playedStream", "played", "clearedAudio", "dtmf", "stop", "playAudio",
    "checkpoint", "clearAudio", "inbound", "outbound", "both", "audio/x-l16", "audio/x-mulaw",
    "audio/x-l16;rate=16000", "mulaw", "8000", "16000", "24000", " 7 ", "AAAA", "AAA=", "@@@",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(WORDS)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES), inner),
    max_leaves=12,
)
FRAMES = st.fixed_dictionaries(
    {"event": st.sampled_from(WORDS[:10])}, optional={"sequenceNumber": SCALARS}
).flatmap(
    lambda head: st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5).map(
        lambda rest: {**rest, **head}
    )
)


def round_trips(parse: Any, frame: bytes) -> None:
    try:
        message = parse(frame)
    except ProtocolError:
        return
    assert parse(encode(message)) == message


@given(FRAMES, st.sampled_from([1, 2]))
def test_structured_frames_raise_only_protocol_error_and_round_trip(
    frame: dict[str, Any], width: int
) -> None:
    data = orjson.dumps(frame)
    round_trips(lambda text: parse_event(text, width), data)
    round_trips(parse_command, data)


def test_integers_past_64_bits_are_refused_so_every_parsed_frame_encodes_back() -> None:
    for frame in (
        {"event": "stop", "sequenceNumber": "99999999999999999999"},
        {"event": "media", "media": {"payload": "AAA=", "chunk": 1e300}},
    ):
        with pytest.raises(ProtocolError, match="64-bit range"):
            parse_event(orjson.dumps(frame))


class Silent:
    async def send_text(self, text: str) -> None:
        pass

    async def send_frame(self, data: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


async def feed_all(frames: list[str]) -> CallSession:
    session = CallSession(Silent())
    for frame in frames:
        session.feed(frame)
    session.close("test")
    await session.aclose()
    return session


GOOD_MEDIA = orjson.dumps({"event": "media", "media": {"payload": "AAAAAA==", "chunk": 0}}).decode()


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAMES.map(lambda frame: orjson.dumps(frame).decode()) | st.text(), max_size=8))
def test_a_session_fed_anything_never_raises_and_counts_what_it_skipped(frames: list[str]) -> None:
    session = asyncio.run(feed_all([*frames, GOOD_MEDIA]))
    assert session.end_reason in ("test", "stop")
    if session.end_reason == "test":  # a fuzzed stop ends the stream: later frames are ignored
        assert session.stats.frames_received >= 1
    for frame in frames:
        with contextlib.suppress(ProtocolError):
            parse_event(frame)
