"""The server's pacing (``PlaybackLedger``) driven against the carrier's playout (``Playout``).

Whatever the phase of the carrier's 20 ms clock against the server's, and however often the server
wakes up, the carrier never holds more than ``max_lead`` of the server's audio; and a server that
wakes at the ledger's deadlines never lets it run dry in the middle of an utterance.

The carrier here waits for its jitter buffer (60 ms behind the frame about to play) before it
starts; ``max_lead`` is at least that and a frame, so a first burst fills it and playout starts at
the next tick, as the ledger counts on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.core.playback import OutboundFrame, PlaybackLedger, PlayMark
from vobiz_stream.core.protocol import PlayAudio
from vobiz_stream.emulator.playout import DEFAULT_JITTER_BUFFER, CheckpointReached, Playout
from vobiz_stream.formats import FRAME_SECONDS, Encoding

RATE = 8000
FRAME_SAMPLES = 160
EPS = 1e-9
MAX_DELAY = 0.005
"""Most seconds a message takes to reach the carrier."""
MAX_LEADS = [DEFAULT_JITTER_BUFFER + FRAME_SECONDS, 0.1, 0.2, 0.3]


@dataclass(frozen=True)
class Utterance:
    """``frames`` of audio the app plays ``pause`` seconds after the one before it was queued
    and should have played out, cleared ``clear_after`` seconds into it if that is set."""

    frames: int
    pause: float
    clear_after: float | None


utterances = st.builds(
    Utterance,
    frames=st.integers(1, 40),
    pause=st.floats(0.0, 0.6),
    clear_after=st.none() | st.floats(0.0, 0.5),
)


def outbound(count: int) -> list[OutboundFrame]:
    pcm = np.full(FRAME_SAMPLES, 1000, dtype="<i2").tobytes()
    return [OutboundFrame(wire=b"", pcm=pcm) for _ in range(count)]


def play_audio(frame: OutboundFrame) -> PlayAudio:
    samples = np.frombuffer(frame.pcm, dtype="<i2")
    return PlayAudio(encode_l16(samples, ByteOrder.LITTLE), Encoding.L16, RATE)


class Run:
    """One stream: the server's ledger on its clock, the carrier's playout on the call's clock
    (``phase`` seconds ahead), and what the carrier held after each frame came.

    Each message takes the next of ``delays`` (in turn) to reach the carrier, never overtaking
    the one before it, as on one socket.
    """

    def __init__(self, max_lead: float, phase: float, delays: list[float]) -> None:
        self.ledger = PlaybackLedger(max_lead=max_lead)
        self.playout = Playout(RATE)
        self.phase = phase
        self.delays = delays
        self.sent = 0
        self.carrier_now = 0.0
        self.held: list[float] = []

    def carrier_time(self, now: float, delay: float = 0.0) -> float:
        self.carrier_now = max(self.carrier_now, now + self.phase + delay)
        return self.carrier_now

    def arrival(self, now: float) -> float:
        """When a message sent at ``now`` reaches the carrier."""
        self.sent += 1
        return self.carrier_time(now, self.delays[self.sent % len(self.delays)])

    def wake(self, now: float) -> None:
        """What a server does when it wakes: take the carrier's confirmations, send what is due."""
        for event in self.playout.advance(self.carrier_time(now)):
            if isinstance(event, CheckpointReached):
                self.ledger.confirm(event.name, now)
        for item in self.ledger.due(now):
            if isinstance(item, PlayMark):
                self.playout.checkpoint(item.name, self.arrival(now))
            else:
                self.playout.play(play_audio(item), self.arrival(now))
                self.held.append(self.playout.queued_seconds)

    def clear(self, now: float) -> None:
        self.ledger.clear(now)
        self.playout.clear(self.arrival(now))

    def next_wakeup(self, now: float) -> float | None:
        deadlines = [self.ledger.next_deadline(now)]
        carrier = self.playout.next_deadline()
        if carrier is not None:
            deadlines.append(carrier - self.phase)
        return min((deadline for deadline in deadlines if deadline is not None), default=None)


def drive(run: Run, plan: list[Utterance], extra_wakeups: list[float]) -> None:
    """Queue each utterance at its time, clear where it says, and wake at every deadline and at
    each of ``extra_wakeups`` (a server woken by the caller's frames, at any moment)."""
    actions: list[tuple[float, str, int]] = []
    at = 0.0
    for index, utterance in enumerate(plan):
        actions.append((at, "play", index))
        if utterance.clear_after is not None:
            actions.append((at + utterance.clear_after, "clear", index))
        at += utterance.frames * FRAME_SECONDS + run.ledger.max_lead + utterance.pause
    actions += [(wakeup, "wake", 0) for wakeup in extra_wakeups]
    actions.sort()
    now = 0.0
    for action_at, kind, index in actions:
        while (deadline := run.next_wakeup(now)) is not None and deadline < action_at:
            now = max(now, deadline)
            run.wake(now)
        now = max(now, action_at)
        if kind == "play":
            run.ledger.enqueue(outbound(plan[index].frames), PlayMark(f"u{index}"))
        elif kind == "clear":
            run.clear(now)
        run.wake(now)
    while (deadline := run.next_wakeup(now)) is not None:
        now = max(now, deadline)
        run.wake(now)


@settings(max_examples=300, deadline=None)
@given(
    phase=st.floats(0.0, FRAME_SECONDS, exclude_max=True),
    max_lead=st.sampled_from(MAX_LEADS),
    plan=st.lists(utterances, min_size=1, max_size=5),
    extra_wakeups=st.lists(st.floats(0.0, 6.0), max_size=40),
    delays=st.lists(st.floats(0.0, MAX_DELAY), min_size=1, max_size=8),
)
def test_the_carrier_never_holds_more_than_max_lead(
    phase: float,
    max_lead: float,
    plan: list[Utterance],
    extra_wakeups: list[float],
    delays: list[float],
) -> None:
    run = Run(max_lead, phase, delays)
    drive(run, plan, extra_wakeups)
    assert run.held, "no frame was sent"
    # A frame that comes late finds the carrier with less queued; one that comes sooner than the
    # first of its burst did finds that much more.
    assert max(run.held) <= max_lead + (max(delays) - min(delays)) + EPS
    assert run.ledger.stats.max_lead <= max_lead + EPS


@settings(max_examples=200, deadline=None)
@given(
    phase=st.floats(0.0, FRAME_SECONDS, exclude_max=True),
    max_lead=st.sampled_from(MAX_LEADS),
    frames=st.lists(st.integers(1, 60), min_size=1, max_size=4),
)
def test_waking_at_the_deadlines_never_starves_the_carrier(
    phase: float, max_lead: float, frames: list[int]
) -> None:
    run = Run(max_lead, phase, [0.0])
    plan = [Utterance(count, 0.0, None) for count in frames]
    drive(run, plan, [])
    assert run.playout.played_samples == sum(frames) * FRAME_SAMPLES
    assert [gap for gap in run.playout.gaps if gap.mid_utterance] == []
