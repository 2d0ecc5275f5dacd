"""scripts/soak_rss.py runs end to end on a few calls (the 10000-call figure is in
docs/reliability.md; memory figures are not asserted in tests, they are measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).parent.parent.parent / "scripts" / "soak_rss.py"


def test_the_soak_script_places_calls_and_reports_memory(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(SOAK), *("--calls", "20", "--sample-every", "5"), "--report", report],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(report.read_text())
    assert (summary["calls"], summary["failed"]) == (20, 0)
    assert [sample["calls"] for sample in summary["samples"]] == [1, 5, 10, 15, 20]
    assert all(sample["rss_kib"] > 10_000 for sample in summary["samples"])
    assert summary["rss_at_end_mib"] > 0
