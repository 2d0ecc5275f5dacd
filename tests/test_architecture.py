"""The import rules in pyproject.toml hold for the package, and they catch a module that breaks
them (checked on a copy of the package with one upward import added)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env={"PYTHONPATH": str(project / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    return project


def test_the_package_keeps_every_import_rule() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("core/protocol.py", "import vobiz_stream.app.server", "Layers"),
        ("core/answer.py", "import asyncio", "core does no I/O"),
        ("transports/asgi.py", "import vobiz_stream.transports.aiohttp", "Transports do not"),
        ("emulator/heard.py", "import vobiz_stream.app.recorder", "The emulator"),
        ("store/writes.py", "import vobiz_stream.app.config", "The store knows nothing"),
        ("emulator/keypad.py", "import vobiz_stream.cli", "Nothing imports the CLI"),
    ],
)
def test_an_import_that_breaks_a_rule_is_caught(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    project = _copy(tmp_path)
    target = project / "src" / "vobiz_stream" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{bad_import}  # noqa\n")
    done = _lint_imports(project)
    assert done.returncode != 0
    broken = [line for line in done.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), done.stdout
