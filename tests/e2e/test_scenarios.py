"""Scenarios against real agents over loopback: the examples pass against the repo's example
agents, and fail with readable messages against a slow agent and one that never stops talking.

Each call runs in real time (the server paces playback on the wall clock), 5 to 11 s each.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import orjson
import pytest

from tests.e2e.conftest import StartServer, run_cli
from tests.e2e.scenario_agents import non_stopping_agent, slow_agent
from vobiz_stream import CallSession
from vobiz_stream.app.handlers import Handler, echo
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.pytest_plugin import read_heard
from vobiz_stream.emulator.scenario import Verdict, load_scenario, parse_scenario, run_scenario
from vobiz_stream.emulator.scenario.measure import DETECTOR_RESOLUTION_MS
from vobiz_stream.emulator.scenario.suite import SuiteOptions, run_suite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIOS = EXAMPLES / "scenarios"
DATA = Path(__file__).resolve().parents[1] / "data"

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="the agents speak with espeak-ng"
)


def greeting_agent() -> Handler:
    """examples/greeting_agent.py's handler, imported as its command does."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(
            "greeting_agent", EXAMPLES / "greeting_agent.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    handler: Handler = module.handle
    return handler


async def run(start_server: StartServer, handler: Handler, name: str, tmp_path: Path) -> Verdict:
    running = await start_server(handler)
    heard = tmp_path / f"{name}-heard.wav"
    verdict = await run_scenario(
        load_scenario(SCENARIOS / f"{name}.toml"),
        running.base + "/",
        options=CallOptions(heard_path=heard),
    )
    await running.wait_idle()
    print("\n".join(verdict.lines()))
    return verdict


def failed(verdict: Verdict) -> dict[str, list[str]]:
    messages: dict[str, list[str]] = {}
    for check in verdict.failures:
        messages.setdefault(check.name, []).append(check.message)
    return messages


async def test_the_greeting_scenario_passes_against_the_greeting_agent(
    start_server: StartServer, tmp_path: Path
) -> None:
    verdict = await run(start_server, greeting_agent(), "greeting", tmp_path)
    assert verdict.passed, verdict.lines()
    m = verdict.measurements
    # The greeting, then the answer to the key the caller pressed: two utterances.
    assert len(m.agent) == 2 and m.first_audio_ms is not None
    assert [r.where for r in m.responses] == ["after step 2 (press 2)"]
    # What the caller heard is kept, and the agent's speech is in it where it was measured.
    # Its first sample is where the first agent audio was measured, to the detector's frame.
    heard, rate = read_heard(tmp_path / "greeting-heard.wav")
    first_sound = np.flatnonzero(heard)[0] / rate
    assert abs(m.agent[0][0] - first_sound) <= DETECTOR_RESOLUTION_MS / 1000
    assert m.first_audio_ms == pytest.approx(m.agent[0][0] * 1000)


async def test_the_interrupt_scenario_passes_against_the_greeting_agent(
    start_server: StartServer, tmp_path: Path
) -> None:
    verdict = await run(start_server, greeting_agent(), "interrupt_greeting", tmp_path)
    assert verdict.passed, verdict.lines()
    [overrun] = verdict.measurements.overruns
    assert overrun.value is not None and overrun.value <= 600


async def test_the_echo_scenario_passes_against_the_echo_handler(
    start_server: StartServer, tmp_path: Path
) -> None:
    verdict = await run(start_server, echo, "echo", tmp_path)
    assert verdict.passed, verdict.lines()


async def test_a_slow_agent_fails_the_greeting_scenario_saying_what_was_measured(
    start_server: StartServer, tmp_path: Path
) -> None:
    verdict = await run(start_server, slow_agent, "greeting", tmp_path)
    assert not verdict.passed
    messages = failed(verdict)
    [first] = messages["first_audio_ms"]
    assert first.startswith("time to first agent audio ") and first.endswith(
        " ms (expected <= 1500 ms)"
    )
    assert verdict.measurements.first_audio_ms is not None
    assert verdict.measurements.first_audio_ms >= 2500  # the agent thinks 2.5 s
    [response] = messages["response_ms"]
    assert response.startswith("response after step 2 (press 2): ")
    assert "FAIL time to first agent audio" in "\n".join(verdict.lines())


async def test_a_non_stopping_agent_fails_the_interrupt_scenario(
    start_server: StartServer, tmp_path: Path
) -> None:
    verdict = await run(start_server, non_stopping_agent, "interrupt_greeting", tmp_path)
    messages = failed(verdict)
    [overrun] = messages["overrun_ms"]
    assert overrun.startswith("overrun barge-in at step 1 (say 'Hello? I need to talk to someone.'")
    assert "still talking when the call ended" in overrun
    [window] = messages["window"]
    assert window.startswith("agent stayed silent 0.8-2.5s after step 1 began")


async def test_a_wait_that_times_out_fails_the_scenario_and_the_caller_hangs_up(
    start_server: StartServer, tmp_path: Path
) -> None:
    scenario = parse_scenario(
        '[[step]]\nwait = "agent_starts"\ntimeout = 1\n[[step]]\nsay = "hello"\n',
        tmp_path / "silent.toml",
    )
    running = await start_server()  # record only: the agent never speaks
    verdict = await run_scenario(scenario, running.base + "/")
    assert [check.message for check in verdict.failures] == [
        "step 1 (wait for agent starts): the agent did not start speaking within 1s"
    ]
    assert verdict.measurements.duration == pytest.approx(1.0, abs=0.05)
    assert verdict.measurements.end_reason == "hangup"


