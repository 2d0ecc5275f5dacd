"""The emulator tells apps the truth: what live Vobiz sends, what it does with sloppy commands,
and how it copes with a hostile app. Each app here is a small aiohttp app on loopback that
serves an answer and a stream socket of its own.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiohttp import WSMsgType, web

from tests.e2e.conftest import DATA, run_cli, serve_app, speech, url_of
from vobiz_stream.emulator import CallOptions, run_call

FIXTURE = DATA / "speech_male_8k.wav"
RATE = 8000
FRAME = RATE // 50

Script = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]
"""What the app does once ``start`` came: it gets the socket and the ``start`` message."""


@dataclass
class App:
    """What the app's stream socket received: every message, in order."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    script: Script | None = None
    content_type: str = "audio/x-l16;rate=8000"

    def of(self, event: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message.get("event") == event]

    def caller_audio(self) -> bytes:
        """The payloads of every inbound media frame, joined."""
        return b"".join(base64.b64decode(m["media"]["payload"]) for m in self.of("media"))


async def serve_stream_app(app: App) -> web.AppRunner:
    """Serve ``app``: its answer (a bidirectional ``<Stream>`` to its own socket) and socket."""

    async def answer(request: web.Request) -> web.Response:
        host = request.host
        xml = (
            f'<Response><Stream bidirectional="true" keepCallAlive="true" '
            f'contentType="{app.content_type}">ws://{host}/stream</Stream></Response>'
        )
        return web.Response(text=xml, content_type="application/xml")

    async def stream(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        script: asyncio.Task[None] | None = None
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                break
            data = orjson.loads(message.data)
            app.messages.append(data)
            if data.get("event") == "start" and app.script is not None:
                script = asyncio.create_task(app.script(socket, data))
        if script is not None:
            await script
        return socket

    return await serve_app([web.post("/", answer), web.get("/stream", stream)])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    size = min(len(a), len(b))
    return float(np.corrcoef(a[:size].astype(np.float64), b[:size].astype(np.float64))[0, 1])


async def test_l16_goes_out_little_endian_by_default(tmp_path: Path) -> None:
    app = App()
    runner = await serve_stream_app(app)
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=4))
    finally:
        await runner.cleanup()
    assert report.completed, report.summary()
    caller, _ = speech()
    received = np.frombuffer(app.caller_audio(), dtype="<i2")
    assert correlation(received, caller) >= 0.99
    assert report.l16_byte_order == "little"
    assert report.to_json()["l16_byte_order"] == "little"
    assert "audio/x-l16;rate=8000, little-endian" in "\n".join(report.summary())


async def test_the_cli_reports_the_byte_order_it_sent(tmp_path: Path) -> None:
    app = App()
    runner = await serve_stream_app(app)
    try:
        code, stdout, stderr = await run_cli(
            "call", url_of(runner), "--audio", str(FIXTURE), "--speed", "4", "--quiet",
            "--l16-byte-order", "big", "--report", str(tmp_path / "report.json"),
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 0, stderr.decode()
    assert "audio/x-l16;rate=8000, big-endian" in stdout.decode()
    assert orjson.loads((tmp_path / "report.json").read_bytes())["l16_byte_order"] == "big"
    caller, _ = speech()
    received = np.frombuffer(app.caller_audio(), dtype=">i2")
    assert correlation(received, caller) >= 0.99


async def test_cleared_audio_is_numbered_like_every_carrier_event() -> None:
    async def clear_once(socket: web.WebSocketResponse, start: dict[str, Any]) -> None:
        await asyncio.sleep(0.1)
        await socket.send_json({"event": "clearAudio", "streamId": start["start"]["streamId"]})

    app = App(script=clear_once)
    runner = await serve_stream_app(app)
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=4))
    finally:
        await runner.cleanup()
    assert report.completed, report.summary()
    [cleared] = app.of("clearedAudio")
    numbers = [int(message["sequenceNumber"]) for message in app.messages]
    assert numbers == list(range(len(app.messages)))  # one count over every event, cleared too
    assert cleared["sequenceNumber"] > app.of("start")[0]["sequenceNumber"]
