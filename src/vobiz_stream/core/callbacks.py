"""Status callbacks (docs/protocol.md section 5): parse them within bounds and check them.

The carrier POSTs a form (or sends a GET query) to the ``statusCallbackUrl`` of a ``<Stream>`` at
each step of the stream's life. :func:`parse_status_callback` turns those fields into a
:class:`StatusCallback` and never rejects one: every field is optional and unknown ``Event`` values
are kept, so nothing the carrier says is lost. :func:`read_status_callback` is the whole of what
the server does with a request once its body is read: bound the query, check the signature
(:mod:`vobiz_stream.core.signatures`) and that its nonce is fresh
(:mod:`vobiz_stream.core.nonces`), read the query and form body, cut any field past
:data:`MAX_FIELD_CHARS`, parse; it raises :class:`CallbackError` and nothing else.

Nothing here does I/O: reading a body and writing the log are :mod:`vobiz_stream.app.webhooks`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from vobiz_stream.core.nonces import NonceWindow
from vobiz_stream.core.signatures import (
    SignatureCheck,
    as_raw_bytes,
    missing_signature,
    sign_v2,
    sign_v3,
    signed_nonce,
    verify_signature,
)
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.logtext import loggable

__all__ = [
    "EXTRA_HEADER_PREFIX",
    "MAX_BODY_BYTES",
    "MAX_FIELDS",
    "MAX_FIELD_CHARS",
    "MAX_QUERY_BYTES",
    "CallbackError",
    "ReceivedCallback",
    "SignatureCheck",
    "StatusCallback",
    "form_fields",
    "format_utc",
    "log_summary",
    "parse_status_callback",
    "read_status_callback",
    "replayed",
    "sign_v2",
    "sign_v3",
    "verify_signature",
]

EXTRA_HEADER_PREFIX = "X-VH-"
"""Each ``extraHeaders`` pair of the ``<Stream>`` reaches the callback as ``X-VH-<key>``."""

MAX_FIELDS = 1000
"""Most fields a callback may carry (query and body together); a callback has about a dozen."""

MAX_BODY_BYTES = 64 * 1024
"""Largest callback body read (413 past it); a callback's form is well under 2 KiB."""

MAX_QUERY_BYTES = 4 * 1024
"""Largest query string read (414 past it). A GET callback carries its fields here; the HTTP
parser itself refuses a request line over 8190 bytes with 400 before any of this runs."""

