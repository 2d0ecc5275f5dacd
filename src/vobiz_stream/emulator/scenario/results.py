"""A suite's verdicts as files: JSON for tools, JUnit XML for CI (one test case per run). No I/O
but the text they make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

from vobiz_stream.emulator.scenario.verdict import Verdict

__all__ = ["junit_xml", "suite_json"]


def suite_json(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Every run's verdict with its checks and measurements, and the totals."""
    failed = sum(1 for verdict in verdicts if not verdict.passed)
    return {
        "runs": len(verdicts),
        "passed": len(verdicts) - failed,
        "failed": failed,
        "verdicts": [verdict.to_json() for verdict in verdicts],
    }


def junit_xml(verdicts: Sequence[Verdict], suite: str = "vobiz-stream scenarios") -> str:
    """JUnit XML: a test case per run (``<scenario> [run N]``), its failed checks as the
    failure's message and text, the readable verdict as its output."""
    failures = sum(1 for verdict in verdicts if not verdict.passed)
    total = sum(verdict.measurements.duration for verdict in verdicts)
    root = ElementTree.Element(
        "testsuite",
        name=suite,
        tests=str(len(verdicts)),
        failures=str(failures),
        errors="0",
        time=f"{total:.3f}",
    )
    for verdict in verdicts:
        case = ElementTree.SubElement(
            root,
            "testcase",
            classname=verdict.path,
            name=f"{verdict.scenario} [run {verdict.run}]",
            time=f"{verdict.measurements.duration:.3f}",
        )
        if not verdict.passed:
            messages = [check.message for check in verdict.failures]
            failure = ElementTree.SubElement(
                case, "failure", message="; ".join(messages), type="ScenarioFailed"
            )
            failure.text = "\n".join(messages)
        output = ElementTree.SubElement(case, "system-out")
        output.text = "\n".join(verdict.lines())
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode"
    )
