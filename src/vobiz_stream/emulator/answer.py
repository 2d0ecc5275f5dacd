"""Fetch the app's answer XML as the carrier does, without trusting the app's server.

A hostile or broken answer URL must not hold the emulator up or fill its memory: redirects are
followed a bounded number of times (a loop is named, with the URLs in it), and the body is read
with a cap (:data:`~vobiz_stream.emulator.limits.MAX_APP_BYTES`), never whole.
"""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

from vobiz_stream.emulator.limits import MAX_APP_BYTES, describe_bytes
from vobiz_stream.logtext import loggable

__all__ = ["MAX_REDIRECTS", "AnswerError", "fetch_answer"]

MAX_REDIRECTS = 10
"""Redirects followed from the answer URL before giving up."""

_URLS_SHOWN = 4
_READ_CHUNK = 64 * 1024


class AnswerError(Exception):
    """The answer could not be fetched; the message says why (the report's ``failure``)."""


async def fetch_answer(
    http: aiohttp.ClientSession,
    url: str,
    form: dict[str, str] | None,
    timeout: float,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
) -> tuple[int, str]:
    """Request ``url`` (POST ``form``; GET has the fields in the URL already) with ``headers``
    (a signature) and return the status and the body (at most the cap)."""
    try:
        async with asyncio.timeout(timeout):
            async with http.request(
                method,
                URL(url, encoded=True),
                data=form,
                headers=headers,
                max_redirects=MAX_REDIRECTS,
            ) as response:
                body = await _read_capped(response)
                return response.status, _text(body, response.charset)
    except aiohttp.TooManyRedirects as exc:
        raise AnswerError(_redirects(url, exc)) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise AnswerError(
            f"answer URL {loggable(url, 200)} unreachable: "
            f"{loggable(str(exc) or type(exc).__name__, 200)}"
        ) from None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body, refused as soon as it is known to pass the cap (by its length, or while
    reading a body without one)."""
    too_big = AnswerError(
        f"the answer body is over {describe_bytes(MAX_APP_BYTES)}: "
        "Vobiz expects a short XML document"
    )
    length = response.content_length
    if length is not None and length > MAX_APP_BYTES:
        raise too_big
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_APP_BYTES:
            raise too_big
        parts.append(chunk)
    return b"".join(parts)


def _text(body: bytes, charset: str | None) -> str:
    """The body as text in its declared charset; UTF-8 when it declares none or one that does
    not exist (the XML parser then says what is wrong with it)."""
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _redirects(url: str, exc: aiohttp.TooManyRedirects) -> str:
    """Name the redirects: the loop and the URLs in it, or the chain that went on too long."""
    chain = [str(response.url) for response in exc.history]
    chain.append(str(exc.request_info.real_url))
    chain = chain or [url]
    seen: dict[str, int] = {}
    for index, hop in enumerate(chain):
        if hop in seen:
            loop = chain[seen[hop] : index + 1]
            return (
                f"the answer URL redirects in a loop: {_path(loop)} (gave up after "
                f"{MAX_REDIRECTS} redirects); serve the XML at the URL itself"
            )
        seen[hop] = index
    return (
        f"the answer URL redirects more than {MAX_REDIRECTS} times: {_path(chain)}; "
        "serve the XML at the URL itself"
    )


def _path(urls: list[str]) -> str:
    shown = [loggable(hop, 120) for hop in urls[:_URLS_SHOWN]]
    more = len(urls) - _URLS_SHOWN
    return " -> ".join(shown) + (f" -> ... ({more} more)" if more > 0 else "")
