"""The protocol core: every shape of PROTOCOL.md parses, every message round-trips, bad frames fail
with ProtocolError and nothing else."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vobiz_stream.core import protocol
from vobiz_stream.core.protocol import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    Media,
    MediaEncoder,
    PlayAudio,
    PlayedStream,
    ProtocolError,
    Start,
    StartShape,
    Stop,
    StopCommand,
    Track,
    Unknown,
    encode,
    parse_command,
    parse_event,
)
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.formats import AudioFormat, Encoding

SPEECH_BYTES = bytes(range(256)) + bytes(range(64))  # 320 bytes: one 20 ms L16 frame at 8 kHz
B64 = base64.b64encode(SPEECH_BYTES).decode()


# --- the seed documents' own frames ----------------------------------------------------------


def test_seed_flat_start() -> None:
    frame = """{
    "event": "start",
    "streamId": "20170ada-f610-433b-8758-c02a2aab3662",
    "accountId": "MA_2210JXXN",
    "callId": "CALL_abc123xyz",
    "from": "+14155551111",
    "to": "+14155552222",
    "direction": "inbound",
    "contentType": "audio/x-l16;rate=8000",
    "audioTrack": "inbound"
    }"""
    start = parse_event(frame)
    assert start == Start(
        stream_id="20170ada-f610-433b-8758-c02a2aab3662",
        call_id="CALL_abc123xyz",
        account_id="MA_2210JXXN",
        tracks=(Track.INBOUND,),
        media_format=AudioFormat(Encoding.L16, 8000),
        from_number="+14155551111",
        to_number="+14155552222",
        direction="inbound",
        shape=StartShape.FLAT,
    )


def test_seed_minimal_start_has_no_format() -> None:
    frame = '{"event": "start", "streamId": "2017", "callId": "CALL_abc123xyz"}'
    start = parse_event(frame)
    assert isinstance(start, Start)
    assert start.call_id == "CALL_abc123xyz"
    assert start.stream_id == "2017"
    assert start.media_format is None
    assert start.tracks == (Track.INBOUND,)


def test_seed_media_carries_its_format() -> None:
    frame = json.dumps(
        {
            "event": "media",
            "streamId": "20170ada",
            "media": {
                "payload": B64,
                "contentType": "audio/x-l16",
                "sampleRate": 8000,
                "timestamp": 1634567890123,
            },
        }
    )
    media = parse_event(frame)
    assert media == Media(
        payload=SPEECH_BYTES,
        timestamp=1634567890123,
        stream_id="20170ada",
        media_format=AudioFormat(Encoding.L16, 8000),
    )


def test_seed_stop() -> None:
    frame = '{"event": "stop", "streamId": "20170ada", "reason": "call_ended"}'
    assert parse_event(frame) == Stop(stream_id="20170ada", reason="call_ended")


def test_seed_bidirectional_sequence() -> None:
    """Seed 001's typical event sequence, both directions."""
    assert parse_event(
        '{"event": "playedStream", "streamId": "S", "name": "customer greeting audio"}'
    ) == PlayedStream(name="customer greeting audio", stream_id="S")
    assert parse_event(
        '{"sequenceNumber": 0, "event": "clearedAudio", "streamId": "S"}'
    ) == ClearedAudio(stream_id="S", sequence_number=0)
    play = parse_command(
        json.dumps(
            {
                "event": "playAudio",
                "media": {"contentType": "audio/x-l16", "sampleRate": 8000, "payload": B64},
            }
        )
    )
    assert play == PlayAudio(payload=SPEECH_BYTES, encoding=Encoding.L16, sample_rate=8000)
    assert parse_command(
        '{"event": "checkpoint", "streamId": "S", "name": "greeting-complete"}'
    ) == Checkpoint(name="greeting-complete", stream_id="S")
    assert parse_command('{"event": "clearAudio", "streamId": "S"}') == ClearAudio(stream_id="S")
    assert parse_command('{"event": "stop", "streamId": "S"}') == StopCommand(stream_id="S")


# --- live shapes -----------------------------------------------------------------------------


