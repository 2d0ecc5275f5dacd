"""Without the picows package (the ``picows`` extra): the default transport serves calls, and
what needs picows stops at once with one line saying what to install."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, serve_process, speech, write_wav
from vobiz_stream.emulator import CallOptions, run_call

INSTALL = "pip install 'vobiz-stream[picows]'"


def without_picows(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import picows, as where it is not installed."""
    blocker = tmp_path / "no-picows"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['picows'] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), *sys.path])}


async def run_without_picows(tmp_path: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=without_picows(tmp_path),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_the_blocker_really_hides_picows(tmp_path: Path) -> None:
    code, stderr = await run_without_picows(tmp_path, "-c", "import picows")
    assert code == 1 and "ModuleNotFoundError" in stderr


async def test_choosing_picows_without_it_stops_with_one_line(tmp_path: Path) -> None:
    code, stderr = await run_without_picows(
        tmp_path,
        *("-m", "vobiz_stream", "serve", "--media-transport", "picows"),
        *("--port", str(free_port()), "--data-dir", str(tmp_path / "data")),
    )
    assert code == 2
    assert stderr.splitlines() == [
        f"vobiz-stream serve: the picows media transport needs the picows package: {INSTALL}"
    ]


@pytest.mark.parametrize("command", [["call"], ["load", "--calls", "2"]])
async def test_the_emulator_without_picows_says_what_to_install(
    tmp_path: Path, command: list[str]
) -> None:
    audio = write_wav(tmp_path / "caller.wav", *speech())
    code, stderr = await run_without_picows(
        tmp_path, "-m", "vobiz_stream", *command, "http://127.0.0.1:9/", "--audio", str(audio)
    )
    assert code == 2
    assert stderr.splitlines() == [
        f"vobiz-stream {command[0]}: the carrier emulator needs the picows package: {INSTALL}"
    ]


async def test_the_pytest_plugin_loads_without_picows(tmp_path: Path) -> None:
    code, stderr = await run_without_picows(
        tmp_path, "-c", "import vobiz_stream.emulator.pytest_plugin, vobiz_stream.app.server"
    )
    assert (code, stderr) == (0, "")


async def test_the_default_transport_serves_a_call_without_picows(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    process = await serve_process(port, data, env=without_picows(tmp_path))
    try:
        audio = write_wav(tmp_path / "caller.wav", *speech())
        report = await run_call(f"http://127.0.0.1:{port}/", audio, CallOptions(speed=8))
    finally:
        process.terminate()
        await process.wait()
    assert report.completed, report.failure
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "Traceback" not in log and "stream" in log
    assert len(list((data / "recordings").glob("*.wav"))) == 1
