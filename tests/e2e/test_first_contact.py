"""A newcomer's first mistakes, made for real with the ``vobiz-stream`` command: each error says
what to do next in one line, with no traceback.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
import yarl

from tests.e2e.conftest import MEDIA_TRANSPORTS, free_port, serve_process

COMMAND = Path(sys.executable).parent / "vobiz-stream"
"""The console script a user runs (``.venv/bin/vobiz-stream``)."""
CALLER = Path(__file__).resolve().parents[1] / "data" / "speech_male_8k.wav"
FEMALE_CALLER = CALLER.with_name("speech_female_8k.wav")


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
        for _ in range(2):
            called = await asyncio.to_thread(
                vobiz_stream, "call", f"http://127.0.0.1:{port}/answer", "--audio", str(CALLER)
            )
    finally:
        server.terminate()
        _, stderr = await server.communicate()
    hint = (
        "no answer XML at /answer: point your Vobiz application's answer URL at "
        f"http://127.0.0.1:{port}/"
    )
    assert called.returncode == 1
    assert hint in called.stdout, called.stdout  # the emulator shows the 404's body
    log = stderr.decode()
    assert log.count(hint) == 1, log  # the server's log says it once per path
    assert f"WARNING 404 for POST {hint}" in " ".join(log.split()), log


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


@pytest.mark.parametrize("flag", ["--port", "--media-port"])
def test_a_port_in_use_suggests_another_in_one_line(flag: str, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        flags = [flag, str(port)]
        if flag == "--media-port":
            flags += ["--media-transport", "picows", "--port", str(free_port())]
        ran = vobiz_stream("serve", *flags, "--data-dir", str(tmp_path))
    assert ran.returncode == 2
    assert ran.stderr.strip() == (
        f"vobiz-stream serve: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another vobiz-stream or another program holds it); stop that one, or pick a free "
        f"port: {flag} {port + 1}"
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


# --- the examples clean up after themselves and log the call id on every line ---------------

ROOT = Path(__file__).resolve().parents[2]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (INFO|WARNING|ERROR|CRITICAL)\s+(.*)$")


def git_status() -> set[str]:
    ran = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(ran.stdout.splitlines())


async def run_example(name: str, *args: str) -> tuple[int, str, str]:
    """``.venv/bin/python examples/NAME.py ARGS`` from the checkout, as the guide prints it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        f"examples/{name}.py",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_every_example_leaves_the_checkout_as_it_was(tmp_path: Path) -> None:
    pytest.importorskip("pipecat", reason="needs the extra: pip install 'vobiz-stream[pipecat]'")
    before = git_status()
    runs = await asyncio.gather(
        run_example("recorder", "--speed", "4", "--data-dir", str(tmp_path / "data")),
        run_example("echo"),
        run_example("greeting_agent"),
        run_example("bridge_agent"),
        run_example("pipecat_echo"),
    )
    for code, out, err in runs:
        assert code == 0, out + err
        heard = Path(re.findall(r"^what the caller heard: (.*)$", out, re.MULTILINE)[-1])
        assert heard.is_file() and ROOT not in heard.resolve().parents, heard
    assert git_status() - before == set()


async def test_the_recorder_lists_only_its_own_call(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    calls = []
    for run in range(2):  # the second run finds the first one's recording in the folder
        report = tmp_path / f"report-{run}.json"
        code, out, err = await run_example(
            "recorder", "--speed", "4", "--data-dir", data, "--report", str(report)
        )
        assert code == 0, out + err
        calls.append((orjson.loads(report.read_bytes())["call_uuid"], out))
    assert len(list((tmp_path / "data" / "recordings").glob("*.wav"))) == 2
    call_uuid, out = calls[1]
    [listed] = re.findall(r"^recording: (.*)$", out, re.MULTILINE)
    assert listed.endswith(f"-{call_uuid}.wav")


def call_lines(log: str, call_uuid: str) -> list[str]:
    """The INFO-or-louder lines from the call's answer to its end."""
    messages = [match[2] for match in map(LOG_LINE.match, log.splitlines()) if match]
    first = next(i for i, line in enumerate(messages) if "answered with a stream" in line)
    last = max(i for i, line in enumerate(messages) if "stream ended" in line)
    lines = messages[first : last + 1]
    assert len(lines) >= 4 and call_uuid in lines[0], log
    return lines


@pytest.mark.parametrize("transport", MEDIA_TRANSPORTS)
async def test_every_log_line_of_an_example_call_names_it(transport: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code, out, err = await run_example(
        "recorder", "--speed", "4", "--media-transport", transport, "--report", str(report)
    )
    assert code == 0, out + err
    call_uuid = orjson.loads(report.read_bytes())["call_uuid"]
    for line in call_lines(err, call_uuid):
        assert f"call {call_uuid}" in line, err


@pytest.mark.parametrize("transport", MEDIA_TRANSPORTS)
async def test_every_log_line_of_a_served_call_names_it(transport: str, tmp_path: Path) -> None:
    port = free_port()
    flags = ("--handler", "echo", "--media-transport", transport)
    server = await serve_process(port, tmp_path / "data", *flags)
    report = tmp_path / "report.json"
    try:
        called = await asyncio.to_thread(
            vobiz_stream,
            *("call", f"http://127.0.0.1:{port}/", "--audio", str(FEMALE_CALLER)),
            *("--hangup-after", "5", "--quiet", "--report", str(report)),
        )
        assert called.returncode == 0, called.stdout + called.stderr
        await asyncio.sleep(0.5)  # the server logs the end of the stream
    finally:
        server.terminate()
        _, stderr = await server.communicate()
    call_uuid = orjson.loads(report.read_bytes())["call_uuid"]
    lines = call_lines(stderr.decode(), call_uuid)
    assert any("checkpoint_played" in line for line in lines)  # the echo played
    for line in lines:
        assert f"call {call_uuid}" in line, stderr.decode()


async def test_a_404_path_with_control_characters_stays_on_one_log_line(tmp_path: Path) -> None:
    port = free_port()
    server = await serve_process(port, tmp_path / "data")
    try:
        async with aiohttp.ClientSession() as client:
            url = (
                f"http://127.0.0.1:{port}/x%0D%0A2026-01-01%20INFO%20call%20forged:%20hello%1B[31m"
            )
            async with client.post(yarl.URL(url, encoded=True)) as reply:
                assert reply.status == 404
                assert "point your Vobiz application's answer URL at" in await reply.text()
    finally:
        server.terminate()
        _, stderr = await server.communicate()
    log = stderr.decode()
    assert "call forged" in log and "\x1b" not in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines()), log
