"""The scenario's caller, frame by frame, against a made-up agent: no call, no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vobiz_stream.audio.speech import tone
from vobiz_stream.emulator.scenario import parse_scenario
from vobiz_stream.emulator.scenario.caller import ScriptedCaller
from vobiz_stream.emulator.source import CallerSource

RATE = 8000
FRAME = RATE // 50


class Control:
    """Notes what the caller did to the call."""

    def __init__(self) -> None:
        self.pressed: list[tuple[str, float]] = []
        self.hung_up: float | None = None

    def press(self, digit: str, at: float) -> None:
        self.pressed.append((digit, at))

    def hang_up(self, at: float) -> None:
        self.hung_up = at


def agent_audio(*utterances: tuple[float, float], seconds: float = 20.0) -> np.ndarray:
    """Silence with a tone from start to end of each utterance (call seconds)."""
    pcm = np.zeros(round(seconds * RATE), dtype=np.int16)
    for start, end in utterances:
        pcm[round(start * RATE) : round(end * RATE)] = tone(end - start, RATE)
    return pcm


def play(
    text: str, heard: np.ndarray, turn_seconds: float = 1.0
) -> tuple[ScriptedCaller, Control, list[bool]]:
    """Run the caller until it hangs up (at most ``heard``'s length); which frames it spoke."""
    scenario = parse_scenario(text, Path("s.toml"))
    turns = {
        index: CallerSource(tone(turn_seconds, RATE), RATE)
        for index, step in enumerate(scenario.steps)
        if type(step).__name__ == "CallerTurn"
    }
    caller, control = ScriptedCaller(scenario, turns), Control()
    caller.begin(control, RATE)  # type: ignore[arg-type]  # the stand-in has what it uses
    spoke = []
    for index in range(len(heard) // FRAME):
        spoke.append(bool(caller.frame(index).any()))
        if control.hung_up is not None:
            break
        caller.hear(heard[index * FRAME : (index + 1) * FRAME])
    return caller, control, spoke


def test_a_barge_in_cuts_in_its_seconds_into_the_agents_utterance() -> None:
    caller, control, spoke = play("[[step]]\nsay = 'x'\nbarge_in = 0.5\n", agent_audio((1.0, 4.0)))
    first = spoke.index(True) * 0.02
    assert first == 1.5  # 0.5 s into the utterance that began at 1.0 s
    [turn] = caller.records
    assert (turn.start, turn.end, turn.barge_in) == (1.5, 2.5, True)
    assert control.hung_up == 2.5  # the steps ran out with the turn's last frame


def test_a_barge_in_into_a_long_monologue_cuts_in_at_once() -> None:
    caller, _, _ = play(
        "[[step]]\nwait = 1\n[[step]]\nsay = 'a'\n[[step]]\nsay = 'b'\nbarge_in = 0.5\n",
        agent_audio((0.5, 9.0)),
    )
    # The agent talks on over the caller's first turn; the barge-in cuts in right after it.
    assert [(turn.start, turn.barge_in) for turn in caller.records] == [(1.0, False), (2.0, True)]


def test_waits_follow_the_agent_and_keys_go_100_ms_apart() -> None:
    caller, control, _ = play(
        '[[step]]\nwait = "agent_done"\n[[step]]\ndtmf = "12"\n'
        '[[step]]\nwait = "agent_starts"\n[[step]]\nhangup = true\n',
        agent_audio((0.5, 2.0), (3.0, 4.0)),
    )
    # The greeting ends at 2.0 s, which the detector knows 500 ms later (its stop_ms).
    assert control.pressed == [("1", 2.5), ("2", 2.6)]
    assert caller.step_starts == {1: 0.0, 2: 2.5, 3: 2.6, 4: 3.2}
    assert control.hung_up == 3.2  # the answer began at 3.0 s, known 200 ms later
    assert caller.problems == []


def test_a_wait_that_times_out_is_a_problem_and_the_caller_hangs_up() -> None:
    caller, control, _ = play('[[step]]\nwait = "agent_starts"\ntimeout = 2\n', agent_audio())
    assert control.hung_up == 2.0
    assert caller.problems == [
        "step 1 (wait for agent starts): the agent did not start speaking within 2s"
    ]
