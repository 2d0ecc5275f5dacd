"""The Vobiz stream wire protocol as plain values: parse and encode, no I/O.

Two directions (docs/protocol.md sections 2 and 3):

* carrier to app, :data:`CarrierEvent`: :class:`Start`, :class:`Media`, :class:`PlayedStream`,
  :class:`ClearedAudio`, :class:`Dtmf`, :class:`Stop`, or :class:`Unknown`;
  read with :func:`parse_event`.
* app to carrier, :data:`AppCommand`: :class:`PlayAudio`, :class:`Checkpoint`,
  :class:`ClearAudio`, :class:`StopCommand`, or :class:`Unknown`; read with :func:`parse_command`.

:func:`encode` turns any of them back into a JSON text frame. Parsing accepts every shape that real
traffic takes (nested and flat ``start``, live and legacy ``media``, numbers as ints or numeric
strings, missing optional fields); a frame that cannot be understood raises :class:`ProtocolError`
and nothing else, so a server can log it and skip it.

Every text field a carrier frame carries is bounded (:data:`MAX_ID_CHARS` for ids and numbers,
:data:`MAX_NAME_CHARS` for names, one of :data:`DTMF_DIGITS` for a key press): a frame with a
longer one is malformed, so nothing the carrier sends can grow a log line or a stored row
without bound.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
import orjson

from vobiz_stream.core.fields import (
    TRACKS_BY_NAME,
    WIRE_INT_RANGE,
    JsonObject,
    bounded_text,
    check_whole_samples,
    event_name,
    int_of_text,
    load_frame,
    read_format,
    read_id,
    read_int,
    read_name,
    read_object,
    read_payload,
    read_text,
    read_track,
)
from vobiz_stream.core.messages import (
    DTMF_DIGITS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    AppCommand,
    CarrierEvent,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    Media,
    PlayAudio,
    PlayedStream,
    Start,
    StartShape,
    Stop,
    StopCommand,
    Track,
    Unknown,
)
from vobiz_stream.core.wire import MediaEncoder, encode, encode_bytes, encode_payload
from vobiz_stream.errors import ProtocolError
from vobiz_stream.formats import OUTBOUND_RATES, AudioFormat

__all__ = [
    "DTMF_DIGITS",
    "MAX_ID_CHARS",
    "MAX_NAME_CHARS",
    "AppCommand",
    "CarrierEvent",
    "Checkpoint",
    "ClearAudio",
    "ClearedAudio",
    "Dtmf",
    "Media",
    "MediaEncoder",
    "PlayAudio",
    "PlayedStream",
    "ProtocolError",
    "Start",
    "StartShape",
    "Stop",
    "StopCommand",
    "Track",
    "Unknown",
    "encode",
    "encode_bytes",
    "encode_payload",
    "parse_command",
    "parse_event",
]


# --- carrier events --------------------------------------------------------------------------


def _unknown(event: str, obj: JsonObject) -> Unknown:
    return Unknown(event=event, fields={key: value for key, value in obj.items() if key != "event"})


def _parse_start(obj: JsonObject) -> Start:
    nested = read_object(obj, "start")
    sequence_number = read_int(obj, "sequenceNumber")
    if nested is not None:
        media_format_obj = read_object(nested, "mediaFormat")
        media_format = None
        if media_format_obj is not None:
            media_format = read_format(
                read_name(media_format_obj, "encoding"),
                read_int(media_format_obj, "sampleRate"),
                "start.mediaFormat",
            )
        raw_tracks = nested.get("tracks", ["inbound"])
        if not isinstance(raw_tracks, list):
            raise ProtocolError("field 'start.tracks' must be a list of track names")
        return Start(
            stream_id=_first_set(read_id(nested, "streamId"), read_id(obj, "streamId")),
            call_id=read_id(nested, "callId"),
            account_id=read_id(nested, "accountId"),
            tracks=_canonical_tracks(raw_tracks),
            media_format=media_format,
            from_number=read_id(nested, "from"),
            to_number=read_id(nested, "to"),
            direction=read_id(nested, "direction"),
            sequence_number=sequence_number,
            extra_headers=_extra_headers(obj),
            shape=StartShape.NESTED,
        )
    audio_track = read_name(obj, "audioTrack")
    return Start(
        stream_id=read_id(obj, "streamId"),
        call_id=read_id(obj, "callId"),
        account_id=read_id(obj, "accountId"),
        tracks=_tracks_of_audio_track(audio_track),
        media_format=read_format(read_name(obj, "contentType"), None, "start.contentType"),
        from_number=read_id(obj, "from"),
        to_number=read_id(obj, "to"),
        direction=read_id(obj, "direction"),
        sequence_number=sequence_number,
        extra_headers=_extra_headers(obj),
        shape=StartShape.FLAT,
    )


def _first_set(*values: str | None) -> str | None:
    return next((value for value in values if value is not None), None)


def _extra_headers(obj: JsonObject) -> str | None:
    """``extra_headers`` is a JSON string on live frames; an object is kept as its JSON text."""
    value = obj.get("extra_headers")
    if value is not None and not isinstance(value, str):
        value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return bounded_text(value, "extra_headers", MAX_NAME_CHARS, "names")


def _canonical_tracks(names: list[Any]) -> tuple[Track, ...]:
    tracks: set[Track] = set()
    for name in names:
        if not isinstance(name, str):
            raise ProtocolError("field 'start.tracks' must hold track names")
        if name.strip().lower() == "both":
            tracks.update(Track)
            continue
        try:
            tracks.add(Track(name.strip().lower()))
        except ValueError:
            raise ProtocolError(f"unknown track {name!r:.40} in 'start.tracks'") from None
    return tuple(track for track in Track if track in tracks) or (Track.INBOUND,)


def _tracks_of_audio_track(audio_track: str | None) -> tuple[Track, ...]:
    if audio_track is None:
        return (Track.INBOUND,)
    return _canonical_tracks([audio_track])


def _parse_media(obj: JsonObject, sample_width: int) -> Media:
    media = read_object(obj, "media")
    if media is None:
        raise ProtocolError("media frame has no 'media' object")
    payload = read_payload(media)
    media_format = read_format(
        read_name(media, "contentType"), read_int(media, "sampleRate"), "media"
    )
    width = media_format.encoding.sample_width if media_format else sample_width
    check_whole_samples(payload, width, "media")
    _extra_headers(obj)  # not kept, but bounded like every text field
    return Media(
        payload=payload,
        track=read_track(media, "track"),
        timestamp=read_int(media, "timestamp"),
        chunk=read_int(media, "chunk"),
        sequence_number=read_int(obj, "sequenceNumber"),
        stream_id=read_id(obj, "streamId"),
        media_format=media_format,
    )


def _parse_dtmf(obj: JsonObject) -> Dtmf:
    nested = read_object(obj, "dtmf")
    digit = read_text(nested, "digit") if nested is not None else None
    if digit is None:
        digit = read_text(obj, "digit")
    if not digit:
        raise ProtocolError("dtmf frame has no digit in 'dtmf.digit' or 'digit'")
    if digit not in DTMF_DIGITS:
        raise ProtocolError(f"dtmf digit of {len(digit)} characters is not one of 0-9 * # A-D")
    return Dtmf(
        digit=digit,
        stream_id=read_id(obj, "streamId"),
        sequence_number=read_int(obj, "sequenceNumber"),
    )


def _parse_played(obj: JsonObject) -> PlayedStream:
    name = read_name(obj, "name")
    if name is None:
        raise ProtocolError("playedStream frame has no checkpoint 'name'")
    return PlayedStream(
        name=name,
        stream_id=read_id(obj, "streamId"),
        sequence_number=read_int(obj, "sequenceNumber"),
    )


# --- the media fast path ---------------------------------------------------------------------
#
# A media frame comes 50 times a second per call, always in one of two shapes (docs/protocol.md 2):
# live ``{"sequenceNumber": 206, "streamId": "...", "event": "media", "media": {"track":
# "inbound", "timestamp": "1778574097426", "chunk": 206, "payload": "..."}, "extra_headers":
# "{}"}`` and legacy ``{"event": "media", "streamId": "...", "media": {"payload": "...",
# "contentType": "audio/x-l16", "sampleRate": 8000, "timestamp": 1634567890123}}``. One typed
# msgspec decode reads either (base64 included) in C; anything it does not take as it is (an
# unknown field, a number as a string other than the timestamp, a float, a track spelt
# otherwise, an odd payload) goes to the general path, which decides. So the fast path only
# ever gives what the general path would give (tests/core/test_protocol.py checks it on generated
# frames), and never raises.

_WireInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""An integer the fast path takes as it is; a larger one (to 2**64) goes the general way."""
_WireId = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)]
_WireName = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
"""Text the fast path takes within the bounds; longer text goes the general way, which rejects
it."""


