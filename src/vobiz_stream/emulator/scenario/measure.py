"""The figures of a scenario's call, from what the caller heard and when the caller spoke. No I/O.

The agent's speech is found by the project's voice activity detector
(:class:`~vobiz_stream.audio.vad.VoiceActivityDetector`) on the heard track. That track is the app's
audio exactly as the carrier played it, with digital silence where nothing played, so the energy
classifier (a 20 ms frame at :data:`AGENT_THRESHOLD_DBFS` or louder is sound) finds every word,
tone and beep from its quiet first syllable on; a noise-trained classifier would miss tones.
The detector works on 20 ms frames and reports where speech really began and ended, so every
time here is good to 20 ms; ``start_ms`` (sound this long starts an utterance) and ``stop_ms``
(silence this long ends one) only decide what counts as one utterance, and how soon a wait for
the agent sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vobiz_stream.audio import Pcm
from vobiz_stream.audio.vad import (
    EnergyClassifier,
    SpeechEnded,
    SpeechStarted,
    VoiceActivityDetector,
)
from vobiz_stream.emulator.scenario.model import Ending

__all__ = [
    "AGENT_THRESHOLD_DBFS",
    "DETECTOR_RESOLUTION_MS",
    "AgentSpeech",
    "Conversation",
    "Measured",
    "Measurements",
    "TurnRecord",
    "sound_end",
]

DETECTOR_RESOLUTION_MS = 20
"""Every time measured from the heard audio is good to one 20 ms frame."""
AGENT_THRESHOLD_DBFS = -55.0
"""A heard frame this loud is the agent's audio: far under speech (a word's quiet onset is
about -50 dBFS), far over dither (a few least significant bits, about -80 dBFS)."""


class AgentSpeech:
    """The agent's utterances in the heard audio, as it is pushed in call order from 0 s."""

    def __init__(self, rate: int, start_ms: int, stop_ms: int) -> None:
        self._detector = VoiceActivityDetector(
            rate,
            classifier=EnergyClassifier(rate, AGENT_THRESHOLD_DBFS),
            start_ms=start_ms,
            stop_ms=stop_ms,
        )
        self.segments: list[tuple[float, float]] = []
        """Utterances that ended, (start, end) in call seconds."""
        self.started: float | None = None
        """When the utterance going on now began (None while the agent is silent)."""

    def push(self, pcm: Pcm) -> None:
        for event in self._detector.push(pcm):
            if isinstance(event, SpeechStarted):
                self.started = event.onset
            elif isinstance(event, SpeechEnded) and self.started is not None:
                self.segments.append((self.started, event.end))
                self.started = None

    def utterances(self, end: float) -> list[tuple[float, float]]:
        """Every utterance, the one still going closed at ``end``."""
        ongoing = [] if self.started is None else [(self.started, max(end, self.started))]
        return [*self.segments, *ongoing]


def sound_end(pcm: Pcm, rate: int) -> float:
    """Seconds to the end of the last 20 ms frame of ``pcm`` loud enough to be sound (0 when
    there is none): where a caller turn's words end, before the trailing silence of its audio."""
    classifier = EnergyClassifier(rate, AGENT_THRESHOLD_DBFS)
    size = rate * DETECTOR_RESOLUTION_MS // 1000
    for index in range(math.ceil(len(pcm) / size) - 1, -1, -1):
        if classifier.is_speech(pcm[index * size : (index + 1) * size]):
            return min(len(pcm), (index + 1) * size) / rate
    return 0.0


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One caller turn as it happened: step number (1-based), what it was, when the caller began
    and when its words ended (the audio's trailing silence is not part of the turn)."""

    step: int
    describe: str
    start: float
    end: float
    barge_in: bool = False


@dataclass
class Conversation:
    """What happened on the call, for the measures: call seconds throughout."""

    duration: float
    agent: list[tuple[float, float]]
    turns: list[TurnRecord] = field(default_factory=list)
    step_starts: dict[int, float] = field(default_factory=dict)
    end_reason: str | None = None
    ended_by: Ending | None = None
    underruns: list[float] = field(default_factory=list)
    """Seconds of each mid-utterance gap the carrier's playout saw."""
    checkpoints_played: int = 0
    problems: list[str] = field(default_factory=list)
    """What kept the script from running as written (a wait that timed out, a failed call)."""


@dataclass(frozen=True, slots=True)
class Measured:
    """One figure for one place in the call (a turn, a barge-in), in milliseconds."""

    value: float | None
    """None when there was nothing to measure (no answer came)."""
    where: str


@dataclass
class Measurements:
    """Every figure a scenario's expectations are checked on (times in milliseconds)."""

    first_audio_ms: float | None
    responses: list[Measured]
    overruns: list[Measured]
    talk_over_ms: float
    longest_silence_ms: float
    gaps: int
    longest_gap_ms: float
    checkpoints_played: int
    ended_by: Ending | None
    end_reason: str | None
    duration: float
    agent: list[tuple[float, float]]

    @classmethod
    def of(cls, talk: Conversation) -> Measurements:
        agent = sorted(talk.agent)
        return cls(
            first_audio_ms=_ms(agent[0][0]) if agent else None,
            responses=[_response(turn, talk, agent) for turn in talk.turns],
            overruns=[_overrun(t, agent, talk.duration) for t in talk.turns if t.barge_in],
            talk_over_ms=_ms(
                sum(
                    _overlap(segment, (turn.start, turn.end))
                    for turn in talk.turns
                    if not turn.barge_in
                    for segment in agent
                )
            ),
            longest_silence_ms=_ms(_longest_silence(agent, talk.turns, talk.duration)),
            gaps=len(talk.underruns),
            longest_gap_ms=_ms(max(talk.underruns, default=0.0)),
            checkpoints_played=talk.checkpoints_played,
            ended_by=talk.ended_by,
            end_reason=talk.end_reason,
            duration=talk.duration,
            agent=agent,
        )

    def agent_spoke(self, start: float, end: float) -> float:
        """Seconds the agent spoke between ``start`` and ``end``."""
        return sum(_overlap(segment, (start, end)) for segment in self.agent)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _response(turn: TurnRecord, talk: Conversation, agent: list[tuple[float, float]]) -> Measured:
    """From the end of ``turn`` to the first utterance the agent began after it, before the
    caller's next turn (None: it said nothing in between)."""
    later = [t.start for t in talk.turns if t.start > turn.start]
    until = min(later, default=talk.duration)
    where = f"after step {turn.step} ({turn.describe})"
    for start, _end in agent:
        if turn.end <= start < until:
            return Measured(_ms(start - turn.end), where)
    return Measured(None, where)


def _overrun(turn: TurnRecord, agent: list[tuple[float, float]], duration: float) -> Measured:
    """How long the agent went on speaking after the caller barged in (0: it had stopped)."""
    where = f"barge-in at step {turn.step} ({turn.describe})"
    for start, end in agent:
        if start <= turn.start < end:
            if end >= duration:
                where += ", still talking when the call ended"
            return Measured(_ms(end - turn.start), where)
    return Measured(0.0, where)


def _longest_silence(
    agent: list[tuple[float, float]], turns: list[TurnRecord], end: float
) -> float:
    """The longest stretch with neither side speaking, from the agent's first word (the start of
    the call if it never spoke) to the end of the call."""
    origin = agent[0][0] if agent else 0.0
    spans = sorted([*agent, *((t.start, t.end) for t in turns if t.end > t.start), (end, end)])
    longest, reached = 0.0, origin
    for start, stop in spans:
        if stop <= origin:
            continue
        longest = max(longest, start - reached)
        reached = max(reached, stop)
    return longest
