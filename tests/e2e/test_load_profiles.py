"""``vobiz-stream load`` with a profile, a scenario as every caller, gates and the HTML report,
against the greeting agent (the gates hold) and a slow agent (the response gate fails).

Real calls in real time over loopback: about 10 s and 15 s.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import StartServer, run_cli
from tests.e2e.scenario_agents import slow_agent
from tests.e2e.test_scenarios import SCENARIOS, greeting_agent

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="the agents speak with espeak-ng"
)

GATES = (
    *("--gate-setup", "100", "--gate-first-audio-p95", "1500"),
    *("--gate-response-p95", "1500", "--gate-gap-rate", "0"),
)


async def test_a_spike_of_scripted_calls_meets_its_gates(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(greeting_agent())
    report, page = tmp_path / "load.json", tmp_path / "load.html"
    code, out, err = await run_cli(
        "load",
        running.base + "/",
        *("--calls", "6", "--rate", "3", "--profile", "spike", "--quiet"),
        *("--scenario", str(SCENARIOS / "greeting.toml"), *GATES),
        *("--report", str(report), "--html", str(page)),
        timeout=120,
    )
    text = out.decode()
    assert code == 0, (text, err.decode())
    assert "profile spike; scenario " in text and ": 6 of 6 calls met it; response (6)" in text
    assert "gate ok   setup success: 100.0 % (6 of 6 calls) (limit >= 100 %)" in text
    assert "gate ok   p95 response: " in text
    data = orjson.loads(report.read_bytes())
    assert data["profile"] == "spike" and data["scenarios_passed"] == 6
    assert [gate["passed"] for gate in data["gates"]] == [True, True, True, True]
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg ") == 2
    assert "PASS: vobiz-stream load: 6 calls, profile spike, 6 completed, 0 failed" in html


async def test_a_slow_agent_fails_the_response_gate_and_the_load_exits_1(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(slow_agent)
    code, out, err = await run_cli(
        "load",
        running.base + "/",
        *("--calls", "3", "--rate", "2", "--profile", "ramp", "--quiet"),
        *("--scenario", str(SCENARIOS / "greeting.toml"), *GATES),
        timeout=120,
    )
    text = out.decode()
    assert code == 1, (text, err.decode())
    assert "gate ok   setup success: 100.0 % (3 of 3 calls)" in text
    assert "gate FAIL p95 first audio: " in text
    assert "gate FAIL p95 response: " in text and "(limit <= 1500 ms)" in text
    assert ": 0 of 3 calls met it;" in text
