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

import binascii
import functools
import operator
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, TypeAlias

import msgspec
import orjson

from vobiz_stream.errors import AudioError, ProtocolError
from vobiz_stream.formats import OUTBOUND_RATES, AudioFormat, Encoding, parse_content_type

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


MAX_ID_CHARS = 128
"""Most characters of an id (``streamId``, ``callId``, ``accountId``) or phone number in a frame."""

MAX_NAME_CHARS = 256
"""Most characters of a name in a frame: an event name, a checkpoint name, a stop reason, the
``extra_headers`` text."""

DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""The keys a ``dtmf`` event may name, one per event."""


class Track(StrEnum):
    """Which leg a media frame carries: the caller (``inbound``) or the other leg (``outbound``)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class StartShape(StrEnum):
    """The two wire shapes of ``start``: live Vobiz nests the metadata, the legacy shape is flat."""

    NESTED = "nested"
    FLAT = "flat"


# --- carrier to app --------------------------------------------------------------------------


class Start(msgspec.Struct, frozen=True):
    """Once per socket: who the call is and what audio comes.

    ``media_format`` is None when the frame does not say; the app then falls back to the format
    its answer XML asked for. ``tracks`` is in canonical order (inbound before outbound).
    """

    stream_id: str | None = None
    call_id: str | None = None
    account_id: str | None = None
    tracks: tuple[Track, ...] = (Track.INBOUND,)
    media_format: AudioFormat | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    sequence_number: int | None = None
    extra_headers: str | None = None
    shape: StartShape = StartShape.NESTED


class Media(msgspec.Struct, frozen=True):
    """20 ms of one track's audio. Only ``payload`` is always there.

    ``media_format`` is set only by the legacy shape, which repeats the format in every frame.
    ``timestamp`` is epoch milliseconds on the carrier's clock; ``chunk`` a per-stream index.
    """

    payload: bytes
    track: Track = Track.INBOUND
    timestamp: int | None = None
    chunk: int | None = None
    sequence_number: int | None = None
    stream_id: str | None = None
    media_format: AudioFormat | None = None


class PlayedStream(msgspec.Struct, frozen=True):
    """Everything queued before checkpoint ``name`` has played (``playedStream``/``played``)."""

    name: str
    stream_id: str | None = None
    sequence_number: int | None = None


class ClearedAudio(msgspec.Struct, frozen=True):
    """The carrier applied a ``clearAudio``: its queue is empty."""

    stream_id: str | None = None
    sequence_number: int | None = None


class Dtmf(msgspec.Struct, frozen=True):
    """The caller pressed a key."""

    digit: str
    stream_id: str | None = None
    sequence_number: int | None = None


class Stop(msgspec.Struct, frozen=True):
    """The carrier ends the stream (legacy shape only; live Vobiz just closes the socket)."""

    stream_id: str | None = None
    reason: str | None = None
    sequence_number: int | None = None


class Unknown(msgspec.Struct, frozen=True):
    """An event this version does not know: kept whole so it can be logged, never fatal."""

    event: str
    fields: Mapping[str, Any] = msgspec.field(default_factory=dict)


# --- app to carrier --------------------------------------------------------------------------


class PlayAudio(msgspec.Struct, frozen=True):
    """Queue raw mono audio for the caller. ``payload`` holds samples, no file header."""

    payload: bytes
    encoding: Encoding = Encoding.L16
    sample_rate: int = 8000
    stream_id: str | None = None

    @property
    def media_format(self) -> AudioFormat:
        return AudioFormat(self.encoding, self.sample_rate)


class Checkpoint(msgspec.Struct, frozen=True):
    """Ask for ``playedStream`` named ``name`` once everything queued before it has played."""

    name: str
    stream_id: str | None = None


class ClearAudio(msgspec.Struct, frozen=True):
    """Drop everything queued; pending checkpoints never get ``playedStream``."""

    stream_id: str | None = None


class StopCommand(msgspec.Struct, frozen=True):
    """The app ends the stream (wire event ``stop`` from app to carrier)."""

    stream_id: str | None = None


CarrierEvent: TypeAlias = Start | Media | PlayedStream | ClearedAudio | Dtmf | Stop | Unknown
AppCommand: TypeAlias = PlayAudio | Checkpoint | ClearAudio | StopCommand | Unknown

# --- field readers ---------------------------------------------------------------------------

_Obj = dict[str, Any]


# The readers below run for every media frame, 50 times a second per call, so each checks the
# common exact type first (``type(x) is``) and only then the slower tolerant cases.


