"""One media socket's life, whatever WebSocket library carries it.

Each transport shell (aiohttp's and picows's, in :mod:`vobiz_stream.transports`)
does the same four things per socket, all through here:

1. :meth:`MediaStreams.admit`: the server's :class:`~vobiz_stream.app.admission.Admission` rules
   (and no new socket while the server drains); a :class:`SocketRefusal` says how to refuse;
2. once accepted, :meth:`MediaStreams.open_stream` with a :class:`MediaTransport` for the socket
   and the admission's slot;
3. each text frame to :meth:`OpenStream.receive` (True: the stream is over, close the socket
   with :attr:`OpenStream.close_code` and :attr:`OpenStream.close_reason`);
4. when the socket is gone, :meth:`OpenStream.end` (which gives the admission slot back).

Everything else a stream needs (its :class:`~vobiz_stream.app.keeper.StreamKeeper`, its
:class:`~vobiz_stream.app.session.CallSession`, the handler task and the grace it gets after the
stream ends) lives here, once, so both transports behave alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from vobiz_stream.app.admission import TOKEN_PARAMETER, Admission, Admitted
from vobiz_stream.app.answered import AnsweredCalls
from vobiz_stream.app.handlers import Handler, plays_audio
from vobiz_stream.app.keeper import HandlingLatency, StreamKeeper
from vobiz_stream.app.session import CallSession, SessionOptions
from vobiz_stream.core.kinds import EndReason
from vobiz_stream.core.protocol import MAX_ID_CHARS
from vobiz_stream.recordings import RecordingSink
from vobiz_stream.store import QueuedStore
from vobiz_stream.transports.gateway import (
    POLICY_VIOLATION,
    MediaTransport,
    SocketRefusal,
)

log = logging.getLogger("vobiz_stream.app.server")

HANDLER_GRACE = 5.0
"""Seconds a handler may run on after its stream ended before it is cancelled."""

CLEAN_CLOSE_CODES = frozenset({1000, 1001, 1005})
"""Close codes of a socket that ended normally (1005: closed without a code)."""


class StreamWatcher(Protocol):
    """Something told of each stream's beginning and end (once each, per call, never per frame)."""

    def stream_opened(self, session: CallSession) -> None: ...

    def stream_ended(self, session: CallSession) -> None: ...


