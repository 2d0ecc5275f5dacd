"""Every shell command of README.md and docs/*.md, run as printed, so the docs cannot rot.

Each document is followed in order, from a folder laid out like a fresh checkout (its own
``dev.py``, the real ``.venv``, ``src``, ``tests``, ``examples`` and ``bench`` linked in), with the
virtual environment *not* on ``PATH``, as on a newcomer's machine:

* a server command (``dev.py serve``, ``vobiz-stream serve``, ``uvicorn``) starts in the
  background and is waited for on ``/healthz``; it keeps serving the commands after it, in later
  blocks too, as a server in another terminal would, until the next server command replaces it;
* a Python block the text says to save (``Save this as `myagent.py```) is saved under that name;
* ``python3 dev.py test`` only collects the suite (``--co -q``): the suite does not run itself;
* a command whose comment starts with ``needs`` (a tunnel, a file of your own), the benchmarks
  and the fuzzing campaigns (long runs: nothing is timed in the test suite) are checked, not
  run: the ``vobiz-stream`` parser accepts their flags, the scripts they name exist;
* everything else runs in the foreground and must exit 0.

The one liberty taken: port 3000 becomes a free port (in commands and saved files), so the test
can run beside a real server.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vobiz_stream.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = (".venv", "pyproject.toml", "src", "tests", "examples", "bench", "fuzz", "scripts", "docs")
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SAVE_AS = re.compile(r"Save (?:this )?as `([\w.]+)`[^`]*$")
SHELL = {"sh", "bash", "shell", "console"}
DOCUMENTED_PORT = "3000"
LONG_RUNS = ("bench/", "fuzz/")
"""Folders of scripts that run for minutes: their commands are checked, not run."""


@dataclass(frozen=True)
class Command:
    line: str
    argv: list[str]
    comment: str

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name

    @property
    def subcommand(self) -> str | None:
        """``serve`` of ``python3 dev.py serve`` or ``.venv/bin/vobiz-stream serve``."""
        if self.program == "vobiz-stream" and len(self.argv) > 1:
            return self.argv[1]
        if self.argv[:2] == ["python3", "dev.py"] and len(self.argv) > 2:
            return self.argv[2]
        return None

    @property
    def serves(self) -> bool:
        return self.subcommand == "serve" or self.program == "uvicorn"

    @property
    def checked_only(self) -> bool:
        long_run = any(part.startswith(LONG_RUNS) for part in self.argv)
        return self.comment.startswith("needs ") or long_run


@dataclass(frozen=True)
class SaveFile:
    name: str
    text: str


def steps(document: Path) -> Iterator[Command | SaveFile]:
    """The document's shell commands and files to save, in reading order."""
    text = document.read_text()
    for fence in FENCE.finditer(text):
        language, body = fence[1], fence[2]
        if language == "python":
            saved = SAVE_AS.search(text[max(0, fence.start() - 300) : fence.start()])
            if saved:
                yield SaveFile(saved[1], body)
        elif language in SHELL:
            for line in body.replace("\\\n", " ").splitlines():
                lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
                lexer.whitespace_split = True
                lexer.commenters = "#"
                argv = list(lexer)
                if argv:
                    comment = line.partition(" #")[2].strip() if " #" in line else ""
                    yield Command(line.strip(), argv, comment)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def _venv_is_current() -> None:
    """Bring the real ``.venv`` up to date with ``pyproject.toml`` first. A checkout links it, so
    its ``dev.py`` would otherwise reinstall into it from the checkout's temporary folder, and
    the console script would be left pointing at an interpreter path that is then deleted."""
    subprocess.run(["python3", str(ROOT / "dev.py"), "setup"], check=True, cwd=ROOT)


