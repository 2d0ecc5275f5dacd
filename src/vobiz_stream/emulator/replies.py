"""What the carrier does as the playout plays the app's audio out: ``playedStream`` and
``clearedAudio`` to the app, their status callbacks, the timeline, and the heard WAV, each on the
call clock (played out in step with the caller's frames, checkpoints answered exactly when due).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from vobiz_stream.core.protocol import ClearedAudio, PlayedStream
from vobiz_stream.core.verbs import SHOWN_CHARS, SHOWN_ITEMS
from vobiz_stream.emulator.callbacks import CallbackEvent
from vobiz_stream.emulator.playout import (
    CheckpointReached,
    Degraded,
    PlaybackStarted,
    Playout,
    PlayoutEvent,
    QueueCleared,
)
from vobiz_stream.emulator.report import ClearTiming
from vobiz_stream.emulator.state import CallState
from vobiz_stream.logtext import loggable

__all__ = ["PlayoutReplies"]


class PlayoutReplies:
    """The carrier's answers to one call's playout events."""

    def __init__(self, call: CallState) -> None:
        self._call = call

    def _playout(self) -> Playout:
        playout = self._call.playout
        assert playout is not None
        return playout

    def follow_frames(self) -> None:
        """Have the sender report each frame while the playout has something to follow: the
        caller's frames are the carrier's clock, and what the caller hears is played out in
        step with them (into the heard WAV, if one is written)."""
        call = self._call
        playout, sender = self._playout(), call.sender
        if sender is not None and (call.heard is not None or not playout.idle):
            sender.on_sent = self._sent

    def _sent(self, due: float) -> None:
        """A caller frame due at call time ``due`` left: play out what the caller hears up to
        it; stop following once nothing is left to play."""
        call = self._call
        playout = call.playout
        assert playout is not None
        self.advance(due)
        if call.heard is None and playout.idle and call.sender is not None:
            call.sender.on_sent = None

    async def answer_checkpoints(self) -> None:
        """Wake when the next checkpoint is due and answer it, exactly then."""
        call = self._call
        playout = self._playout()
        while True:
            call.wake.clear()
            due = playout.next_deadline()
            if due is None:
                await call.wake.wait()
                continue
            delay = (due - call.now()) / call.options.speed
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await call.wake.wait()
                continue
            self.advance(call.now())

    def advance(self, now: float) -> None:
        call = self._call
        playout = call.playout
        assert playout is not None
        self.handle(playout.advance(now))
        call.write_heard(playout.pop_heard())

    def handle(self, events: list[PlayoutEvent]) -> None:
        call = self._call
        report = call.report
        for event in events:
            match event:
                case CheckpointReached():
                    call.send(PlayedStream(event.name, report.stream_id))
                    answered = call.now()
                    waiting = call.checkpoints.get(event.name)
                    if waiting:
                        timing = waiting.popleft()
                        timing.played_at, timing.answered_at = event.played_at, answered
                    call.timeline.add(
                        answered,
                        "playedStream",
                        f"{event.name} (played out at {event.played_at:.3f}s)",
                    )
                    call.callback(
                        CallbackEvent.PLAYED, report.stream_id, extra={"Name": event.name}
                    )
                case QueueCleared():
                    call.send(ClearedAudio(report.stream_id, call.next_sequence()))
                    shown = event.voided[:SHOWN_ITEMS]
                    report.add_clear(
                        ClearTiming(event.at, call.now(), event.dropped_seconds, shown)
                    )
                    for name in event.voided:
                        call.checkpoints.get(name, deque()).clear()
                    call.timeline.add(
                        call.now(),
                        "clearedAudio",
                        f"dropped {event.dropped_seconds:.3f}s" + _voided(event.voided),
                    )
                    call.callback(CallbackEvent.CLEARED, report.stream_id)
                case PlaybackStarted(at=at, after=None):
                    call.timeline.add(at, "playAudio", "audio starts playing")
                case PlaybackStarted(at=at, after=gap) if gap is not None:
                    kind = "underrun" if gap.mid_utterance else "pause"
                    call.timeline.add(
                        at, "playAudio", f"audio starts playing after a {gap.seconds:.3f}s {kind}"
                    )
                case Degraded():
                    problem = (
                        f"playback queue over {call.options.queue_cap:g}s "
                        f"({event.queued_seconds:.1f}s queued): dropping audio"
                    )
                    call.timeline.add(event.at, "degraded", problem)
                    call.callback(CallbackEvent.DEGRADED, report.stream_id, error=problem)


def _voided(names: tuple[str, ...]) -> str:
    """The checkpoints a clear voided, as a timeline detail: the first few, then a count."""
    if not names:
        return ""
    more = len(names) - SHOWN_ITEMS
    return f", voided {', '.join(loggable(name, SHOWN_CHARS) for name in names[:SHOWN_ITEMS])}" + (
        f" and {more} more" if more > 0 else ""
    )
