"""StreamState with plain function calls: no socket, no event loop, time passed in."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import orjson
import pytest

from vobiz_stream.audio import ByteOrder, Pcm, decode_mulaw, encode_l16, encode_mulaw
from vobiz_stream.audio.vad import SpeechStarted
from vobiz_stream.core.playback import PlayOutcome
from vobiz_stream.core.protocol import (
    Checkpoint,
    ClearAudio,
    Media,
    PlayAudio,
    Start,
    Stop,
    encode,
    parse_command,
)
from vobiz_stream.core.stream import MALFORMED_KEPT, StreamState
from vobiz_stream.core.stream_events import (
    AudioCleared,
    BargeIn,
    ByteOrderFound,
    CallerAudio,
    CheckpointPlayed,
    DtmfReceived,
    MalformedFrame,
    SessionError,
    SessionOptions,
    SpeechDetection,
    StreamEnded,
    StreamEvent,
    StreamStarted,
)
from vobiz_stream.formats import AudioFormat, Encoding

SPEECH = Path(__file__).resolve().parent.parent / "data" / "speech_male_8k.wav"
L16_8K = AudioFormat(Encoding.L16, 8000)


def speech(seconds: float) -> Pcm:
    with wave.open(str(SPEECH)) as reader:
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return pcm[: int(seconds * 8000)].astype(np.int16)


def media_frames(
    pcm: Pcm, payload: bytes | None = None, order: ByteOrder = ByteOrder.LITTLE
) -> list[str]:
    """20 ms ``media`` frames of ``pcm`` as L16 in ``order``."""
    return [
        encode(Media(payload=encode_l16(pcm[n : n + 160], order), chunk=n // 160 + 1))
        for n in range(0, len(pcm) - 159, 160)
    ]


def started(options: SessionOptions | None = None, **kwargs: object) -> StreamState:
    state = StreamState(options, **kwargs)  # type: ignore[arg-type]
    events = state.feed(encode(Start(stream_id="s-1", call_id="c-1", media_format=L16_8K)), 0.0)
    assert events == [StreamStarted(state.start)]
    return state


def of_type(events: list[StreamEvent], kind: type) -> list:  # type: ignore[type-arg]
    return [event for event in events if isinstance(event, kind)]


def caller_pcm(events: list[StreamEvent]) -> Pcm:
    return np.concatenate([event.pcm for event in of_type(events, CallerAudio)])


# --- caller audio ------------------------------------------------------------------------------


def test_big_endian_l16_is_detected_and_decoded_in_order() -> None:
    state = started()
    pcm = speech(2.0)
    events: list[StreamEvent] = []
    for n, frame in enumerate(media_frames(pcm, order=ByteOrder.BIG)):
        events += state.feed(frame, n * 0.02)
    events += state.close("done", 2.0)
    assert of_type(events, ByteOrderFound)[0].order is ByteOrder.BIG
    assert state.byte_order is ByteOrder.BIG
    assert np.array_equal(caller_pcm(events), pcm[: len(pcm) // 160 * 160])
    assert events[-1] == StreamEnded("done")


def test_mulaw_is_decoded_and_resampled_to_the_rate_asked_for() -> None:
    state = StreamState(caller_rate=16000)
    start = Start(stream_id="s", media_format=AudioFormat(Encoding.MULAW, 8000))
    state.feed(encode(start), 0.0)
    pcm = speech(1.0)
    payload = encode_mulaw(pcm)
    events: list[StreamEvent] = []
    for n in range(50):
        events += state.feed(encode(Media(payload=payload[n * 160 : (n + 1) * 160])), n * 0.02)
    events += state.close("done", 1.0)
    audio = of_type(events, CallerAudio)
    assert {event.sample_rate for event in audio} == {16000}
    assert len(caller_pcm(events)) == 16000  # every sample, at twice the rate
    direct = StreamState()
    direct.feed(encode(start), 0.0)
    plain = caller_pcm(direct.feed(encode(Media(payload=payload[:160])), 0.0))
    assert np.array_equal(plain, decode_mulaw(payload[:160]))


class ListRecorder:
    def __init__(self) -> None:
        self.frames: list[object] = []

    def begin(self) -> None:
        self.frames.append("begin")

    def audio(self, media: Media, samples: bytes, arrival: float) -> None:
        self.frames.append((media, samples, arrival))


def test_the_recorder_gets_each_frame_as_little_endian_bytes_with_its_arrival() -> None:
    recorder = ListRecorder()
    state = StreamState(
        SessionOptions(byte_order=ByteOrder.BIG), caller_audio=False, recorder=recorder
    )
    frames = media_frames(speech(0.06), order=ByteOrder.BIG)
    assert not state.feed(frames[0], 12.48)  # held until the start...
    events = state.feed(encode(Start(stream_id="s", media_format=L16_8K)), 12.49)
    assert events == [StreamStarted(state.start)]
    assert not state.feed(frames[1], 12.5) and not state.feed(frames[2], 12.52)
    assert recorder.frames[0] == "begin"  # ...which the recorder hears of first
    assert [arrival for _, _, arrival in recorder.frames[1:]] == [12.49, 12.5, 12.52]
    assert b"".join(samples for _, samples, _ in recorder.frames[1:]) == encode_l16(
        speech(0.06), ByteOrder.LITTLE
    )


def test_frames_before_start_are_held_then_handled_in_order() -> None:
    state = StreamState(SessionOptions(byte_order=ByteOrder.LITTLE))
    frames = media_frames(speech(0.1))
    assert [state.feed(frame, 0.0) for frame in frames] == [[]] * 5
    assert state.feed(orjson.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}), 0.0) == []
    events = state.feed(encode(Start(stream_id="s", media_format=L16_8K)), 0.1)
    assert isinstance(events[0], StreamStarted)
    assert np.array_equal(caller_pcm(events), speech(0.1))
    assert events[-1] == DtmfReceived("5")


# --- bad input ---------------------------------------------------------------------------------


def test_malformed_frames_are_reported_counted_and_skipped() -> None:
    state = started(SessionOptions(byte_order=ByteOrder.LITTLE))
    bad = [b"{not json", b'{"event":"media","media":{"payload":"@@@"}}', b"\xff\xfe"]
    reported: list[StreamEvent] = []
    for n in range(MALFORMED_KEPT + 5):
        reported += state.feed(bad[n % len(bad)], 0.0)
    assert len(reported) == MALFORMED_KEPT
    assert all(isinstance(event, MalformedFrame) for event in reported)
    assert state.stats.frames_malformed == MALFORMED_KEPT + 5
    events = state.feed(media_frames(speech(0.02))[0], 0.1)  # the call goes on
    assert np.array_equal(caller_pcm(events), speech(0.02))


def test_a_line_feed_in_a_problem_is_escaped() -> None:
    state = started()
    [event] = state.feed(b'{"event":"media","media":{"payload":"\\n\\nforged"}}', 0.0)
    assert isinstance(event, MalformedFrame) and "\n" not in event.problem


def test_a_stop_is_reported_and_after_close_frames_are_ignored() -> None:
    state = started()
    [stop] = state.feed(orjson.dumps({"event": "stop", "reason": "hangup"}), 1.0)
    assert isinstance(stop, Stop) and stop.reason == "hangup"
    assert state.close("stop", 1.0) == [StreamEnded("stop")]
    assert state.closed
    assert not state.feed(media_frames(speech(0.02))[0], 1.1)


def test_a_start_for_another_call_ends_a_bound_stream() -> None:
    state = StreamState(bound_call_id="c-1")
    events = state.feed(encode(Start(stream_id="s", call_id="c-2")), 0.0)
    assert events == [StreamEnded("call_mismatch")]
    assert state.mismatched_call_id == "c-2"


# --- the app's audio ---------------------------------------------------------------------------


def commands(frames: list[bytes]) -> list[object]:
    return [parse_command(frame) for frame in frames]


def test_play_is_paced_by_the_time_passed_in() -> None:
    state = started(SessionOptions(max_lead=0.2))
    handle = state.play(np.zeros(8000, dtype=np.int16), 8000)  # 1 s: 50 frames
    mark = state.checkpoint("end")
    first = commands(state.due(0.0))
    assert len(first) == 10 and all(isinstance(c, PlayAudio) for c in first)  # 0.2 s ahead
    assert state.due(0.0) == []
    # The first frame plays from the carrier's next tick (0.02); once it has, one more may go.
    assert state.next_deadline(0.0) == pytest.approx(0.04)
    assert len(state.due(0.1)) == 4
    rest: list[object] = []
    for step in range(1, 10):
        rest += commands(state.due(0.1 + 0.2 * step))
    assert len(rest) == 38  # 36 frames, the play's own mark, then the checkpoint
    assert rest[-2] == Checkpoint(handle.name, "s-1") and rest[-1] == Checkpoint("end", "s-1")
    assert isinstance(rest[0], PlayAudio) and rest[0].stream_id == "s-1"
    events = state.feed(orjson.dumps({"event": "playedStream", "name": "end"}), 1.0)
    assert events == [CheckpointPlayed("end")]
    assert mark.outcome is PlayOutcome.PLAYED and not handle.done  # its own mark is not sent
    assert of_type(
        state.feed(orjson.dumps({"event": "playedStream", "name": "x"}), 1.0), CheckpointPlayed
    ) == [CheckpointPlayed("x", known=False)]


def test_clear_voids_the_queue_and_its_frame_goes_first() -> None:
    state = started()
    handle = state.play(np.zeros(8000, dtype=np.int16), 8000)
    state.due(0.0)
    assert state.clear(0.05) == (handle.name,)
    assert handle.outcome is PlayOutcome.CLEARED
    assert state.next_deadline(0.05) == 0.05
    assert commands(state.due(0.06)) == [ClearAudio(stream_id="s-1")]
    assert state.due(1.0) == []  # nothing left of the play
    events = state.feed(orjson.dumps({"event": "clearedAudio", "streamId": "s-1"}), 0.26)
    assert len(events) == 1 and isinstance(events[0], AudioCleared)
    assert abs(events[0].round_trip - 0.2) < 1e-9  # from the clear leaving to its answer
    assert state.stats.clear_round_trips == [events[0].round_trip]


def test_caller_speech_over_the_app_audio_clears_it() -> None:
    state = started(SessionOptions(speech=SpeechDetection(barge_in=True)))
    handle = state.play(np.zeros(16000, dtype=np.int16), 8000)  # 2 s of app audio
    state.due(0.0)
    events: list[StreamEvent] = []
    now = 0.0
    for frame in media_frames(speech(1.5)):
        now += 0.02
        state.due(now)
        events += state.feed(frame, now)
        if of_type(events, BargeIn):
            break
    [barge_in] = of_type(events, BargeIn)
    assert isinstance(barge_in.speech, SpeechStarted)
    assert barge_in.voided == (handle.name,)
    assert 0.2 - 1e-9 <= barge_in.onset_to_clear < 0.4  # the detector's 200 ms, and a frame or so
    assert handle.outcome is PlayOutcome.CLEARED
    assert commands(state.due(now)) == [ClearAudio(stream_id="s-1")]  # and no more app audio


def test_no_barge_in_when_nothing_plays() -> None:
    state = started(SessionOptions(speech=SpeechDetection(barge_in=True)))
    events: list[StreamEvent] = []
    for n, frame in enumerate(media_frames(speech(1.5))):
        events += state.feed(frame, n * 0.02)
    assert of_type(events, SpeechStarted) and not of_type(events, BargeIn)


def test_a_one_way_stream_refuses_to_play() -> None:
    state = started(SessionOptions(bidirectional=False))
    with pytest.raises(SessionError, match="one-way"):
        state.play(np.zeros(160, dtype=np.int16), 8000)


def test_audio_before_a_mismatched_start_stays_the_bound_calls() -> None:
    state = StreamState(SessionOptions(byte_order=ByteOrder.LITTLE), bound_call_id="c-1")
    state.call_id = "c-1"
    for frame in media_frames(speech(0.1)):
        assert state.feed(frame, 0.0) == []
    events = state.feed(encode(Start(stream_id="s", call_id="c-2")), 0.1)
    assert events[0] == StreamStarted(None) and events[-1] == StreamEnded("call_mismatch")
    assert np.array_equal(caller_pcm(events), speech(0.1))
    assert (state.call_id, state.mismatched_call_id) == ("c-1", "c-2")