class Checkout:
    """A folder laid out as a fresh checkout, and the one server running in it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.copy(ROOT / "dev.py", folder / "dev.py")  # its ROOT is this folder
        for name in (*LINKED, "README.md"):
            (folder / name).symlink_to(ROOT / name)
        self.port = str(free_port())
        venv_bin = str(ROOT / ".venv" / "bin")
        path = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part != venv_bin]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VOBIZ_STREAM_")},
            "PATH": os.pathsep.join(path),
            "VOBIZ_STREAM_PORT": self.port,
        }
        self.env.pop("VIRTUAL_ENV", None)
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = folder / "server.log"

    def argv(self, command: Command) -> list[str]:
        """The command with the documented port replaced by this checkout's free one."""
        argv = [
            part.replace(f"127.0.0.1:{DOCUMENTED_PORT}", f"127.0.0.1:{self.port}")
            for part in command.argv
        ]
        return [self.port if part == DOCUMENTED_PORT else part for part in argv]

    def save(self, saved: SaveFile) -> None:
        text = saved.text.replace(f"127.0.0.1:{DOCUMENTED_PORT}", f"127.0.0.1:{self.port}")
        (self.folder / saved.name).write_text(text)

    def export(self, command: Command) -> None:
        """``export NAME=value ...`` as the shell runs it: the commands after it see them."""
        names = [part.split("=", 1)[0] for part in command.argv[1:]]
        shell = subprocess.run(
            ["bash", "-c", f"{command.line}\nenv -0"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        values = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
        self.env.update({name: values[name] for name in names})

    def run(self, command: Command) -> None:
        argv = self.argv(command)
        if command.subcommand == "test" and command.program != "vobiz-stream":
            argv += ["--co", "-q"]  # the suite is not run from inside itself
        ran = subprocess.run(
            argv,
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, (
            f"{command.line}\nexit {ran.returncode}\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}"
            f"\nserver log:\n{self.log_tail()}"
        )

    def serve(self, command: Command) -> None:
        self.stop()
        with self.server_log.open("ab") as log:
            self.server = subprocess.Popen(
                self.argv(command),
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # dev.py serve runs the server as its child
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"{command.line} exited:\n{self.log_tail()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # an app without /healthz (uvicorn's 404): it answers, so it is up
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{command.line} did not come up:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ctrl-C, as in the server's terminal: it must stop cleanly, with no traceback."""
        if self.server is None:
            return
        server, self.server = self.server, None
        group = server.pid  # its own session: the group holds dev.py's child too
        if server.poll() is None:
            os.killpg(group, signal.SIGINT)
        try:
            code = server.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            server.wait()
            raise AssertionError(f"the server ignored Ctrl-C:\n{self.log_tail()}") from None
        assert code == 0 and "Traceback" not in self.log_tail(), self.log_tail()

    def log_tail(self) -> str:
        return self.server_log.read_text()[-3000:] if self.server_log.exists() else ""


def check_only(command: Command, folder: Path) -> None:
    """What can be checked without running: the flags parse, the scripts exist."""
    if command.subcommand is not None and (
        command.program == "vobiz-stream" or command.argv[1] == "dev.py"
    ):
        start = command.argv.index(command.subcommand)
        build_parser().parse_args(command.argv[start:])  # exits 2 on an unknown flag
        return
    for part in command.argv:
        if part.startswith(LONG_RUNS):
            script = folder / part
            assert script.is_file(), f"{command.line}: {part} does not exist"
            if part.endswith(".py"):
                compile(script.read_text(), part, "exec")
            elif part == command.argv[0]:
                assert os.access(script, os.X_OK), f"{part} is not executable"
    assert command.checked_only


@pytest.mark.timeout(600)
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_shell_command_runs_as_printed(document: Path, tmp_path: Path) -> None:
    checkout = Checkout(tmp_path)
    ran = 0
    try:
        for step in steps(document):
            if isinstance(step, SaveFile):
                checkout.save(step)
            elif step.checked_only:
                check_only(step, tmp_path)
            elif step.program == "export":
                checkout.export(step)
            elif step.serves:
                checkout.serve(step)
                ran += 1
            else:
                checkout.run(step)
                ran += 1
    finally:
        checkout.stop()
    if document.name in {"README.md", "guide.md"}:
        assert ran >= 4, f"{document.name}: only {ran} commands ran"


def test_the_readme_starts_with_the_two_commands_of_a_fresh_machine() -> None:
    first = next(step for step in steps(ROOT / "README.md"))
    commands = [step for step in steps(ROOT / "README.md") if isinstance(step, Command)][:2]
    assert first == commands[0]
    assert [command.argv for command in commands] == [
        ["python3", "dev.py", "serve"],
        ["python3", "dev.py", "test"],
    ]
