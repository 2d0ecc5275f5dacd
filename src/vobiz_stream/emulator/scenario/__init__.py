"""Conversation tests: a caller's script (TOML) played against an app, and a verdict.

:func:`load_scenario` reads and checks a scenario file, :func:`run_scenario` places the call
with the scenario as the caller and returns a :class:`Verdict` (every expectation checked, with
what was measured). The parts that need no I/O (:mod:`.model`, :mod:`.parse`, :mod:`.measure`,
:mod:`.verdict`) are apart from the ones that run the call (:mod:`.caller`, :mod:`.runner`).
"""

from vobiz_stream.emulator.scenario.model import Bound, Ending, Expectations, Scenario
from vobiz_stream.emulator.scenario.parse import ScenarioError, load_scenario, parse_scenario
from vobiz_stream.emulator.scenario.runner import prepare_turns, run_scenario
from vobiz_stream.emulator.scenario.verdict import Check, Verdict

__all__ = [
    "Bound",
    "Check",
    "Ending",
    "Expectations",
    "Scenario",
    "ScenarioError",
    "Verdict",
    "load_scenario",
    "parse_scenario",
    "prepare_turns",
    "run_scenario",
]
