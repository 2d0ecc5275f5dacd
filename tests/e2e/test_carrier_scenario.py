"""``vobiz-stream carrier --scenario``: every call the local carrier places follows a scenario,
and its verdict is in the carrier's log and at ``/emulator/calls/<call_uuid>/report``."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from typing import Any

import aiohttp
import pytest

from tests.e2e.carrier_support import AUTH_ID, AUTH_TOKEN, HEADERS
from tests.e2e.conftest import DATA, StartServer
from tests.e2e.scenario_agents import SLOW_SECONDS, slow_agent
from tests.e2e.test_scenarios import SCENARIOS, greeting_agent
from vobiz_stream.app.handlers import Handler
from vobiz_stream.rest import VobizClient

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="the agents speak with espeak-ng"
)


async def call_through_the_carrier(
    start_server: StartServer, agent: Handler
) -> tuple[str, dict[str, Any], str]:
    """Start the carrier process with the greeting scenario, place one call to ``agent``
    with the REST client, wait for its end: its uuid, its report, the carrier's log."""
    running = await start_server(agent)
    env = {**os.environ, "VOBIZ_AUTH_ID": AUTH_ID, "VOBIZ_AUTH_TOKEN": AUTH_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vobiz_stream", "carrier", "--port", "0",
        "--scenario", str(SCENARIOS / "greeting.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("local Vobiz carrier: http://127.0.0.1:"), line
        base = line.split(": ", 1)[1].strip()
        report_url = base.removesuffix("/api/v1") + "/emulator/calls/{}/report"
        async with (
            VobizClient(AUTH_ID, AUTH_TOKEN, base_url=base) as vobiz,
            aiohttp.ClientSession() as http,
        ):
            placed = await vobiz.place_call("+911", "+912", running.base + "/")
            call_uuid = placed.request_uuid
            async with http.get(report_url.format(call_uuid), headers=HEADERS) as response:
                assert response.status == 409  # live: no report yet
                assert "still live" in (await response.json())["error"]
            async with http.get(report_url.format(call_uuid)) as response:
                assert response.status == 401  # the carrier's own paths take the headers too
            deadline = time.monotonic() + 40
            while call_uuid in await vobiz.live_calls():
                assert time.monotonic() < deadline, "the call did not end"
                await asyncio.sleep(0.1)
            async with http.get(report_url.format(call_uuid), headers=HEADERS) as response:
                assert response.status == 200, await response.text()
                report: dict[str, Any] = await response.json()
        await running.wait_idle()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return call_uuid, report, stderr.decode()


async def test_the_greeting_scenario_passes_through_the_carrier_against_the_example_agent(
    start_server: StartServer,
) -> None:
    call_uuid, body, log = await call_through_the_carrier(start_server, greeting_agent())
    verdict = body["verdict"]
    assert body["call_uuid"] == call_uuid == verdict["call_uuid"]
    assert verdict["passed"], verdict["checks"]
    assert verdict["scenario"] == "greeting agent: greets at once, answers a key press"
    assert verdict["measurements"]["first_audio_ms"] <= 1500
    assert body["report"]["call_uuid"] == call_uuid and body["report"]["carrier"] == "live"
    assert "callers follow greeting agent" in log
    assert f"call {call_uuid}: scenario greeting agent: greets at once" in log
    assert "passed (" in log and "FAILED" not in log


async def test_the_greeting_scenario_fails_through_the_carrier_against_a_slow_agent(
    start_server: StartServer,
) -> None:
    call_uuid, body, log = await call_through_the_carrier(start_server, slow_agent)
    verdict = body["verdict"]
    assert not verdict["passed"]
    first_audio = verdict["measurements"]["first_audio_ms"]
    assert first_audio >= SLOW_SECONDS * 1000  # the agent thinks 2.5 s before it speaks
    print(f"slow agent through the carrier: first audio {first_audio} ms")
    failed = {check["name"]: check["message"] for check in verdict["checks"] if not check["passed"]}
    assert failed["first_audio_ms"] == (
        f"time to first agent audio {first_audio:g} ms (expected <= 1500 ms)"
    )
    [line] = [line for line in log.splitlines() if f"call {call_uuid}: scenario" in line]
    assert "WARNING" in line and "FAILED: " in line
    assert f"time to first agent audio {first_audio:g} ms (expected <= 1500 ms)" in line


async def test_a_carrier_with_both_audio_and_a_scenario_says_to_pick_one() -> None:
    env = {**os.environ, "VOBIZ_AUTH_ID": AUTH_ID, "VOBIZ_AUTH_TOKEN": AUTH_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vobiz_stream", "carrier", "--port", "0",
        "--scenario", str(SCENARIOS / "greeting.toml"), "--audio", str(DATA / "speech_male_8k.wav"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2 and stdout == b""  # refused before it listens
    assert "audio and scenario both say what the caller says: pick one" in stderr.decode()
