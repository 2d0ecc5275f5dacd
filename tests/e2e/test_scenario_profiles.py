"""The example scenarios against the example agents under every carrier profile: an app that
passes under live, documented and strict works whatever Vobiz does next."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import StartServer
from tests.e2e.test_scenarios import SCENARIOS, greeting_agent
from vobiz_stream.app.handlers import Handler, echo
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.profiles import CarrierProfile
from vobiz_stream.emulator.scenario import load_scenario, run_scenario

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="the agents speak with espeak-ng"
)

EXAMPLE_AGENTS = {"greeting": "greeting", "interrupt_greeting": "greeting", "echo": "echo"}
"""Each example scenario, and the example agent it is written for."""


def agent(name: str) -> Handler:
    return greeting_agent() if name == "greeting" else echo


@pytest.mark.parametrize("profile", list(CarrierProfile), ids=str)
@pytest.mark.parametrize("scenario", sorted(EXAMPLE_AGENTS))
async def test_each_example_scenario_passes_under_each_carrier_profile(
    start_server: StartServer, scenario: str, profile: CarrierProfile
) -> None:
    running = await start_server(agent(EXAMPLE_AGENTS[scenario]))
    verdict = await run_scenario(
        load_scenario(SCENARIOS / f"{scenario}.toml"),
        running.base + "/",
        options=CallOptions(carrier=profile),
    )
    await running.wait_idle()
    print("\n".join(verdict.lines()))
    assert verdict.report is not None and verdict.report.carrier == profile.value
    assert verdict.passed, verdict.lines()