def test_live_nested_start() -> None:
    frame = (
        '{"sequenceNumber": 0, "event": "start", "start": {"callId": "5401fd2e-1", '
        '"streamId": "c4dfd815-2", "accountId": "500025", "tracks": ["inbound"], '
        '"mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000}}, "extra_headers": "{}"}'
    )
    assert parse_event(frame) == Start(
        stream_id="c4dfd815-2",
        call_id="5401fd2e-1",
        account_id="500025",
        tracks=(Track.INBOUND,),
        media_format=AudioFormat(Encoding.L16, 16000),
        sequence_number=0,
        extra_headers="{}",
        shape=StartShape.NESTED,
    )


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("audio/x-l16", Encoding.L16),
        ("L16", Encoding.L16),
        ("linear", Encoding.L16),
        ("audio/x-mulaw", Encoding.MULAW),
        ("mulaw", Encoding.MULAW),
        ("ulaw", Encoding.MULAW),
        ("PCMU", Encoding.MULAW),
    ],
)
def test_start_encodings_match_loosely(encoding: str, expected: Encoding) -> None:
    frame = json.dumps(
        {"event": "start", "start": {"mediaFormat": {"encoding": encoding, "sampleRate": 8000}}}
    )
    start = parse_event(frame)
    assert isinstance(start, Start)
    assert start.media_format == AudioFormat(expected, 8000)


def test_start_numbers_may_be_strings_and_account_is_opaque() -> None:
    frame = json.dumps(
        {
            "sequenceNumber": "1",
            "event": "start",
            "start": {
                "accountId": 500025,
                "tracks": ["inbound", "outbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": "8000"},
            },
        }
    )
    start = parse_event(frame)
    assert isinstance(start, Start)
    assert start.sequence_number == 1
    assert start.account_id == "500025"
    assert start.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert start.media_format == AudioFormat(Encoding.MULAW, 8000)


def test_flat_start_with_both_tracks() -> None:
    start = parse_event('{"event": "start", "audioTrack": "both"}')
    assert isinstance(start, Start)
    assert start.tracks == (Track.INBOUND, Track.OUTBOUND)


def test_live_media_with_string_timestamp() -> None:
    frame = json.dumps(
        {
            "sequenceNumber": 206,
            "streamId": "c4df",
            "event": "media",
            "media": {
                "track": "inbound",
                "timestamp": "1778574097426",
                "chunk": 206,
                "payload": B64,
            },
            "extra_headers": "{}",
        }
    )
    assert parse_event(frame) == Media(
        payload=SPEECH_BYTES,
        track=Track.INBOUND,
        timestamp=1778574097426,
        chunk=206,
        sequence_number=206,
        stream_id="c4df",
    )


def test_media_with_only_payload_and_outbound_track() -> None:
    assert parse_event(json.dumps({"event": "media", "media": {"payload": B64}})) == Media(
        payload=SPEECH_BYTES
    )
    outbound = parse_event(
        json.dumps({"event": "media", "media": {"payload": B64, "track": "outbound"}})
    )
    assert isinstance(outbound, Media)
    assert outbound.track is Track.OUTBOUND


def test_all_ff_last_frame_is_ordinary_audio() -> None:
    payload = b"\xff" * 320
    frame = json.dumps(
        {
            "sequenceNumber": 274,
            "event": "media",
            "media": {"payload": base64.b64encode(payload).decode(), "chunk": 274},
        }
    )
    media = parse_event(frame)
    assert isinstance(media, Media)
    assert media.payload == payload


def test_played_alias_and_missing_stream_id() -> None:
    assert parse_event('{"event": "played", "name": "turn-3"}') == PlayedStream(name="turn-3")


def test_dtmf_nested_and_flat() -> None:
    assert parse_event('{"event": "dtmf", "dtmf": {"digit": "5"}}') == Dtmf(digit="5")
    assert parse_event('{"event": "dtmf", "digit": "#"}') == Dtmf(digit="#")
    assert parse_event('{"event": "dtmf", "dtmf": {"digit": 7}}') == Dtmf(digit="7")


def test_unknown_event_is_kept_not_fatal() -> None:
    event = parse_event('{"event": "mark", "mark": {"name": "x"}, "n": 1}')
    assert event == Unknown(event="mark", fields={"mark": {"name": "x"}, "n": 1})
    command = parse_command('{"event": "sendDigits", "digits": "12"}')
    assert command == Unknown(event="sendDigits", fields={"digits": "12"})


def test_mulaw_stream_accepts_odd_payload_lengths() -> None:
    frame = json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"abc").decode()}})
    media = parse_event(frame, sample_width=1)
    assert isinstance(media, Media)
    assert media.payload == b"abc"


