"""The carrier's status callbacks (docs/protocol.md section 5), sent without stalling the call.

Each step of a stream's life is reported to the ``<Stream>``'s ``statusCallbackUrl``: a
form-encoded POST, or with ``statusCallbackMethod="GET"`` the same fields in the query string.
Every callback carries ``Event``, ``CallUUID``, ``StreamID``, ``From``, ``To``, ``Timestamp``
(UTC ``YYYY-MM-DD HH:MM:SS``), ``ParentAuthID``, ``Error`` (empty when healthy) and an
``X-VH-<key>`` field for each ``extraHeaders`` pair. With an auth token each request is signed with
``X-Vobiz-Signature-V3`` and its nonce, or on request with the older ``X-Vobiz-Signature-V2``
(:mod:`vobiz_stream.core.signatures`): by default as Vobiz's Python SDK verifies (the sorted fields
are signed with the URL), or on request as the docs describe it (the full URL alone).

:class:`CallbackSender` queues callbacks and a single background task sends them in order, each
bounded by a timeout, so a slow or failing callback endpoint never delays the media pacing. What
came of each one (HTTP status, latency or the error) is kept as a
:class:`~vobiz_stream.emulator.report.CallbackSent`; nothing about a callback is fatal to the call.
:meth:`CallbackSender.close` sends what is queued before the call's report is handed out.

The field building (:func:`callback_fields`, :func:`callback_request`) is free of I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from vobiz_stream.core.answer import CallbackMethod
from vobiz_stream.core.callbacks import EXTRA_HEADER_PREFIX
from vobiz_stream.core.signatures import SignatureForm, sdk_v2_url, sdk_v3_url, sign_v2, sign_v3
from vobiz_stream.emulator.report import CallbackSent

__all__ = [
    "CALLBACK_TIMEOUT",
    "CallbackContext",
    "CallbackEvent",
    "CallbackRequest",
    "CallbackSender",
    "SignatureForm",
    "SignatureVersion",
    "callback_fields",
    "callback_request",
    "callback_timestamp",
    "new_nonce",
]

log = logging.getLogger("vobiz_stream.emulator")

CALLBACK_TIMEOUT = 3.0
"""Seconds a callback endpoint has to answer (docs/protocol.md section 5)."""


class SignatureVersion(StrEnum):
    """Which signature signed callbacks carry: V3 (current), or V2 (URL and nonce, no ``.``)."""

    V2 = "v2"
    V3 = "v3"

    @property
    def header(self) -> str:
        return f"X-Vobiz-Signature-{self.name}"

    @property
    def nonce_header(self) -> str:
        return f"{self.header}-Nonce"

    def sign(
        self,
        auth_token: str,
        request: CallbackRequest,
        nonce: str,
        form: SignatureForm = SignatureForm.SDK,
    ) -> str:
        """The signature of ``request`` (its URL, and in the SDK's reading its fields)."""
        if self is SignatureVersion.V3:
            fields = tuple((request.body or {}).items())
            url = request.url
            if form is SignatureForm.SDK:
                url = sdk_v3_url(request.method.value, url, fields)
            return sign_v3(auth_token, url, nonce)
        url = sdk_v2_url(request.url) if form is SignatureForm.SDK else request.url
        return sign_v2(auth_token, url, nonce)


class CallbackEvent(StrEnum):
    """The ``Event`` values the emulator sends."""

    START = "StartStream"
    """The socket is up and ``start`` sent; carries ``ServiceURL``."""
    PLAYED = "PlayedStream"
    """A checkpoint played; carries ``Name``."""
    CLEARED = "ClearedAudio"
    DEGRADED = "DegradedStream"
    """The playback queue passed its cap; ``Error`` says so."""
    DROPPED = "DroppedStream"
    """The connect failed or the socket dropped (the app closing it too); ``Error`` says how."""
    STOP = "StopStream"
    """The stream ended while the call goes on: the app's ``stop``, a REST stop,
    ``streamTimeout``. Not sent when the stream ends because the call hangs up."""


@dataclass(frozen=True, slots=True)
class CallbackContext:
    """What every callback of one call carries besides its event."""

    call_uuid: str
    from_number: str
    to_number: str
    account_id: str
    extra_headers: tuple[tuple[str, str], ...] = ()


def callback_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, as Vobiz writes ``Timestamp``."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment!r} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def callback_fields(
    event: CallbackEvent | str,
    context: CallbackContext,
    stream_id: str,
    *,
    moment: datetime,
    error: str = "",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The fields of one callback, in the order Vobiz sends them; ``extra`` adds
    event-specific ones (``ServiceURL``, ``Name``)."""
    fields = {
        "Event": str(event),
        "CallUUID": context.call_uuid,
        "StreamID": stream_id,
        "From": context.from_number,
        "To": context.to_number,
        "Timestamp": callback_timestamp(moment),
        "ParentAuthID": context.account_id,
        "Error": error,
        **(extra or {}),
    }
    for key, value in context.extra_headers:
        fields[EXTRA_HEADER_PREFIX + key] = value
    return fields


def new_nonce() -> str:
    """A fresh random nonce: 20 decimal digits, like Vobiz's."""
    return "".join(secrets.choice(string.digits) for _ in range(20))


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """One callback as it goes on the wire.

    ``url`` is exactly what is requested and what the signature covers: percent-encoded, with the
    fields in its query for GET. ``body`` holds the fields for POST (form-encoded), else None.
    """

    method: CallbackMethod
    url: str
    headers: dict[str, str]
    body: dict[str, str] | None


def callback_request(
    url: str,
    method: CallbackMethod,
    fields: Mapping[str, str],
    *,
    auth_token: str | None = None,
    nonce: str | None = None,
    signature: SignatureVersion = SignatureVersion.V3,
    form: SignatureForm = SignatureForm.SDK,
) -> CallbackRequest:
    """Build the request for one callback; sign it (``signature``, in the reading ``form``)
    when there is an ``auth_token``.

    The URL is normalised to its percent-encoded form first (a URL that already is one is kept as
    written), so the URL signed is byte for byte the URL the app receives.
    """
    base = str(URL(url))
    body: dict[str, str] | None = dict(fields)
    if method is CallbackMethod.GET:
        query = urlencode(dict(fields), quote_via=quote)
        base = f"{base}{'&' if URL(base).raw_query_string else '?'}{query}"
        body = None
    request = CallbackRequest(method, base, {}, body)
    if auth_token:
        nonce = nonce or new_nonce()
        request.headers[signature.header] = signature.sign(auth_token, request, nonce, form)
        request.headers[signature.nonce_header] = nonce
    return request


@dataclass(slots=True)
class _Queued:
    event: str
    stream_id: str
    at: float
    request: CallbackRequest


class CallbackSender:
    """Sends one call's callbacks in order from a background task; never blocks the caller.

    ``clock`` gives the call-clock time recorded with each callback; ``on_sent`` hears what came of
    each (the emulator's timeline). Every request is bounded by ``timeout`` seconds.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        method: CallbackMethod,
        context: CallbackContext,
        *,
        clock: Callable[[], float],
        auth_token: str | None = None,
        signature: SignatureVersion = SignatureVersion.V3,
        signature_form: SignatureForm = SignatureForm.SDK,
        timeout: float = CALLBACK_TIMEOUT,
        on_sent: Callable[[CallbackSent], None] | None = None,
    ) -> None:
        self.url = url
        self.method = method
        self.context = context
        self.sent: list[CallbackSent] = []
        self._http = http
        self._clock = clock
        self._auth_token = auth_token
        self._signature = signature
        self._signature_form = signature_form
        self._timeout = timeout
        self._on_sent = on_sent
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    def send(
        self,
        event: CallbackEvent,
        stream_id: str,
        *,
        error: str = "",
        extra: Mapping[str, str] | None = None,
    ) -> None:
        """Queue one callback, stamped now; it goes out in the background, in order."""
        if self._closed:
            raise RuntimeError("the callback sender is closed")
        fields = callback_fields(
            event, self.context, stream_id, moment=datetime.now(UTC), error=error, extra=extra
        )
        request = callback_request(
            self.url,
            self.method,
            fields,
            auth_token=self._auth_token,
            signature=self._signature,
            form=self._signature_form,
        )
        self._queue.put_nowait(_Queued(str(event), stream_id, self._clock(), request))
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="status-callbacks")

    async def close(self) -> None:
        """Send everything queued (each still bounded by the timeout), then stop."""
        self._closed = True
        worker = self._worker
        if worker is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            raise

    def abort(self) -> None:
        """Stop at once: what is queued is not sent (the call was cancelled)."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()

    async def _work(self) -> None:
        while (item := await self._queue.get()) is not None:
            result = await self._deliver(item)
            self.sent.append(result)
            if self._on_sent is not None:
                self._on_sent(result)

    async def _deliver(self, item: _Queued) -> CallbackSent:
        request = item.request
        began = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                async with self._http.request(
                    request.method.value,
                    URL(request.url, encoded=True),
                    data=request.body,
                    headers=request.headers,
                ) as response:
                    await response.read()
                    status = response.status
        except TimeoutError:
            error = f"no answer within {self._timeout:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = round((time.monotonic() - began) * 1000, 3)
        if error is not None or (status is not None and not 200 <= status < 300):
            log.warning(
                "call %s: status callback %s to %s failed: %s",
                self.context.call_uuid,
                item.event,
                self.url,
                error or f"HTTP {status}",
            )
        return CallbackSent(
            event=item.event,
            stream_id=item.stream_id,
            at=round(item.at, 4),
            status=status,
            latency_ms=latency_ms,
            error=error,
        )