class _WireMediaBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    payload: bytes
    """Base64 on the wire: msgspec takes only what ``a2b_base64(strict_mode=True)`` takes."""
    track: str | None = None
    timestamp: _WireInt | str | None = None
    chunk: _WireInt | None = None
    content_type: _WireName | None = msgspec.field(default=None, name="contentType")
    sample_rate: _WireInt | None = msgspec.field(default=None, name="sampleRate")


class _WireMedia(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    event: str
    media: _WireMediaBody
    sequence_number: _WireInt | None = msgspec.field(default=None, name="sequenceNumber")
    stream_id: _WireId | None = msgspec.field(default=None, name="streamId")
    extra_headers: _WireName | None = None


_WIRE_MEDIA = msgspec.json.Decoder(_WireMedia)


@functools.lru_cache(maxsize=8)
def _legacy_media_format(content_type: str | None, sample_rate: int | None) -> AudioFormat | None:
    """The format a legacy-shape frame names: the same few pairs in every frame, so kept."""
    return read_format(content_type, sample_rate, "media")


def _fast_media(frame: str | bytes, sample_width: int) -> Media | None:
    """The :class:`Media` of a frame in the live or legacy shape; None for anything else."""
    try:
        wire = _WIRE_MEDIA.decode(frame)
    except (msgspec.DecodeError, UnicodeError):  # msgspec reports bad UTF-8 as UnicodeError
        return None
    body = wire.media
    if wire.event != "media":
        return None
    track = Track.INBOUND if body.track is None else TRACKS_BY_NAME.get(body.track)
    timestamp = body.timestamp
    if isinstance(timestamp, str):
        timestamp = int_of_text(timestamp)
        if timestamp is None or timestamp not in WIRE_INT_RANGE:
            return None
    media_format = None
    if body.content_type is not None or body.sample_rate is not None:
        try:
            media_format = _legacy_media_format(body.content_type, body.sample_rate)
        except ProtocolError:
            return None
    width = media_format.encoding.sample_width if media_format else sample_width
    if track is None or len(body.payload) % width:
        return None
    return Media(
        body.payload,
        track,
        timestamp,
        body.chunk,
        wire.sequence_number,
        wire.stream_id,
        media_format,
    )


def _parse_event_generally(frame: str | bytes, sample_width: int) -> CarrierEvent:
    """Every event in every shape :func:`parse_event` accepts, field by field."""
    obj = load_frame(frame)
    event = event_name(obj)
    if event == "media":
        return _parse_media(obj, sample_width)
    if event == "start":
        return _parse_start(obj)
    if event in ("playedStream", "played"):
        return _parse_played(obj)
    if event == "clearedAudio":
        return ClearedAudio(
            stream_id=read_id(obj, "streamId"), sequence_number=read_int(obj, "sequenceNumber")
        )
    if event == "dtmf":
        return _parse_dtmf(obj)
    if event == "stop":
        return Stop(
            stream_id=read_id(obj, "streamId"),
            reason=read_name(obj, "reason"),
            sequence_number=read_int(obj, "sequenceNumber"),
        )
    return _unknown(event, obj)


def parse_event(frame: str | bytes, sample_width: int = 2) -> CarrierEvent:
    """Parse one frame the carrier sent to the app.

    ``sample_width`` (2 for L16, 1 for mu-law) is the stream's inbound sample size, used to reject
    media payloads that are not a whole number of samples; a legacy-shape frame that names its own
    format is checked against that instead.

    Raises :class:`ProtocolError` for a frame that cannot be understood; unknown events come back
    as :class:`Unknown`.
    """
    media = _fast_media(frame, sample_width)
    if media is not None:
        return media
    return _parse_event_generally(frame, sample_width)


# --- app commands ----------------------------------------------------------------------------


def _parse_play_audio(obj: JsonObject) -> PlayAudio:
    media = read_object(obj, "media")
    if media is None:
        raise ProtocolError("playAudio frame has no 'media' object")
    content_type = read_name(media, "contentType")
    if content_type is None:
        raise ProtocolError("playAudio frame has no 'media.contentType'")
    media_format = read_format(content_type, read_int(media, "sampleRate"), "playAudio")
    assert media_format is not None  # content_type is not None
    if media_format.sample_rate not in OUTBOUND_RATES[media_format.encoding]:
        raise ProtocolError(
            f"playAudio sample rate {media_format.sample_rate} is not one the carrier plays for "
            f"{media_format.encoding.value}: use one of {OUTBOUND_RATES[media_format.encoding]}"
        )
    payload = read_payload(media)
    check_whole_samples(payload, media_format.encoding.sample_width, "playAudio")
    return PlayAudio(
        payload=payload,
        encoding=media_format.encoding,
        sample_rate=media_format.sample_rate,
        stream_id=read_id(obj, "streamId"),
    )


def parse_command(frame: str | bytes) -> AppCommand:
    """Parse one frame the app sent to the carrier (the emulator's side).

    Raises :class:`ProtocolError` for a frame that cannot be understood; unknown commands come
    back as :class:`Unknown`.
    """
    obj = load_frame(frame)
    event = event_name(obj)
    if event == "playAudio":
        return _parse_play_audio(obj)
    if event == "checkpoint":
        name = read_name(obj, "name")
        if name is None:
            raise ProtocolError("checkpoint frame has no 'name'")
        return Checkpoint(name=name, stream_id=read_id(obj, "streamId"))
    if event == "clearAudio":
        return ClearAudio(stream_id=read_id(obj, "streamId"))
    if event == "stop":
        return StopCommand(stream_id=read_id(obj, "streamId"))
    return _unknown(event, obj)