def test_encoded_commands_carry_stream_id_and_bare_content_type() -> None:
    frame = orjson.loads(
        encode(
            PlayAudio(payload=b"\x00\x01", encoding=Encoding.L16, sample_rate=16000, stream_id="S")
        )
    )
    assert frame == {
        "event": "playAudio",
        "streamId": "S",
        "media": {"contentType": "audio/x-l16", "sampleRate": 16000, "payload": "AAE="},
    }


def test_encoded_live_media_has_string_timestamp() -> None:
    frame = orjson.loads(
        encode(Media(payload=b"\x00\x00", timestamp=17, chunk=3, sequence_number=4))
    )
    assert frame["media"]["timestamp"] == "17"
    assert frame["media"]["chunk"] == 3
    assert frame["sequenceNumber"] == 4


# --- frames that cannot be understood --------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        ("[1, 2]", "not an object"),
        ('"media"', "not an object"),
        ('{"media": {"payload": ""}}', "no 'event'"),
        ('{"event": 5}', "no 'event'"),
        ('{"event": ""}', "no 'event'"),
        ('{"event": "media"}', "no 'media' object"),
        ('{"event": "media", "media": []}', "must be a JSON object"),
        ('{"event": "media", "media": {}}', "no base64 string"),
        ('{"event": "media", "media": {"payload": 12}}', "no base64 string"),
        ('{"event": "media", "media": {"payload": "!!!!"}}', "not valid base64"),
        ('{"event": "media", "media": {"payload": "AAA"}}', "not valid base64"),
        ('{"event": "media", "media": {"payload": "AAAA"}}', "not a whole number"),
        ('{"event": "media", "media": {"payload": "AAAAAA==", "timestamp": "soon"}}', "timestamp"),
        ('{"event": "media", "media": {"payload": "AAAAAA==", "chunk": true}}', "chunk"),
        ('{"event": "media", "media": {"payload": "AAAAAA==", "track": "left"}}', "track"),
        (
            '{"event": "media", "media": {"payload": "AAAAAA==", "contentType": "audio/opus"}}',
            "unknown audio encoding",
        ),
        ('{"event": "start", "start": {"tracks": "inbound"}}', "tracks"),
        ('{"event": "start", "start": {"tracks": ["sideways"]}}', "unknown track"),
        ('{"event": "start", "start": {"mediaFormat": {"sampleRate": 0}}}', "not positive"),
        ('{"event": "start", "start": {"callId": {"a": 1}}}', "callId"),
        ('{"event": "playedStream"}', "no checkpoint 'name'"),
        ('{"event": "dtmf", "dtmf": {}}', "no digit"),
        ('{"event": "dtmf", "dtmf": "5"}', "must be a JSON object"),
    ],
)
def test_bad_carrier_frames_raise_protocol_error(frame: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_event(frame)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"event": "playAudio"}', "no 'media' object"),
        ('{"event": "playAudio", "media": {"payload": "AAAA"}}', "no 'media.contentType'"),
        (
            '{"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 16000,'
            ' "payload": "AAAA"}}',
            "not one the carrier plays",
        ),
        (
            '{"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 8000,'
            ' "payload": "AAAA"}}',
            "not a whole number",
        ),
        ('{"event": "checkpoint", "streamId": "S"}', "no 'name'"),
    ],
)
def test_bad_app_frames_raise_protocol_error(frame: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_command(frame)


LONG_ID = "i" * (MAX_ID_CHARS + 1)
LONG_NAME = "n" * (MAX_NAME_CHARS + 1)
PAYLOAD = "AAAAAA=="


@pytest.mark.parametrize(
    "obj",
    [
        {"event": "media", "streamId": LONG_ID, "media": {"payload": PAYLOAD}},
        {"event": "media", "extra_headers": LONG_NAME, "media": {"payload": PAYLOAD}},
        {"event": "media", "extra_headers": {"k": LONG_NAME}, "media": {"payload": PAYLOAD}},
        {"event": "media", "streamId": 7, "x": 1, "media": {"payload": PAYLOAD, "chunk": "1"},
         "extra_headers": LONG_NAME},  # general path
        {"event": "media", "media": {"payload": PAYLOAD, "contentType": "l16" + " " * 300}},
        {"event": "start", "start": {"callId": LONG_ID}},
        {"event": "start", "start": {"streamId": LONG_ID}},
        {"event": "start", "streamId": LONG_ID, "start": {}},
        {"event": "start", "start": {"accountId": LONG_ID}},
        {"event": "start", "start": {"from": LONG_ID}},
        {"event": "start", "start": {"to": LONG_ID}},
        {"event": "start", "start": {"direction": LONG_ID}},
        {"event": "start", "start": {"mediaFormat": {"encoding": "l16" + " " * 300}}},
        {"event": "start", "start": {}, "extra_headers": LONG_NAME},
        {"event": "start", "callId": LONG_ID},  # flat
        {"event": "start", "streamId": LONG_ID},
        {"event": "start", "accountId": LONG_ID},
        {"event": "start", "audioTrack": LONG_NAME},
        {"event": "start", "contentType": LONG_NAME},
        {"event": "playedStream", "name": LONG_NAME},
        {"event": "playedStream", "name": "n", "streamId": LONG_ID},
        {"event": "clearedAudio", "streamId": LONG_ID},
        {"event": "dtmf", "dtmf": {"digit": "5"}, "streamId": LONG_ID},
        {"event": "stop", "reason": LONG_NAME},
        {"event": "stop", "streamId": LONG_ID},
        {"event": LONG_NAME},
    ],
)  # fmt: skip
def test_every_text_field_of_a_carrier_frame_is_bounded(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="at most") as raised:
        parse_event(orjson.dumps(obj))
    assert len(str(raised.value)) < 80  # the message names the field, never repeats its text


def test_fields_at_their_bounds_are_taken() -> None:
    media = parse_event(orjson.dumps({"event": "media", "streamId": "é" * MAX_ID_CHARS,
                                      "extra_headers": "n" * MAX_NAME_CHARS,
                                      "media": {"payload": PAYLOAD}}))  # fmt: skip
    assert isinstance(media, Media) and media.stream_id == "é" * MAX_ID_CHARS
    start = parse_event(orjson.dumps({"event": "start", "start": {"callId": "c" * MAX_ID_CHARS}}))
    assert isinstance(start, Start) and start.call_id == "c" * MAX_ID_CHARS
    played = parse_event(orjson.dumps({"event": "playedStream", "name": "n" * MAX_NAME_CHARS}))
    assert played == PlayedStream(name="n" * MAX_NAME_CHARS)
    unknown = parse_event(orjson.dumps({"event": "e" * MAX_NAME_CHARS}))
    assert isinstance(unknown, Unknown)


@pytest.mark.parametrize("digit", ["0", "9", "*", "#", "A", "D"])
def test_dtmf_digits_are_the_keys_of_a_keypad(digit: str) -> None:
    assert parse_event(orjson.dumps({"event": "dtmf", "dtmf": {"digit": digit}})) == Dtmf(digit)


@pytest.mark.parametrize("digit", ["55", "a", "E", " 5", "\n", "\x1b[31m", "5" * 500_000, "\u0661"])
def test_anything_else_as_a_dtmf_digit_is_malformed(digit: str) -> None:
    with pytest.raises(ProtocolError, match="not one of 0-9") as raised:
        parse_event(orjson.dumps({"event": "dtmf", "dtmf": {"digit": digit}}))
    assert len(str(raised.value)) < 80


@pytest.mark.parametrize(
    "obj",
    [
        {"event": "checkpoint", "name": LONG_NAME},
        {"event": "checkpoint", "name": "n", "streamId": LONG_ID},
        {"event": "clearAudio", "streamId": LONG_ID},
        {"event": "stop", "streamId": LONG_ID},
        {"event": "playAudio", "streamId": LONG_ID,
         "media": {"contentType": "audio/x-l16", "sampleRate": 8000, "payload": PAYLOAD}},
    ],
)  # fmt: skip
def test_every_text_field_of_an_app_command_is_bounded(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="at most"):
        parse_command(orjson.dumps(obj))


def test_protocol_error_is_a_value_error_of_the_family() -> None:
    with pytest.raises(VobizStreamError):
        parse_event("{")
    with pytest.raises(ValueError):
        parse_event("{")


# --- properties ------------------------------------------------------------------------------

ids = st.none() | st.text(min_size=0, max_size=20)
numbers = st.none() | st.integers(min_value=0, max_value=2**53)
formats = st.builds(AudioFormat, st.sampled_from(Encoding), st.sampled_from([8000, 16000, 24000]))
track_sets = st.sampled_from([(Track.INBOUND,), (Track.OUTBOUND,), (Track.INBOUND, Track.OUTBOUND)])


@st.composite
def media_frames(draw: st.DrawFn) -> Media:
    media_format = draw(st.none() | formats)
    width = media_format.encoding.sample_width if media_format else 2
    payload = draw(st.binary(max_size=100))
    payload = payload[: len(payload) - len(payload) % width]
    return Media(
        payload=payload,
        track=draw(st.sampled_from(Track)),
        timestamp=draw(numbers),
        chunk=draw(numbers),
        sequence_number=draw(numbers),
        stream_id=draw(ids),
        media_format=media_format,
    )


starts = st.builds(
    Start,
    stream_id=ids,
    call_id=ids,
    account_id=ids,
    tracks=track_sets,
    media_format=st.none() | formats,
    from_number=ids,
    to_number=ids,
    direction=ids,
    sequence_number=numbers,
    extra_headers=st.none() | st.just("{}"),
    shape=st.sampled_from(StartShape),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
unknown_names = st.text(min_size=1, max_size=12).filter(
    lambda name: (
        name
        not in {
            "start",
            "media",
            "playedStream",
            "played",
            "clearedAudio",
            "dtmf",
            "stop",
            "playAudio",
            "checkpoint",
            "clearAudio",
        }
    )
)
unknowns = st.builds(
    Unknown,
    event=unknown_names,
    fields=st.dictionaries(
        st.text(max_size=8).filter(lambda key: key != "event"), json_values, max_size=4
    ),
)
carrier_events = st.one_of(
    starts,
    media_frames(),
    st.builds(PlayedStream, name=st.text(max_size=20), stream_id=ids, sequence_number=numbers),
    st.builds(ClearedAudio, stream_id=ids, sequence_number=numbers),
    st.builds(
        Dtmf, digit=st.sampled_from("0123456789*#ABCD"), stream_id=ids, sequence_number=numbers
    ),
    st.builds(Stop, stream_id=ids, reason=ids, sequence_number=numbers),
    unknowns,
)


@st.composite
def play_audios(draw: st.DrawFn) -> PlayAudio:
    encoding = draw(st.sampled_from(Encoding))
    rate = draw(st.sampled_from([8000] if encoding is Encoding.MULAW else [8000, 16000, 24000]))
    payload = draw(st.binary(max_size=100))
    payload = payload[: len(payload) - len(payload) % encoding.sample_width]
    return PlayAudio(payload=payload, encoding=encoding, sample_rate=rate, stream_id=draw(ids))


app_commands = st.one_of(
    play_audios(),
    st.builds(Checkpoint, name=st.text(max_size=20), stream_id=ids),
    st.builds(ClearAudio, stream_id=ids),
    st.builds(StopCommand, stream_id=ids),
    unknowns,
)


@given(carrier_events)
def test_every_carrier_event_round_trips(event: Any) -> None:
    assert parse_event(encode(event)) == event


@given(app_commands)
def test_every_app_command_round_trips(command: Any) -> None:
    assert parse_command(encode(command)) == command


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    for parse in (parse_event, parse_command):
        with contextlib.suppress(ProtocolError):
            parse(data)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "event",
                "media",
                "start",
                "payload",
                "name",
                "dtmf",
                "digit",
                "streamId",
                "sequenceNumber",
                "tracks",
                "mediaFormat",
                "contentType",
                "audioTrack",
            ]
        ),
        json_values | st.sampled_from(["media", "start", "playAudio", "dtmf", "played", "AAAA"]),
        max_size=6,
    ),
    st.dictionaries(
        st.sampled_from(
            [
                "payload",
                "track",
                "timestamp",
                "chunk",
                "contentType",
                "sampleRate",
                "encoding",
                "digit",
                "tracks",
            ]
        ),
        json_values | st.sampled_from(["AAAA", "audio/x-l16", "inbound", "8000"]),
        max_size=5,
    ),
)
def test_random_json_objects_raise_only_protocol_error(
    outer: dict[str, Any], inner: dict[str, Any]
) -> None:
    for key in ("media", "start", "dtmf"):
        if key in outer:
            outer[key] = inner
    frame = orjson.dumps(outer)
    for parse in (parse_event, parse_command):
        with contextlib.suppress(ProtocolError):
            parse(frame)


