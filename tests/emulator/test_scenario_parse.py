"""Scenario files: what they say, and errors that point at the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vobiz_stream.emulator.scenario import ScenarioError, load_scenario, parse_scenario
from vobiz_stream.emulator.scenario.model import (
    Bound,
    CallerTurn,
    Ending,
    HangUp,
    KeyPress,
    Pause,
    TurnAudio,
    WaitFor,
    Waiting,
)
from vobiz_stream.emulator.scenario.parse import MAX_SCENARIO_BYTES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"

FULL = """\
name = "greets and answers"
max_seconds = 30

[[step]]
wait = "agent_done"
timeout = 5

[[step]]
say = "What are your opening hours?"

[[step]]
tone = 0.5
barge_in = 1.0

[[step]]
dtmf = "2#"

[[step]]
wait = 1.5

[[step]]
audio = "caller.wav"

[[step]]
hangup = true

[detector]
stop_ms = 300

[expect]
first_audio_ms = "<= 1500"
response_ms = "< 2 s"
overrun_ms = 300
checkpoints_played = ">= 1"
ended_by = "caller"

[[expect.window]]
spoke = false
from = 0
to = 0.5
step = 2
"""


def test_a_full_scenario_reads_as_written() -> None:
    scenario = parse_scenario(FULL, Path("/tmp/s/full.toml"))
    assert scenario.name == "greets and answers"
    assert scenario.max_seconds == 30
    assert scenario.stop_ms == 300 and scenario.start_ms == 200
    assert scenario.steps == (
        Waiting(WaitFor.AGENT_DONE, 5.0),
        CallerTurn(TurnAudio.SPEECH, "What are your opening hours?"),
        CallerTurn(TurnAudio.TONE, "0.5", barge_in=1.0),
        KeyPress("2#"),
        Pause(1.5),
        CallerTurn(TurnAudio.FILE, "/tmp/s/caller.wav"),
        HangUp(),
    )
    expect = scenario.expect
    assert expect.first_audio_ms == Bound("<=", 1500, "ms")
    assert expect.response_ms == Bound("<", 2000, "ms")
    assert expect.overrun_ms == Bound("<=", 300, "ms")
    assert expect.checkpoints_played == Bound(">=", 1, "")
    assert expect.ended_by is Ending.CALLER
    assert len(expect.windows) == 1 and expect.windows[0].step == 2


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, Path("bad.toml"))
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[step]]\nwiat = "agent_done"\n', "bad.toml:2: step 1: unknown key 'wiat'"),
        ('[[step]]\nhangup = true\n[[step]]\nwait = "later"\n', "bad.toml:4: step 2: wait is"),
        (
            '[[step]]\nsay = "hi"\ndtmf = "1"\n',
            "bad.toml:1: step 1 needs exactly one of say, audio, tone, wait, dtmf, hangup",
        ),
        ('[[step]]\ndtmf = "12x"\n', "bad.toml:2: step 1: dtmf is 1 to 32 of 0-9 * # A-D"),
        ("[[step]]\nwait = 2\nbarge_in = 1\n", "bad.toml:3: step 1: barge_in goes with say"),
        ('[[step]]\nhangup = true\n\n[expect]\nresponse_ms = "fast"\n', "bad.toml:5: response_ms"),
        ('[[step]]\nhangup = true\n[expect]\ngaps = "<= 2 ms"\n', "bad.toml:4: gaps is a count"),
        ('[[step]]\nhangup = true\n[expect]\nended_by = "me"\n', "bad.toml:4: ended_by is"),
        ("max_seconds = 5000\n[[step]]\nhangup = true\n", "bad.toml:1: max_seconds is 1 to 600"),
        ('name = "x"\n', "bad.toml: a scenario needs at least one [[step]]"),
        ('[[step]]\nsay = "unclosed\n', "bad.toml:2: not valid TOML"),
        (
            "[[step]]\nhangup = true\n[[expect.window]]\nspoke = true\nfrom = 3\nto = 1\n",
            "bad.toml:6: window 1: to (1) must be after from (3)",
        ),
        (
            "[[step]]\nhangup = true\n[[expect.window]]\nspoke = true\nto = 1\nstep = 4\n",
            "bad.toml:6: window 1: step is a step number 1-1",
        ),
    ],
)
def test_errors_name_the_file_the_line_and_what_is_wrong(text: str, expected: str) -> None:
    assert error_of(text).startswith(expected)


def test_too_many_steps_or_windows_are_refused_at_the_first_one_too_many() -> None:
    steps = "[[step]]\nwait = 1\n" * 201
    assert error_of(steps).startswith("bad.toml:401: 201 steps: at most 200")
    windows = "[[expect.window]]\nspoke = true\nto = 1\n" * 51
    assert error_of("[[step]]\nwait = 1\n" + windows).startswith(
        "bad.toml:153: 51 windows: at most 50"
    )


def test_control_characters_in_a_bad_value_are_escaped() -> None:
    message = error_of('[[step]]\nwait = "\\u001b[31mred"\n')
    assert "\x1b" not in message and "\\x1b" in message


def test_an_oversized_or_binary_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_SCENARIO_BYTES + 1))
    with pytest.raises(ScenarioError, match="over 256 KiB"):
        load_scenario(big)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(binary)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_every_example_scenario_reads() -> None:
    found = sorted(EXAMPLES.glob("*.toml"))
    assert found
    for path in found:
        assert load_scenario(path).steps


def test_the_complete_example_in_the_docs_is_the_example_file() -> None:
    docs = (EXAMPLES.parents[1] / "docs" / "scenarios.md").read_text()
    [shown] = re.findall(r"^```toml\n(.*?)^```", docs, re.MULTILINE | re.DOTALL)
    assert shown == (EXAMPLES / "echo.toml").read_text()