class MediaStreams:
    """The server's open media streams, and the one place that admits, opens and ends them."""

    def __init__(
        self,
        recordings_dir: Path,
        store: QueuedStore,
        *,
        options: SessionOptions,
        handler: Handler,
        latency: HandlingLatency,
        admission: Admission,
        start_timeout: float = 0.0,
        answered: AnsweredCalls | None = None,
        recording_sink: RecordingSink | None = None,
    ) -> None:
        self.recordings_dir = recordings_dir
        self.recording_sink = recording_sink
        """Told of each recording (the server's uploads and ``recording.saved`` events)."""
        self.store = store
        self.options = options
        self.handler = handler
        self.latency = latency
        self.admission = admission
        self.answered = answered
        """What answer requests said of calls, for their streams' rows."""
        self.start_timeout = start_timeout
        """Seconds an accepted socket gets to send ``start`` before it is closed (0: no limit)."""
        self.record_heard = plays_audio(handler)
        """Whether recordings of bidirectional streams get a channel for what the caller heard."""
        self.open: set[OpenStream] = set()
        self.draining = False
        """Set when the server stops: new sockets are refused, open ones get to finish."""
        self.watchers: list[StreamWatcher] = []
        """Told of every stream as it opens and as it is forgotten (metrics, traces)."""

    def admit(self, query: Mapping[str, str], peer_ip: str) -> Admitted | SocketRefusal:
        """Whether a socket from ``peer_ip`` with URL query ``query`` may be accepted: its
        admission slot (release it if the socket never opens a stream), or the refusal."""
        if self.draining:
            return SocketRefusal(503, "server is shutting down; retry elsewhere\n")
        decision = self.admission.admit(query, peer_ip)
        if isinstance(decision, Admitted):
            return decision
        return SocketRefusal(decision.status, decision.message + "\n")

    def open_stream(
        self, transport: MediaTransport, query: Mapping[str, str], admitted: Admitted
    ) -> OpenStream:
        """An admitted socket was accepted: start its session, recording and handler."""
        stream = OpenStream(self, transport, query, admitted)
        self.open.add(stream)
        for watcher in self.watchers:
            watcher.stream_opened(stream.session)
        return stream

    async def shut_down(self, timeout: float = HANDLER_GRACE + 5.0) -> None:
        """Close every open socket (1001) and wait, at most ``timeout`` seconds, until their
        streams have ended (sessions closed, recordings finalised, handlers finished)."""
        streams = list(self.open)
        await asyncio.gather(
            *(stream.transport.shut_down() for stream in streams), return_exceptions=True
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open and loop.time() < deadline:
            await asyncio.sleep(0.05)


class OpenStream:
    """One accepted socket: its session, recorded by a keeper and handed to the handler."""

    def __init__(
        self,
        streams: MediaStreams,
        transport: MediaTransport,
        query: Mapping[str, str],
        admitted: Admitted,
    ) -> None:
        self._streams = streams
        self._admitted = admitted
        self.transport = transport
        self.close_code = 1000
        """The code the shell closes the socket with once :meth:`receive` ended the stream."""
        self.close_reason = b""
        self.keeper = keeper = StreamKeeper(
            streams.recordings_dir,
            streams.store,
            streams.latency,
            streams.record_heard,
            streams.answered,
            sink=streams.recording_sink,
        )
        context = {key: value for key, value in query.items() if key != TOKEN_PARAMETER}
        self.session = CallSession(transport, streams.options, keeper, context)
        call_id = query.get("call")
        self.session.call_id = call_id if call_id and len(call_id) <= MAX_ID_CHARS else None
        if admitted.bound:
            self.session.bound_call_id = admitted.call_id
        self._handler = asyncio.create_task(self._run_handler())
        self._start_deadline: asyncio.Task[None] | None = None
        if streams.start_timeout:
            self._start_deadline = asyncio.create_task(self._close_without_start())

    def receive(self, frame: str | bytes) -> bool:
        """A text frame from the carrier; True when it ended the stream (the carrier's
        ``stop``, or a ``start`` of another call than the socket's token admits): the shell
        then closes the socket with :attr:`close_code`."""
        session = self.session
        session.feed(frame)
        if not session.closed:
            return False
        if session.mismatched_call_id is not None and self.close_code != POLICY_VIOLATION:
            self._streams.admission.refuse_start(self._admitted, session.mismatched_call_id)
            self.close_code = POLICY_VIOLATION  # counted once, however many frames follow
            self.close_reason = b"the start names another call than the stream token admits"
        return True

    def receive_binary(self, size: int) -> None:
        self.reject(f"binary frame of {size} bytes; frames are JSON text")

    def reject(self, reason: str) -> None:
        """A message the socket layer could not read at all: counted and logged like a
        malformed frame."""
        self.session.reject(reason)

    async def end(self, reason: str, close_code: int | None = None) -> None:
        """The socket is gone: close the session (unless a ``stop`` did), give the handler its
        grace, wait until the stream's rows are stored, and forget the stream. ``close_code`` is
        the socket's, if it had one."""
        session = self.session
        if session.end_reason is None and close_code not in (None, *CLEAN_CLOSE_CODES):
            reason = f"{EndReason.SOCKET_CLOSED} ({close_code})"
        session.close(reason)
        if self._start_deadline is not None:
            self._start_deadline.cancel()
        try:
            await self._finish_handler()
            await self._streams.store.settled()
        finally:
            self._admitted.release()
            self._streams.open.discard(self)
            for watcher in self._streams.watchers:
                watcher.stream_ended(session)

    async def _close_without_start(self) -> None:
        """A socket that sends no ``start`` within ``start_timeout`` only holds a call slot:
        it is counted, closed with 1008 and its slot given back."""
        timeout = self._streams.start_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.session.wait_started()
            return await self._close_when_media_stops(timeout)
        except TimeoutError:
            pass
        reason = f"no start within {timeout:g} s (start_timeout)"
        self._streams.admission.note_start_timeout(
            self._admitted,
            f"{reason}: closed with {POLICY_VIOLATION} to free its call slot",
        )
        self.session.close(EndReason.START_TIMEOUT)
        await self.transport.close_with(POLICY_VIOLATION, reason)

    async def _close_when_media_stops(self, timeout: float) -> None:
        """After its ``start``, a socket that sends no media for ``start_timeout`` seconds (a
        carrier sends media all call long, silence too) only holds a call slot, answering pings:
        closed like one that never started, within twice the timeout. The frame count is looked
        at once per timeout, so no frame pays for this."""
        stats, seen = self.session.stats, -1
        while not self.session.closed:
            if stats.frames_received == seen:
                reason = f"no media for {timeout:g} s after the start (start_timeout)"
                self._streams.admission.note_start_timeout(
                    self._admitted,
                    f"{reason}: closed with {POLICY_VIOLATION} to free its call slot",
                )
                self.session.close(EndReason.MEDIA_TIMEOUT)
                await self.transport.close_with(POLICY_VIOLATION, reason)
                return
            seen = stats.frames_received
            await asyncio.sleep(timeout)

    async def _run_handler(self) -> None:
        session = self.session
        if not await session.wait_started():
            return
        try:
            await self._streams.handler(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "call %s: the handler failed; the stream and its recording go on",
                session.describe(),
            )

    async def _finish_handler(self) -> None:
        task = self._handler
        try:
            await asyncio.wait_for(asyncio.shield(task), HANDLER_GRACE)
        except TimeoutError:
            log.warning(
                "call %s: the handler did not return %.0f s after the stream ended; cancelling it",
                self.session.describe(),
                HANDLER_GRACE,
            )
            task.cancel()
        except asyncio.CancelledError:
            task.cancel()
            raise
        await self.session.aclose()