def _text(obj: _Obj, key: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"field {key!r} must be a string, got {type(value).__name__}")


def _bounded(value: str | None, key: str, limit: int, what: str) -> str | None:
    if value is not None and len(value) > limit:
        raise ProtocolError(
            f"field {key!r} has {len(value)} characters; {what} have at most {limit}"
        )
    return value


def _id(obj: _Obj, key: str) -> str | None:
    """An id or a phone number: text of at most :data:`MAX_ID_CHARS` characters."""
    return _bounded(_text(obj, key), key, MAX_ID_CHARS, "ids")


def _name(obj: _Obj, key: str) -> str | None:
    """A name or a reason: text of at most :data:`MAX_NAME_CHARS` characters."""
    return _bounded(_text(obj, key), key, MAX_NAME_CHARS, "names")


_INT_RANGE = range(-(2**63), 2**64)
"""What JSON encoders write back (signed or unsigned 64 bits); every real field fits easily."""


def _int_of_text(text: str) -> int | None:
    """The integer a numeric string spells (surrounding spaces allowed), None if it is not one."""
    try:
        return int(text.strip())
    except ValueError:
        return None


def _int(obj: _Obj, key: str) -> int | None:
    """An integer that the carrier may send as a number or as a numeric string."""
    value = obj.get(key)
    number: int | None = None
    if value is None:
        return None
    if type(value) is int:
        number = value
    elif isinstance(value, str):
        number = _int_of_text(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None:
        raise ProtocolError(
            f"field {key!r} must be an integer or numeric string, got {value!r:.40}"
        )
    if number not in _INT_RANGE:
        raise ProtocolError(f"field {key!r} is out of the 64-bit range: {value!r:.40}")
    return number


def _object(obj: _Obj, key: str) -> _Obj | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    raise ProtocolError(f"field {key!r} must be a JSON object, got {type(value).__name__}")


_TRACKS = {track.value: track for track in Track}


def _track(obj: _Obj, key: str) -> Track:
    name = _text(obj, key)
    if name is None:
        return Track.INBOUND
    track = _TRACKS.get(name)
    if track is not None:
        return track
    try:
        return Track(name.strip().lower())
    except ValueError:
        raise ProtocolError(
            f"field {key!r} must be 'inbound' or 'outbound', got {name!r:.40}"
        ) from None


def _payload(media: _Obj) -> bytes:
    value = media.get("payload")
    if not isinstance(value, str):
        raise ProtocolError("media frame has no base64 string in 'media.payload'")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"'media.payload' is not valid base64: {exc}") from None


def _check_whole_samples(payload: bytes, sample_width: int, what: str) -> None:
    if len(payload) % sample_width:
        raise ProtocolError(
            f"{what} payload of {len(payload)} bytes is not a whole number of "
            f"{sample_width}-byte samples"
        )


def _load(frame: str | bytes) -> _Obj:
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame is a JSON {type(obj).__name__}, not an object")
    return obj


def _event_name(obj: _Obj) -> str:
    event = obj.get("event")
    if not isinstance(event, str) or not event:
        raise ProtocolError("frame has no 'event' name")
    _bounded(event, "event", MAX_NAME_CHARS, "names")
    return event


def _format(encoding: str | None, rate: int | None, what: str) -> AudioFormat | None:
    """The format a frame names, if any; a rate without an encoding means L16 at that rate."""
    if encoding is None:
        encoding = None if rate is None else Encoding.L16.value
    if encoding is None:
        return None
    try:
        return parse_content_type(encoding, default_rate=rate)
    except AudioError as exc:
        raise ProtocolError(f"{what}: {exc}") from None


# --- carrier events --------------------------------------------------------------------------


def _unknown(event: str, obj: _Obj) -> Unknown:
    return Unknown(event=event, fields={key: value for key, value in obj.items() if key != "event"})