@given(
    payload=st.binary(max_size=200).map(lambda data: data + data),  # whole 16-bit samples
    timestamp=st.integers(0, 2**53),
    chunk=st.integers(0, 2**31),
    sequence=st.integers(0, 2**31),
    stream_id=st.text(max_size=40),
    track=st.sampled_from(list(Track)),
    seed_shape=st.booleans(),
    extra_headers=st.sampled_from([None, "{}", '{"a":"b"}']),
)
def test_media_encoder_writes_what_encode_writes(
    *,
    payload: bytes,
    timestamp: int,
    chunk: int,
    sequence: int,
    stream_id: str,
    track: Track,
    seed_shape: bool,
    extra_headers: str | None,
) -> None:
    media_format = AudioFormat(Encoding.L16, 8000) if seed_shape else None
    try:
        encoder = MediaEncoder(
            track=track, stream_id=stream_id, media_format=media_format, extra_headers=extra_headers
        )
    except ProtocolError:
        # Only a stream id that contains one of the template's marker numbers is refused.
        assert any(str(marker) in stream_id for marker in (9876543210123, 987654301, 987654302))
        return
    frame = encoder.encode(base64.b64encode(payload), timestamp, chunk, sequence)
    expected = orjson.loads(
        encode(
            Media(
                payload=payload,
                track=track,
                timestamp=timestamp,
                chunk=None if seed_shape else chunk,
                sequence_number=None if seed_shape else sequence,
                stream_id=stream_id,
                media_format=media_format,
            )
        )
    )
    if extra_headers is not None:
        expected["extra_headers"] = extra_headers
    assert orjson.loads(frame) == expected
    parsed = parse_event(frame)
    assert isinstance(parsed, Media)
    assert (parsed.payload, parsed.timestamp) == (payload, timestamp)
    assert parsed.chunk == (None if seed_shape else chunk)


