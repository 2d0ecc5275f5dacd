"""Run scenarios many times and many at once: ``vobiz-stream test`` and the pytest plugin.

Every run is one call; ``repeat`` runs each scenario that many times and at most ``concurrency``
calls are up at once. Everything is bounded: the number of runs, and each call by its scenario's
``max_seconds`` (plus :data:`RUN_GRACE` for the answer request and the socket's close).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from vobiz_stream.emulator.call import CallOptions
from vobiz_stream.emulator.scenario.measure import Conversation, Measurements
from vobiz_stream.emulator.scenario.model import Scenario
from vobiz_stream.emulator.scenario.runner import TurnAudios, prepare_turns, run_scenario
from vobiz_stream.emulator.scenario.verdict import Check, Verdict

__all__ = ["MAX_CONCURRENCY", "MAX_RUNS", "RUN_GRACE", "SuiteOptions", "run_suite"]

MAX_RUNS = 10_000
"""Scenario runs (scenarios times ``repeat``) one suite may make."""
MAX_CONCURRENCY = 1000
RUN_GRACE = 30.0
"""Seconds past a scenario's ``max_seconds`` before its run counts as hung and is cancelled."""


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    """How a suite runs: times per scenario, calls at once, where heard audio goes."""

    repeat: int = 1
    concurrency: int = 1
    heard_dir: Path | None = None
    """Keep what the caller heard in each run here (``<scenario>-<run>-heard.wav``)."""
    call_options: CallOptions = field(default_factory=CallOptions)

    def check(self, scenarios: int) -> str | None:
        """What is wrong with these options for ``scenarios`` scenarios, or None."""
        if not 1 <= self.repeat <= MAX_RUNS:
            return f"--repeat is 1 to {MAX_RUNS}, got {self.repeat}"
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            return f"--concurrency is 1 to {MAX_CONCURRENCY}, got {self.concurrency}"
        if scenarios * self.repeat > MAX_RUNS:
            return f"{scenarios} scenarios x {self.repeat} runs is over {MAX_RUNS} calls"
        return None


async def run_suite(
    scenarios: Sequence[Scenario],
    answer_url: str,
    options: SuiteOptions,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Every scenario ``repeat`` times against ``answer_url``, in order of scenario then run."""
    turns = [await prepare_turns(scenario) for scenario in scenarios]
    gate = asyncio.Semaphore(options.concurrency)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.call_options.http_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(index: int, run: int) -> Verdict:
            async with gate:
                verdict = await _run_once(
                    scenarios[index], turns[index], answer_url, options, http=http, run=run
                )
            if on_verdict is not None:
                on_verdict(verdict)
            return verdict

        return list(
            await asyncio.gather(
                *(
                    one(index, run)
                    for index in range(len(scenarios))
                    for run in range(1, options.repeat + 1)
                )
            )
        )


async def _run_once(
    scenario: Scenario,
    turns: TurnAudios,
    answer_url: str,
    options: SuiteOptions,
    *,
    http: aiohttp.ClientSession,
    run: int,
) -> Verdict:
    call_options = options.call_options
    if options.heard_dir is not None:
        heard = options.heard_dir / f"{scenario.path.stem}-{run}-heard.wav"
        call_options = replace(call_options, heard_path=heard)
    limit = scenario.max_seconds / call_options.speed + RUN_GRACE
    try:
        async with asyncio.timeout(limit):
            return await run_scenario(
                scenario, answer_url, turns=turns, options=call_options, http=http, run=run
            )
    except TimeoutError:
        problem = f"the run did not finish within {limit:g}s: cancelled"
        return Verdict(
            scenario=scenario.name,
            path=str(scenario.path),
            checks=[Check("script", "runs as written", problem, False, problem)],
            measurements=Measurements.of(Conversation(duration=0.0, agent=[])),
            run=run,
        )
