"""What a scenario says, as plain data: the caller's steps and the expectations. No I/O.

A scenario is a script for the emulated caller (:class:`Step`: say something, wait for the
agent, barge in, press a key, hang up) and the bounds the call must stay within
(:class:`Expectations`). :mod:`~vobiz_stream.emulator.scenario.parse` reads one from TOML,
:mod:`~vobiz_stream.emulator.scenario.runner` plays it against an app, and
:mod:`~vobiz_stream.emulator.scenario.measure` turns what the caller heard into the figures the
bounds are checked on.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from vobiz_stream.logtext import loggable

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "MAX_CALL_SECONDS",
    "SHOWN_TEXT",
    "Bound",
    "CallerTurn",
    "Ending",
    "Expectations",
    "HangUp",
    "KeyPress",
    "Pause",
    "Scenario",
    "Step",
    "TurnAudio",
    "WaitFor",
    "Waiting",
    "Window",
]

MAX_CALL_SECONDS = 600.0
"""The longest a scenario's call may be set to last (``max_seconds``)."""
SHOWN_TEXT = 60
"""Characters of a turn's text (or file name) shown in verdicts."""
DEFAULT_WAIT_TIMEOUT = 15.0
"""Seconds a wait for the agent lasts at most unless the step says ``timeout``."""

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}


@dataclass(frozen=True, slots=True)
class Bound:
    """``op value`` (``<= 1500``): what a measured figure must satisfy."""

    op: str
    value: float
    unit: str = ""
    """``ms`` for times, empty for counts: only for messages."""

    def holds(self, measured: float) -> bool:
        return _OPERATORS[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}" + (f" {self.unit}" if self.unit else "")


class TurnAudio(StrEnum):
    """Where a caller turn's audio comes from."""

    SPEECH = "say"
    """Text spoken by espeak-ng (a tone of about the same length when it is not installed)."""
    FILE = "audio"
    """An audio file, relative to the scenario file."""
    TONE = "tone"
    """A 1 kHz tone of that many seconds."""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """The caller says something: text, a file or a tone. With ``barge_in`` the caller waits
    for the agent to start speaking and cuts in that many seconds into it."""

    kind: TurnAudio
    content: str
    """The text, the file's path, or the tone's seconds (as written)."""
    barge_in: float | None = None
    timeout: float = DEFAULT_WAIT_TIMEOUT
    """With ``barge_in``: seconds to wait for the agent to start speaking."""

    def describe(self) -> str:
        shown = loggable(self.content, SHOWN_TEXT)
        what = {
            TurnAudio.SPEECH: f"say '{shown}'",
            TurnAudio.FILE: f"audio {loggable(Path(self.content).name, SHOWN_TEXT)}",
            TurnAudio.TONE: f"tone {self.content}s",
        }[self.kind]
        return what if self.barge_in is None else f"{what} (barge in {self.barge_in:g}s)"


class WaitFor(StrEnum):
    """What a wait step waits for."""

    AGENT_STARTS = "agent_starts"
    """The agent starts speaking (at once if it is speaking)."""
    AGENT_DONE = "agent_done"
    """The agent has spoken since the last caller step, and stopped."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """The caller waits for the agent (``until``), at most ``timeout`` seconds."""

    until: WaitFor
    timeout: float = DEFAULT_WAIT_TIMEOUT

    def describe(self) -> str:
        return f"wait for {self.until.value.replace('_', ' ')}"


@dataclass(frozen=True, slots=True)
class Pause:
    """The caller stays quiet for ``seconds``."""

    seconds: float

    def describe(self) -> str:
        return f"wait {self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class KeyPress:
    """The caller presses keys (DTMF), one event per digit, 100 ms apart."""

    digits: str

    def describe(self) -> str:
        return f"press {self.digits}"


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up."""

    def describe(self) -> str:
        return "hang up"


Step = CallerTurn | Waiting | Pause | KeyPress | HangUp


class Ending(StrEnum):
    """Who ended the call, for ``ended_by``."""

    CALLER = "caller"
    """The caller hung up (its script ran out, a ``hangup`` step, or ``max_seconds``)."""
    AGENT = "agent"
    """The app ended the stream: ``stop``, closing the socket, or ``<Hangup>`` in its XML."""


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of the call, ``start`` to ``end`` seconds from the moment step ``step`` began
    (from the start of the call when ``step`` is 0), in which the agent must speak
    (``spoke``) or stay silent."""

    start: float
    end: float
    spoke: bool
    step: int = 0

    def describe(self) -> str:
        origin = "into the call" if self.step == 0 else f"after step {self.step} began"
        return (
            f"agent {'spoke' if self.spoke else 'stayed silent'} "
            f"{self.start:g}-{self.end:g}s {origin}"
        )


@dataclass(frozen=True, slots=True)
class Expectations:
    """The bounds the call must meet; any left None is not checked. Times in milliseconds."""

    first_audio_ms: Bound | None = None
    """From the start of the stream to the first agent speech the caller heard."""
    response_ms: Bound | None = None
    """From the end of each caller turn (a barge-in too, or a key press) to the agent's next
    utterance, begun before the caller's next turn."""
    overrun_ms: Bound | None = None
    """How long the agent kept talking after each barge-in."""
    talk_over_ms: Bound | None = None
    """Agent speech while the caller was speaking (barge-in turns aside), in total."""
    longest_silence_ms: Bound | None = None
    """The longest stretch with neither side speaking, from the agent's first word (from the
    start, if it never spoke) to the end of the call."""
    gaps: Bound | None = None
    """Mid-utterance gaps (the agent's audio ran dry while it was saying something)."""
    longest_gap_ms: Bound | None = None
    checkpoints_played: Bound | None = None
    ended_by: Ending | None = None
    windows: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """A caller's script and what the call must show."""

    name: str
    path: Path
    steps: tuple[Step, ...]
    expect: Expectations = field(default_factory=Expectations)
    max_seconds: float = 60.0
    """The caller hangs up by then at the latest."""
    voice: str | None = None
    """espeak-ng voice for ``say`` turns (``en-us``...); its default without it."""
    start_ms: int = 200
    stop_ms: int = 500
    """How the agent's speech is found in what the caller heard: speech of ``start_ms`` starts an
    utterance, silence of ``stop_ms`` ends it (both found to the 20 ms frame)."""