def test_media_encoder_keeps_percent_signs_in_the_stream_id() -> None:
    encoder = MediaEncoder(track=Track.INBOUND, stream_id="50%d-%b%%", extra_headers="{}")
    frame = encoder.encode(b"AAE=", 1778574097426, 206, 7)
    parsed = parse_event(frame)
    assert isinstance(parsed, Media)
    assert parsed.stream_id == "50%d-%b%%"
    assert (parsed.payload, parsed.timestamp, parsed.chunk) == (b"\x00\x01", 1778574097426, 206)
    assert parsed.sequence_number == 7


def test_media_encoder_refuses_a_stream_id_holding_its_markers() -> None:
    with pytest.raises(ProtocolError, match="media template"):
        MediaEncoder(track=Track.INBOUND, stream_id="x987654301x")


# --- the media fast path against the general path --------------------------------------------

LIVE_FRAME = (
    '{"sequenceNumber":206,"streamId":"c4df","event":"media","media":{"track":"inbound",'
    f'"timestamp":"1778574097426","chunk":206,"payload":"{B64}"}},"extra_headers":"{{}}"}}'
)
SEED_FRAME = (
    '{"event":"media","streamId":"c4df","media":{"payload":"' + B64 + '",'
    '"contentType":"audio/x-l16","sampleRate":8000,"timestamp":1634567890123}}'
)


