"""One call's stream as a protocol object, I/O-free: frames in, events and frames out.

:class:`StreamState` is to a Vobiz audio stream what h11's ``Connection`` is to HTTP: it owns the
stream's state (parsing, the inbound byte order, decoding and resampling, the playback ledger,
speech detection and barge-in) and never touches a socket, a task or the clock. Whoever drives it
(the server's :class:`~vobiz_stream.app.session.CallSession`, the Pipecat serializer, a custom
transport) does three things:

* each text frame the carrier sends goes to :meth:`StreamState.feed` with the time it arrived,
  which returns what it meant (:data:`~vobiz_stream.core.stream_events.StreamEvent`);
* after :meth:`~StreamState.play`, :meth:`~StreamState.checkpoint` or :meth:`~StreamState.clear`,
  and whenever :meth:`~StreamState.next_deadline` comes, the frames :meth:`~StreamState.due`
  returns are sent, in order;
* when the socket ends, :meth:`~StreamState.close` reports the last of it.

Bad input never raises: a frame that cannot be understood is counted, reported as
:class:`~vobiz_stream.core.stream_events.MalformedFrame` (the first ``MALFORMED_KEPT``) and
skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from vobiz_stream.audio import ByteOrder
from vobiz_stream.audio.vad import SpeechStarted
from vobiz_stream.core.inbound import LONGEST_INBOUND_PAYLOAD
from vobiz_stream.core.incoming import IncomingAudio
from vobiz_stream.core.kinds import EndReason
from vobiz_stream.core.playback import PlayMark
from vobiz_stream.core.protocol import (
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Stop,
    Unknown,
    parse_event,
)
from vobiz_stream.core.stream_app import AppSide
from vobiz_stream.core.stream_events import (
    AudioCleared,
    BargeIn,
    CheckpointPlayed,
    DtmfReceived,
    MalformedFrame,
    Recorder,
    SessionOptions,
    SpeechDetection,
    StreamEnded,
    StreamEvent,
    StreamStarted,
)
from vobiz_stream.errors import ProtocolError, VobizStreamError
from vobiz_stream.formats import FRAME_SECONDS, INBOUND_RATES, Encoding
from vobiz_stream.logtext import loggable

log = logging.getLogger("vobiz_stream.core.stream")

MALFORMED_KEPT = 10
"""Malformed frames of a stream reported as events; the rest are only counted."""

HELD_BEFORE_START = 50
"""Events (a second of audio) a stream holds back while its ``start`` has not come."""

_Held = Media | PlayedStream | ClearedAudio | Dtmf | Unknown
_Events = list[StreamEvent]
_NO_EVENTS: tuple[StreamEvent, ...] = ()


class StreamState(AppSide):
    """The protocol state of one stream (see the module's description)."""

    def __init__(
        self,
        options: SessionOptions | None = None,
        *,
        caller_rate: int | None = None,
        caller_audio: bool = True,
        recorder: Recorder | None = None,
        bound_call_id: str | None = None,
        hold_before_start: int = HELD_BEFORE_START,
        mark: Callable[[str], PlayMark] = PlayMark,
    ) -> None:
        super().__init__(options, mark)
        self.caller_rate = caller_rate
        """Rate of :class:`CallerAudio` events; None: the stream's own."""
        self.caller_audio = caller_audio
        """Report :class:`CallerAudio` (off for a server with nobody listening yet)."""
        self.recorder = recorder
        """Told when the stream begins, then given every decoded frame (see :class:`Recorder`)."""
        self.bound_call_id = bound_call_id
        """The only call this stream may carry; a ``start`` naming another ends it
        (``call_mismatch``). None: any call."""
        self.mismatched_call_id: str | None = None
        self.incoming: IncomingAudio | None = None
        """The carrier's audio, once the stream has started."""
        self._held: list[_Held] = []
        self._hold_limit = hold_before_start
        """Events held while no ``start`` has come (0: begin with the expected format at once)."""
        self._speech = self.options.speech

    # -- metadata -----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.incoming is not None

    def listen(self, sample_rate: int | None = None) -> None:
        """Report :class:`CallerAudio` from now on, at ``sample_rate`` (None: the stream's)."""
        self.caller_audio = True
        self.caller_rate = sample_rate
        if self.incoming is not None:
            self.incoming.listen(sample_rate)

    @property
    def byte_order(self) -> ByteOrder | None:
        """The inbound L16 byte order in use (None for mu-law, or before the stream starts)."""
        if self.inbound_format.encoding is Encoding.MULAW or self.incoming is None:
            return None
        return self.incoming.decoder.byte_order

    # -- inbound ------------------------------------------------------------------------------

    def feed(self, frame: str | bytes, now: float) -> Sequence[StreamEvent]:
        """One text frame from the carrier, arrived at ``now``: what it meant, in order."""
        if self.closed:
            return _NO_EVENTS
        try:
            event = parse_event(frame, self._inbound_width)
        except ProtocolError as exc:
            return self.reject(str(exc))
        incoming = self.incoming
        if type(event) is Media and incoming is not None and incoming.only_recorder is not None:
            # A recorded stream's frames come this way once the byte order is known: decode,
            # record, nothing else to do (not even a list to make).
            self.stats.frames_received += 1
            try:
                samples = incoming.decoder.decode(event)
            except VobizStreamError as exc:
                return self.reject(str(exc))
            incoming.only_recorder(event, samples, now)
            if self.outgoing is None:
                return _NO_EVENTS
            return self.outgoing.heard(now)  # the app has played: the caller may have heard some
        out: _Events = []
        if isinstance(event, Media):
            self._on_media(event, now, out)
        elif isinstance(event, Start):
            self._on_start(event, now, out)
        elif isinstance(event, Stop):
            if self._held:
                self._begin_without_start(now, out)
            out.append(event)  # the socket closes next; whoever drives the stream closes it
        elif self.incoming is None:
            self._hold(event, now, out)
        else:
            self._on_event(event, now, out)
        return out

    def reject(self, problem: str) -> _Events:
        """Count and skip something the transport could not read at all (a binary frame...),
        as :meth:`feed` does a frame it cannot understand."""
        out: _Events = []
        self._reject(problem, out)
        return out

    def _reject(self, problem: str, out: _Events) -> None:
        """Count and skip what could not be understood; the first few are reported."""
        self.stats.frames_malformed += 1
        if self.stats.frames_malformed <= MALFORMED_KEPT:
            out.append(MalformedFrame(loggable(problem)))

    def _on_event(self, event: _Held, now: float, out: _Events) -> None:
        if isinstance(event, Media):
            self._on_media(event, now, out)
        elif isinstance(event, PlayedStream):
            handle = None
            if self.outgoing is not None:
                handle = self.outgoing.ledger.confirm(event.name, now)
            out.append(CheckpointPlayed(event.name, handle is not None))
        elif isinstance(event, ClearedAudio):
            round_trip = None if self.outgoing is None else self.outgoing.cleared(now)
            if round_trip is None:
                out.append(event)  # no clear in flight
            else:
                self.stats.clear_round_trips.append(round_trip)
                out.append(AudioCleared(round_trip))
        elif isinstance(event, Dtmf):
            out.append(DtmfReceived(event.digit))
        else:
            self.stats.unknown_events += 1
            out.append(event)

    # -- before start -------------------------------------------------------------------------

    def _hold(self, event: _Held, now: float, out: _Events) -> None:
        """Keep an event that came before ``start`` until the stream begins."""
        if isinstance(event, Media) and len(event.payload) > LONGEST_INBOUND_PAYLOAD:
            self._reject(
                f"media payload of {len(event.payload)} bytes is over a second of audio", out
            )
            return
        if isinstance(event, Unknown):
            event = Unknown(event.event)  # only its name is used: its fields are not held
        self._held.append(event)
        if len(self._held) > self._hold_limit:
            self._begin_without_start(now, out)

    def _begin_without_start(self, now: float, out: _Events) -> None:
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
        self._begin(None, now, out)

    def _on_start(self, start: Start, now: float, out: _Events) -> None:
        if self.start is not None:
            self.stats.starts_ignored += 1
            if self.stats.starts_ignored == 1:  # a flood of starts is one line
                log.info("call %s: ignored a second start (and any after it)", self.describe())
            return
        bound = self.bound_call_id
        if bound is not None and start.call_id and start.call_id != bound:
            self.mismatched_call_id = start.call_id
            # What came before is the bound call's; nothing of the other call is handled.
            out.extend(self.close(EndReason.CALL_MISMATCH, now))
            return
        named = start.media_format
        if named is not None and named.sample_rate not in INBOUND_RATES[named.encoding]:
            # The recording and the clock are sized by the rate: one the carrier never sends
            # could ask for gigabytes.
            self._reject(
                f"start names {named.content_type}, a format the carrier does not send", out
            )
            return
        self.start = start
        self.call_id = start.call_id or self.call_id
        self.stream_id = start.stream_id or self.stream_id
        if self.incoming is not None:
            log.info("call %s: start arrived after media; metadata updated", self.describe())
            return
        if start.media_format is not None:
            self.inbound_format = start.media_format
        self._begin(start, now, out)

    def _begin(self, start: Start | None, now: float, out: _Events) -> None:
        incoming = self.incoming = IncomingAudio(
            self.inbound_format,
            self.options.byte_order,
            self.caller_rate,
            self.caller_audio,
            None if self.recorder is None else self.recorder.audio,
        )
        incoming.on_speech_started = self._on_speech_started
        incoming.listen_for_speech(self._speech)
        out.append(StreamStarted(start))
        if self.recorder is not None:
            self.recorder.begin()  # before any audio, the held frames' too
        held, self._held = self._held, []
        for event in held:
            self._on_event(event, now, out)

    # -- caller audio -------------------------------------------------------------------------

    def _on_media(self, media: Media, now: float, out: _Events) -> None:
        # Every frame comes through here: only the work there is to do (no heard audio to ask
        # for before the app ever played).
        incoming = self.incoming
        if incoming is None:  # not started: held until the start comes
            self._hold(media, now, out)
            return
        self.stats.frames_received += 1
        try:
            incoming.push(media, now, out)
        except VobizStreamError as exc:
            self._reject(str(exc), out)
            return
        if self.outgoing is not None:  # the app has played: the caller may have heard some
            out.extend(self.outgoing.heard(now))

    # -- the caller's voice -------------------------------------------------------------------

    def detect_speech(self, speech: SpeechDetection | None = None) -> None:
        """Listen for the caller's voice from now on: :class:`~vobiz_stream.audio.vad.SpeechStarted`
        and :class:`~vobiz_stream.audio.vad.SpeechEnded` events, and with ``barge_in`` a clear
        (:class:`BargeIn`) when the caller talks over the app's audio. Calling it again
        replaces the settings and restarts the detector."""
        self._speech = speech or SpeechDetection()
        if self.incoming is not None:
            self.incoming.listen_for_speech(self._speech)

    def _on_speech_started(self, speech: SpeechStarted, onset: float, now: float) -> BargeIn | None:
        """Barge-in: the caller started talking while app audio plays, or is about to."""
        settings = self._speech
        outgoing = self.outgoing
        if settings is None or not settings.barge_in or outgoing is None:
            return None
        if not outgoing.playing(now):
            return None
        voided = tuple(handle.name for handle in self._drop_playback(now))
        onset_to_clear = now - onset
        self.stats.barge_in_delays.append(onset_to_clear)
        return BargeIn(speech, onset_to_clear, voided)

    # -- end ----------------------------------------------------------------------------------

    def close(self, reason: str, now: float) -> _Events:
        """The stream is over (the socket closed, or the app is done): the last of it."""
        out: _Events = []
        if not self.closed:
            if self._held:
                self._begin_without_start(now, out)
            self._end(reason, now, out)
        return out

    def _end(self, reason: str, now: float, out: _Events) -> None:
        self.closed = True
        self.end_reason = reason
        if self.incoming is not None:
            self.incoming.flush(out)
        if self.outgoing is not None:
            self.outgoing.ledger.close(now)
            out.extend(self.outgoing.heard(now + FRAME_SECONDS))  # the frame cut at now is whole
        out.append(StreamEnded(reason))