MAX_FIELD_CHARS = 1024
"""Longest field name or value kept; a longer one is cut, marked ``…(N chars)`` and listed in
the callback's ``truncated``."""

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class CallbackError(VobizStreamError):
    """A status callback (or answer request) the server refuses, with the HTTP status to answer
    (403 for a signature that is not valid or a replayed nonce, 400 for a request that cannot be
    read, 413/414 for one too large) and a short ``reason`` to count it under."""

    def __init__(self, status: int, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


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
    truncated: tuple[str, ...] = ()
    """Names of the fields cut to :data:`MAX_FIELD_CHARS` (their value ends ``…(N chars)``)."""


def parse_status_callback(
    fields: Mapping[str, str], truncated: tuple[str, ...] = ()
) -> StatusCallback:
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
        truncated=truncated,
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
    query_pairs, body_pairs = _request_pairs(query, body, content_type)
    return dict(query_pairs + body_pairs)


def _request_pairs(
    query: str, body: bytes, content_type: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The query's fields and the urlencoded body's, each in order (see :func:`form_fields`)."""
    query_pairs = _pairs(as_raw_bytes(query).decode("utf-8", "replace"))
    body_pairs: list[tuple[str, str]] = []
    if body and content_type.split(";", maxsplit=1)[0].strip().lower() in ("", FORM_CONTENT_TYPE):
        body_pairs = _pairs(body.decode("utf-8", "replace"))
    count = len(query_pairs) + len(body_pairs)
    if count > MAX_FIELDS:
        raise CallbackError(400, f"{count} fields; a callback has at most {MAX_FIELDS}")
    return query_pairs, body_pairs


def _pairs(text: str) -> list[tuple[str, str]]:
    # Without max_num_fields, parse_qsl never raises; the count is checked by the caller.
    return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")


def _cut(text: str) -> str:
    return f"{text[:MAX_FIELD_CHARS]}…({len(text)} chars)"


def bounded_fields(fields: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """``fields`` with every name and value cut to :data:`MAX_FIELD_CHARS`, and the (cut) names
    of the fields that were cut, in order."""
    bounded: dict[str, str] = {}
    truncated: list[str] = []
    for name, value in fields.items():
        if len(name) <= MAX_FIELD_CHARS and len(value) <= MAX_FIELD_CHARS:
            bounded[name] = value
            continue
        kept_name = name if len(name) <= MAX_FIELD_CHARS else _cut(name)
        bounded[kept_name] = value if len(value) <= MAX_FIELD_CHARS else _cut(value)
        truncated.append(kept_name)
    return bounded, tuple(truncated)


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


@dataclass(frozen=True, slots=True)
class ReceivedCallback:
    """A status callback the server accepted, and what its signature check found."""

    callback: StatusCallback
    signature: SignatureCheck
    nonce: str | None = None
    """The nonce a valid signature came with (remembered against replays), else None."""


def read_status_callback(
    *,
    query: str,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
    urls: Sequence[str],
    auth_token: str | None,
    method: str = "POST",
    nonces: NonceWindow | None = None,
) -> ReceivedCallback:
    """Everything the server does with a status callback request, free of I/O.

    ``query`` is the raw query string, ``urls`` the full URLs the carrier may have signed,
    ``method`` the request's (the SDK reading of a signature covers a POST's form fields). A
    query over :data:`MAX_QUERY_BYTES` raises :class:`CallbackError` (414). With an
    ``auth_token`` anything but a valid signature raises :class:`CallbackError` (403; nothing
    of a request without a signature and its nonce is parsed), as does a nonce ``nonces`` has
    seen already; without one the callback is kept as unsigned. Fields past
    :data:`MAX_FIELD_CHARS` are cut and listed in the callback's ``truncated``. Raises
    :class:`CallbackError` and nothing else.
    """
    if len(query) > MAX_QUERY_BYTES:
        raise CallbackError(
            414,
            f"query over {MAX_QUERY_BYTES} bytes; send status callbacks by POST",
            "too_large",
        )
    check, nonce = SignatureCheck.UNSIGNED, None
    if auth_token and (missing := missing_signature(headers)) is not None:
        raise CallbackError(403, f"signature {missing.value}", "signature")  # nothing parsed
    query_pairs, body_pairs = _request_pairs(query, body, content_type)
    if auth_token:
        check, nonce = check_signed_request(
            auth_token, urls, headers, method=method, form=body_pairs, nonces=nonces
        )
    fields, truncated = bounded_fields(dict(query_pairs + body_pairs))
    return ReceivedCallback(parse_status_callback(fields, truncated), check, nonce)


def read_signed_form(
    *,
    query: str,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
    urls: Sequence[str],
    auth_token: str,
    method: str = "POST",
    nonces: NonceWindow | None = None,
) -> dict[str, str]:
    """The fields of a request the carrier must have signed (an answer request, with
    ``verify_answers``), as :func:`form_fields` gives them; :class:`CallbackError` (403) for a
    missing, wrong or replayed signature, before anything is parsed where it is missing."""
    if (missing := missing_signature(headers)) is not None:
        raise CallbackError(403, f"signature {missing.value}", "signature")
    query_pairs, body_pairs = _request_pairs(query, body, content_type)
    check_signed_request(auth_token, urls, headers, method=method, form=body_pairs, nonces=nonces)
    return dict(query_pairs + body_pairs)


def check_signed_request(
    auth_token: str,
    urls: Sequence[str],
    headers: Mapping[str, str],
    *,
    method: str,
    form: Sequence[tuple[str, str]],
    nonces: NonceWindow | None,
) -> tuple[SignatureCheck, str]:
    """The signature check and the nonce of a signed request; :class:`CallbackError` (403)
    unless it is valid under either reading and its nonce is fresh."""
    check = verify_signature(auth_token, urls, headers, method=method, form=form)
    if check is not SignatureCheck.VALID:
        raise CallbackError(403, f"signature {check.value}", "signature")
    nonce = signed_nonce(headers) or ""
    if nonces is not None and not nonces.accept(nonce):
        raise replayed()
    return check, nonce


def replayed() -> CallbackError:
    """The refusal of a signed request whose nonce was accepted already (by this process, or by
    another one sharing its call store): 403, counted as ``replayed``."""
    return CallbackError(403, "nonce already used: a replayed request", "replayed")


def log_summary(callback: StatusCallback) -> str:
    """``status callback <Event>`` with its error and cut fields, escaped and cut short, for
    the server's log line (which names the call itself)."""
    summary = f"status callback {loggable(callback.event or '?')}"
    if callback.error:
        summary += f" error={loggable(callback.error)}"
    if callback.truncated:
        summary += f" (cut to {MAX_FIELD_CHARS} chars: {loggable(', '.join(callback.truncated))})"
    return summary


# --- counting and the log --------------------------------------------------------------------