def _parse_start(obj: _Obj) -> Start:
    nested = _object(obj, "start")
    sequence_number = _int(obj, "sequenceNumber")
    if nested is not None:
        media_format_obj = _object(nested, "mediaFormat")
        media_format = None
        if media_format_obj is not None:
            media_format = _format(
                _name(media_format_obj, "encoding"),
                _int(media_format_obj, "sampleRate"),
                "start.mediaFormat",
            )
        raw_tracks = nested.get("tracks", ["inbound"])
        if not isinstance(raw_tracks, list):
            raise ProtocolError("field 'start.tracks' must be a list of track names")
        return Start(
            stream_id=_first_set(_id(nested, "streamId"), _id(obj, "streamId")),
            call_id=_id(nested, "callId"),
            account_id=_id(nested, "accountId"),
            tracks=_canonical_tracks(raw_tracks),
            media_format=media_format,
            from_number=_id(nested, "from"),
            to_number=_id(nested, "to"),
            direction=_id(nested, "direction"),
            sequence_number=sequence_number,
            extra_headers=_extra_headers(obj),
            shape=StartShape.NESTED,
        )
    audio_track = _name(obj, "audioTrack")
    return Start(
        stream_id=_id(obj, "streamId"),
        call_id=_id(obj, "callId"),
        account_id=_id(obj, "accountId"),
        tracks=_tracks_of_audio_track(audio_track),
        media_format=_format(_name(obj, "contentType"), None, "start.contentType"),
        from_number=_id(obj, "from"),
        to_number=_id(obj, "to"),
        direction=_id(obj, "direction"),
        sequence_number=sequence_number,
        extra_headers=_extra_headers(obj),
        shape=StartShape.FLAT,
    )


def _first_set(*values: str | None) -> str | None:
    return next((value for value in values if value is not None), None)


def _extra_headers(obj: _Obj) -> str | None:
    """``extra_headers`` is a JSON string on live frames; an object is kept as its JSON text."""
    value = obj.get("extra_headers")
    if value is not None and not isinstance(value, str):
        value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return _bounded(value, "extra_headers", MAX_NAME_CHARS, "names")


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


def _parse_media(obj: _Obj, sample_width: int) -> Media:
    media = _object(obj, "media")
    if media is None:
        raise ProtocolError("media frame has no 'media' object")
    payload = _payload(media)
    media_format = _format(_name(media, "contentType"), _int(media, "sampleRate"), "media")
    width = media_format.encoding.sample_width if media_format else sample_width
    _check_whole_samples(payload, width, "media")
    _extra_headers(obj)  # not kept, but bounded like every text field
    return Media(
        payload=payload,
        track=_track(media, "track"),
        timestamp=_int(media, "timestamp"),
        chunk=_int(media, "chunk"),
        sequence_number=_int(obj, "sequenceNumber"),
        stream_id=_id(obj, "streamId"),
        media_format=media_format,
    )


def _parse_dtmf(obj: _Obj) -> Dtmf:
    nested = _object(obj, "dtmf")
    digit = _text(nested, "digit") if nested is not None else None
    if digit is None:
        digit = _text(obj, "digit")
    if not digit:
        raise ProtocolError("dtmf frame has no digit in 'dtmf.digit' or 'digit'")
    if digit not in DTMF_DIGITS:
        raise ProtocolError(f"dtmf digit of {len(digit)} characters is not one of 0-9 * # A-D")
    return Dtmf(
        digit=digit, stream_id=_id(obj, "streamId"), sequence_number=_int(obj, "sequenceNumber")
    )


