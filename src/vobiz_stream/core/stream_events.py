"""What :class:`~vobiz_stream.core.stream.StreamState` reports and how it is set up.

Events are frozen value objects. The ones a handler sees (:data:`SessionEvent`) are what
:meth:`CallSession.events <vobiz_stream.app.session.CallSession.events>` yields; the rest
(:data:`StreamEvent` adds them) are for whoever drives the stream: a server keeping the call,
or a custom transport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from vobiz_stream.audio import ByteOrder, Pcm
from vobiz_stream.audio.vad import DEFAULT_START_MS, DEFAULT_STOP_MS, SpeechEnded, SpeechStarted
from vobiz_stream.core.playback import HeardAudio
from vobiz_stream.core.protocol import ClearedAudio, Media, Start, Stop, Track, Unknown
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.formats import DEFAULT_FORMAT, AudioFormat


class SessionError(VobizStreamError):
    """A stream command that cannot be carried out (one-way stream, closed socket...)."""


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
    """The carrier played everything queued before checkpoint ``name``; ``known`` is False for
    a name this stream never sent."""

    name: str
    known: bool = True


@dataclass(frozen=True, slots=True)
class AudioCleared:
    """The carrier confirmed a clear; ``round_trip`` seconds after it was sent."""

    round_trip: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller spoke over the app's audio and the stream cleared it.

    ``onset_to_clear`` is seconds from the caller starting to speak (the arrival of the speech's
    first frame, less its length) to the clear being decided, when the frame that confirmed the
    speech arrived: the detector's ``start_ms`` plus the time to notice; the ``clearAudio`` is
    the next frame sent. The carrier's confirmation follows as :class:`AudioCleared`, whose
    ``round_trip`` is clear to silence. ``voided`` names the checkpoints (plays) the clear cut
    short.
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


# --- what the driver of a stream receives as well --------------------------------------------


FrameSink = Callable[[Media, bytes, float], None]
"""Takes each decoded media frame: the frame, its samples as little-endian L16 at the stream's
rate (as a WAV holds them) and the time it arrived."""


class Recorder(Protocol):
    """Takes a stream's audio as it is decoded (``StreamState(recorder=...)``), called directly:
    no event is made per frame."""

    def begin(self) -> None:
        """The stream has started (its format is known); its first audio follows."""

    @property
    def audio(self) -> FrameSink:
        """What each decoded frame is given to."""


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream's metadata is known: its ``start``, or None when audio came without one
    (the expected format is used)."""

    start: Start | None


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The stream is over (``reason``: ``stop``, a socket's end, a call mismatch...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """A frame that could not be understood and was skipped; ``problem`` is escaped."""

    problem: str


@dataclass(frozen=True, slots=True)
class ByteOrderFound:
    """The caller's L16 byte order, detected after ``frames`` frames."""

    order: ByteOrder
    frames: int


StreamEvent = (
    SessionEvent
    | HeardAudio
    | StreamStarted
    | StreamEnded
    | MalformedFrame
    | ByteOrderFound
    | Stop
    | ClearedAudio
    | Unknown
)
"""Everything :meth:`StreamState.feed <vobiz_stream.core.stream.StreamState.feed>` and
:meth:`~vobiz_stream.core.stream.StreamState.close` may report. The carrier's own ``stop``,
``clearedAudio`` (only one that answers no clear) and unknown events come as they were parsed."""


# --- settings and figures --------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechDetection:
    """Listening for the caller's voice (see :mod:`vobiz_stream.audio.vad` for the figures)."""

    barge_in: bool = False
    """Clear the app's playback when the caller starts speaking while it plays."""
    aggressiveness: int = 3
    """WebRTC classifier setting, 0 (lenient) to 3 (fewest false starts)."""
    start_ms: int = DEFAULT_START_MS
    stop_ms: int = DEFAULT_STOP_MS


@dataclass(frozen=True)
class SessionOptions:
    """How a stream is treated; the server fills these from its settings."""

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
    """Seconds from the caller's speech onset to the decision to clear, for each barge-in."""
