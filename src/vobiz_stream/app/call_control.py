"""Hanging up a call from the API, whichever worker holds its media socket.

``POST /api/calls/<call id>/hangup`` (admin token) ends the call's stream: the socket is closed
with 1000 and the stream ends with reason ``hangup``, its recording finalised as at any end
(with ``keepCallAlive`` off, the default, the carrier then ends the call). With one process the
stream is here or nowhere. With ``serve --workers`` the request may reach any worker: one that
does not hold the stream, but finds it open in the shared database, sends the order over a
:class:`ControlBus` (PostgreSQL's LISTEN/NOTIFY, so no broker is needed) and the worker that
holds it carries it out.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import Protocol

import orjson
from aiohttp import web

from vobiz_stream.app.media_socket import MediaStreams, OpenStream
from vobiz_stream.logtext import loggable
from vobiz_stream.store import QueuedStore

log = logging.getLogger("vobiz_stream.app.server")

HANGUP_CLOSE_CODE = 1000
HANGUP_REASON = "hangup"
"""The end reason of a stream hung up from the API."""


class ControlBus(Protocol):
    """Orders between the workers of one server."""

    async def send_hangup(self, call_id: str) -> None:
        """Tell every worker to hang up ``call_id`` if it holds its stream."""


class Outcome(StrEnum):
    """What became of a hang-up request."""

    HUNG_UP = "hung_up"
    """This worker held the stream and closed it."""
    SENT = "sent"
    """Another worker holds it: the order went to the workers."""
    NOT_FOUND = "not_found"
    """No open stream of the call anywhere this server knows of."""


class CallControl:
    """Hang-ups from the API: here if this worker holds the stream, else over the bus."""

    def __init__(
        self, streams: MediaStreams, store: QueuedStore, bus: ControlBus | None = None
    ) -> None:
        self._streams = streams
        self._store = store
        self.bus = bus
        self._closing: set[asyncio.Task[None]] = set()

    async def hang_up(self, call_id: str) -> Outcome:
        """Hang up ``call_id`` wherever its stream is."""
        if self.hang_up_here(call_id):
            return Outcome.HUNG_UP
        if self.bus is None or not await self._open_elsewhere(call_id):
            return Outcome.NOT_FOUND
        await self.bus.send_hangup(call_id)
        return Outcome.SENT

    def hang_up_here(self, call_id: str) -> bool:
        """Close the streams of ``call_id`` this worker holds; whether there were any (the
        bus's listener calls this for orders from other workers)."""
        held = [stream for stream in self._streams.open if _call_of(stream) == call_id]
        for stream in held:
            task = asyncio.get_running_loop().create_task(_close(stream))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if held:
            log.info("call %s: hung up from the API", loggable(call_id))
        return bool(held)

    async def _open_elsewhere(self, call_id: str) -> bool:
        record = await asyncio.to_thread(self._store.get_call, call_id)
        streams = record["streams"] if record is not None else []
        return any(stream["ended_at"] is None for stream in streams)


def _call_of(stream: OpenStream) -> str | None:
    session = stream.session
    return session.call_id or session.bound_call_id


async def _close(stream: OpenStream) -> None:
    stream.session.close(HANGUP_REASON)
    await stream.transport.close_with(HANGUP_CLOSE_CODE, "hung up from the API")


async def hangup_response(control: CallControl, call_id: str) -> web.Response:
    """``POST /api/calls/<call id>/hangup``: 200 hung up here, 202 sent to the worker holding
    it, 404 no open stream of that call."""
    outcome = await control.hang_up(call_id)
    status = {Outcome.HUNG_UP: 200, Outcome.SENT: 202, Outcome.NOT_FOUND: 404}[outcome]
    body: dict[str, str] = {"call_id": call_id, "outcome": outcome.value}
    if outcome is Outcome.NOT_FOUND:
        body["error"] = "no open stream of this call: it ended, or never reached this server"
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def add_call_control(app: web.Application, control: CallControl) -> None:
    """``POST /api/calls/<call id>/hangup`` on the server's app (behind its admin token)."""

    async def hangup(request: web.Request) -> web.Response:
        return await hangup_response(control, request.match_info["call_id"])

    app.add_routes([web.post("/api/calls/{call_id}/hangup", hangup)])
