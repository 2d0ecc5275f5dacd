"""The carrier's playout queue for one stream, without I/O: what the caller hears, and when.

The carrier queues every ``playAudio`` and plays the queue in order, in real time, from the moment
audio arrives (docs/protocol.md section 3). This model does the same on a sample clock:

* the call clock starts at 0 (the moment ``start`` was sent) and sample ``i`` of the call plays at
  ``i / rate`` seconds; everything the caller hears is one contiguous track on that clock, so it
  lines up sample for sample with the caller's own audio;
* audio arriving at ``t`` joins the queue; if the queue was empty it starts playing at ``t``;
* a checkpoint is due when the last sample queued before it has played; if nothing is queued it is
  due at once. :meth:`Playout.next_deadline` says when, so the shell can answer it exactly then;
* ``clearAudio`` empties the queue and voids every pending checkpoint;
* past ``queue_cap`` seconds of queued audio, what does not fit is dropped and the stream is
  reported degraded (once).

Times are seconds on the call clock, passed in, so every rule is tested with plain calls. Every
method that takes ``now`` first plays the queue up to ``now``; ``now`` must never go backwards.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from vobiz_stream.audio import ByteOrder, Pcm, Quality, Resampler, decode_l16, decode_mulaw
from vobiz_stream.formats import FRAME_MS, Encoding
from vobiz_stream.protocol import PlayAudio

__all__ = [
    "DEFAULT_QUEUE_CAP",
    "CheckpointPlayed",
    "Degraded",
    "Gap",
    "Playout",
    "PlayoutEvent",
    "QueueCleared",
]

DEFAULT_QUEUE_CAP = 40.0
"""Seconds of audio the carrier holds queued (Plivo's queue, which Vobiz derives from)."""

_EPSILON = 1e-9
"""Absorbs float error when a time is turned into a sample index."""


@dataclass(frozen=True, slots=True)
class CheckpointPlayed:
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


PlayoutEvent = CheckpointPlayed | QueueCleared | Degraded


@dataclass(frozen=True, slots=True)
class Gap:
    """Silence between two stretches of played audio, from ``start`` to ``end`` seconds.

    ``mid_utterance`` is an underrun: the queue ran dry with no checkpoint or clear between the
    audio before and after, so the app fell behind in the middle of what it was saying.
    """

    start: float
    end: float
    mid_utterance: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class _Pending:
    name: str
    received_at: float
    position: int
    """Sample index on the call clock at which the audio queued before it has played."""


class Playout:
    """One stream's playout queue at the call's ``rate`` (the rate of the caller's audio).

    ``byte_order`` is how ``playAudio`` L16 is read (little-endian unless configured, protocol.md
    section 4). On a stream that is not ``bidirectional`` every command is ignored and counted.
    """

    def __init__(
        self,
        rate: int,
        *,
        byte_order: ByteOrder = ByteOrder.LITTLE,
        bidirectional: bool = True,
        queue_cap: float = DEFAULT_QUEUE_CAP,
    ) -> None:
        self.rate = rate
        self.byte_order = byte_order
        self.bidirectional = bidirectional
        self.cap_samples = round(queue_cap * rate)
        self._tick = rate * FRAME_MS // 1000
        self._queue: deque[Pcm] = deque()
        self._queued = 0
        self._played = 0
        """Samples of the call clock already played (heard), silence included."""
        self._heard: list[Pcm] = []
        self._heard_out = 0
        """Samples handed out by :meth:`pop_heard`."""
        self._pending: deque[_Pending] = deque()
        self._resamplers: dict[int, Resampler] = {}
        self._dry_since: int | None = None
        self._dry_at_boundary = False
        self.degraded = False
        # measures
        self.first_audio_at: float | None = None
        self.gaps: list[Gap] = []
        self.ignored_commands = 0
        self.dropped_samples = 0
        self.played_samples = 0

    # -- the clock -----------------------------------------------------------------------------

    def _position(self, now: float) -> int:
        return max(self._played, math.floor(now * self.rate + _EPSILON))

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
        """Play the queue up to ``now``; return the checkpoints that came due."""
        target = self._position(now)
        events: list[PlayoutEvent] = []
        while self._played < target:
            if self._pending and self._pending[0].position <= self._played:
                events.append(self._answer(self._pending.popleft()))
                continue
            limit = target
            if self._pending:
                limit = min(limit, self._pending[0].position)
            if not self._queue:
                self._heard.append(np.zeros(target - self._played, dtype=np.int16))
                self._played = target
                break
            chunk = self._queue[0]
            take = min(len(chunk), limit - self._played)
            self._heard.append(chunk[:take])
            if take == len(chunk):
                self._queue.popleft()
            else:
                self._queue[0] = chunk[take:]
            self._queued -= take
            self._played += take
            self.played_samples += take
            if not self._queue:
                self._ran_dry()
        while self._pending and self._pending[0].position <= self._played:
            events.append(self._answer(self._pending.popleft()))
        return events

    def _answer(self, pending: _Pending) -> CheckpointPlayed:
        if self._dry_since is not None and pending.position >= self._dry_since:
            self._dry_at_boundary = True  # the audio before the silence was marked done
        played_at = max(pending.received_at, self._time(pending.position))
        return CheckpointPlayed(pending.name, pending.received_at, played_at)

    def _ran_dry(self) -> None:
        self._dry_since = self._played
        self._dry_at_boundary = False

    def next_deadline(self) -> float | None:
        """When the next checkpoint comes due (call clock), or None while none is pending."""
        if not self._pending:
            return None
        return max(self._pending[0].received_at, self._time(self._pending[0].position))

    # -- commands ------------------------------------------------------------------------------

    def play(self, command: PlayAudio, now: float) -> list[PlayoutEvent]:
        """Queue ``playAudio`` audio, converted to the call's rate."""
        events = self.advance(now)
        if not self.bidirectional:
            self.ignored_commands += 1
            return events
        pcm = self._convert(command)
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
        if self._dry_since is not None:
            self.gaps.append(
                Gap(self._time(self._dry_since), now, mid_utterance=not self._dry_at_boundary)
            )
            self._dry_since = None
        self._queue.append(pcm)
        self._queued += len(pcm)
        return events

    def _convert(self, command: PlayAudio) -> Pcm:
        if command.encoding is Encoding.MULAW:
            pcm = decode_mulaw(command.payload)
        else:
            pcm = decode_l16(command.payload, self.byte_order)
        if command.sample_rate == self.rate:
            return pcm
        resampler = self._resamplers.get(command.sample_rate)
        if resampler is None:
            # QQ holds back under a millisecond; a filtering quality would hold back up to
            # ~115 ms, delaying audio and inventing underruns the real carrier would not have.
            resampler = Resampler(command.sample_rate, self.rate, Quality.QQ)
            self._resamplers[command.sample_rate] = resampler
        return resampler.process(pcm)

    def _flush_resamplers(self) -> None:
        """Push out what the resamplers hold, so it is queued before a checkpoint."""
        for resampler in self._resamplers.values():
            tail = resampler.flush()
            if len(tail):
                self._queue.append(tail)
                self._queued += len(tail)

    def checkpoint(self, name: str, now: float) -> list[PlayoutEvent]:
        """Mark the end of what is queued; it is answered once that has played."""
        events = self.advance(now)
        if not self.bidirectional:
            self.ignored_commands += 1
            return events
        self._flush_resamplers()
        self._pending.append(_Pending(name, now, self._played + self._queued))
        return events + self.advance(now)

    def clear(self, now: float) -> list[PlayoutEvent]:
        """Drop everything queued and every pending checkpoint."""
        events = self.advance(now)
        if not self.bidirectional:
            self.ignored_commands += 1
            return events
        for resampler in self._resamplers.values():
            resampler.reset()
        dropped = self._queued / self.rate
        voided = tuple(pending.name for pending in self._pending)
        if self._queue:
            self._queue.clear()
            self._queued = 0
            self._ran_dry()
        self._pending.clear()
        if self._dry_since is not None:
            self._dry_at_boundary = True  # a clear ends the utterance
        events.append(QueueCleared(now, dropped, voided))
        return events

    def hang_up(self, now: float) -> tuple[list[PlayoutEvent], tuple[str, ...]]:
        """The call ends at ``now``: nothing more plays.

        Returns the checkpoints that came due by ``now`` (still to be answered) and the names of
        those that never will be.
        """
        events = self.advance(now)
        voided = tuple(pending.name for pending in self._pending)
        self._pending.clear()
        self._queue.clear()
        self._queued = 0
        return events, voided

    # -- what the caller heard ----------------------------------------------------------------

    def pop_heard(self, *, partial: bool = False) -> Pcm:
        """The heard samples of every 20 ms tick played so far and not yet handed out.

        Silence fills the ticks where the queue was empty. Only what :meth:`advance` (or any
        command) has played counts, so call it after them. With ``partial`` the last, unfinished
        tick is handed out as far as it has played (for the end of a call).
        """
        end = self._played if partial else self._played - self._played % self._tick
        wanted = end - self._heard_out
        if wanted <= 0:
            return np.zeros(0, dtype=np.int16)
        heard = np.concatenate(self._heard) if len(self._heard) > 1 else self._heard[0]
        self._heard = [heard[wanted:]] if wanted < len(heard) else []
        self._heard_out = end
        return heard[:wanted]
