"""Messages back to JSON text frames, in the shapes the carrier and the app send."""

from __future__ import annotations

import binascii
import operator
from typing import Any

import orjson

from vobiz_stream.core.messages import (
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
from vobiz_stream.errors import ProtocolError
from vobiz_stream.formats import AudioFormat

_Obj = dict[str, Any]


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
        legacy_shape = media_format is not None
        sample = Media(
            payload=b"",
            track=track,
            timestamp=self._TIMESTAMP,
            chunk=None if legacy_shape else self._CHUNK,
            sequence_number=None if legacy_shape else self._SEQUENCE,
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
            if found > 1 or (found == 0 and not (legacy_shape and argument >= 2)):
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
