"""``GET /calls`` (a page of calls) and ``GET /calls/<call id>`` (one call), as JSON.

The list keeps its shape, ``{"calls": [...]}``, newest first, so scripts written for it go on
working. It comes in pages: ``?limit=`` calls (100 unless given, at most :data:`MAX_PAGE`; a
larger limit gets a full page) from ``?offset=`` (0: the newest). When more calls follow, the
answer says where the next page starts in an ``X-Next-Offset`` header and a ``Link: <...>;
rel="next"`` header, and the body stays as it was. Both reads run off the event loop
(:meth:`~vobiz_stream.store.CallHistory.calls_json`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlencode

import orjson
from aiohttp import web

from vobiz_stream.logtext import loggable
from vobiz_stream.store import CallHistory

__all__ = ["DEFAULT_PAGE", "MAX_CALL_ID", "MAX_PAGE", "call_id_problem", "call_page", "one_call"]

DEFAULT_PAGE = 100
MAX_PAGE = 500
MAX_OFFSET = 999_999_999
MAX_CALL_ID = 128
_CALL_ID = re.compile(r"[A-Za-z0-9._:@+-]+")
"""What a call id may hold: the carrier's are UUIDs; ids of tests and examples use ``_``, ``-``."""


def _whole_number(query: Mapping[str, str], name: str, default: int, least: int) -> int:
    """The query's ``name`` as a whole number of at least ``least``; ValueError saying what is
    expected otherwise."""
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= least):
        raise ValueError(
            f"{name} must be a whole number from {least} to {MAX_OFFSET},"
            f" got {loggable(text, 20)!r}; for example /calls?limit={DEFAULT_PAGE}&offset=0"
        )
    return int(text)


async def call_page(store: CallHistory, request: web.Request) -> web.Response:
    """``GET /calls``: a page of calls, newest first."""
    try:
        limit = min(MAX_PAGE, _whole_number(request.query, "limit", DEFAULT_PAGE, 1))
        offset = _whole_number(request.query, "offset", 0, 0)
    except ValueError as exc:
        return web.Response(status=400, text=f"{exc}\n")
    calls, more = await store.calls_json(limit, offset)
    headers = {}
    if more:
        following = offset + limit
        query = urlencode({"limit": limit, "offset": following})
        headers = {"X-Next-Offset": str(following), "Link": f'<{request.path}?{query}>; rel="next"'}
    return web.Response(
        body=b'{"calls":' + calls.encode() + b"}",
        content_type="application/json",
        headers=headers,
    )


async def one_call(store: CallHistory, request: web.Request) -> web.Response:
    """``GET /calls/<call id>``: one call as in the list; 404 when the store does not know it."""
    call_id = request.match_info["call_id"]
    problem = call_id_problem(call_id)
    if problem is not None:
        return problem
    call = await store.call_json(call_id)
    if call is None:
        return _error(
            404, f"no call {call_id!r} is known here; GET /calls lists the calls this server knows"
        )
    return web.Response(body=call.encode(), content_type="application/json")


def call_id_problem(call_id: str) -> web.Response | None:
    """The 400 answer for a call id that cannot be one; None for a possible one."""
    if len(call_id) > MAX_CALL_ID or not _CALL_ID.fullmatch(call_id):
        return _error(
            400,
            f"a call id is 1 to {MAX_CALL_ID} letters, digits and . _ : @ + -,"
            f" got {loggable(call_id, 40)!r}",
        )
    return None


def _error(status: int, message: str) -> web.Response:
    body = orjson.dumps({"error": message})
    return web.Response(status=status, body=body, content_type="application/json")
