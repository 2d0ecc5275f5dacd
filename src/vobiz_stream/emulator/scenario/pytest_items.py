"""Scenario files as pytest tests: ``pytest SCENARIO_DIR --vobiz-answer-url URL``.

With ``--vobiz-answer-url`` (or the ``vobiz_answer_url`` ini setting) every ``.toml`` file with
a ``[[step]]`` among the paths pytest walks is a test: one call to the URL with the scenario as
the caller; a failure shows the readable verdict (every check, what was measured). What the caller
heard is kept in the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vobiz_stream.emulator.call import CallOptions
from vobiz_stream.emulator.scenario.parse import ScenarioError, load_scenario
from vobiz_stream.emulator.scenario.runner import run_scenario
from vobiz_stream.emulator.scenario.verdict import Verdict

__all__ = ["ScenarioFailedError", "ScenarioFile", "ScenarioItem", "is_scenario_file"]

_SNIFF_BYTES = 64 * 1024


def is_scenario_file(path: Path) -> bool:
    """A ``.toml`` file with a ``[[step]]`` table (pyproject.toml and the like are not)."""
    if path.suffix != ".toml":
        return False
    try:
        with path.open("rb") as file:
            return b"[[step]]" in file.read(_SNIFF_BYTES)
    except OSError:
        return False


class ScenarioFailedError(Exception):
    """The scenario's call did not meet its expectations."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__("\n".join(verdict.lines()))
        self.verdict = verdict


class ScenarioFile(pytest.File):
    """One scenario file: one test."""

    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    """One call with the scenario as the caller."""

    def runtest(self) -> None:
        answer_url = self.config.getoption("vobiz_answer_url") or self.config.getini(
            "vobiz_answer_url"
        )
        scenario = load_scenario(self.path)
        # pytest's own temporary folders (its tmp_path_factory), when its tmpdir plugin is on.
        factory: pytest.TempPathFactory | None = getattr(self.config, "_tmp_path_factory", None)
        heard = None if factory is None else factory.mktemp(self.path.stem) / "heard.wav"
        options = dataclasses.replace(CallOptions(), heard_path=heard)
        verdict = asyncio.run(run_scenario(scenario, str(answer_url), options=options))
        for line in verdict.lines():
            print(line)
        if not verdict.passed:
            raise ScenarioFailedError(verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailedError | ScenarioError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.path.name}"