async def test_an_agent_that_hangs_up_ends_the_call_and_the_rest_of_the_script_is_reported(
    start_server: StartServer, tmp_path: Path
) -> None:
    async def hangs_up(session: CallSession) -> None:
        await session.stop()

    scenario = parse_scenario(
        '[[step]]\nwait = 1\n[[step]]\nsay = "are you there"\n[expect]\nended_by = "caller"\n',
        tmp_path / "hangs_up.toml",
    )
    running = await start_server(hangs_up)
    verdict = await run_scenario(scenario, running.base + "/")
    messages = failed(verdict)
    assert messages["ended_by"][0].startswith("call ended by agent (app_")
    assert messages["script"][0].startswith("the call ended (app_")
    assert messages["script"][0].endswith("before step 1 (wait 1s) was done")


async def pytest_on(answer_url: str, *paths: Path) -> tuple[int, str]:
    """``pytest PATHS --vobiz-answer-url URL`` as a user runs it; exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "pytest", "-p", "no:cacheprovider", "-q", "--vobiz-answer-url", answer_url),
        *map(str, paths),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, stdout.decode()


async def test_the_pytest_plugin_runs_a_folder_of_scenarios_as_tests(
    start_server: StartServer,
) -> None:
    running = await start_server(greeting_agent())
    code, out = await pytest_on(
        running.base + "/", SCENARIOS / "greeting.toml", SCENARIOS / "interrupt_greeting.toml"
    )
    assert code == 0, out
    assert "2 passed" in out


async def test_the_pytest_plugin_shows_the_verdict_of_a_failed_scenario(
    start_server: StartServer,
) -> None:
    running = await start_server(slow_agent)
    code, out = await pytest_on(running.base + "/", SCENARIOS / "greeting.toml")
    assert code == 1, out
    assert "1 failed" in out
    assert "FAIL time to first agent audio" in out and "(expected <= 1500 ms)" in out


async def test_the_test_command_prints_verdicts_writes_json_and_junit_and_exits_1_on_a_failure(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(echo)
    results, junit = tmp_path / "results.json", tmp_path / "results.xml"
    code, out, err = await run_cli(
        "test",
        str(SCENARIOS / "echo.toml"),
        str(SCENARIOS / "greeting.toml"),  # the echo never greets: this one fails
        *("--answer-url", running.base + "/", "--concurrency", "2"),
        *("--json", str(results), "--junit", str(junit), "--heard-dir", str(tmp_path / "heard")),
        timeout=90,
    )
    text = out.decode()
    assert code == 1, (text, err.decode())
    assert "PASS echo: answers, and stops when interrupted" in text
    assert "FAIL greeting agent: greets at once" in text
    assert "FAIL step 1 (wait for agent done): the agent did not finish speaking within 10s" in text
    assert text.rstrip().endswith("2 runs: 1 passed, 1 failed")
    data = orjson.loads(results.read_bytes())
    assert [v["passed"] for v in data["verdicts"]] == [True, False]
    suite = ElementTree.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert sorted(p.name for p in (tmp_path / "heard").iterdir()) == [
        "echo-1-heard.wav",
        "greeting-1-heard.wav",
    ]


async def test_the_test_command_refuses_a_bad_scenario_before_any_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\nsay = "hello"\n\n[[step]]\nwait = "forever"\n')
    code, out, err = await run_cli(
        "test", str(bad), "--answer-url", "http://127.0.0.1:9/", timeout=30
    )
    assert code == 2, out
    assert err.decode().strip() == (
        f"vobiz-stream test: {bad}:5: step 2: wait is 'agent_starts', 'agent_done' or seconds, "
        "got 'forever'"
    )


async def test_a_suite_repeats_each_scenario_with_files_and_tones_as_the_caller(
    start_server: StartServer, tmp_path: Path
) -> None:
    scenario = parse_scenario(
        f"""
[[step]]
audio = "{DATA / "speech_female_8k.wav"}"
[[step]]
wait = "agent_done"
timeout = 10
[[step]]
tone = 1.0
[[step]]
wait = "agent_done"
timeout = 10
[expect]
response_ms = "<= 1500"
ended_by = "caller"
""",
        tmp_path / "turns.toml",
    )
    running = await start_server(echo)
    seen: list[int] = []
    verdicts = await run_suite(
        [scenario],
        running.base + "/",
        SuiteOptions(repeat=2, concurrency=2, heard_dir=tmp_path),
        on_verdict=lambda verdict: seen.append(verdict.run),
    )
    assert sorted(seen) == [1, 2] and [v.run for v in verdicts] == [1, 2]
    for verdict in verdicts:
        assert verdict.passed, verdict.lines()
        assert [r.where for r in verdict.measurements.responses] == [
            "after step 1 (audio speech_female_8k.wav)",
            "after step 3 (tone 1s)",
        ]
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == [
        "turns-1-heard.wav",
        "turns-2-heard.wav",
    ]


async def test_a_script_longer_than_the_call_is_reported_where_the_time_ran_out(
    start_server: StartServer, tmp_path: Path
) -> None:
    scenario = parse_scenario("max_seconds = 2\n[[step]]\nwait = 5\n", tmp_path / "long.toml")
    running = await start_server()
    verdict = await run_scenario(scenario, running.base + "/")
    assert [check.message for check in verdict.failures] == [
        "the caller's time ran out (max_seconds) at 2.00s before step 1 (wait 5s) was done"
    ]
    # hangup_after, the emulator's own limit, cuts a scripted call short too.
    verdict = await run_scenario(
        scenario, running.base + "/", options=CallOptions(hangup_after=1.0)
    )
    assert verdict.measurements.duration == 1.0
    assert verdict.measurements.end_reason == "hangup"
