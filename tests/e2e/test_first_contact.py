"""A newcomer's first mistakes, made for real with the ``vobiz-stream`` command: each error says
what to do next in one line, with no traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, serve_process

COMMAND = Path(sys.executable).parent / "vobiz-stream"
"""The console script a user runs (``.venv/bin/vobiz-stream``)."""
CALLER = Path(__file__).resolve().parents[1] / "data" / "speech_male_8k.wav"


def vobiz_stream(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) <= 2, stderr


async def test_a_wrong_answer_path_names_the_right_one(tmp_path: Path) -> None:
    port = free_port()
    server = await serve_process(port, tmp_path / "data")
    try:
        called = await asyncio.to_thread(
            vobiz_stream, "call", f"http://127.0.0.1:{port}/answer", "--audio", str(CALLER)
        )
    finally:
        server.terminate()
        await server.communicate()
    assert called.returncode == 1
    assert (
        "no answer XML at /answer: point your Vobiz application's answer URL at "
        f"http://127.0.0.1:{port}/" in called.stdout
    ), called.stdout


@pytest.mark.parametrize("command", ["call", "load"])
def test_an_answer_url_without_scheme_says_add_http(command: str) -> None:
    extra = ["--audio", str(CALLER)] if command == "call" else ["--calls", "1"]
    ran = vobiz_stream(command, "127.0.0.1:3000/", *extra)
    assert ran.returncode == 2
    assert "answer URL 127.0.0.1:3000/ has no scheme: add http:// or https://" in ran.stderr


def test_a_public_url_without_scheme_says_add_https(tmp_path: Path) -> None:
    ran = vobiz_stream("serve", "--public-url", "abc.example", "--data-dir", str(tmp_path))
    assert ran.returncode == 2
    assert ran.stderr.strip() == (
        "vobiz-stream serve: public_url abc.example has no scheme: add http:// or https:// "
        "(http://abc.example)"
    )


def test_a_port_in_use_suggests_another_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ran = vobiz_stream("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert ran.returncode == 2
    assert ran.stderr.strip() == (
        f"vobiz-stream serve: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another vobiz-stream or another program holds it); stop that one, or pick a free "
        f"port: --port {port + 1}"
    )


async def test_a_misspelt_environment_variable_is_named_with_the_right_one(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "VOBIZ_STREAM_PROT": "3001", "VOBIZ_STREAM_MAX_LAED": "0.3"}
    server = await serve_process(port, tmp_path / "data", env=env)
    server.terminate()
    _, stderr = await server.communicate()
    log = stderr.decode()
    assert (
        "ignoring VOBIZ_STREAM_PROT: not a vobiz-stream setting (did you mean VOBIZ_STREAM_PORT?)"
        in log
    )
    assert "(did you mean VOBIZ_STREAM_MAX_LEAD?)" in log
    assert log.count("ignoring VOBIZ_STREAM_") == 2  # once each, at start


BROKEN_HANDLERS = {
    "raises": ("import os\n\nSETTING = os.environ['NO_SUCH_VARIABLE_HERE']\n", 3, "KeyError"),
    "syntax": ("async def handle(session)\n    pass\n", 1, "SyntaxError"),
    "imports": ("import numpy\nimport no_such_module_anywhere\n", 2, "ModuleNotFoundError"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_HANDLERS))
def test_a_handler_that_fails_to_import_gets_one_line_with_file_and_line(
    kind: str, tmp_path: Path
) -> None:
    source, line, error = BROKEN_HANDLERS[kind]
    (tmp_path / "myagent.py").write_text(source)
    ran = vobiz_stream("serve", "--handler", "myagent:handle", cwd=tmp_path)
    assert ran.returncode == 2
    assert_no_traceback(ran.stderr)
    assert f"handler 'myagent:handle' failed to import: {tmp_path / 'myagent.py'}:{line}: " in (
        ran.stderr
    )
    assert error in ran.stderr


def test_a_missing_handler_module_says_where_to_run_from(tmp_path: Path) -> None:
    ran = vobiz_stream("serve", "--handler", "myagent:handle", cwd=tmp_path)
    assert ran.returncode == 2
    assert_no_traceback(ran.stderr)
    assert "cannot import 'myagent'" in ran.stderr and "run from the folder" in ran.stderr