def typed_fields(media: Media) -> list[tuple[type, object]]:
    """Each field with its type: a str "inbound" must not pass for Track.INBOUND."""
    return [(type(value), value) for value in msgspec.structs.astuple(media)]


def test_live_and_seed_media_take_the_fast_path() -> None:
    encoded = [  # what the emulator sends, in either shape
        encode(Media(SPEECH_BYTES, Track.OUTBOUND, 17, 3, 4, "s")),
        encode(Media(SPEECH_BYTES, timestamp=17, media_format=AudioFormat(Encoding.MULAW, 8000))),
    ]
    for frame in (LIVE_FRAME, SEED_FRAME, LIVE_FRAME.encode(), *encoded):
        fast = protocol._fast_media(frame, 2)
        general = protocol._parse_event_generally(frame, 2)
        assert fast is not None
        assert isinstance(general, Media)
        assert typed_fields(fast) == typed_fields(general)
    seed = protocol._fast_media(SEED_FRAME, 1)  # the frame's own format decides, not the stream's
    assert seed is not None
    assert seed.media_format == AudioFormat(Encoding.L16, 8000)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (LIVE_FRAME.replace('"chunk":206', '"chunk":"206"'), {"chunk": 206}),
        (LIVE_FRAME.replace('"inbound"', '" Inbound "'), {"track": Track.INBOUND}),
        (LIVE_FRAME.replace('"1778574097426"', "1778574097426.0"), {"timestamp": 1778574097426}),
        (LIVE_FRAME.replace('"chunk":206', f'"chunk":{2**64 - 1}'), {"chunk": 2**64 - 1}),
        (LIVE_FRAME.replace('"streamId":"c4df"', '"streamId":42'), {"stream_id": "42"}),
        (LIVE_FRAME.replace('"{}"}', '{"a":1}}'), {"chunk": 206}),
        (LIVE_FRAME.replace('"event":', '"unknownField":[1,{}],"event":'), {"chunk": 206}),
    ],
)
def test_unusual_media_goes_the_general_way_and_still_parses(
    frame: str, expected: dict[str, object]
) -> None:
    assert protocol._fast_media(frame, 2) is None
    media = parse_event(frame)
    assert isinstance(media, Media)
    assert media.payload == SPEECH_BYTES
    for name, value in expected.items():
        assert getattr(media, name) == value


