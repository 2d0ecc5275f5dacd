"""The atheris harnesses of fuzz/ run (a few thousand inputs each, through fuzz/run.py, as the
long runs do) and find nothing. atheris comes with the dev tools (and the ``fuzz`` extra), so CI
runs this beside the hypothesis tests; the long runs are in docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).parent.parent / "fuzz" / "run.py"


def test_every_harness_runs_and_finds_nothing(tmp_path: Path) -> None:
    report, work = tmp_path / "report.json", tmp_path / "work"
    result = subprocess.run(
        [sys.executable, RUN, "--runs", "3000", "--work", work, "--report", report],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = json.loads(report.read_text())
    assert outcomes["total_inputs"] == 9000
    assert [each["harness"] for each in outcomes["harnesses"]] == [
        "fuzz_protocol",
        "fuzz_xml",
        "fuzz_webhook",
    ]
    for each in outcomes["harnesses"]:
        assert not each["crashed"] and not each["artifacts"]
        assert each["coverage"] > 10  # the harness reached into the package
