"""Status callbacks (docs/protocol.md section 5): parse them, check their signatures, log them.

The carrier POSTs a form (or sends a GET query) to the ``statusCallbackUrl`` of a ``<Stream>`` at
each step of the stream's life. :func:`parse_status_callback` turns those fields into a
:class:`StatusCallback` and never rejects one: every field is optional and unknown ``Event`` values
are kept, so nothing the carrier says is lost. :func:`read_status_callback` is the whole of what
the server does with a request: check the signature, read the query and form body
(:func:`form_fields`), parse; it raises :class:`CallbackError` and nothing else.

:func:`sign_v3` and :func:`sign_v2` are the one implementation of the signature scheme; the server
checks with :func:`verify_signature` and the emulator signs with them. :class:`WebhookLog` appends
one JSON line per callback, like a reference sink's ``webhook-events.log``.

Everything here is free of I/O except :class:`WebhookLog`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qsl

import orjson

from vobiz_stream.closing import Closeable
from vobiz_stream.errors import VobizStreamError

__all__ = [
    "EXTRA_HEADER_PREFIX",
    "MAX_FIELDS",
    "CallbackError",
    "ReceivedCallback",
    "SignatureCheck",
    "StatusCallback",
    "WebhookLog",
    "form_fields",
    "format_utc",
    "parse_status_callback",
    "read_status_callback",
    "sign_v2",
    "sign_v3",
    "verify_signature",
]

EXTRA_HEADER_PREFIX = "X-VH-"
"""Each ``extraHeaders`` pair of the ``<Stream>`` reaches the callback as ``X-VH-<key>``."""

MAX_FIELDS = 1000
"""Most fields a callback may carry (query and body together); a callback has about a dozen."""

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class CallbackError(VobizStreamError):
    """A status callback (or answer request) the server refuses, with the HTTP status to answer:
    403 for a signature that is not valid, 400 for a request that cannot be read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class StatusCallback:
    """One status callback as the carrier sent it.

    The named fields are read case-insensitively; a field that is missing or empty is None (the
    carrier sends ``Error`` empty when the stream is healthy, and an empty ``CallUUID`` names no
    call). ``event`` is ``""`` when the callback has none. ``fields`` keeps every field exactly as
    received, for storage and logging.
    """

    event: str
    call_uuid: str | None = None
    stream_id: str | None = None
    from_number: str | None = None
    to: str | None = None
    timestamp: str | None = None
    """``Timestamp`` as given (``YYYY-MM-DD HH:MM:SS``)."""
    timestamp_utc: datetime | None = None
    """``timestamp`` parsed, read as UTC when it names no zone; None when it does not parse."""
    parent_auth_id: str | None = None
    error: str | None = None
    name: str | None = None
    """The checkpoint name of a ``PlayedStream``."""
    service_url: str | None = None
    """The socket URL of a ``StartStream``."""
    extra_headers: dict[str, str] = field(default_factory=dict, hash=False)
    """``X-VH-<key>`` fields as ``key -> value``."""
    fields: dict[str, str] = field(default_factory=dict, hash=False)


def parse_status_callback(fields: Mapping[str, str]) -> StatusCallback:
    """Read a status callback's form or query fields; never raises.

    ``fields`` may be a multidict (aiohttp's ``request.post()`` or ``request.query``): a repeated
    field keeps its last value.
    """
    received = dict(fields.items())
    by_lower_name = {name.lower(): value for name, value in received.items()}

    def text(name: str) -> str | None:
        return by_lower_name.get(name) or None

    prefix_length = len(EXTRA_HEADER_PREFIX)
    extra_headers = {
        name[prefix_length:]: value
        for name, value in received.items()
        if name[:prefix_length].upper() == EXTRA_HEADER_PREFIX
    }
    timestamp = text("timestamp")
    return StatusCallback(
        event=by_lower_name.get("event", ""),
        call_uuid=text("calluuid"),
        stream_id=text("streamid"),
        from_number=text("from"),
        to=text("to"),
        timestamp=timestamp,
        timestamp_utc=None if timestamp is None else _parse_timestamp(timestamp),
        parent_auth_id=text("parentauthid"),
        error=text("error"),
        name=text("name"),
        service_url=text("serviceurl"),
        extra_headers=extra_headers,
        fields=received,
    )


def form_fields(
    query: str, body: bytes = b"", content_type: str = FORM_CONTENT_TYPE
) -> dict[str, str]:
    """The fields of a request: the raw ``query`` string, then an urlencoded ``body``.

    A repeated field keeps its last value (the body's, when both have it). Bytes that are not
    UTF-8 become U+FFFD. A body of another content type (multipart...) is not read: the carrier
    sends forms urlencoded (an empty content type is taken for that, as aiohttp does). Raises
    :class:`CallbackError` (400) past :data:`MAX_FIELDS` fields.
    """
    fields = _pairs(_utf8(query).decode("utf-8", "replace"))
    if body and content_type.split(";", maxsplit=1)[0].strip().lower() in ("", FORM_CONTENT_TYPE):
        fields += _pairs(body.decode("utf-8", "replace"))
    if len(fields) > MAX_FIELDS:
        raise CallbackError(400, f"{len(fields)} fields; a callback has at most {MAX_FIELDS}")
    return dict(fields)