@pytest.mark.parametrize(
    "frame",
    [
        LIVE_FRAME.replace('"1778574097426"', f'"{2**64}"'),
        LIVE_FRAME.replace('"1778574097426"', '"soon"'),
        LIVE_FRAME.replace('"chunk":206', f'"chunk":{2**64}'),
        LIVE_FRAME.replace(B64, "Zm9v\\n"),
        LIVE_FRAME.replace(B64, "AAAA"),
        LIVE_FRAME.replace('"inbound"', '"left"'),
        LIVE_FRAME.replace('"c4df"', '"\\ud800"'),
        LIVE_FRAME.replace('"c4df"', '"\ud800"'),
        LIVE_FRAME.encode().replace(b"c4df", b"c4\xffdf"),
        LIVE_FRAME.replace('"chunk":206', '"chunk":206,"chunk":1.5'),
        LIVE_FRAME.replace('"event":"media"', '"event":"media","event":"mark"'),
        LIVE_FRAME + " x",
        SEED_FRAME.replace("audio/x-l16", "audio/opus"),
        SEED_FRAME.replace("8000", "0"),
    ],
)
def test_media_the_general_path_refuses_or_reads_otherwise_is_not_taken_fast(
    frame: str | bytes,
) -> None:
    assert protocol._fast_media(frame, 2) is None
    with contextlib.suppress(ProtocolError):
        assert not isinstance(parse_event(frame), Media)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SEED_FORMATS = st.sampled_from(
    [
        {"contentType": "audio/x-l16", "sampleRate": 8000},
        {"contentType": "audio/x-l16", "sampleRate": 16000},
        {"contentType": "audio/x-mulaw", "sampleRate": 8000},
        {"contentType": "audio/x-l16;rate=16000"},
        {"sampleRate": 16000},
    ]
)