def _parse_played(obj: _Obj) -> PlayedStream:
    name = _name(obj, "name")
    if name is None:
        raise ProtocolError("playedStream frame has no checkpoint 'name'")
    return PlayedStream(
        name=name, stream_id=_id(obj, "streamId"), sequence_number=_int(obj, "sequenceNumber")
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
def _seed_media_format(content_type: str | None, sample_rate: int | None) -> AudioFormat | None:
    """The format a legacy-shape frame names: the same few pairs in every frame, so kept."""
    return _format(content_type, sample_rate, "media")


def _fast_media(frame: str | bytes, sample_width: int) -> Media | None:
    """The :class:`Media` of a frame in the live or legacy shape; None for anything else."""
    try:
        wire = _WIRE_MEDIA.decode(frame)
    except (msgspec.DecodeError, UnicodeError):  # msgspec reports bad UTF-8 as UnicodeError
        return None
    body = wire.media
    if wire.event != "media":
        return None
    track = Track.INBOUND if body.track is None else _TRACKS.get(body.track)
    timestamp = body.timestamp
    if isinstance(timestamp, str):
        timestamp = _int_of_text(timestamp)
        if timestamp is None or timestamp not in _INT_RANGE:
            return None
    media_format = None
    if body.content_type is not None or body.sample_rate is not None:
        try:
            media_format = _seed_media_format(body.content_type, body.sample_rate)
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
    obj = _load(frame)
    event = _event_name(obj)
    if event == "media":
        return _parse_media(obj, sample_width)
    if event == "start":
        return _parse_start(obj)
    if event in ("playedStream", "played"):
        return _parse_played(obj)
    if event == "clearedAudio":
        return ClearedAudio(
            stream_id=_id(obj, "streamId"), sequence_number=_int(obj, "sequenceNumber")
        )
    if event == "dtmf":
        return _parse_dtmf(obj)
    if event == "stop":
        return Stop(
            stream_id=_id(obj, "streamId"),
            reason=_name(obj, "reason"),
            sequence_number=_int(obj, "sequenceNumber"),
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


def _parse_play_audio(obj: _Obj) -> PlayAudio:
    media = _object(obj, "media")
    if media is None:
        raise ProtocolError("playAudio frame has no 'media' object")
    content_type = _name(media, "contentType")
    if content_type is None:
        raise ProtocolError("playAudio frame has no 'media.contentType'")
    media_format = _format(content_type, _int(media, "sampleRate"), "playAudio")
    assert media_format is not None  # content_type is not None
    if media_format.sample_rate not in OUTBOUND_RATES[media_format.encoding]:
        raise ProtocolError(
            f"playAudio sample rate {media_format.sample_rate} is not one the carrier plays for "
            f"{media_format.encoding.value}: use one of {OUTBOUND_RATES[media_format.encoding]}"
        )
    payload = _payload(media)
    _check_whole_samples(payload, media_format.encoding.sample_width, "playAudio")
    return PlayAudio(
        payload=payload,
        encoding=media_format.encoding,
        sample_rate=media_format.sample_rate,
        stream_id=_id(obj, "streamId"),
    )


def parse_command(frame: str | bytes) -> AppCommand:
    """Parse one frame the app sent to the carrier (the emulator's side).

    Raises :class:`ProtocolError` for a frame that cannot be understood; unknown commands come
    back as :class:`Unknown`.
    """
    obj = _load(frame)
    event = _event_name(obj)
    if event == "playAudio":
        return _parse_play_audio(obj)
    if event == "checkpoint":
        name = _name(obj, "name")
        if name is None:
            raise ProtocolError("checkpoint frame has no 'name'")
        return Checkpoint(name=name, stream_id=_id(obj, "streamId"))
    if event == "clearAudio":
        return ClearAudio(stream_id=_id(obj, "streamId"))
    if event == "stop":
        return StopCommand(stream_id=_id(obj, "streamId"))
    return _unknown(event, obj)


# --- encoding --------------------------------------------------------------------------------


def encode_payload(data: bytes) -> str:
    """Audio as the base64 text of a ``payload`` field (:class:`MediaEncoder` takes it as bytes:
    ``encode_payload(audio).encode()``)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _with_optional(obj: _Obj, **optional: object) -> _Obj:
    """Add the optional fields that are set; the wire omits what is unknown."""
    for key, value in optional.items():
        if value is not None:
            obj[key] = value
    return obj


def _start_object(start: Start) -> _Obj:
    if start.shape is StartShape.FLAT:
        audio_track = "both" if len(start.tracks) == 2 else start.tracks[0].value
        return _with_optional(
            {"event": "start"},
            sequenceNumber=start.sequence_number,
            streamId=start.stream_id,
            accountId=start.account_id,
            callId=start.call_id,
            **{"from": start.from_number, "to": start.to_number},
            direction=start.direction,
            contentType=start.media_format.content_type if start.media_format else None,
            audioTrack=audio_track,
            extra_headers=start.extra_headers,
        )
    media_format = None
    if start.media_format is not None:
        media_format = {
            "encoding": start.media_format.encoding.value,
            "sampleRate": start.media_format.sample_rate,
        }
    nested = _with_optional(
        {},
        callId=start.call_id,
        streamId=start.stream_id,
        accountId=start.account_id,
        tracks=[track.value for track in start.tracks],
        mediaFormat=media_format,
        **{"from": start.from_number, "to": start.to_number},
        direction=start.direction,
    )
    return _with_optional(
        {"event": "start"},
        sequenceNumber=start.sequence_number,
        start=nested,
        extra_headers=start.extra_headers,
    )


def _media_object(media: Media) -> _Obj:
    body: _Obj = {"payload": encode_payload(media.payload)}
    if media.media_format is not None:
        # Legacy shape: the format rides in every frame and the timestamp is a number.
        body["contentType"] = media.media_format.encoding.value
        body["sampleRate"] = media.media_format.sample_rate
        timestamp: int | str | None = media.timestamp
    else:
        # Live shape: the timestamp is a numeric string.
        timestamp = None if media.timestamp is None else str(media.timestamp)
    _with_optional(body, track=media.track.value, timestamp=timestamp, chunk=media.chunk)
    obj = _with_optional({}, sequenceNumber=media.sequence_number, streamId=media.stream_id)
    obj["event"] = "media"
    obj["media"] = body
    return obj


def _to_object(message: CarrierEvent | AppCommand) -> _Obj:
    match message:
        case Media():
            return _media_object(message)
        case Start():
            return _start_object(message)
        case PlayAudio():
            return _with_optional(
                {"event": "playAudio"},
                streamId=message.stream_id,
                media={
                    "contentType": message.encoding.value,
                    "sampleRate": message.sample_rate,
                    "payload": encode_payload(message.payload),
                },
            )
        case Checkpoint():
            return _with_optional(
                {"event": "checkpoint"}, streamId=message.stream_id, name=message.name
            )
        case ClearAudio():
            return _with_optional({"event": "clearAudio"}, streamId=message.stream_id)
        case StopCommand():
            return _with_optional({"event": "stop"}, streamId=message.stream_id)
        case PlayedStream():
            return _with_optional(
                {"event": "playedStream"},
                sequenceNumber=message.sequence_number,
                streamId=message.stream_id,
                name=message.name,
            )
        case ClearedAudio():
            return _with_optional(
                {"event": "clearedAudio"},
                sequenceNumber=message.sequence_number,
                streamId=message.stream_id,
            )
        case Dtmf():
            return _with_optional(
                {"event": "dtmf"},
                sequenceNumber=message.sequence_number,
                streamId=message.stream_id,
                dtmf={"digit": message.digit},
            )
        case Stop():
            return _with_optional(
                {"event": "stop"},
                sequenceNumber=message.sequence_number,
                streamId=message.stream_id,
                reason=message.reason,
            )
        case Unknown():
            return {**message.fields, "event": message.event}


def encode(message: CarrierEvent | AppCommand) -> str:
    """Encode any event or command as one JSON text frame."""
    return orjson.dumps(_to_object(message)).decode()


def encode_bytes(message: CarrierEvent | AppCommand) -> bytes:
    """:func:`encode` as the UTF-8 bytes a socket sends, without the round trip through ``str``."""
    return orjson.dumps(_to_object(message))


class MediaEncoder:
    """The ``media`` frames of one stream, encoded fast: what :func:`encode` writes, from a
    template made once by :func:`encode` itself.

    A carrier sends 50 frames a second per call, and only the payload, the timestamp, the chunk
    and the sequence number change from frame to frame. The payload comes already in base64, so
    audio shared by many calls is encoded once, and the frame comes out as the bytes a socket
    sends. ``media_format`` set gives the legacy shape (no chunk or sequence number, the format in
    every frame); ``extra_headers`` adds the top-level field live frames carry.
    """

    _TIMESTAMP = 9_876_543_210_123
    _CHUNK = 987_654_301
    _SEQUENCE = 987_654_302

    def __init__(
        self,
        *,
        track: Track,
        stream_id: str | None,
        media_format: AudioFormat | None = None,
        extra_headers: str | None = None,
    ) -> None:
        seed_shape = media_format is not None
        sample = Media(
            payload=b"",
            track=track,
            timestamp=self._TIMESTAMP,
            chunk=None if seed_shape else self._CHUNK,
            sequence_number=None if seed_shape else self._SEQUENCE,
            stream_id=stream_id,
            media_format=media_format,
        )
        obj = _media_object(sample)
        if extra_headers is not None:
            obj["extra_headers"] = extra_headers
        text = orjson.dumps(obj).replace(b"%", b"%%")
        # Each marker becomes a %-slot; ``encode`` passes its four values in the slots' order.
        markers = (
            b'"payload":""',
            str(self._TIMESTAMP).encode(),
            str(self._CHUNK).encode(),
            str(self._SEQUENCE).encode(),
        )
        slots = (b'"payload":"%b"', b"%d", b"%d", b"%d")
        order: list[tuple[int, int]] = []
        for argument, marker in enumerate(markers):
            found = text.count(marker)
            if found > 1 or (found == 0 and not (seed_shape and argument >= 2)):
                raise ProtocolError(f"cannot make a media template for stream id {stream_id!r}")
            if found:
                order.append((text.index(marker), argument))
        for marker, slot in zip(markers, slots, strict=True):
            text = text.replace(marker, slot)
        self._template = text
        self._pick = operator.itemgetter(*(argument for _, argument in sorted(order)))

    def encode(
        self, payload_base64: bytes, timestamp: int, chunk: int = 0, sequence: int = 0
    ) -> bytes:
        """One frame; ``chunk`` and ``sequence`` are ignored in the legacy shape."""
        values: tuple[object, ...] = self._pick((payload_base64, timestamp, chunk, sequence))
        return self._template % values
