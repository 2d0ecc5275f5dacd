"""One call's stream, as agent code sees it: caller audio in, play / checkpoint / clear / stop out.

A transport (the server's WebSocket) feeds every text frame to :meth:`CallSession.feed` and calls
:meth:`CallSession.close` when the socket ends, with or without a ``stop``. The handler, an
``async def handler(session)``, reads :meth:`CallSession.events` and sends commands::

    async def handler(session: CallSession) -> None:
        async for event in session.events(sample_rate=16000):
            if isinstance(event, CallerAudio):
                ...  # event.pcm: int16 samples at 16 kHz
        # the loop ends when the stream ends

Outbound audio is converted to the stream's outbound format, cut into 20 ms frames and paced so
the carrier never holds more than ``max_lead`` seconds of it (see :mod:`.playback`).
With speech detection on (:meth:`CallSession.detect_speech`) the handler also gets
:class:`SpeechStarted` / :class:`SpeechEnded` for the caller,
and with barge-in the session clears the app's playback itself the moment the caller starts
talking over it (:class:`BargeIn`).
Hooks (:class:`SessionHooks`) let the server record the call and keep its events without the
session knowing about files or databases.

Everything about the stream itself (parsing, byte order, decoding, pacing, checkpoints, clears,
speech and barge-in) is its :class:`~vobiz_stream.core.stream.StreamState`'s; the session is the
asyncio loop around it: it feeds it each frame, sends what :meth:`StreamState.due
<vobiz_stream.core.stream.StreamState.due>` returns, sleeps until the next deadline, and hands
the events to the handler and the hooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from vobiz_stream.app.log_budget import LogBudget
from vobiz_stream.app.play_handle import PlayHandle
from vobiz_stream.app.session_sender import PacedSender
from vobiz_stream.app.session_view import StreamView
from vobiz_stream.audio import Pcm
from vobiz_stream.audio.vad import SpeechEnded, SpeechStarted
from vobiz_stream.core.kinds import EndReason, EventKind
from vobiz_stream.core.playback import HeardAudio
from vobiz_stream.core.protocol import ClearedAudio, Media, Stop, Unknown
from vobiz_stream.core.stream import HELD_BEFORE_START, MALFORMED_KEPT, StreamState
from vobiz_stream.core.stream_events import (
    AudioCleared,
    BargeIn,
    ByteOrderFound,
    CallerAudio,
    CheckpointPlayed,
    DtmfReceived,
    MalformedFrame,
    SessionError,
    SessionEvent,
    SessionOptions,
    SessionStats,
    SpeechDetection,
    StreamEnded,
    StreamEvent,
    StreamStarted,
)
from vobiz_stream.logtext import loggable
from vobiz_stream.transports.gateway import Transport

__all__ = [
    "HELD_BEFORE_START",
    "MALFORMED_KEPT",
    "UNKNOWN_NOTED",
    "AudioCleared",
    "BargeIn",
    "CallSession",
    "CallerAudio",
    "CheckpointPlayed",
    "DtmfReceived",
    "NoHooks",
    "SessionError",
    "SessionEvent",
    "SessionHooks",
    "SessionOptions",
    "SessionStats",
    "SpeechDetection",
    "Transport",
]

log = logging.getLogger("vobiz_stream.app.session")

_monotonic = time.monotonic

UNKNOWN_NOTED = 10
"""Unknown events of a stream logged and kept as call events; the rest are only counted
(``SessionStats.unknown_events``): a flood of tiny frames cannot fill the disk."""


class SessionHooks(Protocol):
    """Where a session reports what the server keeps: recording, store, logs."""

    def started(self, session: CallSession) -> None:
        """The stream's metadata is known (its ``start``, or its first ``media`` without one)."""

    def audio(self, media: Media, samples: bytes, arrival: float) -> None:
        """Decoded inbound audio of ``media.track``, at the stream's rate, as little-endian L16
        bytes (as the WAV holds them)."""

    def heard(self, audio: HeardAudio) -> None:
        """App audio the caller heard (by estimate), at the outbound rate."""

    def event(self, kind: str, detail: Mapping[str, object]) -> None:
        """A call event worth keeping (dtmf, checkpoint, clear, malformed frame, ...)."""

    def ended(self, reason: str) -> None:
        """The stream is over; nothing more will be reported."""


class NoHooks:
    """Hooks that keep nothing (for a session used as a library)."""

    def started(self, session: CallSession) -> None:
        pass

    def audio(self, media: Media, samples: bytes, arrival: float) -> None:
        pass

    def heard(self, audio: HeardAudio) -> None:
        pass

    def event(self, kind: str, detail: Mapping[str, object]) -> None:
        pass

    def ended(self, reason: str) -> None:
        pass


_END = object()


class _Recording:
    """A session's hooks as its stream's recorder: told of the start (with the session, whose
    metadata they read), then given each frame straight from the stream."""

    def __init__(self, session: CallSession, hooks: SessionHooks) -> None:
        self._session = session
        self._hooks = hooks
        self.audio = hooks.audio

    def begin(self) -> None:
        self._hooks.started(self._session)


