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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vobiz_stream.app.log_budget import LogBudget
from vobiz_stream.audio import (
    ByteOrder,
    FrameSlicer,
    Pcm,
    Resampler,
    as_pcm,
    decode_l16,
    encode_l16,
)
from vobiz_stream.audio.vad import (
    DEFAULT_START_MS,
    DEFAULT_STOP_MS,
    SpeechEnded,
    SpeechStarted,
    VoiceActivityDetector,
    VoiceEvent,
    WebRtcClassifier,
)
from vobiz_stream.core.inbound import LONGEST_INBOUND_PAYLOAD, InboundDecoder
from vobiz_stream.core.outbound import PlayAudioEncoder
from vobiz_stream.core.playback import (
    HeardAudio,
    OutboundFrame,
    PlaybackLedger,
    PlaybackStats,
    PlayHandle,
)
from vobiz_stream.core.protocol import (
    MAX_ID_CHARS,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Stop,
    StopCommand,
    Track,
    Unknown,
    encode_bytes,
    parse_event,
)
from vobiz_stream.errors import ProtocolError, VobizStreamError
from vobiz_stream.formats import (
    DEFAULT_FORMAT,
    FRAME_SECONDS,
    INBOUND_RATES,
    OUTBOUND_RATES,
    AudioFormat,
    Encoding,
)
from vobiz_stream.frame_clock import FrameClock, Ticket
from vobiz_stream.logtext import loggable
from vobiz_stream.transports.gateway import SendsAtOnce, Transport

log = logging.getLogger("vobiz_stream.app.session")

_monotonic = time.monotonic
_INBOUND = Track.INBOUND  # looked up per frame: a module name is cheaper than an enum member
_LITTLE = ByteOrder.LITTLE

MALFORMED_KEPT = 10
"""Malformed frames of a stream kept as call events (the first is also logged); the rest are
only counted."""

UNKNOWN_NOTED = 10
"""Unknown events of a stream logged and kept as call events; the rest are only counted
(``SessionStats.unknown_events``): a flood of tiny frames cannot fill the disk."""

HELD_BEFORE_START = 50
"""Events (a second of audio) a stream holds back while its ``start`` has not come."""

_Held = Media | PlayedStream | ClearedAudio | Dtmf | Unknown


class SessionError(VobizStreamError):
    """A session command that cannot be carried out (one-way stream, closed socket...)."""


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


# --- what a handler receives -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """Audio from the call: ``pcm`` int16 at ``sample_rate``; ``track`` says which leg."""

    pcm: Pcm
    sample_rate: int
    track: Track = Track.INBOUND
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str


@dataclass(frozen=True, slots=True)
class CheckpointPlayed:
    """The carrier played everything queued before checkpoint ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class AudioCleared:
    """The carrier confirmed a clear; ``round_trip`` seconds after it was sent."""

    round_trip: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller spoke over the app's audio and the session cleared it.

    ``onset_to_clear`` is seconds from the caller starting to speak (the arrival of the speech's
    first frame, less its length) to the ``clearAudio`` leaving: the detector's ``start_ms``,
    plus the time to notice and send. The carrier's confirmation follows as
    :class:`AudioCleared`, whose ``round_trip`` is clear to silence. ``voided`` names the
    checkpoints (plays) the clear cut short.
    """

    speech: SpeechStarted
    onset_to_clear: float
    voided: tuple[str, ...]


SessionEvent = (
    CallerAudio
    | DtmfReceived
    | CheckpointPlayed
    | AudioCleared
    | SpeechStarted
    | SpeechEnded
    | BargeIn
)


@dataclass(frozen=True, slots=True)
class _PendingBargeIn:
    speech: SpeechStarted
    onset_time: float
    """When the caller started speaking, on the session clock."""
    voided: tuple[str, ...]


@dataclass(frozen=True)
class SpeechDetection:
    """Listening for the caller's voice (see :mod:`.vad` for the measured defaults)."""

    barge_in: bool = False
    """Clear the app's playback when the caller starts speaking while it plays."""
    aggressiveness: int = 3
    """WebRTC classifier setting, 0 (lenient) to 3 (fewest false starts)."""
    start_ms: int = DEFAULT_START_MS
    stop_ms: int = DEFAULT_STOP_MS


