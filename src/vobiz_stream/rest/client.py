"""An async client for Vobiz's REST API on aiohttp: calls and their audio streams.

::

    async with VobizClient(auth_id, auth_token) as vobiz:
        placed = await vobiz.place_call("+911234567890", "+919876543210", answer_url)
        started = await vobiz.start_stream(placed.request_uuid, "wss://app.example/stream")
        await vobiz.hang_up(placed.request_uuid)

``base_url`` points it elsewhere: ``http://127.0.0.1:8090/api/v1`` is a local carrier
(``vobiz-stream carrier``). Requests are tried again on 429 and 5xx as :mod:`.retry` says;
what the API refuses raises :class:`~vobiz_stream.rest.results.VobizApiError` with its message.
The auth token goes in a header only, never in a message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from vobiz_stream.logtext import loggable
from vobiz_stream.rest.results import (
    CallPlaced,
    LiveCall,
    StreamCreated,
    StreamInfo,
    StreamPage,
    VobizApiError,
)
from vobiz_stream.rest.retry import RetryPolicy, retry_after_seconds

__all__ = ["DEFAULT_BASE_URL", "MAX_ANSWER_BYTES", "VobizClient"]

log = logging.getLogger("vobiz_stream.rest")

DEFAULT_BASE_URL = "https://api.vobiz.ai/api/v1"
MAX_ANSWER_BYTES = 1 << 20
"""The most of one answer the client reads: the API's answers are a few kilobytes."""

_Json = dict[str, Any]


