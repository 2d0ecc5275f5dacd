"""``serve --media-transport asgi``: the ASGI stream endpoint under uvicorn, in the server's
process, on a port of its own.

The e2e tests marked ``all_transports`` run the server's media path on it too (through the
``start_server`` fixture); these cover what only this transport does: the command line, the
answer XML naming the media port, the shutdown (the server's 1001, not uvicorn's 1012), paths
other than ``/stream``, a media port already taken, and a Python without uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import (
    DATA,
    StartServer,
    free_port,
    read_wav,
    run_cli,
    serve_process,
    speech,
)
from vobiz_stream.core.answer import parse_response
from vobiz_stream.emulator import CallOptions, run_call

FIXTURE = DATA / "speech_male_8k.wav"
FRAME = 160


async def test_serve_with_asgi_answers_with_its_media_port_records_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    port, media_port = free_port(), free_port()
    process = await serve_process(
        port, tmp_path, "--media-transport", "asgi", "--media-port", str(media_port),
        "--shutdown-grace", "0",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        report = await run_call(base + "/", FIXTURE, CallOptions(speed=4))
        assert report.completed, report.summary()
        assert urlsplit(report.stream_url or "").port == media_port
        async with aiohttp.ClientSession() as client:
            open_socket = await client.ws_connect(f"ws://127.0.0.1:{media_port}/stream")
            await open_socket.send_str('{"event":"start","start":{"callId":"left-open"}}')
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            closing = await asyncio.wait_for(open_socket.receive(), 30)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert (closing.data, closing.extra) == (1001, "server shutting down")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    log = stderr.decode()
    assert f"media socket (asgi) on ws://127.0.0.1:{media_port}/stream" in log
    assert "Traceback" not in log
    [path] = [
        p for p in sorted((tmp_path / "recordings").glob("*.wav")) if "left-open" not in p.name
    ]
    samples = speech()[0]
    caller = np.concatenate([samples, np.zeros(-len(samples) % FRAME, dtype=np.int16)])
    np.testing.assert_array_equal(read_wav(path)[0][: len(caller), 0], caller)


async def test_the_answer_points_at_the_asgi_port_and_other_paths_get_a_404(
    start_server: StartServer,
) -> None:
    running = await start_server(media_transport="asgi")
    media_port = running.server.media_port
    assert media_port is not None and f":{media_port}" not in running.base
    async with aiohttp.ClientSession() as client:
        async with client.post(running.base + "/", data={"CallUUID": "c-1"}) as reply:
            [stream] = parse_response(await reply.text()).streams
        assert urlsplit(stream.url).port == media_port
        assert urlsplit(stream.url).path == "/stream"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"ws://127.0.0.1:{media_port}/elsewhere")
        assert refused.value.status == 404
        async with client.get(f"http://127.0.0.1:{media_port}/elsewhere") as reply:
            assert reply.status == 404
            assert "/stream" in await reply.text()
    assert not running.server.sockets


async def test_a_media_port_already_taken_stops_the_server_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        code, _, stderr = await run_cli(
            *("serve", "--media-transport", "asgi", "--media-port", str(taken)),
            *("--port", str(free_port()), "--data-dir", str(tmp_path / "data")),
        )
    assert code == 2
    [line] = stderr.decode().splitlines()
    assert f"cannot listen on 127.0.0.1:{taken}" in line and f"--media-port {taken + 1}" in line


async def test_choosing_asgi_without_uvicorn_stops_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "no-uvicorn"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['uvicorn'] = None\n")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "vobiz_stream", "serve", "--media-transport", "asgi"),
        *("--port", str(free_port()), "--data-dir", str(tmp_path / "data")),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), *sys.path])},
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert stderr.decode().splitlines() == [
        "vobiz-stream serve: the ASGI media transport needs the uvicorn package: "
        "pip install 'vobiz-stream[asgi]'"
    ]
