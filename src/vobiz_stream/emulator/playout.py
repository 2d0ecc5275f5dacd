"""The carrier's playout for one stream, without I/O: what the caller hears, and when.

The carrier queues every ``playAudio`` and plays the queue in order on its own frame clock
(docs/protocol.md section 3). This model does the same:

* the call clock starts at 0 (the moment ``start`` was sent) and ticks every 20 ms, in step with
  the caller's frames; at tick ``k`` the carrier takes exactly one frame from the queue and plays
  it at sample ``k * frame``. Everything the caller hears is one contiguous track on that clock,
  so it lines up sample for sample with the caller's own audio and audio that came in one piece
  is heard in one piece;
* a jitter buffer absorbs the app's pacing: when audio comes to an empty queue, playout starts
  ``jitter_buffer`` seconds after it came, or as soon as that much waits behind the frame about to
  play, or at once when a checkpoint marks the end of what is queued (the utterance is shorter).
  So a frame of an app that paces in real time may come up to ``jitter_buffer`` late unheard;
* a tick that finds the queue dry (or holding less than a frame, which plays padded with
  silence) opens a gap, closed at the tick where playout starts again. A gap after a checkpoint
  or a clear, or one of :data:`PAUSE_SECONDS` or more, is a pause between utterances; any other
  is an underrun: the app fell behind in the middle of what it was saying;
* a checkpoint is due when the last sample queued before it has played; if nothing is queued it
  is due when the frame playing now ends. :meth:`Playout.next_deadline` says when, so the shell
  can answer it exactly then;
* ``clearAudio`` empties the queue at once, silences the rest of the frame playing, and voids
  every pending checkpoint;
* past ``queue_cap`` seconds of queued audio, what does not fit is dropped and the stream is
  reported degraded (once).

Times are seconds on the call clock, passed in, so every rule is tested with plain calls. Every
method that takes ``now`` first runs the ticks before ``now`` (a tick at ``now`` takes what
arrives at ``now``); ``now`` must never go backwards.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from vobiz_stream.audio import ByteOrder, Pcm
from vobiz_stream.core.protocol import PlayAudio
from vobiz_stream.emulator.app_audio import AppAudioDecoder
from vobiz_stream.formats import FRAME_MS

__all__ = [
    "DEFAULT_JITTER_BUFFER",
    "DEFAULT_QUEUE_CAP",
    "PAUSE_SECONDS",
    "CheckpointReached",
    "Degraded",
    "Gap",
    "PlaybackStarted",
    "Playout",
    "PlayoutEvent",
    "QueueCleared",
]

DEFAULT_QUEUE_CAP = 40.0
"""Seconds of audio the carrier holds queued (Plivo's queue, which Vobiz derives from)."""

DEFAULT_JITTER_BUFFER = 0.06
"""Seconds of audio queued before playout starts: app frames up to this late are not heard."""

PAUSE_SECONDS = 0.5
"""A silence this long counts as a pause between utterances even when no checkpoint or clear
marked the end of the audio before it; a shorter unmarked one is an underrun."""

_EPSILON = 1e-9
"""Absorbs float error when a time is turned into a sample index."""


@dataclass(frozen=True, slots=True)
class CheckpointReached:
    """A checkpoint is due: send ``playedStream``. ``played_at`` is when its audio finished."""

    name: str
    received_at: float
    played_at: float


@dataclass(frozen=True, slots=True)
class QueueCleared:
    """A ``clearAudio`` was applied at ``at``: send ``clearedAudio``."""

    at: float
    dropped_seconds: float
    voided: tuple[str, ...]
    """Checkpoints that will never be answered."""


@dataclass(frozen=True, slots=True)
class Degraded:
    """The queue passed its cap at ``at``; audio is being dropped (reported once per stream)."""

    at: float
    queued_seconds: float


@dataclass(frozen=True, slots=True)
class Gap:
    """Silence the caller heard between two stretches of played audio, ``start`` to ``end``.

    ``mid_utterance`` is an underrun: the queue ran dry in the middle of what the app was saying
    (no checkpoint or clear marked an end, and the silence was shorter than
    :data:`PAUSE_SECONDS`). Otherwise the gap is a pause between utterances.
    """

    start: float
    end: float
    mid_utterance: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    """The app's audio starts playing at ``at``: the first time, or ``after`` a gap."""

    at: float
    after: Gap | None


PlayoutEvent = CheckpointReached | QueueCleared | Degraded | PlaybackStarted


@dataclass(slots=True)
class _Pending:
    name: str
    received_at: float
    mark: int
    """Samples taken from the queue, counted over the stream, once its audio has all been taken."""
    due: int | None = None
    """Sample of the call clock at which its audio has played, once the frame holding its last
    sample has been taken."""


class Playout:
    """One stream's playout at the call's ``rate`` (the rate of the caller's audio).

    ``byte_order`` is how ``playAudio`` L16 is read (little-endian unless configured, protocol.md
    section 4). On a stream that is not ``bidirectional`` every command is ignored and counted.
    ``jitter_buffer`` is the depth in seconds playout waits for (0: play from the next tick).
    """

    def __init__(
        self,
        rate: int,
        *,
        byte_order: ByteOrder = ByteOrder.LITTLE,
        bidirectional: bool = True,
        queue_cap: float = DEFAULT_QUEUE_CAP,
        jitter_buffer: float = DEFAULT_JITTER_BUFFER,
    ) -> None:
        self.rate = rate
        self.bidirectional = bidirectional
        self.cap_samples = round(queue_cap * rate)
        self.depth = round(jitter_buffer * rate)
        self._frame = rate * FRAME_MS // 1000
        self._queue: deque[Pcm] = deque()
        self._queued = 0
        self._taken = 0  # samples taken from the queue over the stream
        self._now = 0
        """Sample of the call clock at the latest ``now``."""
        self._next_tick = 0
        self._heard: list[Pcm] = []
        """Played frames (silence included) not yet handed out, the one playing now last."""
        self._heard_out = 0  # samples handed out by pop_heard
        self._playing = (0, 0, 0)
        """The frame taken last: its first sample, ``_taken`` before it, its audio samples."""
        self._flowing = False
        """Each tick takes a frame; False while the queue is dry or filling up."""
        self._filling_since: int | None = None
        """Sample of the clock at which audio arrived to an idle playout."""
        self._silent_since: int | None = None
        """Where the silence of a gap began; None while flowing and before the first audio."""
        self._end_marked = False
        """A checkpoint or clear came after the last audio queued."""
        self._gap_marked = False
        """The silence now heard began with the end of the audio before it marked."""
        self._pending: deque[_Pending] = deque()
        self._started: list[PlaybackStarted] = []
        """Starts of playback since the last :meth:`advance` returned."""
        self._decoder = AppAudioDecoder(rate, byte_order)
        self.degraded = False
        self.first_audio_at: float | None = None
        self.gaps: list[Gap] = []
        self.ignored_commands = 0
        self.dropped_samples = 0
        self.played_samples = 0

    # -- the clock -----------------------------------------------------------------------------

    def _time(self, position: int) -> float:
        return position / self.rate

    @property
    def idle(self) -> bool:
        """Nothing queued and no checkpoint pending: advancing the clock would only add
        silence, which the next :meth:`advance` adds just as well."""
        return not self._queue and not self._pending

    @property
    def queued_seconds(self) -> float:
        """Audio waiting to be played, as of the last call."""
        return self._queued / self.rate

    def advance(self, now: float) -> list[PlayoutEvent]:
        """Run the ticks before ``now``; return when playback started and the checkpoints that
        came due."""
        self._now = max(self._now, math.floor(now * self.rate + _EPSILON))
        last = (self._now - 1) // self._frame  # the tick at ``now`` takes what arrives at ``now``
        while self._next_tick <= last:
            if not self._flowing:
                start = self._start_tick(last)
                if start is None:
                    self._silence(last + 1 - self._next_tick)
                    break
                self._silence(start - self._next_tick)
                self._resume()
            self._take()
        events: list[PlayoutEvent] = [*self._started]
        self._started.clear()
        while self._pending and self._pending[0].due is not None:
            pending = self._pending[0]
            assert pending.due is not None
            if pending.due > self._now:
                break
            self._pending.popleft()
            played_at = max(pending.received_at, self._time(pending.due))
            events.append(CheckpointReached(pending.name, pending.received_at, played_at))
        return events

    def _start_tick(self, last: int) -> int | None:
        """The first tick up to ``last`` at which the jitter buffer lets playout start."""
        if not self._queued:
            return None
        if self._queued >= self.depth + self._frame or self._end_marked:
            return self._next_tick
        assert self._filling_since is not None
        waited = -(-(self._filling_since + self.depth) // self._frame)  # the tick at or after
        start = max(self._next_tick, waited)
        return start if start <= last else None

    def _silence(self, ticks: int) -> None:
        if ticks > 0:
            self._heard.append(np.zeros(ticks * self._frame, dtype=np.int16))
            self._next_tick += ticks

    def _resume(self) -> None:
        position = self._next_tick * self._frame
        gap = None
        if self._silent_since is not None:
            start, end = self._time(self._silent_since), self._time(position)
            pause = self._gap_marked or end - start >= PAUSE_SECONDS - _EPSILON
            gap = Gap(start, end, mid_utterance=not pause)
            self.gaps.append(gap)
        self._started.append(PlaybackStarted(self._time(position), gap))
        self._silent_since = self._filling_since = None
        self._flowing = True

    def _take(self) -> None:
        """Tick: play one frame from the queue, padded with silence if it holds less."""
        position, frame = self._next_tick * self._frame, self._frame
        take = min(frame, self._queued)
        if take == frame and len(self._queue[0]) >= frame:
            chunk = self._queue[0]
            self._heard.append(chunk[:frame])
            if len(chunk) == frame:
                self._queue.popleft()
            else:
                self._queue[0] = chunk[frame:]
        else:
            self._heard.append(self._gather(take))
        self._playing = (position, self._taken, take)
        self._queued -= take
        self._taken += take
        self.played_samples += take
        self._next_tick += 1
        for pending in self._pending:  # in the order of their marks
            if pending.mark > self._taken:
                break
            if pending.due is None:
                pending.due = position + pending.mark - (self._taken - take)
        if take < frame:  # ran dry: silence from the end of the audio
            self._flowing = False
            self._silent_since = position + take
            self._gap_marked = self._end_marked

    def _gather(self, take: int) -> Pcm:
        """``take`` samples off the queue, across chunks, as one frame padded with silence."""
        frame = np.zeros(self._frame, dtype=np.int16)
        filled = 0
        while filled < take:
            chunk = self._queue[0]
            part = min(len(chunk), take - filled)
            frame[filled : filled + part] = chunk[:part]
            if part == len(chunk):
                self._queue.popleft()
            else:
                self._queue[0] = chunk[part:]
            filled += part
        return frame

    def next_deadline(self) -> float | None:
        """When the next checkpoint comes due (call clock), or None while none is pending.

        Before its audio is taken this assumes playout goes on from the next tick, so the answer
        is never late; the shell asks again once it has advanced to that time.
        """
        if not self._pending:
            return None
        pending = self._pending[0]
        due = pending.due
        if due is None:
            due = self._next_tick * self._frame + pending.mark - self._taken
        return max(pending.received_at, self._time(due))

    # -- commands ------------------------------------------------------------------------------

    def play(self, command: PlayAudio, now: float) -> list[PlayoutEvent]:
        """Queue ``playAudio`` audio, converted to the call's rate."""
        events = self.advance(now)
        if not self.bidirectional:
            self.ignored_commands += 1
            return events
        pcm = self._decoder.decode(command)
        if not len(pcm):
            return events
        room = self.cap_samples - self._queued
        if len(pcm) > room:
            self.dropped_samples += len(pcm) - max(room, 0)
            pcm = pcm[: max(room, 0)]
            if not self.degraded:
                self.degraded = True
                events.append(Degraded(now, self.queued_seconds))
        if not len(pcm):
            return events
        if self.first_audio_at is None:
            self.first_audio_at = now
        self._enqueue(pcm)
        return events

    def _enqueue(self, pcm: Pcm) -> None:
        if not self._flowing and self._filling_since is None:
            self._filling_since = self._now
            if self._silent_since is not None:
                self._gap_marked = self._end_marked
        self._end_marked = False
        self._queue.append(pcm)
        self._queued += len(pcm)

    def checkpoint(self, name: str, now: float) -> list[PlayoutEvent]:
        """Mark the end of what is queued; it is answered once that has played."""
        events = self.advance(now)
        if not self.bidirectional:
            self.ignored_commands += 1
            return events
        for tail in self._decoder.flush():
            self._enqueue(tail)
        self._end_marked = True
        pending = _Pending(name, now, self._taken + self._queued)
        if not self._queued:
            position, taken_before, _ = self._playing
            pending.due = max(self._now, position + pending.mark - taken_before)
        self._pending.append(pending)
        return events + self.advance(now)

    def clear(self, now: float) -> list[PlayoutEvent]:
        """Drop everything queued and every pending checkpoint, and cut the frame playing."""
        events = self.advance(now)
        if not self.bidirectional:
            self.ignored_commands += 1
            return events
        self._decoder.reset()
        dropped = self._queued + self._cut_playing()
        voided = self._drop_queued()
        self._end_marked = self._gap_marked = True  # a clear ends the utterance
        events.append(QueueCleared(now, dropped / self.rate, voided))
        return events

    def _cut_playing(self) -> int:
        """Silence the frame playing from ``now`` on; return how many audio samples that cut.

        A cut while flowing opens a gap at ``now``.
        """
        position, _, audio = self._playing
        end = position + audio
        cut = end - self._now
        if self._flowing or cut > 0:
            self._flowing = False
            self._silent_since = min(self._now, end)
        if cut <= 0:
            return 0
        heard = np.concatenate(self._heard)  # a fresh array: frames may be views of the queue's
        heard[self._now - self._heard_out : end - self._heard_out] = 0
        self._heard = [heard]
        self._playing = (position, self._taken, self._now - position)
        self.played_samples -= cut
        return cut

    def hang_up(self, now: float) -> tuple[list[PlayoutEvent], tuple[str, ...]]:
        """The call ends at ``now``: nothing more plays.

        Returns the checkpoints that came due by ``now`` (still to be answered) and the names of
        those that never will be.
        """
        events = self.advance(now)
        self._cut_playing()
        return events, self._drop_queued()

    def _drop_queued(self) -> tuple[str, ...]:
        """Forget the queued audio and pending checkpoints; the names of those checkpoints."""
        voided = tuple(pending.name for pending in self._pending)
        self._pending.clear()
        self._queue.clear()
        self._queued = 0
        self._filling_since = None
        return voided

    # -- what the caller heard ----------------------------------------------------------------

    def pop_heard(self, *, partial: bool = False) -> Pcm:
        """The heard samples of every 20 ms tick played by the last ``now``, not yet handed out.

        Silence fills the ticks where nothing played. Only what :meth:`advance` (or any command)
        has played counts, so call it after them. With ``partial`` the tick playing at the last
        ``now`` is handed out as far as it has played (for the end of a call).
        """
        end = self._now if partial else self._now - self._now % self._frame
        wanted = end - self._heard_out
        if wanted <= 0:
            return np.zeros(0, dtype=np.int16)
        heard = np.concatenate(self._heard) if len(self._heard) > 1 else self._heard[0]
        self._heard = [heard[wanted:]] if wanted < len(heard) else []
        self._heard_out = end
        return heard[:wanted]