class VobizClient:
    """Vobiz's REST API for one account. Use it as an async context manager, or :meth:`close`
    it; a ``session`` passed in is the caller's to close."""

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not auth_id or not auth_token:
            raise ValueError("an auth id and an auth token are both needed")
        self._account = f"{base_url.rstrip('/')}/Account/{auth_id}/"
        self._headers = {
            "X-Auth-ID": auth_id,
            "X-Auth-Token": auth_token,
            "Accept": "application/json",
        }
        self._retry = retry or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> VobizClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- calls ----------------------------------------------------------------------------------

    async def place_call(
        self,
        from_number: str,
        to_number: str,
        answer_url: str,
        *,
        answer_method: str = "POST",
        **extra: str | int | bool,
    ) -> CallPlaced:
        """Place a call from ``from_number`` (a number of the account) to ``to_number``; Vobiz
        fetches ``answer_url`` when it is answered. ``extra`` fields go as they are."""
        body: _Json = {
            "from": from_number,
            "to": to_number,
            "answer_url": answer_url,
            "answer_method": answer_method,
            **extra,
        }
        return CallPlaced.from_json(await self._request("POST", "Call/", body))

    async def hang_up(self, call_uuid: str) -> None:
        await self._request("DELETE", f"Call/{call_uuid}/")

    async def live_calls(self) -> tuple[str, ...]:
        """The ``call_uuid`` of every live call."""
        data = await self._request("GET", "Call/", params={"status": "live"})
        calls = data.get("calls")
        return tuple(str(call) for call in calls) if isinstance(calls, list) else ()

    async def get_live_call(self, call_uuid: str) -> LiveCall:
        data = await self._request("GET", f"Call/{call_uuid}/", params={"status": "live"})
        return LiveCall.from_json(data)

    async def send_digits(self, call_uuid: str, digits: str, *, leg: str = "aleg") -> None:
        """Press ``digits`` (0-9, ``*``, ``#``, A-D) on the call: the app's stream gets them as
        ``dtmf`` events."""
        await self._request("POST", f"Call/{call_uuid}/DTMF/", {"digits": digits, "leg": leg})

    # -- streams --------------------------------------------------------------------------------

    async def start_stream(
        self,
        call_uuid: str,
        service_url: str,
        *,
        bidirectional: bool = False,
        audio_track: str | None = None,
        content_type: str | None = None,
        stream_timeout: int | None = None,
        status_callback_url: str | None = None,
        status_callback_method: str | None = None,
        extra_headers: str | None = None,
    ) -> StreamCreated:
        """Stream the call's audio to ``service_url`` (``ws://`` or ``wss://``); the options
        are the ``<Stream>`` attributes'."""
        optional = {
            "audio_track": audio_track,
            "content_type": content_type,
            "stream_timeout": stream_timeout,
            "status_callback_url": status_callback_url,
            "status_callback_method": status_callback_method,
            "extra_headers": extra_headers,
        }
        body: _Json = {
            "service_url": service_url,
            "bidirectional": "true" if bidirectional else "false",
            **{key: value for key, value in optional.items() if value is not None},
        }
        data = await self._request("POST", f"Call/{call_uuid}/Stream/", body)
        return StreamCreated.from_json(data)

    async def list_streams(self, call_uuid: str, *, limit: int = 20, offset: int = 0) -> StreamPage:
        params = {"limit": str(limit), "offset": str(offset)}
        data = await self._request("GET", f"Call/{call_uuid}/Stream/", params=params)
        return StreamPage.from_json(data)

    async def get_stream(self, call_uuid: str, stream_id: str) -> StreamInfo:
        data = await self._request("GET", f"Call/{call_uuid}/Stream/{stream_id}/")
        return StreamInfo.from_json(data)

    async def stop_stream(self, call_uuid: str, stream_id: str) -> None:
        """End one stream; the call goes on."""
        await self._request("DELETE", f"Call/{call_uuid}/Stream/{stream_id}/")

    async def stop_streams(self, call_uuid: str) -> None:
        """End every stream of the call; the call goes on."""
        await self._request("DELETE", f"Call/{call_uuid}/Stream/")

    # -- the wire -------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: _Json | None = None,
        *,
        params: dict[str, str] | None = None,
    ) -> _Json:
        """The answer's JSON object (empty for 204), after the retries the policy allows."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._account + path
        attempt = 0
        while True:
            attempt += 1
            try:
                status, data, retry_after = await self._try(method, url, body, params)
            except aiohttp.ClientConnectorError as exc:  # nothing went out
                status, data, retry_after, sent = 0, {"error": str(exc)}, None, False
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                status, data, retry_after, sent = 0, {"error": reason}, None, True
            else:
                sent = True
                if status < 400:
                    return data
            message = loggable(str(data.get("error") or data or "no error given"), 300)
            delay = None
            if self._retry.retryable(method, status, sent=sent):
                delay = self._retry.delay(attempt, retry_after)
            if delay is None:
                raise VobizApiError(
                    status,
                    message,
                    method=method,
                    path=path,
                    attempts=attempt,
                    api_id=None if data.get("api_id") is None else str(data["api_id"]),
                    retry_after=retry_after,
                )
            log.warning(
                "Vobiz API %s %s: %s (%s); try %d of %d in %.2f s",
                method,
                loggable(path, 120),
                f"HTTP {status}" if status else "no answer",
                message,
                attempt + 1,
                self._retry.attempts,
                delay,
            )
            await asyncio.sleep(delay)

    async def _try(
        self, method: str, url: str, body: _Json | None, params: dict[str, str] | None
    ) -> tuple[int, _Json, float | None]:
        assert self._session is not None
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        async with self._session.request(
            method, url, data=data, params=params, headers=headers, timeout=self._timeout
        ) as response:
            raw = await _read_capped(response)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            return response.status, _json_object(raw), retry_after


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise aiohttp.ClientPayloadError(
                f"the answer is over {MAX_ANSWER_BYTES} bytes: not the Vobiz API"
            )
        parts.append(chunk)
    return b"".join(parts)


def _json_object(raw: bytes) -> _Json:
    """The answer as a JSON object; a body that is not one is kept as its ``error``."""
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"error": raw[:300].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"error": f"an answer that is not an object: {data}"}
