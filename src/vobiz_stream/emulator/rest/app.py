"""The local carrier's REST API on aiohttp: Vobiz's paths, its ``X-Auth-ID``/``X-Auth-Token``
check, its answer shapes and its errors (JSON with ``error``, also for unknown paths and methods).

Every path is under ``/api/v1/Account/{auth_id}/``, with or without its trailing slash; the
``auth_id`` of the path must be the carrier's, as must both headers. A request body is JSON (what
the SDKs send) or a form, at most :data:`MAX_BODY` bytes. The carrier's own paths, under
:data:`EMULATOR_PREFIX` (a call's report), take the same two headers.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from vobiz_stream.emulator.rest.calls import CallBook
from vobiz_stream.emulator.rest.shapes import (
    ApiError,
    api_body,
    error_body,
    list_body,
    parse_digits,
    parse_page,
    parse_place_call,
    parse_stream_request,
)
from vobiz_stream.logtext import loggable

__all__ = [
    "API_PREFIX",
    "EMULATOR_PREFIX",
    "MAX_BODY",
    "AuthFailures",
    "auth_failures",
    "carrier_app",
]

log = logging.getLogger("vobiz_stream.carrier")

API_PREFIX = "/api/v1"
EMULATOR_PREFIX = "/emulator"
"""The local carrier's own paths, which Vobiz does not have (a call's report and verdict)."""
MAX_BODY = 64 * 1024
"""The largest request body taken: a call or stream request is a few hundred bytes."""

_ACCOUNT = API_PREFIX + "/Account/{auth_id}"
_CALL = _ACCOUNT + "/Call/{call_uuid}"
_STREAM = _CALL + "/Stream"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AuthFailures:
    """Requests refused for their credentials: counted, the first one logged."""

    def __init__(self) -> None:
        self.count = 0

    def note(self, request: web.Request, why: str) -> None:
        self.count += 1
        if self.count == 1:
            log.warning(
                "refused %s %s from %s: %s (401); later refusals are counted, not logged",
                request.method,
                loggable(request.path, 200),
                request.remote,
                why,
            )


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(error_body(message), status)


def auth_failures(app: web.Application) -> int:
    """Requests the API refused for their credentials."""
    return app[_FAILURES].count


_AUTH = web.AppKey("auth", tuple[str, str])
_FAILURES = web.AppKey("auth_failures", AuthFailures)


@web.middleware
async def _errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = _error(exc.status, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


@web.middleware
async def _authenticated(request: web.Request, handler: _Handler) -> web.StreamResponse:
    path_id = request.match_info.get("auth_id")
    if path_id is None and not request.path.startswith(EMULATOR_PREFIX + "/"):
        return await handler(request)  # not an API path: the router answers 404
    auth_id, auth_token = request.app[_AUTH]
    failures = request.app[_FAILURES]
    given_id = request.headers.get("X-Auth-ID", "")
    given_token = request.headers.get("X-Auth-Token", "")
    if not given_id or not given_token:
        failures.note(request, "no X-Auth-ID or X-Auth-Token header")
        raise ApiError(401, "authentication failed: send X-Auth-ID and X-Auth-Token")
    same_id = hmac.compare_digest(given_id.encode(), auth_id.encode())
    same_token = hmac.compare_digest(given_token.encode(), auth_token.encode())
    if not (same_id and same_token):
        failures.note(request, "wrong X-Auth-ID or X-Auth-Token")
        raise ApiError(401, "authentication failed: wrong X-Auth-ID or X-Auth-Token")
    if path_id is not None and path_id != auth_id:
        raise ApiError(404, "no such account: the path's auth_id is not X-Auth-ID")
    return await handler(request)


class _Api:
    """The handlers, over one carrier's calls."""

    def __init__(self, book: CallBook, auth_id: str) -> None:
        self._book = book
        self._auth_id = auth_id

    async def place_call(self, request: web.Request) -> web.Response:
        placed = self._book.place(parse_place_call(await _body(request)))
        return _json(api_body(message="call fired", request_uuid=placed.call_uuid), status=201)

    async def list_calls(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        if status == "live":
            return _json(api_body(calls=[call.call_uuid for call in self._book.live()]))
        if status == "queued":
            return _json(api_body(calls=[]))  # the local carrier places calls at once
        if status is not None:
            raise ApiError(400, f"status must be live or queued, got {loggable(status, 20)}")
        limit, offset = parse_page(request.query)
        calls = [call.as_json(self._auth_id) for call in reversed(self._book.all())]
        return _json(list_body(calls, limit, offset, request.path))

    async def get_call(self, request: web.Request) -> web.Response:
        live = request.query.get("status") == "live"
        placed = self._book.find(request.match_info["call_uuid"], live=live)
        return _json(api_body(**placed.as_json(self._auth_id)))

    async def call_report(self, request: web.Request) -> web.Response:
        placed = self._book.find(request.match_info["call_uuid"])
        return _json(placed.report_json())

    async def hang_up(self, request: web.Request) -> web.Response:
        await self._book.hang_up(request.match_info["call_uuid"])
        return web.Response(status=204)

    async def send_digits(self, request: web.Request) -> web.Response:
        digits = parse_digits(await _body(request))
        self._book.press(request.match_info["call_uuid"], digits)
        return _json(api_body(message="digits sent"), status=202)

    async def start_stream(self, request: web.Request) -> web.Response:
        stream = parse_stream_request(await _body(request))
        stream_id = self._book.start_stream(request.match_info["call_uuid"], stream)
        return _json(api_body(message="audio streaming started", stream_id=stream_id), status=202)

    async def list_streams(self, request: web.Request) -> web.Response:
        limit, offset = parse_page(request.query)
        placed = self._book.find(request.match_info["call_uuid"])
        return _json(list_body(placed.streams_json(self._auth_id), limit, offset, request.path))

    async def get_stream(self, request: web.Request) -> web.Response:
        placed = self._book.find(request.match_info["call_uuid"])
        wanted = request.match_info["stream_id"]
        for stream in placed.streams_json(self._auth_id):
            if stream["stream_id"] == wanted:
                return _json(api_body(**stream))
        raise ApiError(404, f"no stream {loggable(wanted, 80)} on this call")

    async def stop_stream(self, request: web.Request) -> web.Response:
        self._book.stop_streams(request.match_info["call_uuid"], request.match_info["stream_id"])
        return web.Response(status=204)

    async def stop_streams(self, request: web.Request) -> web.Response:
        self._book.stop_streams(request.match_info["call_uuid"])
        return web.Response(status=204)


def carrier_app(book: CallBook, auth_id: str, auth_token: str) -> web.Application:
    """The API of a carrier whose account is ``auth_id`` with ``auth_token``."""
    app = web.Application(middlewares=[_errors_as_json, _authenticated], client_max_size=MAX_BODY)
    app[_AUTH] = (auth_id, auth_token)
    app[_FAILURES] = AuthFailures()
    api = _Api(book, auth_id)
    routes: list[tuple[str, str, _Handler]] = [
        ("POST", _ACCOUNT + "/Call", api.place_call),
        ("GET", _ACCOUNT + "/Call", api.list_calls),
        ("GET", _CALL, api.get_call),
        ("DELETE", _CALL, api.hang_up),
        ("POST", _CALL + "/DTMF", api.send_digits),
        ("POST", _STREAM, api.start_stream),
        ("GET", _STREAM, api.list_streams),
        ("DELETE", _STREAM, api.stop_streams),
        ("GET", _STREAM + "/{stream_id}", api.get_stream),
        ("DELETE", _STREAM + "/{stream_id}", api.stop_stream),
        ("GET", EMULATOR_PREFIX + "/calls/{call_uuid}/report", api.call_report),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path + "{slash:/?}", handler)
    return app


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's fields: a JSON object, or a form."""
    if request.content_type == "application/json":
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object of fields")
        return body
    return dict(await request.post())
