"""The caller's audio of a scenario, made before its calls: speech, a tone without espeak-ng,
files; a file that cannot be read is an error naming the step."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from vobiz_stream.emulator.scenario import ScenarioError, parse_scenario, prepare_turns
from vobiz_stream.emulator.scenario.runner import SECONDS_PER_CHARACTER, SPEECH_RATE

DATA = Path(__file__).resolve().parents[1] / "data"

TURNS = f"""\
[[step]]
say = "Hello there, I would like to book a table."
[[step]]
tone = 0.5
[[step]]
audio = "{DATA / "speech_female_8k.wav"}"
[[step]]
wait = 1
"""


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@needs_espeak
async def test_every_turn_gets_its_audio() -> None:
    turns = await prepare_turns(parse_scenario(TURNS, Path("s.toml")))
    assert sorted(turns) == [0, 1, 2]  # the wait has none
    assert turns[0].rate == SPEECH_RATE and turns[0].seconds > 1.0 and turns[0].pcm.any()
    assert turns[1].seconds == 0.5
    assert turns[2].rate == 8000 and turns[2].source is not None


async def test_without_espeak_say_turns_are_tones_and_the_log_says_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on it
    scenario = parse_scenario(TURNS + '[[step]]\nsay = "again"\n', Path("s.toml"))
    with caplog.at_level(logging.WARNING):
        turns = await prepare_turns(scenario)
    text = "Hello there, I would like to book a table."
    assert turns[0].seconds == pytest.approx(len(text) * SECONDS_PER_CHARACTER)
    assert turns[4].seconds == 0.3  # the shortest
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "s.toml: espeak-ng is not installed, so the caller's say turns are tones as long as "
        "the words (apt install espeak-ng for speech)"
    ]


async def test_an_unreadable_audio_file_is_an_error_naming_the_step(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEjunk")
    scenario = parse_scenario(f'[[step]]\naudio = "{broken}"\n', tmp_path / "a.toml")
    with pytest.raises(ScenarioError, match=rf"^{tmp_path}/a\.toml: step 1: "):
        await prepare_turns(scenario)