def _pairs(text: str) -> list[tuple[str, str]]:
    # Without max_num_fields, parse_qsl never raises; the count is checked by the caller.
    return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")


def _parse_timestamp(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as JavaScript's ``toISOString()`` writes it.

    The width is fixed, so these strings sort in time order; the store relies on that.
    """
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment!r} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- signatures ------------------------------------------------------------------------------


class SignatureCheck(StrEnum):
    """What :func:`verify_signature` found."""

    VALID = "valid"
    INVALID = "invalid"
    UNSIGNED = "unsigned"


def _utf8(text: str) -> bytes:
    """``text`` as bytes for an HMAC, whatever it holds: a header aiohttp could not decode as
    UTF-8 arrives with its bytes escaped as lone surrogates, which this turns back into them."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _sign(auth_token: str, message: str) -> str:
    digest = hmac.new(_utf8(auth_token), _utf8(message), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_v3(auth_token: str, url: str, nonce: str) -> str:
    """``X-Vobiz-Signature-V3``: base64 HMAC-SHA256 keyed by the auth token over ``url.nonce``."""
    return _sign(auth_token, f"{url}.{nonce}")


def sign_v2(auth_token: str, url: str, nonce: str) -> str:
    """``X-Vobiz-Signature-V2``: as V3 but over ``url`` and ``nonce`` with nothing between."""
    return _sign(auth_token, url + nonce)


_SCHEMES = (
    ("x-vobiz-signature-v3", "x-vobiz-signature-v3-nonce", sign_v3),
    ("x-vobiz-signature-v2", "x-vobiz-signature-v2-nonce", sign_v2),
)
"""Newest first: a request carrying a V3 signature is judged on it alone."""


def verify_signature(
    auth_token: str, url: str | Sequence[str], headers: Mapping[str, str]
) -> SignatureCheck:
    """Check a callback's signature headers against the URL it was sent to.

    ``url`` is the full URL the carrier posted to, query included; pass several when the server is
    reachable under more than one (public behind a proxy, and local): any match is valid. A
    signature header may hold several comma-separated signatures (token rotation): any match is
    valid. A signature without its nonce header is invalid; no signature header at all is unsigned.
    """
    by_lower_name = {name.lower(): value for name, value in headers.items()}
    candidates = (url,) if isinstance(url, str) else tuple(url)
    for signature_header, nonce_header, sign in _SCHEMES:
        signatures = by_lower_name.get(signature_header)
        if signatures is None:
            continue
        nonce = by_lower_name.get(nonce_header)
        if nonce is None:
            return SignatureCheck.INVALID
        given = [_utf8(part.strip()) for part in signatures.split(",") if part.strip()]
        expected = [sign(auth_token, candidate, nonce).encode() for candidate in candidates]
        if any(hmac.compare_digest(g, e) for g in given for e in expected):
            return SignatureCheck.VALID
        return SignatureCheck.INVALID
    return SignatureCheck.UNSIGNED


@dataclass(frozen=True, slots=True)
class ReceivedCallback:
    """A status callback the server accepted, and what its signature check found."""

    callback: StatusCallback
    signature: SignatureCheck


def read_status_callback(
    *,
    query: str,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
    urls: Sequence[str],
    auth_token: str | None,
) -> ReceivedCallback:
    """Everything the server does with a status callback request, free of I/O.

    ``query`` is the raw query string, ``urls`` the full URLs the carrier may have signed. With an
    ``auth_token`` the signature is checked first (nothing of an unsigned request is read) and
    anything but a valid one raises :class:`CallbackError` (403); without one the callback is
    kept as unsigned. Raises :class:`CallbackError` and nothing else.
    """
    check = SignatureCheck.UNSIGNED
    if auth_token:
        check = verify_signature(auth_token, urls, headers)
        if check is not SignatureCheck.VALID:
            raise CallbackError(403, f"signature {check.value}")
    fields = form_fields(query, body, content_type)
    return ReceivedCallback(parse_status_callback(fields), check)


# --- the log ---------------------------------------------------------------------------------


class WebhookLog(Closeable):
    """Appends each callback to a file as one JSON object per line.

    A line holds the callback's fields as received, then ``receivedAt`` and ``signature`` (these
    two win over a received field of the same name). Each line is written with one call and flushed
    at once, so a crash of the process loses no line already written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("ab")

    def write(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> None:
        record = {
            **callback.fields,
            "receivedAt": format_utc(received_at),
            "signature": signature.value,
        }
        self._file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