@dataclass(frozen=True)
class SessionOptions:
    """How a session treats its stream; the server fills these from its settings."""

    expected_format: AudioFormat = DEFAULT_FORMAT
    """The inbound format the answer XML asked for; used when ``start`` does not say."""
    bidirectional: bool = True
    """Whether the answer XML made the stream bidirectional (only then may the app play)."""
    byte_order: ByteOrder | None = None
    """Inbound L16 byte order; None detects it per stream."""
    outbound_format: AudioFormat | None = None
    """Format of ``playAudio``; None uses the inbound format."""
    outbound_byte_order: ByteOrder = ByteOrder.LITTLE
    max_lead: float = 0.2
    """Most seconds of app audio the carrier may hold queued (what a barge-in lets through)."""
    confirm_grace: float = 5.0
    """Seconds past its estimated play-out time before an unconfirmed checkpoint is lost."""
    event_backlog: int = 500
    """Most events (10 s of audio) waiting for a slow handler before the oldest are dropped."""
    speech: SpeechDetection | None = None
    """Detect the caller's speech from the start (a handler can also call ``detect_speech``)."""


@dataclass
class SessionStats:
    frames_received: int = 0
    frames_malformed: int = 0
    unknown_events: int = 0
    events_dropped: int = 0
    starts_ignored: int = 0
    """``start`` frames after the first: ignored, counted, logged once."""
    clear_round_trips: list[float] = field(default_factory=list)
    """Seconds from each ``clearAudio`` to its ``clearedAudio``: clear to silence."""
    barge_in_delays: list[float] = field(default_factory=list)
    """Seconds from the caller's speech onset to the ``clearAudio`` of each barge-in."""


_END = object()

CALL_MISMATCH = "call_mismatch"
"""The end reason of a stream whose ``start`` named another call than its socket was bound to."""


