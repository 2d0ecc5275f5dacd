"""The shapes of Vobiz's REST API, without I/O: what a request must hold, what an answer holds.

Requests are read field by field with a clear error naming the field (:class:`ApiError`, an
HTTP status and a message); answers are plain dicts ready for JSON, in the documented shapes: a
placed call answers ``request_uuid``, a started stream ``stream_id``, lists carry ``meta``
(``count``, ``limit``, ``offset``, ``next``, ``previous``) and ``objects``, errors carry
``error``; every answer carries an ``api_id``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from vobiz_stream.core.answer import CallbackMethod, Stream, parse_response
from vobiz_stream.errors import XmlError
from vobiz_stream.logtext import loggable

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ApiError",
    "PlaceCall",
    "api_body",
    "error_body",
    "list_body",
    "parse_digits",
    "parse_page",
    "parse_place_call",
    "parse_stream_request",
]

DEFAULT_LIMIT = 20
"""Objects per page of a list when the request names no ``limit``."""
MAX_LIMIT = 20
"""The most objects one page holds."""

_FIELD_CHARS = 200
"""How much of a field's value an error message quotes."""

_DIGITS = re.compile(r"[0-9*#A-D]{1,64}")
_ANSWER_METHODS = ("GET", "POST")

_STREAM_ATTRIBUTES = {
    "bidirectional": "bidirectional",
    "audio_track": "audioTrack",
    "content_type": "contentType",
    "stream_timeout": "streamTimeout",
    "status_callback_url": "statusCallbackUrl",
    "status_callback_method": "statusCallbackMethod",
    "extra_headers": "extraHeaders",
}
"""The stream request's fields and the ``<Stream>`` attributes they mean."""


class ApiError(Exception):
    """A request the API refuses: ``status`` and a message saying what to change;
    ``retry_after`` (seconds) when trying again later may work."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class PlaceCall:
    """A request to place a call."""

    from_number: str
    to_number: str
    answer_url: str
    answer_method: CallbackMethod = CallbackMethod.POST


def api_body(**fields: object) -> dict[str, Any]:
    """An answer's JSON: a new ``api_id`` and ``fields``."""
    return {"api_id": str(uuid.uuid4()), **fields}


def error_body(message: str) -> dict[str, Any]:
    return api_body(error=message)


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string, got {loggable(repr(value), _FIELD_CHARS)}")
    return value


def parse_place_call(body: Mapping[str, Any]) -> PlaceCall:
    """``from``, ``to``, ``answer_url`` (http or https) and ``answer_method`` (GET or POST)."""
    from_number = _text(body, "from")
    to_number = _text(body, "to")
    answer_url = _text(body, "answer_url")
    assert from_number is not None and to_number is not None and answer_url is not None
    if not answer_url.startswith(("http://", "https://")):
        raise ApiError(
            400,
            f"answer_url must be an http or https URL, got {loggable(answer_url, _FIELD_CHARS)}",
        )
    method = (_text(body, "answer_method", required=False) or "POST").upper()
    if method not in _ANSWER_METHODS:
        raise ApiError(400, f"answer_method must be GET or POST, got {loggable(method, 20)}")
    return PlaceCall(from_number, to_number, answer_url, CallbackMethod(method))


def parse_stream_request(body: Mapping[str, Any]) -> Stream:
    """The ``<Stream>`` a stream request means, checked by the same rules as answer XML."""
    service_url = _text(body, "service_url")
    assert service_url is not None
    stream = ElementTree.Element("Stream")
    stream.text = service_url
    for field_name, attribute in _STREAM_ATTRIBUTES.items():
        value = body.get(field_name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int):
            raise ApiError(
                400, f"{field_name} must be a string, got {loggable(repr(value), _FIELD_CHARS)}"
            )
        stream.set(attribute, str(value))
    response = ElementTree.Element("Response")
    response.append(stream)
    try:
        [parsed] = parse_response(ElementTree.tostring(response)).streams
    except XmlError as exc:
        raise ApiError(400, _in_field_names(str(exc))) from None
    return parsed


def _in_field_names(message: str) -> str:
    """An answer XML error in the request's words (``audio_track=``, not ``audioTrack=``)."""
    message = message.removeprefix("invalid answer XML: ").replace("<Stream> ", "")
    message = message.replace("URL ", "service_url ")
    for field_name, attribute in _STREAM_ATTRIBUTES.items():
        message = message.replace(f"{attribute}=", f"{field_name}=")
    return message


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """``limit`` (1 to :data:`MAX_LIMIT`, default :data:`DEFAULT_LIMIT`) and ``offset`` (0 or
    more, default 0)."""
    limit = _whole(query, "limit", DEFAULT_LIMIT)
    offset = _whole(query, "offset", 0)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ApiError(400, f"offset must be 0 or more, got {offset}")
    return limit, offset


def _whole(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be a whole number, got {loggable(raw, _FIELD_CHARS)}"
        ) from None


def parse_digits(body: Mapping[str, Any]) -> str:
    """``digits`` (0-9, ``*``, ``#``, A-D; at most 64) and ``leg`` (``aleg``, the caller's)."""
    digits = _text(body, "digits")
    assert digits is not None
    if not _DIGITS.fullmatch(digits):
        raise ApiError(
            400,
            "digits must be 1 to 64 of 0-9 * # A-D, got " + loggable(digits, _FIELD_CHARS),
        )
    leg = _text(body, "leg", required=False) or "aleg"
    if leg != "aleg":
        raise ApiError(
            400,
            f"leg must be aleg (the local carrier's calls have one leg), got {loggable(leg, 20)}",
        )
    return digits


def list_body(
    objects: Sequence[dict[str, Any]], limit: int, offset: int, path: str
) -> dict[str, Any]:
    """One page of ``objects`` (all of them, in order) with its ``meta``."""
    page = list(objects[offset : offset + limit])
    after = offset + limit
    return api_body(
        meta={
            "count": len(objects),
            "limit": limit,
            "offset": offset,
            "next": f"{path}?limit={limit}&offset={after}" if after < len(objects) else None,
            "previous": (
                f"{path}?limit={limit}&offset={max(0, offset - limit)}" if offset > 0 else None
            ),
        },
        objects=page,
    )
