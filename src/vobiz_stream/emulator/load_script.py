"""A scenario as the caller of every call of a load (``vobiz-stream load --scenario``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp

from vobiz_stream.emulator.load_figures import CallOutcome
from vobiz_stream.emulator.options import CallOptions
from vobiz_stream.emulator.scenario.model import Scenario
from vobiz_stream.emulator.scenario.parse import load_scenario
from vobiz_stream.emulator.scenario.runner import TurnAudios, prepare_turns, run_scenario

__all__ = ["ScenarioScript"]


class ScenarioScript:
    """One scenario and its caller audio, made once per load process and shared by its calls."""

    def __init__(self, scenario: Scenario, turns: TurnAudios) -> None:
        self.scenario = scenario
        self.turns = turns

    @classmethod
    async def prepare(cls, path: Path) -> ScenarioScript:
        scenario = load_scenario(path)
        return cls(scenario, await prepare_turns(scenario))

    async def call(
        self, answer_url: str, options: CallOptions, http: aiohttp.ClientSession
    ) -> CallOutcome:
        """One call following the scenario: the load's figures plus the scenario's."""
        verdict = await run_scenario(
            self.scenario, answer_url, turns=self.turns, options=options, http=http
        )
        assert verdict.report is not None
        responses = [r.value for r in verdict.measurements.responses]
        return replace(
            CallOutcome.from_report(verdict.report),
            responses=tuple(value / 1000 for value in responses if value is not None),
            unanswered=sum(value is None for value in responses),
            scenario_passed=verdict.passed,
        )
