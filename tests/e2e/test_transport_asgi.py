"""The ASGI transport: a Starlette app mounting the stream endpoint, served by uvicorn on
loopback, called by the real emulator and by raw WebSocket clients."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import numpy as np
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from tests.e2e.conftest import b64, free_port, read_wav, speech, write_wav
from tests.e2e.test_hostile_frames import lead_of
from vobiz_stream.app.config import Settings
from vobiz_stream.app.handlers import Handler
from vobiz_stream.app.server import stream_endpoint
from vobiz_stream.app.session import CallSession
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.pytest_plugin import read_heard
from vobiz_stream.transports.asgi import AsgiStreamEndpoint

STREAM_PATH = "/voice/media"
"""Any path the host app likes: the answer XML names it."""


@dataclass
class AsgiApp:
    base: str
    endpoint: AsgiStreamEndpoint
    data_dir: Path
    stop: Callable[[], Awaitable[None]]

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + STREAM_PATH

    def recordings(self) -> list[Path]:
        return sorted((self.data_dir / "recordings").glob("*.wav"))

    def stream_rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.data_dir / "vobiz-stream.db") as db:
            return db.execute(
                "SELECT call_id, frames_malformed, end_reason FROM streams"
            ).fetchall()


StartApp = Callable[..., Awaitable[AsgiApp]]


def starlette_app(endpoint: AsgiStreamEndpoint) -> Starlette:
    """A host app as a user writes one: its own answer route, the stream mounted beside it."""

    async def answer(request: Request) -> Response:
        fields = dict(parse_qsl((await request.body()).decode()))
        stream_url = f"ws://{request.url.netloc}{STREAM_PATH}"
        xml = endpoint.answer_xml(stream_url, fields.get("CallUUID"))
        return Response(xml, media_type="application/xml")

    return Starlette(
        routes=[
            Route("/answer", answer, methods=["GET", "POST"]),
            WebSocketRoute(STREAM_PATH, endpoint),
        ],
        lifespan=endpoint.lifespan,
    )


@pytest.fixture
async def start_app(tmp_path: Path) -> AsyncIterator[StartApp]:
    stops: list[Callable[[], Awaitable[None]]] = []

    async def start(handler: Handler | None = None, **overrides: Any) -> AsgiApp:
        data_dir = tmp_path / f"data{len(stops)}"
        settings = replace(Settings(), data_dir=data_dir, port=0, **overrides)
        endpoint = stream_endpoint(settings, handler)
        config = uvicorn.Config(
            starlette_app(endpoint), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]

        async def stop() -> None:
            if not serving.done():
                server.should_exit = True
                await asyncio.wait_for(serving, 20)

        stops.append(stop)
        return AsgiApp(f"http://127.0.0.1:{port}", endpoint, data_dir, stop)

    yield start
    for stop in stops:
        await stop()


def start_frame(call_id: str) -> str:
    start = {
        "event": "start",
        "start": {
            "callId": call_id,
            "streamId": "s-1",
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
        },
    }
    return orjson.dumps(start).decode()


async def send_media(socket: aiohttp.ClientWebSocketResponse, samples: np.ndarray) -> None:
    """``samples`` (int16, 8 kHz) as little-endian L16 media frames of 20 ms."""
    for chunk in range(len(samples) // 160):
        frame = samples[chunk * 160 : (chunk + 1) * 160].astype("<i2").tobytes()
        media = {"event": "media", "media": {"payload": b64(frame), "chunk": chunk}}
        await socket.send_str(orjson.dumps(media).decode())


async def test_a_call_is_recorded_sample_for_sample(start_app: StartApp, tmp_path: Path) -> None:
    app = await start_app(l16_byte_order="little")
    samples, rate = speech("speech_male_8k")
    audio = write_wav(tmp_path / "caller.wav", samples, rate)
    report = await run_call(app.base + "/answer", audio, CallOptions(speed=4))
    assert report.completed, report.failure
    await app.stop()  # the lifespan closes the endpoint: every recording is final
    [path] = app.recordings()
    recorded, recorded_rate, _ = read_wav(path)
    assert recorded_rate == rate
    np.testing.assert_array_equal(recorded[: len(samples), 0], samples)
    [(call_id, malformed, _end)] = app.stream_rows()
    assert call_id and malformed == 0


async def test_a_handler_plays_audio_the_caller_hears(start_app: StartApp, tmp_path: Path) -> None:
    tone = (8000 * np.sin(np.arange(4000) * 2 * np.pi * 440 / 8000)).astype(np.int16)

    async def greet(session: CallSession) -> None:
        await session.play(tone, 8000)
        async for _event in session.events():
            pass

    app = await start_app(greet, bidirectional=True)
    samples, rate = speech("speech_male_8k")
    heard_path = tmp_path / "heard.wav"
    report = await run_call(
        app.base + "/answer",
        write_wav(tmp_path / "caller.wav", samples[: 2 * rate], rate),  # 2 s of the caller
        CallOptions(heard_path=heard_path),  # real time: the tone is heard without a gap
    )
    assert report.completed, report.failure
    heard, heard_rate = read_heard(heard_path)
    assert heard_rate == 8000
    start = int(np.flatnonzero(heard)[0]) - int(np.flatnonzero(tone)[0])
    np.testing.assert_array_equal(heard[start : start + len(tone)], tone)


async def test_a_bad_token_is_refused_before_the_upgrade(start_app: StartApp) -> None:
    app = await start_app(stream_secret="s" * 32)
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(app.ws_url + "?call=c-1&token=forged")
    assert refused.value.status in (401, 403)
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as untokened:
            await client.ws_connect(app.ws_url)
    assert untokened.value.status in (401, 403)
    await app.stop()
    assert app.recordings() == []


async def test_a_socket_without_start_is_closed_at_start_timeout(start_app: StartApp) -> None:
    app = await start_app(start_timeout=0.5)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(app.ws_url)
        closing = await socket.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == 1008
        assert "start_timeout" in closing.extra
    await app.stop()
    assert app.recordings() == []


async def test_hostile_frames_are_counted_and_the_call_goes_on(start_app: StartApp) -> None:
    app = await start_app(l16_byte_order="little")
    samples = np.arange(-800, 800, dtype=np.int16)  # no frame is silent: lead_of finds it
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(app.ws_url)
        await socket.send_str(start_frame("hostile-call"))
        await socket.send_str("not json \x1b[2J")
        await socket.send_bytes(b"\x00" * 64)
        await send_media(socket, samples)
        await socket.send_str(orjson.dumps({"event": "stop"}).decode())
        closing = await socket.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1000
    await app.stop()
    [(call_id, malformed, _end)] = app.stream_rows()
    assert (call_id, malformed) == ("hostile-call", 2)
    [path] = app.recordings()
    recorded, _, _ = read_wav(path)
    lead = lead_of(recorded[:, 0], samples)  # the silence before the first frame arrived
    np.testing.assert_array_equal(recorded[lead : lead + len(samples), 0], samples)


async def test_the_readme_example_serves_a_call(tmp_path: Path) -> None:
    """The README's Starlette app, as printed, under ``uvicorn app:app``."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [example] = re.findall(r"```python\n(# app\.py .*?)```", readme, re.DOTALL)
    (tmp_path / "app.py").write_text(example)
    (tmp_path / "myagent.py").write_text(
        "async def handle(session):\n    async for _event in session.events():\n        pass\n"
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)),
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(200):
                try:
                    async with client.post(f"http://127.0.0.1:{port}/answer"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        samples, rate = speech("speech_male_8k")
        audio = write_wav(tmp_path / "caller.wav", samples, rate)
        report = await run_call(f"http://127.0.0.1:{port}/answer", audio, CallOptions(speed=4))
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
    assert report.completed, report.failure
    [path] = sorted((tmp_path / "data" / "recordings").glob("*.wav"))
    recorded, _, _ = read_wav(path)
    np.testing.assert_array_equal(recorded[: len(samples), 0], samples)


async def test_shutdown_ends_an_open_call_and_keeps_its_recording(start_app: StartApp) -> None:
    app = await start_app(l16_byte_order="little")
    samples = np.arange(-800, 800, dtype=np.int16)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(app.ws_url)
        await socket.send_str(start_frame("open-call"))
        await send_media(socket, samples)
        await asyncio.sleep(0.3)  # the frames reach the server
        await app.stop()  # the call is still open: no stop, no close from the carrier
        closing = await socket.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE
    with sqlite3.connect(app.data_dir / "vobiz-stream.db") as db:
        [(call_id, ended_at)] = db.execute("SELECT call_id, ended_at FROM streams").fetchall()
    assert call_id == "open-call" and ended_at is not None
    [path] = app.recordings()
    recorded, _, _ = read_wav(path)
    lead = lead_of(recorded[:, 0], samples)
    np.testing.assert_array_equal(recorded[lead : lead + len(samples), 0], samples)


async def test_a_frame_over_max_message_bytes_closes_with_1009(start_app: StartApp) -> None:
    app = await start_app(max_message_bytes=4096)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(app.ws_url)
        await socket.send_str(start_frame("big-call"))
        await socket.send_str('{"event": "media", "media": {"payload": "' + "A" * 8192 + '"}}')
        closing = await socket.receive(timeout=10)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1009)
    await app.stop()
    [(call_id, _malformed, end_reason)] = app.stream_rows()
    assert (call_id, end_reason) == ("big-call", "socket_closed (1009)")


async def test_a_call_over_max_calls_is_refused_with_503(start_app: StartApp) -> None:
    app = await start_app(max_calls=1)
    async with aiohttp.ClientSession() as client:
        first = await client.ws_connect(app.ws_url)
        await first.send_str(start_frame("first-call"))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(app.ws_url)
        assert refused.value.status == 503
        await first.close()
    await app.stop()
    assert [row[0] for row in app.stream_rows()] == ["first-call"]
