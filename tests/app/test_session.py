"""CallSession over an in-memory transport: starts, media, malformed frames, handler events,
playback (framing, formats, pacing in real time), checkpoints, clear, close and stop."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import tracemalloc
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from vobiz_stream.app.session import (
    HELD_BEFORE_START,
    UNKNOWN_NOTED,
    AudioCleared,
    BargeIn,
    CallerAudio,
    CallSession,
    CheckpointPlayed,
    DtmfReceived,
    SessionError,
    SessionEvent,
    SessionOptions,
    SpeechDetection,
)
from vobiz_stream.audio import (
    ByteOrder,
    Pcm,
    decode_l16,
    decode_mulaw,
    encode_l16,
    encode_mulaw,
)
from vobiz_stream.audio.vad import SpeechEnded, SpeechStarted
from vobiz_stream.core.playback import HeardAudio, PlayOutcome
from vobiz_stream.core.protocol import (
    AppCommand,
    Checkpoint,
    ClearAudio,
    Media,
    PlayAudio,
    StopCommand,
    Track,
    parse_command,
)
from vobiz_stream.formats import AudioFormat, Encoding

L16_8K = AudioFormat(Encoding.L16, 8000)
L16_16K = AudioFormat(Encoding.L16, 16000)
MULAW_8K = AudioFormat(Encoding.MULAW, 8000)


# --- fakes -------------------------------------------------------------------------------------


class FakeTransport:
    """Keeps every frame sent, with the loop time it was sent at."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.closed = False
        self.fail_with = fail_with
        self.on_send: Callable[[], None] | None = None

    async def send_text(self, text: str) -> None:
        await self.send_frame(text.encode())

    async def send_frame(self, data: bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((asyncio.get_running_loop().time(), data))
        if self.on_send is not None:
            self.on_send()

    async def close(self) -> None:
        self.closed = True

    def commands(self) -> list[AppCommand]:
        return [parse_command(text) for _, text in self.sent]

    def plays(self) -> list[PlayAudio]:
        return [command for command in self.commands() if isinstance(command, PlayAudio)]

    def checkpoints(self) -> list[Checkpoint]:
        return [command for command in self.commands() if isinstance(command, Checkpoint)]


class RecordingHooks:
    """Keeps everything a session reports."""

    def __init__(self) -> None:
        self.started_sessions: list[CallSession] = []
        self.audio_frames: list[tuple[Media, Pcm, float]] = []
        self.heard_audio: list[HeardAudio] = []
        self.events: list[tuple[str, dict[str, object]]] = []
        self.ended_reasons: list[str] = []

    def started(self, session: CallSession) -> None:
        self.started_sessions.append(session)

    def audio(self, media: Media, samples: bytes, arrival: float) -> None:
        assert type(samples) is bytes  # little-endian L16, as the recording takes it
        self.audio_frames.append((media, decode_l16(samples, ByteOrder.LITTLE), arrival))

    def heard(self, audio: HeardAudio) -> None:
        self.heard_audio.append(audio)

    def event(self, kind: str, detail: Mapping[str, object]) -> None:
        self.events.append((kind, dict(detail)))

    def ended(self, reason: str) -> None:
        self.ended_reasons.append(reason)

    def kinds(self, kind: str) -> list[dict[str, object]]:
        return [detail for name, detail in self.events if name == kind]


def make_session(
    **options: Any,
) -> tuple[CallSession, FakeTransport, RecordingHooks]:
    transport = FakeTransport()
    hooks = RecordingHooks()
    session = CallSession(transport, SessionOptions(**options), hooks, query={"call": "42"})
    return session, transport, hooks


async def finish(session: CallSession) -> None:
    session.close("test over")
    await session.aclose()


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


# --- frames the carrier sends ------------------------------------------------------------------


def frame(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def nested_start(
    stream_id: str = "S1",
    call_id: str = "C1",
    encoding: str | None = "audio/x-l16",
    rate: int = 8000,
    tracks: tuple[str, ...] = ("inbound",),
) -> str:
    start: dict[str, Any] = {
        "callId": call_id,
        "streamId": stream_id,
        "accountId": "500025",
        "tracks": list(tracks),
    }
    if encoding is not None:
        start["mediaFormat"] = {"encoding": encoding, "sampleRate": rate}
    return frame({"sequenceNumber": 0, "event": "start", "start": start, "extra_headers": "{}"})


def flat_start(content_type: str, stream_id: str = "S2", call_id: str = "C2") -> str:
    return frame(
        {
            "event": "start",
            "streamId": stream_id,
            "accountId": "500025",
            "callId": call_id,
            "from": "+911234",
            "to": "+919876",
            "direction": "inbound",
            "contentType": content_type,
            "audioTrack": "inbound",
        }
    )


def media_frame(
    payload: bytes,
    chunk: int | None = None,
    timestamp: int | None = None,
    track: str = "inbound",
    stream_id: str | None = "S1",
) -> str:
    media: dict[str, Any] = {"track": track, "payload": base64.b64encode(payload).decode()}
    if chunk is not None:
        media["chunk"] = chunk
    if timestamp is not None:
        media["timestamp"] = str(timestamp)
    obj: dict[str, Any] = {"event": "media", "media": media}
    if stream_id is not None:
        obj["streamId"] = stream_id
    return frame(obj)


def sine(frequency: float, seconds: float, rate: int, amplitude: int = 8000) -> Pcm:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def dominant_frequency(pcm: Pcm, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


def padded(pcm: Pcm, frame_samples: int) -> Pcm:
    return np.concatenate([pcm, np.zeros(-len(pcm) % frame_samples, dtype=np.int16)])


def l16_bytes(pcm: Pcm) -> bytes:
    return encode_l16(pcm, ByteOrder.LITTLE)


async def collect(session: CallSession, sample_rate: int | None = None) -> list[SessionEvent]:
    return [event async for event in session.events(sample_rate=sample_rate)]


# --- start -------------------------------------------------------------------------------------


async def test_nested_start_sets_the_metadata_and_the_inbound_format() -> None:
    session, _, hooks = make_session()
    assert session.describe() == "unknown-call"
    session.feed(nested_start("S1", "C1", "audio/x-l16", 16000, ("inbound", "outbound")))
    assert await asyncio.wait_for(session.wait_started(), 1.0) is True
    assert session.start is not None
    assert (session.stream_id, session.call_id) == ("S1", "C1")
    assert session.start.account_id == "500025"
    assert session.inbound_format == L16_16K
    assert session.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert session.query == {"call": "42"}
    assert session.describe() == "C1"
    assert hooks.started_sessions == [session]
    await finish(session)


async def test_flat_start_with_a_mulaw_content_type() -> None:
    session, _, hooks = make_session()
    session.feed(flat_start("audio/x-mulaw;rate=8000"))
    assert (session.stream_id, session.call_id) == ("S2", "C2")
    assert session.inbound_format == MULAW_8K
    assert session.byte_order is None  # mu-law has none
    pcm = sine(300, 0.02, 8000)
    payload = encode_mulaw(pcm)
    session.feed(media_frame(payload, chunk=1))
    [(media, decoded, _)] = hooks.audio_frames
    assert media.chunk == 1
    np.testing.assert_array_equal(decoded, decode_mulaw(payload))
    await finish(session)


async def test_whole_samples_are_checked_at_the_format_start_gave() -> None:
    """An odd-length payload is whole mu-law samples but not L16 ones: the check follows the
    format of ``start``, not the one the session was made expecting."""
    mulaw, _, mulaw_hooks = make_session()  # expects L16
    mulaw.feed(flat_start("audio/x-mulaw;rate=8000"))
    mulaw.feed(media_frame(b"\xff" * 159, chunk=1))
    assert (mulaw.stats.frames_malformed, len(mulaw_hooks.audio_frames)) == (0, 1)
    l16, _, l16_hooks = make_session(expected_format=MULAW_8K)
    l16.feed(flat_start("audio/x-l16;rate=8000"))
    l16.feed(media_frame(b"\xff" * 159, chunk=1))
    assert (l16.stats.frames_malformed, len(l16_hooks.audio_frames)) == (1, 0)
    await finish(mulaw)
    await finish(l16)


async def test_start_without_a_format_keeps_the_expected_format() -> None:
    session, _, _ = make_session(expected_format=L16_16K)
    session.feed(nested_start(encoding=None))
    assert session.inbound_format == L16_16K
    await finish(session)


async def test_a_second_start_is_ignored() -> None:
    session, _, hooks = make_session()
    session.feed(nested_start("S1", "C1", "audio/x-l16", 8000))
    session.feed(nested_start("S9", "C9", "audio/x-l16", 16000))
    assert (session.stream_id, session.call_id) == ("S1", "C1")
    assert session.inbound_format == L16_8K
    assert len(hooks.started_sessions) == 1
    await finish(session)


async def test_events_before_start_wait_for_it_and_follow_it_in_order() -> None:
    session, _, hooks = make_session(expected_format=L16_8K, byte_order=ByteOrder.LITTLE)
    pcm = sine(500, 0.02, 16000)
    session.feed(media_frame(l16_bytes(pcm), chunk=3, stream_id="S7"))
    session.feed(frame({"event": "dtmf", "dtmf": {"digit": "5"}}))
    session.feed(frame({"event": "playedStream", "name": "early"}))
    assert hooks.started_sessions == [] and hooks.audio_frames == [] and hooks.events == []

    # The start names 16 kHz: the held frame is read in it, then the held events follow.
    session.feed(nested_start("S7", "C7", "audio/x-l16", 16000))
    assert hooks.started_sessions == [session]
    assert session.call_id == "C7" and session.inbound_format == L16_16K
    [(media, decoded, _)] = hooks.audio_frames
    assert media.chunk == 3
    np.testing.assert_array_equal(decoded, pcm)
    assert [kind for kind, _ in hooks.events] == ["dtmf", "checkpoint_played"]
    assert session.stats.frames_received == 1
    assert session.stats.frames_malformed == 0
    await finish(session)


async def test_media_without_start_begins_the_stream_in_the_expected_format() -> None:
    """A carrier may send no start (after a reconnect): past HELD_BEFORE_START events the stream
    begins without it, every held frame kept in order."""
    session, _, hooks = make_session(expected_format=L16_8K, byte_order=ByteOrder.LITTLE)
    pcm = [sine(300 + 10 * n, 0.02, 8000) for n in range(HELD_BEFORE_START + 1)]
    for chunk, samples in enumerate(pcm[:-1]):
        session.feed(media_frame(l16_bytes(samples), chunk=chunk, stream_id="S7"))
    assert hooks.started_sessions == []
    session.feed(media_frame(l16_bytes(pcm[-1]), chunk=len(pcm) - 1, stream_id="S7"))
    assert await asyncio.wait_for(session.wait_started(), 1.0) is True
    assert session.stream_id == "S7"
    assert [media.chunk for media, _, _ in hooks.audio_frames] == list(range(len(pcm)))
    np.testing.assert_array_equal(
        np.concatenate([decoded for _, decoded, _ in hooks.audio_frames]), np.concatenate(pcm)
    )

    # The start that comes after fills in the metadata but cannot change the format any more.
    session.feed(nested_start("S7", "C7", "audio/x-l16", 16000))
    assert session.call_id == "C7"
    assert session.inbound_format == L16_8K
    assert hooks.started_sessions == [session]
    await finish(session)


async def test_what_waits_for_the_start_is_small() -> None:
    """Held events keep no unknown fields, and no media frame of over a second of audio."""
    session, _, hooks = make_session(expected_format=L16_8K, byte_order=ByteOrder.LITTLE)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(HELD_BEFORE_START - 1):
            session.feed(frame({"event": "somethingNew", "field": "x" * 500_000}))
        session.feed(media_frame(b"\x01\x00" * 16_001))  # a second and more at 16 kHz
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 100_000, held
    assert hooks.started_sessions == []
    assert session.stats.frames_malformed == 1
    await finish(session)
    assert len(hooks.kinds("unknown_event")) == UNKNOWN_NOTED
    assert session.stats.unknown_events == HELD_BEFORE_START - 1  # all held, then counted


async def test_media_of_a_socket_closed_before_any_start_is_kept() -> None:
    session, _, hooks = make_session(expected_format=L16_8K, byte_order=ByteOrder.LITTLE)
    pcm = sine(500, 0.02, 8000)
    session.feed(media_frame(l16_bytes(pcm), chunk=0))
    session.feed(frame({"event": "dtmf", "dtmf": {"digit": "#"}}))
    await finish(session)
    assert hooks.started_sessions == [session]
    np.testing.assert_array_equal(hooks.audio_frames[0][1], pcm)
    assert hooks.kinds("dtmf") == [{"digit": "#"}]
    assert hooks.ended_reasons == ["test over"]


async def test_wait_started_is_false_when_the_socket_closes_first() -> None:
    session, _, hooks = make_session()
    waiter = asyncio.ensure_future(session.wait_started())
    await asyncio.sleep(0)
    session.close("socket closed")
    assert await asyncio.wait_for(waiter, 1.0) is False
    assert hooks.started_sessions == []
    assert hooks.ended_reasons == ["socket closed"]


# --- malformed and other frames ----------------------------------------------------------------


async def test_malformed_frames_are_counted_reported_and_survived() -> None:
    session, _, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    bad = [
        "this is not json",
        frame({"no": "event"}),
        frame({"event": "media"}),  # no media object
        media_frame(b"\x01\x02\x03"),  # not a whole number of L16 samples
        frame({"event": "media", "media": {"payload": "%%% not base64 %%%"}}),
        frame({"event": "dtmf", "dtmf": {}}),
        frame({"event": "playedStream"}),  # no name
    ]
    for text in bad:
        session.feed(text)
    assert session.stats.frames_malformed == len(bad)
    reports = hooks.kinds("malformed_frame")
    assert len(reports) == len(bad)
    assert all(isinstance(report["problem"], str) and report["problem"] for report in reports)
    assert not session.closed

    pcm = sine(700, 0.02, 8000)
    session.feed(media_frame(l16_bytes(pcm)))
    assert len(hooks.audio_frames) == 1
    np.testing.assert_array_equal(hooks.audio_frames[0][1], pcm)
    assert session.stats.frames_received == 1
    await finish(session)


async def test_unknown_events_are_noted_not_fatal() -> None:
    session, _, hooks = make_session()
    session.feed(nested_start())
    session.feed(frame({"event": "mark", "name": "x"}))
    assert hooks.kinds("unknown_event") == [{"event": "mark"}]
    assert session.stats.frames_malformed == 0
    assert not session.closed
    for _ in range(20):
        session.feed(frame({"event": "mark"}))
    assert len(hooks.kinds("unknown_event")) == UNKNOWN_NOTED  # the rest are only counted
    assert session.stats.unknown_events == 21
    await finish(session)


async def test_byte_order_detection_is_reported_and_held_frames_flushed_at_close() -> None:
    session, _, hooks = make_session()  # byte_order None: detect
    session.feed(nested_start())
    rng = np.random.default_rng(5)
    # Full-scale noise is as rough in either order: it never decides, so its frames stay held.
    frames = [rng.integers(-32768, 32768, 160, dtype=np.int16) for _ in range(3)]
    for pcm in frames:
        session.feed(media_frame(encode_l16(pcm, ByteOrder.BIG)))
    assert hooks.audio_frames == []
    session.close("socket closed")
    assert len(hooks.audio_frames) == 3
    for (_, decoded, _), pcm in zip(hooks.audio_frames, frames, strict=True):
        np.testing.assert_array_equal(decoded, pcm)
    assert hooks.ended_reasons == ["socket closed"]


async def test_byte_order_decision_is_kept_as_an_event() -> None:
    session, _, hooks = make_session()
    session.feed(nested_start())
    rng = np.random.default_rng(6)
    frames = [rng.normal(0, 300, 160).astype(np.int16) for _ in range(15)]
    for pcm in frames:
        session.feed(media_frame(encode_l16(pcm, ByteOrder.BIG)))
    assert hooks.kinds("byte_order") == [{"order": "big", "frames": 1}]  # clear at once
    assert session.byte_order is ByteOrder.BIG
    decoded = np.concatenate([pcm for _, pcm, _ in hooks.audio_frames])
    np.testing.assert_array_equal(decoded, np.concatenate(frames))
    await finish(session)


# --- events for the handler --------------------------------------------------------------------


async def test_events_resample_8_khz_caller_audio_to_16_khz() -> None:
    session, _, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    events = asyncio.ensure_future(collect(session, sample_rate=16000))
    await asyncio.sleep(0)
    tone = sine(440, 1.0, 8000)
    for chunk, start in enumerate(range(0, len(tone), 160)):
        session.feed(media_frame(l16_bytes(tone[start : start + 160]), chunk, 1000 + 20 * chunk))
    session.feed(frame({"event": "dtmf", "dtmf": {"digit": "7"}}))
    session.close("socket closed")
    received = await asyncio.wait_for(events, 2.0)

    audio = [event for event in received if isinstance(event, CallerAudio)]
    assert all(event.sample_rate == 16000 and event.track is Track.INBOUND for event in audio)
    # One event per frame, with its timestamp (a resampler tail at the end may follow).
    stamped = [event.timestamp for event in audio if event.timestamp is not None]
    assert stamped == [1000 + 20 * chunk for chunk in range(50)]
    pcm = np.concatenate([event.pcm for event in audio])
    # soxr holds back up to ~115 ms while streaming; the rest is 16 kHz audio of the same tone.
    assert 14000 <= len(pcm) <= 16000
    assert dominant_frequency(pcm, 16000) == pytest.approx(440, abs=5)
    assert received.index(DtmfReceived("7")) == 50  # after the audio that came before it


async def test_closing_hands_the_handler_the_resampled_tail() -> None:
    """Every second of 8 kHz caller audio becomes a second at 16 kHz, the tail included: at the
    end of the stream the resampler must be flushed (audio.resample: "call flush where the audio
    really ends (the end of an utterance, of a call)")."""
    session, _, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    events = asyncio.ensure_future(collect(session, sample_rate=16000))
    await asyncio.sleep(0)
    tone = sine(440, 1.0, 8000)
    for start in range(0, len(tone), 160):
        session.feed(media_frame(l16_bytes(tone[start : start + 160])))
    session.close("socket closed")
    received = await asyncio.wait_for(events, 2.0)
    total = sum(len(event.pcm) for event in received if isinstance(event, CallerAudio))
    assert total == pytest.approx(2 * len(tone), abs=2)


async def test_events_at_the_stream_rate_pass_audio_through() -> None:
    session, _, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start(rate=16000))
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    tone = sine(1000, 0.2, 16000)
    for start in range(0, len(tone), 320):
        session.feed(media_frame(l16_bytes(tone[start : start + 320])))
    session.close("socket closed")
    audio = [e for e in await asyncio.wait_for(events, 1.0) if isinstance(e, CallerAudio)]
    assert all(event.sample_rate == 16000 for event in audio)
    np.testing.assert_array_equal(np.concatenate([event.pcm for event in audio]), tone)


async def test_audio_before_the_handler_listens_is_not_queued() -> None:
    session, _, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    session.feed(media_frame(l16_bytes(sine(300, 0.02, 8000)), chunk=0))
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    session.feed(media_frame(l16_bytes(sine(300, 0.02, 8000)), chunk=1))
    session.close("socket closed")
    received = await asyncio.wait_for(events, 1.0)
    assert len([event for event in received if isinstance(event, CallerAudio)]) == 1
    assert len(hooks.audio_frames) == 2  # the recording still gets both


async def test_stop_from_the_carrier_ends_the_events() -> None:
    session, _, hooks = make_session()
    session.feed(nested_start())
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    session.feed(frame({"event": "dtmf", "digit": "#"}))
    session.feed(frame({"event": "stop", "streamId": "S1", "reason": "call_ended"}))
    assert await asyncio.wait_for(events, 1.0) == [DtmfReceived("#")]
    assert session.closed
    assert session.end_reason == "stop"
    assert hooks.kinds("stop") == [{"reason": "call_ended"}]
    assert hooks.ended_reasons == ["stop"]
    session.feed(media_frame(b"\x00\x00" * 160))  # ignored once closed
    assert session.stats.frames_received == 0


async def test_a_handler_that_never_reads_does_not_grow_the_backlog() -> None:
    backlog = 20
    session, _, _ = make_session(byte_order=ByteOrder.LITTLE, event_backlog=backlog)
    session.feed(nested_start())
    events = session.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # the handler starts listening, reads one event, then stalls
    session.feed(media_frame(l16_bytes(sine(300, 0.02, 8000)), chunk=0, timestamp=0))
    assert isinstance(await asyncio.wait_for(first, 1.0), CallerAudio)

    fed = 300
    for chunk in range(1, fed + 1):
        session.feed(media_frame(l16_bytes(sine(300, 0.02, 8000)), chunk, timestamp=20 * chunk))
    assert session.stats.events_dropped == fed - backlog
    session.close("socket closed")
    rest = [event async for event in events]
    assert len(rest) <= backlog
    assert session.stats.events_dropped + len(rest) == fed
    # What is kept is the newest audio, in order.
    timestamps = [event.timestamp for event in rest if isinstance(event, CallerAudio)]
    assert timestamps == [20 * chunk for chunk in range(fed - len(rest) + 1, fed + 1)]


# --- play --------------------------------------------------------------------------------------


async def test_play_sends_20_ms_frames_padded_with_silence_then_a_checkpoint() -> None:
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start("S1"))
    audio = sine(440, 1234 / 8000, 8000)
    handle = await session.play(audio, 8000)
    await until(lambda: len(transport.checkpoints()) == 1)

    commands = transport.commands()
    plays = transport.plays()
    assert len(plays) == math.ceil(len(audio) / 160) == 8
    assert commands[-1] == Checkpoint(handle.name, "S1")
    assert all(isinstance(command, PlayAudio) for command in commands[:-1])
    for play in plays:
        assert (play.encoding, play.sample_rate, play.stream_id) == (Encoding.L16, 8000, "S1")
        assert len(play.payload) == 320
    sent = np.frombuffer(b"".join(play.payload for play in plays), dtype="<i2")
    np.testing.assert_array_equal(sent, padded(audio, 160))
    assert session.outbound_format == L16_8K
    assert not handle.done
    # The wire frames are JSON with the documented field names.
    wire = orjson.loads(transport.sent[0][1])
    assert wire["event"] == "playAudio"
    assert wire["streamId"] == "S1"
    assert wire["media"]["contentType"] == "audio/x-l16"
    assert wire["media"]["sampleRate"] == 8000
    await finish(session)


async def test_play_takes_little_endian_bytes_too() -> None:
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    audio = sine(440, 0.05, 8000)
    await session.play(l16_bytes(audio), 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    sent = np.frombuffer(b"".join(play.payload for play in transport.plays()), dtype="<i2")
    np.testing.assert_array_equal(sent, padded(audio, 160))
    await finish(session)


async def test_play_not_final_carries_the_partial_frame_to_the_next_call() -> None:
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    pieces = [sine(440, 100 / 8000, 8000), sine(660, 300 / 8000, 8000), sine(880, 50 / 8000, 8000)]
    first = await session.play(pieces[0], 8000, final=False)
    await until(lambda: len(transport.checkpoints()) == 1)
    assert transport.plays() == []  # 100 samples: not a whole frame yet
    await session.play(pieces[1], 8000, final=False)
    await until(lambda: len(transport.checkpoints()) == 2)
    assert len(transport.plays()) == 2  # 400 samples: two frames, 80 carried
    last = await session.play(pieces[2], 8000)
    await until(lambda: len(transport.checkpoints()) == 3)
    assert len(transport.plays()) == 3  # 130 samples: one frame, padded
    sent = np.frombuffer(b"".join(play.payload for play in transport.plays()), dtype="<i2")
    np.testing.assert_array_equal(sent, padded(np.concatenate(pieces), 160))
    assert first.name != last.name
    await finish(session)


async def test_play_resamples_to_the_outbound_rate() -> None:
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE, outbound_format=L16_16K)
    session.feed(nested_start())
    audio = sine(440, 0.1, 8000)
    await session.play(audio, 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    plays = transport.plays()
    assert all(play.sample_rate == 16000 and len(play.payload) == 640 for play in plays)
    sent = np.frombuffer(b"".join(play.payload for play in plays), dtype="<i2")
    assert len(sent) == 1600
    assert dominant_frequency(sent, 16000) == pytest.approx(440, abs=10)
    await finish(session)


async def test_mulaw_outbound_format() -> None:
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE, outbound_format=MULAW_8K)
    session.feed(nested_start("S1"))
    audio = sine(440, 0.1, 8000)
    await session.play(audio, 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    plays = transport.plays()
    assert len(plays) == 5
    for play in plays:
        assert (play.encoding, play.sample_rate, play.stream_id) == (Encoding.MULAW, 8000, "S1")
        assert len(play.payload) == 160
    assert b"".join(play.payload for play in plays) == encode_mulaw(audio)
    assert orjson.loads(transport.sent[0][1])["media"]["contentType"] == "audio/x-mulaw"
    await finish(session)


async def test_mulaw_inbound_plays_mulaw_by_default() -> None:
    session, transport, _ = make_session()
    session.feed(flat_start("audio/x-mulaw;rate=8000"))
    await session.play(sine(440, 0.02, 8000), 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    assert [play.encoding for play in transport.plays()] == [Encoding.MULAW]
    await finish(session)


async def test_big_endian_outbound_byte_order() -> None:
    session, transport, _ = make_session(
        byte_order=ByteOrder.LITTLE, outbound_byte_order=ByteOrder.BIG
    )
    session.feed(nested_start())
    audio = sine(440, 0.04, 8000)
    await session.play(audio, 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    sent = np.frombuffer(b"".join(play.payload for play in transport.plays()), dtype=">i2")
    np.testing.assert_array_equal(sent, audio)
    await finish(session)


async def test_played_stream_resolves_the_handle_played() -> None:
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start("S1"))
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    handle = await session.play(sine(440, 0.1, 8000), 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    session.feed(frame({"event": "playedStream", "streamId": "S1", "name": handle.name}))
    assert await asyncio.wait_for(handle.wait(), 1.0) is PlayOutcome.PLAYED
    assert handle.outcome is PlayOutcome.PLAYED
    assert hooks.kinds("checkpoint_played") == [{"name": handle.name, "known": True}]

    # The older event name ``played`` and a missing streamId are accepted too.
    mine = await session.checkpoint("mine")
    await until(lambda: len(transport.checkpoints()) == 2)
    assert transport.checkpoints()[-1] == Checkpoint("mine", "S1")
    session.feed(frame({"event": "played", "name": "mine"}))
    assert await asyncio.wait_for(mine.wait(), 1.0) is PlayOutcome.PLAYED

    session.close("socket closed")
    received = await asyncio.wait_for(events, 1.0)
    assert received == [CheckpointPlayed(handle.name), CheckpointPlayed("mine")]
    assert session.playback_stats.frames_sent == 5


async def test_clear_voids_the_play_sends_clear_audio_and_times_the_round_trip() -> None:
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE, max_lead=0.1)
    session.feed(nested_start("S1"))
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    handle = await session.play(sine(440, 2.0, 8000), 8000)
    await until(lambda: len(transport.plays()) >= 5)

    await session.clear()
    assert handle.outcome is PlayOutcome.CLEARED
    assert transport.commands()[-1] == ClearAudio("S1")
    assert hooks.kinds("clear") == [{"voided": [handle.name]}]
    sent_at_clear = len(transport.plays())
    assert sent_at_clear < 100
    await asyncio.sleep(0.1)
    assert len(transport.plays()) == sent_at_clear  # nothing more is sent
    assert transport.checkpoints() == []  # its checkpoint never went out

    session.feed(frame({"sequenceNumber": 9, "event": "clearedAudio", "streamId": "S1"}))
    [round_trip] = session.stats.clear_round_trips
    assert 0.09 <= round_trip < 1.0
    [cleared] = hooks.kinds("cleared")
    assert cleared["round_trip_ms"] == pytest.approx(round_trip * 1000, abs=0.01)
    session.close("socket closed")
    received = await asyncio.wait_for(events, 1.0)
    assert received == [AudioCleared(round_trip)]


async def test_cleared_audio_without_a_clear_is_ignored() -> None:
    session, _, hooks = make_session()
    session.feed(nested_start())
    session.feed(frame({"event": "clearedAudio"}))
    assert session.stats.clear_round_trips == []
    assert hooks.kinds("cleared") == []
    await finish(session)


async def test_play_after_a_clear_starts_afresh() -> None:
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    await session.play(sine(440, 0.05, 8000), 8000, final=False)  # leaves 80 samples held
    await until(lambda: len(transport.checkpoints()) == 1)
    await session.clear()
    before = len(transport.plays())
    audio = sine(660, 0.04, 8000)
    handle = await session.play(audio, 8000)
    await until(lambda: len(transport.checkpoints()) == 2)
    assert transport.checkpoints()[-1].name == handle.name
    sent = np.frombuffer(b"".join(p.payload for p in transport.plays()[before:]), dtype="<i2")
    np.testing.assert_array_equal(sent, audio)  # the held 80 samples were dropped by the clear
    await finish(session)


async def test_close_loses_the_pending_play_and_ends_the_session() -> None:
    session, _, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    handle = await session.play(sine(440, 2.0, 8000), 8000)
    await asyncio.sleep(0.02)
    session.close("socket closed")
    assert await asyncio.wait_for(handle.wait(), 1.0) is PlayOutcome.LOST
    await session.aclose()
    assert session.closed
    assert session.end_reason == "socket closed"
    assert hooks.ended_reasons == ["socket closed"]
    with pytest.raises(SessionError, match="ended"):
        await session.play(sine(440, 0.02, 8000), 8000)
    session.close("again")  # a second close changes nothing
    assert hooks.ended_reasons == ["socket closed"]


async def test_unconfirmed_checkpoint_is_lost_after_the_grace_period() -> None:
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE, confirm_grace=0.05)
    session.feed(nested_start())
    handle = await session.play(sine(440, 0.04, 8000), 8000)
    assert await asyncio.wait_for(handle.wait(), 1.0) is PlayOutcome.LOST
    assert hooks.kinds("checkpoint_lost") == [{"name": handle.name}]
    assert len(transport.checkpoints()) == 1
    await finish(session)


async def test_one_way_session_refuses_playback() -> None:
    session, transport, _ = make_session(bidirectional=False)
    session.feed(nested_start())
    with pytest.raises(SessionError, match="one-way"):
        await session.play(sine(440, 0.1, 8000), 8000)
    with pytest.raises(SessionError, match='bidirectional="true"'):
        await session.checkpoint("x")
    with pytest.raises(SessionError, match="one-way"):
        await session.clear()
    assert transport.sent == []
    await finish(session)


async def test_stop_sends_stop_and_closes_the_transport() -> None:
    session, transport, hooks = make_session()
    session.feed(nested_start("S1"))
    await session.stop()
    assert transport.commands() == [StopCommand("S1")]
    assert orjson.loads(transport.sent[0][1]) == {"event": "stop", "streamId": "S1"}
    assert transport.closed
    assert hooks.kinds("app_stop") == [{}]
    await finish(session)
    await session.stop()  # once the stream is over, nothing more is sent
    assert len(transport.sent) == 1


async def test_a_failing_transport_is_reported_as_a_session_error() -> None:
    transport = FakeTransport(fail_with=ConnectionResetError("peer gone"))
    session = CallSession(transport, SessionOptions(byte_order=ByteOrder.LITTLE))
    session.feed(nested_start())
    with pytest.raises(SessionError, match="could not send: peer gone"):
        await session.clear()
    with pytest.raises(SessionError, match="could not send"):
        await session.stop()
    await finish(session)


# --- pacing and the heard estimate, in real time -----------------------------------------------


async def test_play_is_paced_max_lead_ahead_then_one_frame_per_20_ms() -> None:
    max_lead = 0.1
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE, max_lead=max_lead)
    session.feed(nested_start())
    leads: list[float] = []
    transport.on_send = lambda: leads.append(session.lead)
    await session.play(sine(440, 0.5, 8000), 8000)
    await until(lambda: len(transport.checkpoints()) == 1)

    times = [at for at, text in transport.sent if isinstance(parse_command(text), PlayAudio)]
    assert len(times) == 25
    start = times[0]
    # The initial fill: max_lead of audio at once.
    assert times[4] - start < 0.01
    # Then each frame when the one before it started playing; never early, never far behind.
    for index in range(5, 25):
        due = start + (index - 4) * 0.02
        assert due - 0.001 <= times[index] <= due + 0.03, index
    assert 0.38 <= times[-1] - start <= 0.45
    assert max(leads) <= max_lead + 1e-6
    assert session.playback_stats.max_lead <= max_lead + 1e-9
    await finish(session)


async def test_what_the_caller_heard_is_reported_after_it_played() -> None:
    session, _, hooks = make_session(byte_order=ByteOrder.LITTLE, max_lead=0.2)
    session.feed(nested_start())
    audio = sine(440, 0.1, 8000)
    await session.play(audio, 8000)
    await asyncio.sleep(0.01)
    session.feed(media_frame(b"\x00\x00" * 160))
    assert hooks.heard_audio == []  # nothing has finished playing yet
    await asyncio.sleep(0.15)
    session.feed(media_frame(b"\x00\x00" * 160))
    heard = hooks.heard_audio
    assert len(heard) == 5
    pcm = np.frombuffer(b"".join(item.pcm for item in heard), dtype="<i2")
    np.testing.assert_array_equal(pcm, audio)
    starts = [item.started_at for item in heard]
    assert np.diff(starts) == pytest.approx([0.02] * 4)
    await finish(session)


async def test_close_reports_the_audio_cut_short() -> None:
    session, _, hooks = make_session(byte_order=ByteOrder.LITTLE, max_lead=0.2)
    session.feed(nested_start())
    await session.play(sine(440, 1.0, 8000), 8000)
    await asyncio.sleep(0.07)
    session.close("socket closed")
    heard = sum(len(item.pcm) // 2 for item in hooks.heard_audio)
    # About 50 ms played (from the carrier's tick 20 ms after the send) before the socket
    # closed: nothing after the close counts.
    assert 0.04 * 8000 <= heard <= 0.09 * 8000


# --- speech detection and barge-in ---------------------------------------------------------------


def fixture_speech() -> Pcm:
    """The male 8 kHz espeak-ng fixture (the detector finds it as one utterance: test_vad.py)."""
    with wave.open(str(Path(__file__).parents[1] / "data" / "speech_male_8k.wav"), "rb") as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return samples.astype(np.int16)


async def feed_audio(session: CallSession, pcm: Pcm, pace: float = 0.0) -> None:
    """Feed ``pcm`` as 20 ms frames at 8 kHz, ``pace`` seconds apart (0: as fast as possible)."""
    for start in range(0, len(pcm), 160):
        session.feed(media_frame(l16_bytes(padded(pcm[start : start + 160], 160))))
        await asyncio.sleep(pace)


async def test_detect_speech_reports_the_callers_utterance_in_order_with_its_audio() -> None:
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    session.detect_speech()
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    caller = np.concatenate([np.zeros(8000, np.int16), fixture_speech(), np.zeros(8000, np.int16)])
    await feed_audio(session, caller)
    session.close("socket closed")
    received = await asyncio.wait_for(events, 1.0)

    voice = [event for event in received if isinstance(event, SpeechStarted | SpeechEnded)]
    assert [type(event) for event in voice] == [SpeechStarted, SpeechEnded]
    started, ended = voice
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert 0.95 <= started.onset <= 1.15  # the fixture's first word, 1 s in
    # Each event comes right after the audio that completed it: detected is the audio so far.
    for event in voice:
        before = received[: received.index(event)]
        audio = sum(len(e.pcm) for e in before if isinstance(e, CallerAudio))
        assert audio == round(event.detected * 8000)
    assert [kind for kind, _ in hooks.events if kind.startswith("speech")] == [
        "speech_started",
        "speech_ended",
    ]
    assert transport.sent == []  # nothing was playing: no barge-in


async def test_speech_detection_from_the_options_starts_with_the_stream() -> None:
    session, _, hooks = make_session(byte_order=ByteOrder.LITTLE, speech=SpeechDetection())
    session.feed(nested_start())
    await feed_audio(session, np.concatenate([fixture_speech(), np.zeros(8000, np.int16)]))
    assert [kind for kind, _ in hooks.events if kind.startswith("speech")] == [
        "speech_started",
        "speech_ended",
    ]
    await finish(session)


async def test_barge_in_clears_the_playback_when_the_caller_talks_over_it() -> None:
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE, max_lead=0.2)
    session.feed(nested_start("S1"))
    session.detect_speech(SpeechDetection(barge_in=True))
    events = asyncio.ensure_future(collect(session))
    await asyncio.sleep(0)
    handle = await session.play(sine(440, 5.0, 8000), 8000)
    await feed_audio(session, np.zeros(1600, np.int16), pace=0.02)
    assert transport.plays()  # the agent is talking

    speech = fixture_speech()[800:]  # starts on a word
    await feed_audio(session, speech[:4000], pace=0.02)  # 0.5 s of speech, in real time
    await until(lambda: ClearAudio("S1") in transport.commands())
    assert await asyncio.wait_for(handle.wait(), 1.0) is PlayOutcome.CLEARED
    commands = transport.commands()
    after_clear = commands[commands.index(ClearAudio("S1")) + 1 :]
    assert not any(isinstance(command, PlayAudio | Checkpoint) for command in after_clear)

    # The clear left start_ms (200 ms) after the caller started speaking, give or take
    # the loop; the carrier's clearedAudio then times clear-to-silence.
    [onset_to_clear] = session.stats.barge_in_delays
    assert 0.19 <= onset_to_clear < 1.0
    [clear] = hooks.kinds("clear")
    assert clear == {
        "voided": [handle.name],
        "barge_in_onset_to_clear_ms": round(onset_to_clear * 1000, 1),
    }
    session.feed(frame({"event": "clearedAudio", "streamId": "S1"}))
    [round_trip] = session.stats.clear_round_trips

    # Playing again works, and goes out after the clear.
    again = await session.play(sine(660, 0.04, 8000), 8000)
    await until(
        lambda: transport.checkpoints() != [] and transport.checkpoints()[-1].name == again.name
    )
    session.close("socket closed")
    received = await asyncio.wait_for(events, 1.0)
    barge_ins = [event for event in received if isinstance(event, BargeIn)]
    assert len(barge_ins) == 1
    assert barge_ins[0].onset_to_clear == onset_to_clear
    assert barge_ins[0].voided == (handle.name,)
    assert isinstance(barge_ins[0].speech, SpeechStarted)
    assert AudioCleared(round_trip) in received
    order = [type(event) for event in received if not isinstance(event, CallerAudio)]
    assert order == [SpeechStarted, BargeIn, AudioCleared]  # the speech never ended
    await session.aclose()


async def test_no_barge_in_without_the_option_or_when_nothing_plays() -> None:
    # Speech events only: the playback is left alone.
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    session.detect_speech(SpeechDetection(barge_in=False))
    handle = await session.play(sine(440, 3.0, 8000), 8000)
    await feed_audio(session, fixture_speech()[:4800])
    assert hooks.kinds("speech_started")
    assert ClearAudio("S1") not in transport.commands()
    assert not handle.done
    await finish(session)

    # Barge-in on, but the agent's audio has played out: nothing to clear.
    session, transport, hooks = make_session(byte_order=ByteOrder.LITTLE)
    session.feed(nested_start())
    session.detect_speech(SpeechDetection(barge_in=True))
    await session.play(sine(440, 0.04, 8000), 8000)
    await until(lambda: len(transport.checkpoints()) == 1)
    await asyncio.sleep(0.06)  # its 40 ms have played, by the ledger
    await feed_audio(session, fixture_speech()[:4800])
    assert hooks.kinds("speech_started")
    assert ClearAudio("S1") not in transport.commands()
    assert session.stats.barge_in_delays == []
    await finish(session)


async def test_a_barge_in_during_a_slow_send_still_clears() -> None:
    """The socket is slow to take frames; the caller barges in while one is being sent."""
    session, transport, _ = make_session(byte_order=ByteOrder.LITTLE, max_lead=0.2)
    sending = asyncio.Event()
    real_send = transport.send_frame

    async def slow_send(data: bytes) -> None:
        sending.set()
        await asyncio.sleep(0.005)
        await real_send(data)

    transport.send_frame = slow_send  # type: ignore[method-assign]
    session.feed(nested_start("S1"))
    session.detect_speech(SpeechDetection(barge_in=True))
    await session.play(sine(440, 5.0, 8000), 8000)
    await asyncio.wait_for(sending.wait(), 1.0)  # the sender is inside a send now
    for start in range(0, 2400, 160):  # 300 ms of speech, at once
        session.feed(media_frame(l16_bytes(fixture_speech()[800 + start : 960 + start])))
    await until(lambda: ClearAudio("S1") in transport.commands(), timeout=1.0)
    await finish(session)


async def test_a_flood_of_starts_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session, _, _ = make_session()
    session.feed(nested_start())
    caplog.set_level(logging.INFO, logger="vobiz_stream")
    for number in range(500):
        session.feed(nested_start(call_id=f"C{number}"))
    assert session.stats.starts_ignored == 500
    assert session.call_id == "C1"
    assert [r.getMessage() for r in caplog.records if "second start" in r.getMessage()] == [
        "call C1: ignored a second start (and any after it)"
    ]
    await finish(session)
