#!/usr/bin/env python3
"""One entry point for a fresh machine: set up ``.venv``, then run the server, tests or linters.

    python3 dev.py serve [ARGS...]   set up, then run ``vobiz-stream serve`` with the defaults
    python3 dev.py test [ARGS...]    set up, then run the whole test suite (ARGS go to pytest)
    python3 dev.py lint              set up, then run the linters (ruff, mypy, imports, dead code)
    python3 dev.py setup             only set up

Only the Python standard library is used here, so this works before anything is installed.
The virtual environment is rebuilt when ``pyproject.toml`` changes. ``serve`` and ``test`` also
install espeak-ng and sox (speech for the emulator and the examples, audio files for the tests)
and PostgreSQL (the tests of the PostgreSQL call store start a throwaway server of it) with
apt-get when they are missing and this is a Debian machine run as root; elsewhere they say how,
and go on without them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".vobiz-stream-installed"
SYSTEM_TOOLS = {
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "pg_ctlcluster": "postgresql",
    "nginx": "nginx-light",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}
"""Programs some features and tests use (speech in the emulator and the examples; sox makes and
reads audio files in the tests; PostgreSQL for the tests of its call store; nginx fronts the
workers in a test; chromium drives the console's browser tests), by Debian package."""


def _say(text: str) -> None:
    print(f"[dev.py] {text}", flush=True)


def _run(*args: str | Path) -> int:
    process = subprocess.Popen([str(arg) for arg in args], cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child too: let it shut down cleanly
            continue


def setup() -> None:
    """Create ``.venv`` and install the package with its dev extras, unless already current."""
    if sys.version_info < (3, 11):  # noqa: UP036  (this file runs before any check of ours)
        sys.exit("vobiz-stream needs Python 3.11 or newer; run this file with python3.11 or later")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        _say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    _say("installing vobiz-stream and its dev tools (first run only)")
    pip = [PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if _run(*pip, "--upgrade", "pip") != 0 or _run(*pip, "-e", f"{ROOT}[dev]") != 0:
        sys.exit("installation failed: read pip's message above, fix it and run this again")
    STAMP.write_text(wanted)


def install_system_tools() -> None:
    """Install the optional programs with apt-get where this machine allows it (root, Debian).

    Without them everything still works: speech falls back to a tone, and the tests that need
    them say why they are skipped.
    """
    missing = [package for tool, package in SYSTEM_TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        _say(f"optional: apt-get install {' '.join(missing)} (speech, audio files, database tests)")
        return
    _say(f"installing {' '.join(missing)} with apt-get (optional; speech, audio, database tests)")

    def apt_get(*args: str) -> int:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.call([apt, *args], stdout=subprocess.DEVNULL, env=env)

    if apt_get("install", "-y", "-q", *missing) != 0 and (
        apt_get("update", "-q") != 0 or apt_get("install", "-y", "-q", *missing) != 0
    ):
        _say(f"could not install {' '.join(missing)}; the tests that need it will be skipped")


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command in {"help", "-h", "--help"}:
        print(__doc__)
        return 0
    setup()
    if command == "setup":
        return 0
    if command in {"serve", "test"}:
        install_system_tools()
    if command == "serve":
        return _run(BIN / "vobiz-stream", "serve", *rest)
    if command == "test":
        return _run(PYTHON, "-m", "pytest", *rest)
    if command == "lint":
        return (
            _run(PYTHON, "-m", "ruff", "check", ".")
            or _run(PYTHON, "-m", "ruff", "format", "--check", ".")
            or _run(PYTHON, "-m", "mypy")
            or _run(BIN / "lint-imports")  # the layer rules in pyproject.toml
            or _run(PYTHON, "-m", "vulture")  # dead code ([tool.vulture] in pyproject.toml)
        )
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