@st.composite
def plain_media_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Media frames as carriers send them: the live shape or the seed shape, optional fields
    there or not, in any order."""
    payload = draw(st.binary(max_size=64))
    payload = payload[: len(payload) & ~1]  # whole samples at any width
    body: dict[str, Any] = {"payload": b64(payload)}
    frame: dict[str, Any] = {"event": "media"}
    optional: dict[str, Any] = {
        "streamId": st.text(max_size=12) | st.none(),
        "timestamp": st.integers(0, 2**63 - 1),
    }
    if draw(st.booleans()):  # live
        optional |= {
            "sequenceNumber": st.integers(-(2**63), 2**63 - 1),
            "extra_headers": st.sampled_from(["{}", '{"a":"b"}']),
            "track": st.sampled_from(["inbound", "outbound", None]),
            "timestamp": st.integers(0, 2**63 - 1).map(str),
            "chunk": st.integers(0, 2**31),
        }
    else:
        body |= draw(SEED_FORMATS)
    for key, values in optional.items():
        if draw(st.booleans()):
            target = body if key in ("track", "timestamp", "chunk") else frame
            target[key] = draw(values)
    frame["media"] = dict(draw(st.permutations(list(body.items()))))
    return dict(draw(st.permutations(list(frame.items()))))


def to_wire(obj: dict[str, Any], ascii_only: bool, as_bytes: bool) -> str | bytes:
    text = json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":"))
    return text.encode() if as_bytes else text


@settings(max_examples=300)
@given(plain_media_objects(), st.booleans(), st.booleans(), st.sampled_from([1, 2]))
def test_plain_media_takes_the_fast_path_and_reads_as_the_general_path_reads_it(
    obj: dict[str, Any], ascii_only: bool, as_bytes: bool, sample_width: int
) -> None:
    frame = to_wire(obj, ascii_only, as_bytes)
    fast = protocol._fast_media(frame, sample_width)
    assert fast is not None
    general = protocol._parse_event_generally(frame, sample_width)
    assert isinstance(general, Media)
    assert typed_fields(fast) == typed_fields(general)


ODD_NUMBERS = st.sampled_from(
    [
        None, True, 5.0, 2.5, 1e300, -1, 0, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, " 12 ", "1_000",
        "+7", "-0", "soon", "", "12.5", "١٢", str(2**64 - 1), str(2**64), str(-(2**63) - 1),
        "9" * 5000, [], {"a": 1},
    ]
)  # fmt: skip
ODD_TEXTS = st.sampled_from(
    [
        None, 7, 2.5, True, "", "é", "\ud800", "Inbound", " outbound", "both", "audio/opus", "l16",
        "audio/x-l16;rate=0", "pcmu", [], {"a": 1},
        # at and just past the bounds of ids (128) and names (256), in characters not bytes
        "i" * 128, "i" * 129, "é" * 128, "é" * 129, "n" * 256, "n" * 257, "é" * 257,
    ]
)  # fmt: skip
ODD_PAYLOADS = st.sampled_from(
    [None, 12, "", "AAA", "AAAA", "AAAAAA==", "QR==", "AA=A", "Zm9v\n", "Zm9v=", "====", "é"]
)
ODD_FIELDS = {
    "payload": ODD_PAYLOADS,
    "track": ODD_TEXTS,
    "timestamp": ODD_NUMBERS,
    "chunk": ODD_NUMBERS,
    "contentType": ODD_TEXTS,
    "sampleRate": ODD_NUMBERS,
    "unknown": ODD_TEXTS,
}
ODD_TOP_FIELDS = {
    "event": ODD_TEXTS | st.sampled_from(["stop", "start", "Media"]),
    "media": ODD_TEXTS,
    "sequenceNumber": ODD_NUMBERS,
    "streamId": ODD_TEXTS,
    "extra_headers": ODD_TEXTS,
    "x": ODD_TEXTS,
}
TEXT_EDITS = st.sampled_from(
    ['"', "\\", ",", "}", "{", "=", "A", " ", "é", "\\ud800", "\\u0041", "1", "null", "\x00"]
)
DUPLICATES = st.sampled_from(
    ['"media":{"payload":"AAAA"},', '"payload":"AAAA",', '"event":"stop",', '"timestamp":7,']
)


@st.composite
def unusual_media_frames(draw: st.DrawFn) -> str | bytes:
    """A plain media frame with one to three things done to it: a field set to an odd value or
    dropped, the JSON text edited (broken, a key given twice, a bad escape), bytes that are not
    UTF-8."""
    obj = draw(plain_media_objects())
    body = obj["media"]
    ascii_only = draw(st.booleans())
    edits: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["body", "body", "top", "drop", "text", "duplicate", "utf8"]))
        if kind == "body":
            key = draw(st.sampled_from(sorted(ODD_FIELDS)))
            body[key] = draw(ODD_FIELDS[key])
        elif kind == "top":
            key = draw(st.sampled_from(sorted(ODD_TOP_FIELDS)))
            obj[key] = draw(ODD_TOP_FIELDS[key])
        elif kind == "drop":
            body.pop(draw(st.sampled_from(sorted(ODD_FIELDS))), None)
        else:
            edits.append(kind)
    text = json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":"))
    for kind in edits:
        at = draw(st.integers(0, len(text)))
        if kind == "text":
            text = text[:at] + draw(TEXT_EDITS) + text[at + draw(st.integers(0, 1)) :]
        elif kind == "duplicate":
            brace = draw(st.sampled_from([1, text.find("{", 1) + 1]))
            text = text[:brace] + draw(DUPLICATES) + text[brace:]
    if "utf8" in edits:
        raw = text.encode("utf-8", "surrogatepass")
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + raw[at:]
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(unusual_media_frames(), st.sampled_from([1, 2]))
def test_the_media_fast_path_never_gives_what_the_general_path_would_not(
    frame: str | bytes, sample_width: int
) -> None:
    fast = protocol._fast_media(frame, sample_width)
    try:
        general = protocol._parse_event_generally(frame, sample_width)
    except ProtocolError as exc:
        assert fast is None, "the fast path took a frame the general path refuses"
        with pytest.raises(ProtocolError, match=re.escape(str(exc))):
            parse_event(frame, sample_width)
        return
    if fast is not None:
        assert isinstance(general, Media)
        assert typed_fields(fast) == typed_fields(general)
    parsed = parse_event(frame, sample_width)
    assert type(parsed) is type(general)
    if isinstance(general, Media):
        assert isinstance(parsed, Media)
        assert typed_fields(parsed) == typed_fields(general)
    else:
        assert parsed == general