_FIRST_MALFORMED = (
    "call %s: malformed_frame problem=%s (further malformed frames are counted, not logged)"
)


class CallSession(StreamView):
    """One WebSocket stream of one call: a :class:`~vobiz_stream.core.stream.StreamState` driven
    by asyncio. Created by the server per socket."""

    def __init__(
        self,
        transport: Transport,
        options: SessionOptions | None = None,
        hooks: SessionHooks | None = None,
        query: Mapping[str, str] | None = None,
    ) -> None:
        self._hooks: SessionHooks = hooks or NoHooks()
        self.state = StreamState(
            options, caller_audio=False, recorder=_Recording(self, self._hooks), mark=PlayHandle
        )
        """The stream's protocol state; this class feeds it, sends what it says and waits."""
        self._feed = self.state.feed
        self.options = self.state.options
        self.query: Mapping[str, str] = dict(query or {})
        """Query parameters of the socket URL: the place for per-call context (protocol.md 1)."""
        self._log_budget = LogBudget()
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._started = asyncio.Event()
        self._ended = asyncio.Event()
        self._closed = False
        self._sender = PacedSender(self.state, transport, self.describe, self._note, self.now)
        self._events: deque[SessionEvent | object] = deque()
        self._handler_waiting: asyncio.Future[None] | None = None
        """What :meth:`events` awaits while it has nothing to hand out: a bare future, as the
        handler waits for every frame and an ``asyncio.Event`` costs more per wait."""
        self._listening = False
        self._malformed_seen = 0
        self._unknown_seen = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def now(self) -> float:
        """The session's clock: ``time.monotonic()``, not the loop's time, which uvloop counts
        in whole milliseconds (pacing, clear and barge-in timings would be quantised)."""
        return _monotonic()

    async def wait_started(self) -> bool:
        """Wait until the stream's metadata is known; False if the socket closed first."""
        waiters = {
            asyncio.ensure_future(self._started.wait()),
            asyncio.ensure_future(self._ended.wait()),
        }
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return self._started.is_set()

    # -- inbound ------------------------------------------------------------------------------

    def feed(self, frame: str | bytes) -> None:
        """Handle one text frame from the carrier. Never raises for bad input: logs and skips."""
        for event in self._feed(frame, _monotonic()):  # most frames: none (the audio is recorded)
            self._on_event(event)

    def reject(self, problem: str) -> None:
        """Count and skip a frame that could not be understood; the call goes on.

        The first of a stream is logged, the first few kept as call events (escaped), the rest
        only counted (in the stream's row and last log line): a flood of them costs no disk.
        """
        if not self._closed:
            for event in self.state.reject(problem):
                self._on_event(event)

    def _on_event(self, event: StreamEvent) -> None:
        if isinstance(event, CallerAudio | SpeechStarted | SpeechEnded):
            if isinstance(event, SpeechStarted):
                self._note(EventKind.SPEECH_STARTED, onset=round(event.onset, 3))
            elif isinstance(event, SpeechEnded):
                self._note(EventKind.SPEECH_ENDED, end=round(event.end, 3))
            self._put(event)
        elif isinstance(event, HeardAudio):
            self._hooks.heard(event)
        elif isinstance(event, DtmfReceived):
            self._note(EventKind.DTMF, digit=event.digit)
            self._put(event)
        elif isinstance(event, CheckpointPlayed):
            self._note(EventKind.CHECKPOINT_PLAYED, name=event.name, known=event.known)
            self._put(event)
        elif isinstance(event, AudioCleared):
            self._note(EventKind.CLEARED, round_trip_ms=round(event.round_trip * 1000, 2))
            self._put(event)
        elif isinstance(event, BargeIn):
            self._on_barge_in(event)
        else:
            self._on_stream_event(event)

    def _on_stream_event(self, event: StreamEvent) -> None:
        """What the stream itself reports: its start and end, problems, carrier oddities."""
        if isinstance(event, StreamStarted):
            self._started.set()  # the hooks heard of it first, as the recorder (_Recording)
        elif isinstance(event, StreamEnded):
            self._end(event.reason)
        elif isinstance(event, MalformedFrame):
            self._malformed_seen += 1
            if self._malformed_seen == 1:
                log.warning(_FIRST_MALFORMED, self.describe(), event.problem)
            self._hooks.event(EventKind.MALFORMED_FRAME, {"problem": event.problem})
        elif isinstance(event, ByteOrderFound):
            self._note(EventKind.BYTE_ORDER, order=event.order.value, frames=event.frames)
        elif isinstance(event, Stop):
            self._note(EventKind.STOP, reason=event.reason)
            self.close(EndReason.STOP)
        elif isinstance(event, ClearedAudio):
            if self._log_budget.allows("unexpected_cleared", self.describe):
                log.info("call %s: clearedAudio without a clear in flight", self.describe())
        elif isinstance(event, Unknown):
            self._unknown_seen += 1
            if self._unknown_seen <= UNKNOWN_NOTED:
                self._note(EventKind.UNKNOWN_EVENT, event=event.event)

    def _note(self, kind: str, level: int = logging.INFO, **detail: object) -> None:
        """One log line and one kept event per call event; text from the carrier is escaped."""
        if log.isEnabledFor(level) and self._log_budget.allows(kind, self.describe):
            shown = " ".join(f"{key}={loggable(str(value))}" for key, value in detail.items())
            log.log(level, "call %s: %s %s", self.describe(), kind, shown)
        self._hooks.event(kind, detail)

    # -- the caller's voice -------------------------------------------------------------------

    def detect_speech(self, speech: SpeechDetection | None = None) -> None:
        """Listen for the caller's voice from now on: :class:`~vobiz_stream.audio.vad.SpeechStarted`
        and :class:`~vobiz_stream.audio.vad.SpeechEnded` events, and with ``barge_in`` an automatic
        clear (:class:`BargeIn`) when the caller talks over the app's audio.

        ``session.detect_speech(SpeechDetection(barge_in=True))``; calling it again replaces the
        settings and restarts the detector.
        """
        self.state.detect_speech(speech)

    def _on_barge_in(self, barge_in: BargeIn) -> None:
        """The stream dropped the playback; its ``clearAudio`` goes out before anything else."""
        self._note(
            EventKind.CLEAR,
            voided=list(barge_in.voided),
            barge_in_onset_to_clear_ms=round(barge_in.onset_to_clear * 1000, 1),
        )
        self._put(barge_in)
        self._sender.kick()

    # -- events for the handler ---------------------------------------------------------------

    def _put(self, event: SessionEvent | object) -> None:
        if not self._listening and event is not _END:
            return
        if len(self._events) >= self.options.event_backlog:
            self._events.popleft()
            self.stats.events_dropped += 1
            if self.stats.events_dropped == 1:
                log.warning(
                    "call %s: handler is not keeping up; dropping the oldest events",
                    self.describe(),
                )
        self._events.append(event)
        self._wake_handler()

    def _wake_handler(self) -> None:
        waiting = self._handler_waiting
        if waiting is not None:
            self._handler_waiting = None
            if not waiting.done():
                waiting.set_result(None)

    async def events(self, sample_rate: int | None = None) -> AsyncIterator[SessionEvent]:
        """The call's events until the stream ends; caller audio resampled to ``sample_rate``.

        Audio starts flowing when this is first iterated. Events that pile up past
        ``event_backlog`` because the handler is slow are dropped, oldest first.
        """
        self.state.listen(sample_rate)
        self._listening = True
        while True:
            while self._events:
                event = self._events.popleft()
                if event is _END:
                    return
                yield event  # type: ignore[misc]
            if self._closed:
                return
            waiting = self._handler_waiting
            if waiting is None or waiting.done():
                waiting = self._handler_waiting = self._loop.create_future()
            await waiting

    # -- outbound -----------------------------------------------------------------------------

    async def play(self, audio: Pcm | bytes, sample_rate: int, *, final: bool = True) -> PlayHandle:
        """Queue audio for the caller; the handle resolves to played, cleared or lost.

        ``audio`` is int16 samples (an array, or little-endian bytes) at ``sample_rate``. It is
        resampled to the outbound rate, cut into 20 ms frames and paced. With ``final=False``
        (streaming TTS chunks) the resampler and the last partial frame carry over to the next
        call; the last chunk of an utterance should be ``final`` so nothing is held back.
        """
        handle = self.state.play(audio, sample_rate, final=final)
        assert isinstance(handle, PlayHandle)  # the state makes its marks as PlayHandles
        self._sender.kick()
        return handle

    async def checkpoint(self, name: str) -> PlayHandle:
        """Ask the carrier to confirm when everything queued so far has played."""
        handle = self.state.checkpoint(name)
        assert isinstance(handle, PlayHandle)
        self._sender.kick()
        return handle

    async def clear(self) -> None:
        """Barge-in: drop unsent audio, tell the carrier to empty its queue, void checkpoints.

        The round trip to the carrier's ``clearedAudio`` arrives later as :class:`AudioCleared`.
        """
        voided = self.state.clear(self.now())
        self._note(EventKind.CLEAR, voided=list(voided))
        for frame in self.state.due(self.now()):  # the clear, and nothing else: it emptied all
            await self._sender.send_frame(frame)

    async def stop(self) -> None:
        """End the stream from the app side; the carrier hangs up if no XML follows."""
        if self._closed:
            return
        self._note(EventKind.APP_STOP)
        await self._sender.send_frame(self.state.stop())
        await self._transport.close()

    # -- end ----------------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """The stream is over (socket closed, ``stop``, or the server shutting down)."""
        for event in [] if self._closed else self.state.close(reason, self.now()):
            self._on_event(event)

    def _end(self, reason: str) -> None:
        """The stream reported its end: wake everyone, tell the hooks, one log line."""
        self._closed = True
        self._put(_END)
        self._ended.set()
        self._wake_handler()
        self._sender.stop()
        self._hooks.ended(reason)
        log.info(
            "call %s: stream ended (%s): %d frames, %d malformed",
            self.describe(),
            reason,
            self.stats.frames_received,
            self.stats.frames_malformed,
        )

    async def aclose(self) -> None:
        """After :meth:`close`, wait until the sender task has stopped."""
        await self._sender.stopped()
