"""Hanging up a call from the API, whichever worker holds its media socket.

``POST /api/calls/<call id>/hangup`` (admin token) ends the call's stream: the socket is closed
with 1000 and the stream ends with reason ``hangup``, its recording finalised as at any end
(with ``keepCallAlive`` off, the default, the carrier then ends the call). With one process the
stream is here or nowhere. With ``serve --workers`` the request may reach any worker: one that
does not hold the stream, but finds it open in the shared database, sends the order over a
:class:`ControlBus` (PostgreSQL's LISTEN/NOTIFY, so no broker is needed) and the worker that
holds it carries it out.

Playing into a call and clearing what it plays (:mod:`.call_audio`) reach the holder the same
way: the audio goes into the shared database and the order names its row.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import orjson
from aiohttp import web

from vobiz_stream.app.media_socket import MediaStreams, OpenStream
from vobiz_stream.app.session import CallSession
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

    async def send_play(self, call_id: str, audio: ApiAudio) -> None:
        """Tell the worker holding ``call_id`` to play ``audio`` into it."""

    async def send_clear(self, call_id: str) -> None:
        """Tell the worker holding ``call_id`` to clear what it plays."""


@dataclass(frozen=True, slots=True)
class ApiAudio:
    """Audio sent to a call from the API: mono int16 samples at ``rate``, then a checkpoint
    named ``checkpoint`` (the call's events show when it played)."""

    samples: bytes
    rate: int
    checkpoint: str


class Outcome(StrEnum):
    """What became of a hang-up request."""

    HUNG_UP = "hung_up"
    """This worker held the stream and closed it."""
    QUEUED = "queued"
    """This worker holds the stream: the audio is queued to play."""
    CLEARED = "cleared"
    """This worker holds the stream: what it played is cleared."""
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

    async def play(self, call_id: str, audio: ApiAudio) -> Outcome:
        """Play ``audio`` into ``call_id`` wherever its stream is (raises
        :class:`SessionError` when this worker holds it and it cannot play: one-way)."""
        if await self.play_here(call_id, audio):
            return Outcome.QUEUED
        if self.bus is None or not await self._open_elsewhere(call_id):
            return Outcome.NOT_FOUND
        await self.bus.send_play(call_id, audio)
        return Outcome.SENT

    async def clear(self, call_id: str) -> Outcome:
        """Clear what ``call_id`` plays, wherever its stream is."""
        if await self.clear_here(call_id):
            return Outcome.CLEARED
        if self.bus is None or not await self._open_elsewhere(call_id):
            return Outcome.NOT_FOUND
        await self.bus.send_clear(call_id)
        return Outcome.SENT

    def holds(self, call_id: str) -> bool:
        """Whether this worker holds an open stream of ``call_id``."""
        return any(_call_of(stream) == call_id for stream in self._streams.open)

    async def play_here(self, call_id: str, audio: ApiAudio) -> bool:
        """Queue ``audio`` and its checkpoint on the stream of ``call_id`` this worker holds
        (the newest); whether it holds one."""
        session = self._held_session(call_id)
        if session is None:
            return False
        await session.play(audio.samples, audio.rate)
        await session.checkpoint(audio.checkpoint)
        log.info(
            "call %s: playing %.1f s from the API, then checkpoint %s",
            loggable(call_id),
            len(audio.samples) / 2 / audio.rate,
            audio.checkpoint,
        )
        return True

    async def clear_here(self, call_id: str) -> bool:
        """Clear what the stream of ``call_id`` this worker holds plays; whether it holds one."""
        session = self._held_session(call_id)
        if session is None:
            return False
        await session.clear()
        log.info("call %s: cleared from the API", loggable(call_id))
        return True

    def _held_session(self, call_id: str) -> CallSession | None:
        held = [s.session for s in self._streams.open if _call_of(s) == call_id]
        return next((s for s in reversed(held) if not s.closed), None)

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