class CallSession:
    """One WebSocket stream of one call. Created by the server per socket."""

    def __init__(
        self,
        transport: Transport,
        options: SessionOptions | None = None,
        hooks: SessionHooks | None = None,
        query: Mapping[str, str] | None = None,
    ) -> None:
        self.options = options or SessionOptions()
        self.query: Mapping[str, str] = dict(query or {})
        """Query parameters of the socket URL: the place for per-call context (protocol.md 1)."""
        self.start: Start | None = None
        self.stream_id: str | None = None
        self.call_id: str | None = None
        self.bound_call_id: str | None = None
        """The only call this socket may carry (its stream token's); a ``start`` naming another
        ends the stream with :data:`CALL_MISMATCH`. None: any call."""
        self.mismatched_call_id: str | None = None
        """The call a refused ``start`` named (see :attr:`bound_call_id`)."""
        self._inbound_format: AudioFormat
        self._inbound_width: int
        self.inbound_format = self.options.expected_format
        self.stats = SessionStats()
        self._log_budget = LogBudget()
        self._transport = transport
        self._hooks: SessionHooks = hooks or NoHooks()
        self._loop = asyncio.get_running_loop()
        self._decoder: InboundDecoder | None = None
        self._arrivals: deque[float] = deque()
        """Arrival times of the frames the decoder holds or just released, oldest first."""
        self._held: list[_Held] = []
        """Events that came before ``start``, in order (at most ``HELD_BEFORE_START``)."""
        self._started = asyncio.Event()
        self._ended = asyncio.Event()
        self._closed = False
        self.end_reason: str | None = None
        self._ledger = PlaybackLedger(self.options.max_lead, self.options.confirm_grace)
        self._outbound: AudioFormat | None = None
        self._slicer: FrameSlicer | None = None
        self._out_resampler: Resampler | None = None
        self._play_encoder: PlayAudioEncoder | None = None
        self._names = itertools.count(1)
        self._wake = asyncio.Event()
        self._clock = FrameClock.current()  # one timer paces every call's playAudio frames
        self._pacing: Ticket | None = None
        self._at_once = transport if isinstance(transport, SendsAtOnce) else None  # _on_pace
        self._sender: asyncio.Task[None] | None = None
        self._clear_sent_at: float | None = None
        self._events: deque[SessionEvent | object] = deque()
        self._events_ready = asyncio.Event()
        self._listening = False
        self._handler_rate: int | None = None
        self._in_resamplers: dict[Track, Resampler] = {}
        self._speech = self.options.speech
        self._vad: VoiceActivityDetector | None = None
        self._vad_arrivals: deque[tuple[float, float]] = deque()
        """(audio seconds at the end of a frame, its arrival) for recent inbound frames."""
        self._barge_in: _PendingBargeIn | None = None
        """A barge-in whose ``clearAudio`` the sender has yet to send."""

    # -- metadata -----------------------------------------------------------------------------

    @property
    def inbound_format(self) -> AudioFormat:
        """The format of the carrier's audio: as ``start`` says, else as the answer XML asked."""
        return self._inbound_format

    @inbound_format.setter
    def inbound_format(self, audio_format: AudioFormat) -> None:
        self._inbound_format = audio_format
        self._inbound_width = audio_format.encoding.sample_width  # read for every frame

    @property
    def tracks(self) -> tuple[Track, ...]:
        return self.start.tracks if self.start else (Track.INBOUND,)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def byte_order(self) -> ByteOrder | None:
        """The inbound L16 byte order in use (None for mu-law)."""
        if self.inbound_format.encoding is Encoding.MULAW or self._decoder is None:
            return None
        return self._decoder.byte_order

    def now(self) -> float:
        """The session's clock: ``time.monotonic()``, not the loop's time, which uvloop counts
        in whole milliseconds (pacing, clear and barge-in timings would be quantised)."""
        return _monotonic()

    def describe(self) -> str:
        """A short label for log lines: the call id, else the stream id, escaped (the carrier
        chose it: a line feed in it must not start a forged log record)."""
        return loggable(self.call_id or self.stream_id or "unknown-call", MAX_ID_CHARS)

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
        if self._closed:
            return
        try:
            event = parse_event(frame, self._inbound_width)
        except ProtocolError as exc:
            self.reject(str(exc))
            return
        if isinstance(event, Media):
            self._on_media(event)
        elif isinstance(event, Start):
            self._on_start(event)
        elif isinstance(event, Stop):
            if self._held:
                self._begin_without_start()
            self._note("stop", reason=event.reason)
            self.close("stop")
        elif self._decoder is None:
            self._hold(event)
        else:
            self._on_event(event)

    def _on_event(self, event: PlayedStream | ClearedAudio | Dtmf | Unknown) -> None:
        if isinstance(event, PlayedStream):
            self._on_played(event)
        elif isinstance(event, ClearedAudio):
            self._on_cleared()
        elif isinstance(event, Dtmf):
            self._note("dtmf", digit=event.digit)
            self._put(DtmfReceived(event.digit))
        else:
            self.stats.unknown_events += 1
            if self.stats.unknown_events <= UNKNOWN_NOTED:
                self._note("unknown_event", event=event.event)

    def _note(self, kind: str, level: int = logging.INFO, **detail: object) -> None:
        """One log line and one kept event per call event; text from the carrier is escaped."""
        if log.isEnabledFor(level) and self._log_budget.allows(kind, self.describe):
            shown = " ".join(f"{key}={loggable(str(value))}" for key, value in detail.items())
            log.log(level, "call %s: %s %s", self.describe(), kind, shown)
        self._hooks.event(kind, detail)

    def reject(self, problem: str) -> None:
        """Count and skip a frame that could not be understood; the call goes on.

        The first of a stream is logged, the first ``MALFORMED_KEPT`` are kept as call events,
        each with an escaped preview of the problem; the rest are only counted (the count is in
        the stream's row and its end-of-stream log line), so a flood of bad frames costs no disk.
        """
        self.stats.frames_malformed += 1
        count = self.stats.frames_malformed
        if count > MALFORMED_KEPT:
            return
        preview = loggable(problem)
        if count == 1:
            log.warning(
                "call %s: malformed_frame problem=%s (further malformed frames are counted, "
                "not logged)",
                self.describe(),
                preview,
            )
        self._hooks.event("malformed_frame", {"problem": preview})

    # -- before start -------------------------------------------------------------------------

    def _hold(self, event: _Held) -> None:
        """Keep an event that came before ``start`` until the stream begins."""
        if isinstance(event, Media) and len(event.payload) > LONGEST_INBOUND_PAYLOAD:
            self.reject(f"media payload of {len(event.payload)} bytes is over a second of audio")
            return
        if isinstance(event, Unknown):
            event = Unknown(event.event)  # only its name is used: its fields are not held
        if len(self._held) >= HELD_BEFORE_START:
            self._begin_without_start()
            if isinstance(event, Media):
                self._on_media(event)
            else:
                self._on_event(event)
            return
        self._held.append(event)

    def _begin_without_start(self) -> None:
        """Begin the stream with the expected format (a carrier may send no ``start``, as after
        a reconnect), then handle what it held, in order."""
        self.stream_id = self.stream_id or next(
            (event.stream_id for event in self._held if isinstance(event, Media)), None
        )
        log.info(
            "call %s: %d events and no start; using the expected format %s",
            self.describe(),
            len(self._held),
            self.inbound_format.content_type,
        )
        self._begin()
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for event in held:
            if isinstance(event, Media):
                self._on_media(event)
            else:
                self._on_event(event)

    def _on_start(self, start: Start) -> None:
        if self.start is not None:
            self.stats.starts_ignored += 1
            if self.stats.starts_ignored == 1:  # a flood of starts is one line
                log.info("call %s: ignored a second start (and any after it)", self.describe())
            return
        bound = self.bound_call_id
        if bound is not None and start.call_id and start.call_id != bound:
            self.mismatched_call_id = start.call_id
            self.close(CALL_MISMATCH)  # nothing of the other call is recorded or handled
            return
        named = start.media_format
        if named is not None and named.sample_rate not in INBOUND_RATES[named.encoding]:
            # The recording and the clock are sized by the rate: one the carrier never sends
            # could ask for gigabytes.
            self.reject(f"start names {named.content_type}, a format the carrier does not send")
            return
        self.start = start
        self.call_id = start.call_id or self.call_id
        self.stream_id = start.stream_id or self.stream_id
        if self._started.is_set():
            log.info("call %s: start arrived after media; metadata updated", self.describe())
            return
        if start.media_format is not None:
            self.inbound_format = start.media_format
        self._begin()
        self._release_held()

    def _begin(self) -> InboundDecoder:
        decoder = self._decoder = InboundDecoder(
            self.inbound_format, self.options.byte_order, on_decided=self._on_byte_order
        )
        self._start_vad()
        self._started.set()
        self._hooks.started(self)
        return decoder

    def _on_byte_order(self, order: ByteOrder, frames: int) -> None:
        self._note("byte_order", order=order.value, frames=frames)

    def _on_media(self, media: Media) -> None:
        # Every frame comes through here: only the work there is to do (no heard audio to ask
        # for before the app ever played, no speech detection unless it is on).
        decoder = self._decoder
        if decoder is None:  # not started: held until the start comes
            self._hold(media)
            return
        self.stats.frames_received += 1
        now = _monotonic()
        try:
            # Settled (the byte order known): the frame decodes alone, with no list to build.
            decoded = decoder.decode(media) if decoder.settled else decoder.push(media)
        except VobizStreamError as exc:
            self.reject(str(exc))
            return
        if isinstance(decoded, list):
            self._arrivals.append(now)
            self._deliver(decoded)
        else:
            self._deliver_frame(media, decoded, now)
        if self._outbound is not None:  # the app has played: the caller may have heard some
            self._report_heard(now)

    def _deliver(self, decoded: list[tuple[Media, Pcm]]) -> None:
        """Hand decoded frames on, each with the time it arrived (held frames arrived earlier)."""
        for frame, pcm in decoded:
            self._deliver_frame(frame, encode_l16(pcm, _LITTLE), self._arrivals.popleft())

    def _deliver_frame(self, media: Media, samples: bytes, arrival: float) -> None:
        """One frame's little-endian samples to the hooks, and as an array to whoever listens."""
        self._hooks.audio(media, samples, arrival)
        detect = self._vad is not None and media.track is _INBOUND
        if self._listening or detect:
            pcm = decode_l16(samples, _LITTLE)
            if self._listening:
                self._put_audio(media, pcm)
            if detect:
                self._detect(pcm, arrival)

    def _put_audio(self, media: Media, pcm: Pcm) -> None:
        rate = self._handler_rate or self.inbound_format.sample_rate
        if rate != self.inbound_format.sample_rate:
            resampler = self._in_resamplers.get(media.track)
            if resampler is None:
                resampler = Resampler(self.inbound_format.sample_rate, rate)
                self._in_resamplers[media.track] = resampler
            pcm = resampler.process(pcm)
        self._put(CallerAudio(pcm, rate, media.track, media.timestamp))

    def _on_played(self, played: PlayedStream) -> None:
        handle = self._ledger.confirm(played.name, self.now())
        self._note("checkpoint_played", name=played.name, known=handle is not None)
        self._put(CheckpointPlayed(played.name))

    def _on_cleared(self) -> None:
        if self._clear_sent_at is None:
            if self._log_budget.allows("unexpected_cleared", self.describe):
                log.info("call %s: clearedAudio without a clear in flight", self.describe())
            return
        round_trip = self.now() - self._clear_sent_at
        self._clear_sent_at = None
        self.stats.clear_round_trips.append(round_trip)
        self._note("cleared", round_trip_ms=round(round_trip * 1000, 2))
        self._put(AudioCleared(round_trip))

    # -- the caller's voice -------------------------------------------------------------------

    def detect_speech(self, speech: SpeechDetection | None = None) -> None:
        """Listen for the caller's voice from now on: :class:`~vobiz_stream.audio.vad.SpeechStarted`
        and :class:`~vobiz_stream.audio.vad.SpeechEnded` events, and with ``barge_in`` an automatic
        clear (:class:`BargeIn`) when the caller talks over the app's audio.

        ``session.detect_speech(SpeechDetection(barge_in=True))``; calling it again replaces the
        settings and restarts the detector.
        """
        self._speech = speech or SpeechDetection()
        self._vad = None
        if self._started.is_set():
            self._start_vad()

    def _start_vad(self) -> None:
        if self._speech is None:
            return
        rate = self.inbound_format.sample_rate
        self._vad = VoiceActivityDetector(
            rate,
            classifier=WebRtcClassifier(rate, self._speech.aggressiveness),
            start_ms=self._speech.start_ms,
            stop_ms=self._speech.stop_ms,
        )
        self._vad_arrivals.clear()

    def _detect(self, pcm: Pcm, arrival: float) -> None:
        detector = self._vad
        assert detector is not None and self._speech is not None
        self._vad_arrivals.append((detector.position + len(pcm) / detector.sample_rate, arrival))
        window = (self._speech.start_ms + 200) / 1000  # the onset is at most start_ms back
        while self._vad_arrivals[0][0] < detector.position - window:
            self._vad_arrivals.popleft()
        for event in detector.push(pcm):
            self._on_voice(event)

    def _on_voice(self, event: VoiceEvent) -> None:
        if isinstance(event, SpeechStarted):
            self._note("speech_started", onset=round(event.onset, 3))
            self._put(event)
            if self._barge_in_wanted():
                self._start_barge_in(event)
        else:
            self._note("speech_ended", end=round(event.end, 3))
            self._put(event)

    def _barge_in_wanted(self) -> bool:
        """Barge-in is on and the caller may be hearing app audio now, or is about to."""
        if self._closed or self._speech is None or not self._speech.barge_in:
            return False
        return self._ledger.lead(self.now()) > 0 or self._ledger.pending_seconds > 0

    def _onset_time(self, speech: SpeechStarted) -> float:
        """When the caller started the speech, on the session clock: a frame arrives once it
        has been spoken, so the onset is its arrival less the audio after the onset in it."""
        onset_time = self.now()
        for end, arrival in reversed(self._vad_arrivals):
            if end <= speech.onset:
                break
            onset_time = arrival - (end - speech.onset)
        return onset_time

    def _start_barge_in(self, speech: SpeechStarted) -> None:
        """Drop the playback now; the sender sends the ``clearAudio`` before anything else."""
        onset_time = self._onset_time(speech)
        voided = self._drop_playback()
        self._barge_in = _PendingBargeIn(speech, onset_time, tuple(h.name for h in voided))
        self._kick()

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
        self._events_ready.set()

    async def events(self, sample_rate: int | None = None) -> AsyncIterator[SessionEvent]:
        """The call's events until the stream ends; caller audio resampled to ``sample_rate``.

        Audio starts flowing when this is first iterated. Events that pile up past
        ``event_backlog`` because the handler is slow are dropped, oldest first.
        """
        self._handler_rate = sample_rate
        self._listening = True
        while True:
            while self._events:
                event = self._events.popleft()
                if event is _END:
                    return
                yield event  # type: ignore[misc]
            if self._closed:
                return
            self._events_ready.clear()
            await self._events_ready.wait()

    # -- outbound -----------------------------------------------------------------------------

    def _require_playback(self) -> AudioFormat:
        if self._closed:
            raise SessionError(f"call {self.describe()}: the stream has ended")
        if not self.options.bidirectional:
            raise SessionError(
                f"call {self.describe()}: the stream is one-way, so the carrier ignores playback; "
                'answer with <Stream bidirectional="true"> to play audio'
            )
        if self._outbound is None:
            chosen = self.options.outbound_format or self.inbound_format
            if chosen.sample_rate not in OUTBOUND_RATES[chosen.encoding]:
                chosen = AudioFormat(Encoding.L16, 8000)
            self._outbound = chosen
            self._slicer = FrameSlicer(AudioFormat(Encoding.L16, chosen.sample_rate).frame_bytes, 2)
        return self._outbound

    async def play(self, audio: Pcm | bytes, sample_rate: int, *, final: bool = True) -> PlayHandle:
        """Queue audio for the caller; the handle resolves to played, cleared or lost.

        ``audio`` is int16 samples (an array, or little-endian bytes) at ``sample_rate``. It is
        resampled to the outbound rate, cut into 20 ms frames and paced. With ``final=False``
        (streaming TTS chunks) the resampler and the last partial frame carry over to the next
        call; the last chunk of an utterance should be ``final`` so nothing is held back.
        """
        outbound = self._require_playback()
        assert self._slicer is not None
        pcm = decode_l16(audio, ByteOrder.LITTLE) if isinstance(audio, bytes) else as_pcm(audio)
        resampler = self._out_resampler
        if resampler is None or resampler.in_rate != sample_rate:
            resampler = self._out_resampler = Resampler(sample_rate, outbound.sample_rate)
        converted = resampler.process(pcm)
        if final:
            converted = np.concatenate([converted, resampler.flush()])
        chunks = self._slicer.push(converted.astype("<i2", copy=False).tobytes())
        if final:
            tail = self._slicer.flush(pad=0)
            if tail:
                chunks.append(tail)
        encoder = self._play_encoder
        if encoder is None or encoder.stream_id != self.stream_id:
            encoder = PlayAudioEncoder(outbound, self.options.outbound_byte_order, self.stream_id)
            self._play_encoder = encoder
        frames = encoder.frames(chunks)
        handle = PlayHandle(f"play-{next(self._names)}")
        self._ledger.enqueue(frames, handle)
        self._kick()
        return handle

    async def checkpoint(self, name: str) -> PlayHandle:
        """Ask the carrier to confirm when everything queued so far has played."""
        self._require_playback()
        handle = PlayHandle(name)
        self._ledger.enqueue([], handle)
        self._kick()
        return handle

    async def clear(self) -> None:
        """Barge-in: drop unsent audio, tell the carrier to empty its queue, void checkpoints.

        The round trip to the carrier's ``clearedAudio`` arrives later as :class:`AudioCleared`.
        """
        self._require_playback()
        voided = self._drop_playback()
        self._note("clear", voided=[handle.name for handle in voided])
        await self._send_clear()

    def _drop_playback(self) -> list[PlayHandle]:
        """Forget all unsent audio and void the checkpoints: the first half of a clear."""
        voided = self._ledger.clear(self.now())
        if self._slicer is not None:
            self._slicer.clear()
        if self._out_resampler is not None:
            self._out_resampler.reset()
        return voided

    async def _send_clear(self) -> None:
        self._clear_sent_at = self.now()
        await self._send(ClearAudio(stream_id=self.stream_id))

    async def stop(self) -> None:
        """End the stream from the app side; the carrier hangs up if no XML follows."""
        if self._closed:
            return
        self._note("app_stop")
        await self._send(StopCommand(stream_id=self.stream_id))
        await self._transport.close()

    @property
    def outbound_format(self) -> AudioFormat | None:
        """The format of ``playAudio`` frames, once the app has played anything."""
        return self._outbound

    @property
    def lead(self) -> float:
        """Seconds of app audio the carrier holds queued now, by estimate."""
        return self._ledger.lead(self.now())

    @property
    def playback_stats(self) -> PlaybackStats:
        return self._ledger.stats

    def _kick(self) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name=f"sender-{self.describe()}")
        self._wake.set()

    async def _send(self, message: Checkpoint | ClearAudio | StopCommand) -> None:
        await self._send_frame(encode_bytes(message))

    async def _send_frame(self, data: bytes) -> None:
        try:
            await self._transport.send_frame(data)
        except (ConnectionError, RuntimeError) as exc:
            raise SessionError(f"call {self.describe()}: could not send: {exc}") from exc

    async def _send_loop(self) -> None:
        """Send what the ledger says is due, sleeping until its next deadline (never drifting)."""
        while not self._closed:
            if self._barge_in is not None and not await self._send_barge_in():
                return
            now = self.now()
            for item in self._ledger.due(now):
                if self._barge_in is not None:
                    break  # the rest was voided by the clear
                try:
                    if isinstance(item, OutboundFrame):
                        await self._send_frame(item.wire)
                    else:
                        await self._send(Checkpoint(item.name, self.stream_id))
                except SessionError as exc:
                    log.warning("%s", exc)
                    return
            for handle in self._ledger.expire(now):
                self._note("checkpoint_lost", level=logging.WARNING, name=handle.name)
            if self._barge_in is not None:
                continue  # it came while this loop was sending: its clear goes out now
            deadline = self._ledger.next_deadline(self.now())
            self._wake.clear()
            if self._pacing is not None:
                self._pacing.cancel()
            self._pacing = (
                None if deadline is None else self._clock.schedule(deadline, self._on_pace)
            )
            await self._wake.wait()

    def _on_pace(self) -> float | None:
        """The sender's deadline came: send what is due from the frame clock's tick, with no
        task woken, when the transport can send without waiting, and say when to come back;
        else (or for a barge-in) wake the sender task."""
        transport = self._at_once
        if self._closed:
            return None
        if transport is None or self._barge_in is not None or not transport.can_send_now():
            self._wake.set()
            return None
        now = self.now()
        try:
            for item in self._ledger.due(now):
                if isinstance(item, OutboundFrame):
                    transport.send_now(item.wire)
                else:
                    transport.send_now(encode_bytes(Checkpoint(item.name, self.stream_id)))
        except (ConnectionError, RuntimeError) as exc:
            log.warning("call %s: could not send: %s", self.describe(), exc)
            return None
        for handle in self._ledger.expire(now):
            self._note("checkpoint_lost", level=logging.WARNING, name=handle.name)
        return self._ledger.next_deadline(self.now())

    async def _send_barge_in(self) -> bool:
        """Send the pending barge-in's ``clearAudio``; False if the socket failed."""
        barge_in = self._barge_in
        assert barge_in is not None
        self._barge_in = None
        try:
            await self._send_clear()
        except SessionError as exc:
            log.warning("%s", exc)
            return False
        assert self._clear_sent_at is not None
        onset_to_clear = self._clear_sent_at - barge_in.onset_time
        self.stats.barge_in_delays.append(onset_to_clear)
        self._note(
            "clear",
            voided=list(barge_in.voided),
            barge_in_onset_to_clear_ms=round(onset_to_clear * 1000, 1),
        )
        self._put(BargeIn(barge_in.speech, onset_to_clear, barge_in.voided))
        return True

    def _report_heard(self, now: float) -> None:
        for heard in self._ledger.pop_heard(now):
            self._hooks.heard(heard)

    # -- end ----------------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """The stream is over (socket closed, ``stop``, or the server shutting down)."""
        if self._closed:
            return
        if self._held:
            self._begin_without_start()
        self._closed = True
        self.end_reason = reason
        if self._decoder is not None:
            self._deliver(self._decoder.flush())
        if self._listening:
            for track, resampler in self._in_resamplers.items():
                self._put(CallerAudio(resampler.flush(), resampler.out_rate, track))
        now = self.now()
        self._ledger.close(now)
        self._report_heard(now + FRAME_SECONDS)  # the frame cut at ``now`` is complete
        self._put(_END)
        self._ended.set()
        self._events_ready.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.cancel()
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
        if self._sender is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
