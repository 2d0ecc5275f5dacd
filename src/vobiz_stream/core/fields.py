"""Readers for the fields of a carrier or app frame: each takes the decoded JSON object and a key,
checks the value's type and bound, and raises :class:`ProtocolError` for anything else."""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from vobiz_stream.core.messages import MAX_ID_CHARS, MAX_NAME_CHARS, Track
from vobiz_stream.errors import AudioError, ProtocolError
from vobiz_stream.formats import AudioFormat, Encoding, parse_content_type

JsonObject = dict[str, Any]


# The readers below run for every media frame, 50 times a second per call, so each checks the
# common exact type first (``type(x) is``) and only then the slower tolerant cases.


def read_text(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"field {key!r} must be a string, got {type(value).__name__}")


def bounded_text(value: str | None, key: str, limit: int, what: str) -> str | None:
    if value is not None and len(value) > limit:
        raise ProtocolError(
            f"field {key!r} has {len(value)} characters; {what} have at most {limit}"
        )
    return value


def read_id(obj: JsonObject, key: str) -> str | None:
    """An id or a phone number: text of at most :data:`MAX_ID_CHARS` characters."""
    return bounded_text(read_text(obj, key), key, MAX_ID_CHARS, "ids")


def read_name(obj: JsonObject, key: str) -> str | None:
    """A name or a reason: text of at most :data:`MAX_NAME_CHARS` characters."""
    return bounded_text(read_text(obj, key), key, MAX_NAME_CHARS, "names")


WIRE_INT_RANGE = range(-(2**63), 2**64)
"""What JSON encoders write back (signed or unsigned 64 bits); every real field fits easily."""


def int_of_text(text: str) -> int | None:
    """The integer a numeric string spells (surrounding spaces allowed), None if it is not one."""
    try:
        return int(text.strip())
    except ValueError:
        return None


def read_int(obj: JsonObject, key: str) -> int | None:
    """An integer that the carrier may send as a number or as a numeric string."""
    value = obj.get(key)
    number: int | None = None
    if value is None:
        return None
    if type(value) is int:
        number = value
    elif isinstance(value, str):
        number = int_of_text(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None:
        raise ProtocolError(
            f"field {key!r} must be an integer or numeric string, got {value!r:.40}"
        )
    if number not in WIRE_INT_RANGE:
        raise ProtocolError(f"field {key!r} is out of the 64-bit range: {value!r:.40}")
    return number


def read_object(obj: JsonObject, key: str) -> JsonObject | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    raise ProtocolError(f"field {key!r} must be a JSON object, got {type(value).__name__}")


TRACKS_BY_NAME = {track.value: track for track in Track}


def read_track(obj: JsonObject, key: str) -> Track:
    name = read_text(obj, key)
    if name is None:
        return Track.INBOUND
    track = TRACKS_BY_NAME.get(name)
    if track is not None:
        return track
    try:
        return Track(name.strip().lower())
    except ValueError:
        raise ProtocolError(
            f"field {key!r} must be 'inbound' or 'outbound', got {name!r:.40}"
        ) from None


def read_payload(media: JsonObject) -> bytes:
    value = media.get("payload")
    if not isinstance(value, str):
        raise ProtocolError("media frame has no base64 string in 'media.payload'")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"'media.payload' is not valid base64: {exc}") from None


def check_whole_samples(payload: bytes, sample_width: int, what: str) -> None:
    if len(payload) % sample_width:
        raise ProtocolError(
            f"{what} payload of {len(payload)} bytes is not a whole number of "
            f"{sample_width}-byte samples"
        )


def load_frame(frame: str | bytes) -> JsonObject:
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame is a JSON {type(obj).__name__}, not an object")
    return obj


def event_name(obj: JsonObject) -> str:
    event = obj.get("event")
    if not isinstance(event, str) or not event:
        raise ProtocolError("frame has no 'event' name")
    bounded_text(event, "event", MAX_NAME_CHARS, "names")
    return event


def read_format(encoding: str | None, rate: int | None, what: str) -> AudioFormat | None:
    """The format a frame names, if any; a rate without an encoding means L16 at that rate."""
    if encoding is None:
        encoding = None if rate is None else Encoding.L16.value
    if encoding is None:
        return None
    try:
        return parse_content_type(encoding, default_rate=rate)
    except AudioError as exc:
        raise ProtocolError(f"{what}: {exc}") from None
