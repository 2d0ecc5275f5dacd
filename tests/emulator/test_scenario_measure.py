"""Scenario measures from a call's timeline, and the verdict's messages: no call needed."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from vobiz_stream.audio.speech import tone
from vobiz_stream.emulator.scenario import parse_scenario
from vobiz_stream.emulator.scenario.measure import (
    AgentSpeech,
    Conversation,
    Measurements,
    TurnRecord,
    sound_end,
)
from vobiz_stream.emulator.scenario.model import Ending
from vobiz_stream.emulator.scenario.results import junit_xml, suite_json
from vobiz_stream.emulator.scenario.verdict import Verdict, judge

RATE = 8000


def test_agent_speech_is_found_to_the_frame_in_clean_heard_audio() -> None:
    silence = np.zeros(RATE, dtype=np.int16)
    heard = np.concatenate([silence[:4000], tone(1.2, RATE), silence, tone(0.5, RATE), silence])
    agent = AgentSpeech(RATE, start_ms=200, stop_ms=500)
    for start in range(0, len(heard), 160):
        agent.push(heard[start : start + 160])
    assert agent.segments == [(0.5, 1.7), (2.7, 3.2)]
    assert agent.started is None
    assert agent.utterances(4.0) == agent.segments


def test_an_utterance_still_going_is_closed_at_the_end_of_the_call() -> None:
    agent = AgentSpeech(RATE, start_ms=200, stop_ms=500)
    agent.push(tone(1.0, RATE))
    assert agent.segments == [] and agent.started == 0.0
    assert agent.utterances(1.0) == [(0.0, 1.0)]


def conversation() -> Conversation:
    return Conversation(
        duration=10.0,
        agent=[(1.2, 3.0), (5.5, 7.5), (8.0, 9.8)],
        turns=[
            TurnRecord(2, "say 'hours?'", 3.5, 4.5),
            TurnRecord(3, "say 'stop'", 6.5, 7.0, barge_in=True),
            TurnRecord(4, "press 2", 7.6, 7.6),
        ],
        step_starts={1: 0.0, 2: 3.5, 3: 5.5, 4: 7.6},
        end_reason="hangup",
        ended_by=Ending.CALLER,
        underruns=[0.04, 0.1],
        checkpoints_played=2,
    )


def test_the_measures_of_a_conversation() -> None:
    m = Measurements.of(conversation())
    assert m.first_audio_ms == 1200
    # The barge-in at 6.5 s is not answered before the key press at 7.6 s.
    assert [r.value for r in m.responses] == [1000, None, 400]
    assert [r.value for r in m.overruns] == [1000]
    assert m.talk_over_ms == 0
    assert m.longest_silence_ms == 1000  # 4.5 s (turn ends) to 5.5 s (agent answers)
    assert (m.gaps, m.longest_gap_ms, m.checkpoints_played) == (2, 100, 2)
    assert m.agent_spoke(0, 1.2) == 0 and round(m.agent_spoke(2, 6), 3) == 1.5


def test_talk_over_counts_agent_speech_during_the_callers_ordinary_turns() -> None:
    talk = conversation()
    talk.agent = [(1.2, 3.8)]
    assert Measurements.of(talk).talk_over_ms == 300


SCENARIO = """\
[[step]]
wait = 1
[[step]]
wait = 1
[[step]]
wait = 1
[[step]]
hangup = true
[expect]
first_audio_ms = "<= 1000"
response_ms = "<= 800"
overrun_ms = "<= 300"
gaps = "== 0"
checkpoints_played = ">= 1"
ended_by = "agent"
[[expect.window]]
spoke = false
from = 0
to = 1
step = 3
"""


def test_failures_say_what_was_measured_and_where() -> None:
    scenario = parse_scenario(SCENARIO, Path("s.toml"))
    talk = conversation()
    checks = judge(scenario, Measurements.of(talk), ["step 5 (wait): timed out"], talk.step_starts)
    messages = {(c.name, c.passed): c.message for c in checks}
    assert messages[("script", False)] == "step 5 (wait): timed out"
    assert messages[("first_audio_ms", False)] == (
        "time to first agent audio 1200 ms (expected <= 1000 ms)"
    )
    failed_responses = [c.message for c in checks if c.name == "response_ms" and not c.passed]
    assert failed_responses == [
        "response after step 2 (say 'hours?'): 1000 ms (expected <= 800 ms)",
        "response after step 3 (say 'stop'): the agent said nothing before the caller's next "
        "step or the end of the call; expected <= 800 ms",
    ]
    assert messages[("overrun_ms", False)] == (
        "overrun barge-in at step 3 (say 'stop'): 1000 ms (expected <= 300 ms)"
    )
    assert messages[("gaps", False)] == "mid-utterance gaps 2 (expected == 0)"
    assert messages[("checkpoints_played", True)] == "checkpoints played 2 (expected >= 1)"
    assert messages[("ended_by", False)] == ("call ended by caller (hangup); expected the agent")
    assert messages[("window", False)].startswith(
        "agent stayed silent 0-1s after step 3 began (call 5.50-6.50s): agent spoke 1000 ms"
    )


def test_no_answer_to_a_turn_fails_with_words_not_a_number() -> None:
    scenario = parse_scenario(SCENARIO, Path("s.toml"))
    talk = conversation()
    talk.agent = [(1.2, 3.0)]
    checks = judge(scenario, Measurements.of(talk), [], talk.step_starts)
    messages = [c.message for c in checks if c.name == "response_ms"]
    assert messages[0] == (
        "response after step 2 (say 'hours?'): the agent said nothing before the caller's "
        "next step or the end of the call; expected <= 800 ms"
    )


def test_an_agent_that_never_spoke_was_silent_for_the_whole_call_but_the_callers_turns() -> None:
    talk = conversation()
    talk.agent = []
    m = Measurements.of(talk)
    assert m.first_audio_ms is None
    assert m.longest_silence_ms == 3500  # 0 s to 3.5 s, before the caller's first turn


def test_junit_and_json_results_carry_every_run_and_its_failures() -> None:
    scenario = parse_scenario(SCENARIO, Path("s.toml"))
    talk = conversation()
    measured = Measurements.of(talk)
    failing = Verdict("s", "s.toml", judge(scenario, measured, [], talk.step_starts), measured)
    passing = Verdict("t", "t.toml", [], measured, run=2)
    root = ElementTree.fromstring(junit_xml([failing, passing]))
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    cases = root.findall("testcase")
    assert [case.get("name") for case in cases] == ["s [run 1]", "t [run 2]"]
    failure = cases[0].find("failure")
    assert failure is not None and failure.text is not None
    assert "time to first agent audio 1200 ms (expected <= 1000 ms)" in failure.text
    assert cases[1].find("failure") is None
    data = suite_json([failing, passing])
    assert (data["runs"], data["passed"], data["failed"]) == (2, 1, 1)
    assert data["verdicts"][0]["measurements"]["first_audio_ms"] == 1200
    assert data["verdicts"][0]["checks"][0]["passed"] is False


def test_a_turn_ends_with_its_last_sound_not_with_the_silence_after_it() -> None:
    words = np.concatenate([np.zeros(800, np.int16), tone(1.0, RATE), np.zeros(2400, np.int16)])
    assert sound_end(words, RATE) == 1.1
    assert sound_end(np.zeros(RATE, np.int16), RATE) == 0.0


def test_the_verdict_shows_every_figure_checked_or_not() -> None:
    scenario = parse_scenario("[[step]]\nwait = 1\n", Path("s.toml"))
    talk = conversation()
    measured = Measurements.of(talk)
    lines = Verdict("s", "s.toml", judge(scenario, measured, [], {}), measured).lines()
    assert lines[0].startswith("PASS s (s.toml, run 1): call , 10.00s, ended by caller (hangup)")
    assert lines[-1] == (
        "  measured: first audio 1200 ms, responses [1000, none, 400] ms, overruns [1000] ms, "
        "talk-over 0 ms, longest silence 1000 ms, 2 gaps (longest 100 ms), 2 checkpoints "
        "played, 3 agent utterances"
    )
