"""The outbound ledger: what the app queued, sent and (by estimate) the caller heard. No I/O.

The carrier plays ``playAudio`` frames in order, in real time, from a queue the app cannot see.
Everything already in that queue is heard even after a barge-in, until ``clearAudio`` lands, so a
good app keeps the queue short. This ledger keeps a model of it:

* **pacing**: audio waits here until sending it keeps the carrier's queue at most ``max_lead``
  seconds ahead of real time (:meth:`PlaybackLedger.due`, :meth:`PlaybackLedger.next_deadline`).
  The carrier plays one frame per tick of its own 20 ms clock, so audio that reaches an empty
  queue waits for the next tick: the ledger counts it as starting one frame after it was sent, the
  latest that tick can come. Anchored at the send instead, the model would run up to a frame ahead
  of the carrier, and the carrier would hold up to a frame more than ``max_lead``;
* **checkpoints**: a mark sent after the audio queued before it; its ``playedStream`` resolves the
  :class:`PlayMark`, a clear voids it, a lost socket or a silent carrier loses it;
* **clear epochs**: :meth:`PlaybackLedger.clear` drops what was not sent and cuts the estimate of
  what was sent but not yet played at that moment;
* **what the caller heard**: :meth:`PlaybackLedger.pop_heard` hands out sent frames once their
  estimated play-out time has passed, cut at clears, each with the time it started playing.

Times are ``time.monotonic()`` seconds, passed in by the caller so the ledger is testable.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from vobiz_stream.formats import FRAME_SECONDS


class PlayOutcome(StrEnum):
    """How a queued piece of audio ended."""

    PLAYED = "played"
    """The carrier confirmed it with ``playedStream``."""
    CLEARED = "cleared"
    """A clear dropped it (or part of it) before it played."""
    LOST = "lost"
    """The socket closed, or the carrier never confirmed it in time."""


class PlayMark:
    """A play or checkpoint on its way to the caller: resolves once to a :class:`PlayOutcome`
    when the carrier has played, cleared or lost it. ``mark.done`` tells; the server's
    :class:`~vobiz_stream.app.play_handle.PlayHandle` is the same thing, to ``await``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._outcome: PlayOutcome | None = None
        self.expected_at: float | None = None
        """Monotonic time the carrier should finish playing it, once its mark was sent."""
        self.confirmed_at: float | None = None

    @property
    def done(self) -> bool:
        return self._outcome is not None

    @property
    def outcome(self) -> PlayOutcome | None:
        return self._outcome

    def resolve(self, outcome: PlayOutcome) -> bool:
        """Set the outcome once; later calls are ignored. Returns whether this call set it."""
        if self._outcome is not None:
            return False
        self._outcome = outcome
        self._resolved(outcome)
        return True

    def _resolved(self, outcome: PlayOutcome) -> None:
        """Called once, with the outcome: where a subclass wakes whoever waits for it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self._outcome or 'pending'})"


@dataclass(slots=True)
class OutboundFrame:
    """One 20 ms ``playAudio`` frame as the socket sends it, with the PCM the caller hears."""

    wire: bytes
    """The whole JSON text frame, UTF-8 (built once, when the app played the audio)."""
    pcm: bytes
    """Little-endian int16 samples at the outbound rate: what the caller hears from this frame."""


@dataclass(slots=True)
class HeardAudio:
    """Audio the carrier played, by estimate: ``pcm`` started playing at ``started_at``."""

    started_at: float
    pcm: bytes


@dataclass(slots=True)
class _SentFrame:
    frame: OutboundFrame
    starts_at: float


@dataclass(slots=True)
class _Mark:
    handle: PlayMark


@dataclass
class PlaybackStats:
    """Figures a session reports about its outbound side."""

    frames_sent: int = 0
    frames_dropped_by_clear: int = 0
    max_lead: float = 0.0
    """Largest carrier queue (seconds) the ledger ever allowed after a send."""
    checkpoint_delays: list[float] = field(default_factory=list)
    """Confirmed minus estimated play-out time for each checkpoint, seconds."""


class PlaybackLedger:
    """Pacing, checkpoints, clears and the heard estimate of one stream's outbound audio."""

    def __init__(self, max_lead: float = 0.2, confirm_grace: float = 5.0) -> None:
        if max_lead < FRAME_SECONDS:
            raise ValueError(f"max_lead must be at least one frame ({FRAME_SECONDS} s)")
        self.max_lead = max_lead
        self.confirm_grace = confirm_grace
        self._pending: deque[OutboundFrame | _Mark] = deque()
        self._sent: deque[_SentFrame] = deque()
        self._awaiting: dict[str, PlayMark] = {}
        self._lost_at = math.inf
        """When the first checkpoint in ``_awaiting`` is lost unless confirmed: looked at on
        every frame, so that the frames pay nothing for the checkpoints in flight."""
        self._drain_at = -math.inf
        """When the carrier will have played everything sent so far (-inf: it holds nothing)."""
        self._run_start = 0.0
        """When the carrier starts (started) playing the audio it holds now."""
        self.stats = PlaybackStats()

    # -- queueing ------------------------------------------------------------------------------

    def enqueue(self, frames: list[OutboundFrame], handle: PlayMark | None = None) -> None:
        """Queue frames, then (if given) the checkpoint mark that resolves ``handle``."""
        self._pending.extend(frames)
        if handle is not None:
            self._pending.append(_Mark(handle))

    @property
    def pending_seconds(self) -> float:
        """Audio queued here and not yet sent."""
        return sum(isinstance(item, OutboundFrame) for item in self._pending) * FRAME_SECONDS

    def lead(self, now: float) -> float:
        """Estimated seconds of audio the carrier holds: queued, and the rest of the one playing."""
        return max(0.0, self._drain_at - max(now, self._run_start))

    # -- pacing --------------------------------------------------------------------------------

    def due(self, now: float) -> list[OutboundFrame | PlayMark]:
        """What to send now: frames while the lead allows, and the marks that follow them."""
        out: list[OutboundFrame | PlayMark] = []
        pending = self._pending
        while pending:
            item = pending[0]
            if isinstance(item, _Mark):
                pending.popleft()
                self._sending_mark(item.handle, now)
                out.append(item.handle)
                continue
            if self._drain_at >= now - 1e-9:  # a frame sent as the last one ends follows it
                starts_at = self._drain_at
            else:
                starts_at = self._run_start = now + FRAME_SECONDS
            run_start = self._run_start
            lead = starts_at + FRAME_SECONDS - (run_start if run_start > now else now)
            if lead > self.max_lead + 1e-9:
                break
            pending.popleft()
            self._drain_at = starts_at + FRAME_SECONDS
            self._sent.append(_SentFrame(item, starts_at))
            out.append(item)
            stats = self.stats
            stats.frames_sent += 1
            stats.max_lead = max(stats.max_lead, lead)
        return out

    def _sending_mark(self, handle: PlayMark, now: float) -> None:
        """``handle``'s mark goes out now: it is due once everything sent before it has played."""
        handle.expected_at = max(self._drain_at, now)
        self._awaiting[handle.name] = handle
        self._lost_at = min(self._lost_at, self._loses_at(handle))

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`due` will next have something to send, or None while nothing is queued.

        Also the time a checkpoint times out, so the caller wakes up to call :meth:`expire`.
        """
        deadlines = [self._lost_at] if self._awaiting else []
        if self._pending:
            if isinstance(self._pending[0], _Mark):
                deadlines.append(now)
            else:
                deadlines.append(max(now, self._drain_at + FRAME_SECONDS - self.max_lead))
        return min(deadlines, default=None)

    # -- carrier replies -----------------------------------------------------------------------

    def confirm(self, name: str, now: float) -> PlayMark | None:
        """The carrier's ``playedStream`` for ``name`` arrived at ``now``.

        If it came later than estimated, the carrier plays behind our clock: shift the estimate
        of everything still queued there by the difference, so the lead stays honest.
        """
        handle = self._awaiting.pop(name, None)
        if handle is None:
            return None
        self._lost_at = self._first_loss()
        handle.confirmed_at = now
        if handle.expected_at is not None:
            delay = now - handle.expected_at
            self.stats.checkpoint_delays.append(delay)
            if delay > 0:
                self._drain_at += delay
                for sent in self._sent:
                    if sent.starts_at >= handle.expected_at:
                        sent.starts_at += delay
        handle.resolve(PlayOutcome.PLAYED)
        return handle

    def expire(self, now: float) -> list[PlayMark]:
        """Lose the checkpoints the carrier left unconfirmed past their grace period."""
        if now < self._lost_at:
            return []
        expired = [handle for handle in self._awaiting.values() if now >= self._loses_at(handle)]
        for handle in expired:
            del self._awaiting[handle.name]
            handle.resolve(PlayOutcome.LOST)
        self._lost_at = self._first_loss()
        return expired

    def _first_loss(self) -> float:
        return min(map(self._loses_at, self._awaiting.values()), default=math.inf)

    def _loses_at(self, handle: PlayMark) -> float:
        """When ``handle``'s checkpoint is lost unless the carrier confirms it."""
        if handle.expected_at is None:  # not sent yet
            return math.inf
        return handle.expected_at + self.confirm_grace

    def clear(self, now: float) -> list[PlayMark]:
        """Drop unsent audio, cut the heard estimate at ``now``, void every pending checkpoint."""
        voided = self._drop_unsent(now)
        for handle in voided:
            handle.resolve(PlayOutcome.CLEARED)
        return voided

    def close(self, now: float) -> list[PlayMark]:
        """The socket is gone: nothing more plays, and every unresolved checkpoint is lost."""
        lost = self._drop_unsent(now)
        for handle in lost:
            handle.resolve(PlayOutcome.LOST)
        return lost

    def _drop_unsent(self, now: float) -> list[PlayMark]:
        """Empty the queue here and the carrier's from ``now`` on; return the open checkpoints."""
        handles = [item.handle for item in self._pending if isinstance(item, _Mark)]
        handles.extend(self._awaiting.values())
        self._awaiting.clear()
        self._lost_at = math.inf
        self.stats.frames_dropped_by_clear += sum(
            isinstance(item, OutboundFrame) for item in self._pending
        )
        self._pending.clear()
        kept: deque[_SentFrame] = deque()
        for sent in self._sent:
            if sent.starts_at >= now:
                continue
            played_bytes = round((now - sent.starts_at) / FRAME_SECONDS * len(sent.frame.pcm))
            if played_bytes < len(sent.frame.pcm):
                played_bytes -= played_bytes % 2
                sent.frame = OutboundFrame(sent.frame.wire, sent.frame.pcm[:played_bytes])
            kept.append(sent)
        self._sent = kept
        if self._drain_at > now:  # the carrier silenced what it held: it waits for its next tick
            self._drain_at = -math.inf
        return handles

    # -- what the caller heard -----------------------------------------------------------------

    def pop_heard(self, now: float) -> list[HeardAudio]:
        """Sent frames whose play-out has finished by ``now``, in order, cut at clears."""
        heard: list[HeardAudio] = []
        while self._sent and self._sent[0].starts_at + FRAME_SECONDS <= now + 1e-9:
            sent = self._sent.popleft()
            if sent.frame.pcm:
                heard.append(HeardAudio(sent.starts_at, sent.frame.pcm))
        return heard
