"""The scenario's caller: follows the steps frame by frame, from what it has heard so far.

Each 20 ms frame the emulator asks what the caller says (:meth:`ScriptedCaller.frame`), after
the caller heard everything played before it; the agent's speech is found in that as it comes
(:class:`~vobiz_stream.emulator.scenario.measure.AgentSpeech`). Steps that take no time (a wait
already met) run in the same frame as the step before. When the steps run out the caller hangs
up; a wait for the agent that times out is a problem of the run, and the caller hangs up then.
"""

from __future__ import annotations

import numpy as np

from vobiz_stream.audio import Pcm
from vobiz_stream.emulator.live import CallerControls, LiveCaller
from vobiz_stream.emulator.scenario.measure import AgentSpeech, TurnRecord, sound_end
from vobiz_stream.emulator.scenario.model import (
    CallerTurn,
    HangUp,
    KeyPress,
    Pause,
    Scenario,
    Step,
    WaitFor,
    Waiting,
)
from vobiz_stream.emulator.source import CallerSource
from vobiz_stream.formats import FRAME_SECONDS

__all__ = ["KEY_SPACING", "ScriptedCaller"]

KEY_SPACING = 0.1
"""Seconds between the digits of one ``dtmf`` step."""


class ScriptedCaller(LiveCaller):
    """One run of ``scenario``; ``turns`` holds each caller turn's audio by step index."""

    def __init__(self, scenario: Scenario, turns: dict[int, CallerSource]) -> None:
        self._scenario = scenario
        self._sources = turns
        self._turns: dict[int, Pcm] = {}
        self._words: dict[int, float] = {}
        """Seconds into each turn's audio where its words end."""
        self._control: CallerControls | None = None
        self._frame = 160
        self.agent: AgentSpeech | None = None
        self.records: list[TurnRecord] = []
        self.step_starts: dict[int, float] = {}
        """When each step (1-based) began, in call seconds."""
        self.problems: list[str] = []
        self.hung_up = False
        self._index = 0
        self._began = 0.0
        self._position = 0
        self._turn_start: float | None = None
        self._mark = 0.0
        """When the last caller step began: a wait for the agent to finish counts speech since."""

    @property
    def seconds(self) -> float:
        return self._scenario.max_seconds

    @property
    def next_step(self) -> int:
        """The index of the step the caller is on (the number of steps when it is done)."""
        return self._index

    def begin(self, control: CallerControls, rate: int) -> None:
        self._control = control
        self._frame = rate // 50
        self._turns = {index: source.at_rate(rate) for index, source in self._sources.items()}
        self._words = {index: sound_end(pcm, rate) for index, pcm in self._turns.items()}
        self.agent = AgentSpeech(rate, self._scenario.start_ms, self._scenario.stop_ms)

    def hear(self, pcm: Pcm) -> None:
        assert self.agent is not None
        self.agent.push(pcm)

    def frame(self, index: int) -> Pcm:
        now = index * FRAME_SECONDS
        steps = self._scenario.steps
        for _ in range(len(steps) + 1):  # steps that take no time run in this frame
            if self.hung_up:
                break
            if self._index >= len(steps):
                self._hang_up(now)
                break
            step = steps[self._index]
            if self._index + 1 not in self.step_starts:
                self.step_starts[self._index + 1] = now
                self._began = now
            pcm = self._run(step, now)
            if pcm is not None:
                return pcm
        return np.zeros(self._frame, dtype=np.int16)

    def _run(self, step: Step, now: float) -> Pcm | None:
        """This frame of ``step``: its samples, or None when the step is done (go on)."""
        match step:
            case CallerTurn():
                return self._speak(step, now)
            case Waiting():
                return self._wait(step, now)
            case Pause(seconds=seconds):
                if now < self._began + seconds - 1e-9:
                    return self._silence()
                self._index += 1
                return None
            case KeyPress(digits=digits):
                return self._press(digits, now)
            case HangUp():
                self._hang_up(now)
                return self._silence()
        raise AssertionError(step)  # pragma: no cover

    def _speak(self, turn: CallerTurn, now: float) -> Pcm | None:
        if self._turn_start is None:
            if turn.barge_in is not None and not self._barge_in_due(turn, now):
                return self._silence()
            self._turn_start, self._position, self._mark = now, 0, now
            self.step_starts[self._index + 1] = now  # a turn begins when the caller speaks
        pcm = self._turns[self._index]
        out = pcm[self._position : self._position + self._frame]
        self._position += len(out)
        if self._position >= len(pcm):
            self.records.append(
                TurnRecord(
                    self._index + 1,
                    turn.describe(),
                    self._turn_start,
                    self._turn_start + self._words[self._index],
                    barge_in=turn.barge_in is not None,
                )
            )
            self._turn_start = None
            self._index += 1
        if len(out) < self._frame:
            out = np.concatenate([out, np.zeros(self._frame - len(out), dtype=np.int16)])
        return out

    def _barge_in_due(self, turn: CallerTurn, now: float) -> bool:
        """Whether the caller cuts in now: ``barge_in`` seconds into the agent's utterance (at
        once when it has been speaking longer than that)."""
        assert self.agent is not None and turn.barge_in is not None
        onset = self.agent.started
        if onset is not None:
            return now >= onset + turn.barge_in - 1e-9
        if now - self._began > turn.timeout:
            self._give_up("the agent never started speaking: no barge-in", now)
        return False

    def _wait(self, wait: Waiting, now: float) -> Pcm | None:
        agent = self.agent
        assert agent is not None
        if wait.until is WaitFor.AGENT_STARTS:
            met = agent.started is not None or any(
                start >= self._mark for start, _ in agent.segments
            )
        else:
            met = agent.started is None and any(start >= self._mark for start, _ in agent.segments)
        if met:
            self._index += 1
            return None
        if now - self._began >= wait.timeout:
            doing = "start speaking" if wait.until is WaitFor.AGENT_STARTS else "finish speaking"
            self._give_up(f"the agent did not {doing} within {wait.timeout:g}s", now)
        return self._silence()

    def _press(self, digits: str, now: float) -> Pcm | None:
        assert self._control is not None
        if now >= self._began + self._position * KEY_SPACING - 1e-9:
            if self._position == 0:
                self._mark = now
            self._control.press(digits[self._position], now)
            self._position += 1
        if self._position < len(digits):
            return self._silence()
        self.records.append(TurnRecord(self._index + 1, f"press {digits}", self._began, now))
        self._position = 0
        self._index += 1
        return None

    def _give_up(self, why: str, now: float) -> None:
        step = self._scenario.steps[self._index]
        self.problems.append(f"step {self._index + 1} ({step.describe()}): {why}")
        self._hang_up(now)

    def _hang_up(self, now: float) -> None:
        if not self.hung_up and self._control is not None:
            self.hung_up = True
            self._control.hang_up(now)

    def _silence(self) -> Pcm:
        return np.zeros(self._frame, dtype=np.int16)
