"""A real stream server on 127.0.0.1 with a real data folder, and a small scripted carrier client.

The carrier here is deliberately simple (it sends exactly the frames a test gives it); the full
carrier emulator has its own module and tests.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import web

from vobiz_stream.app.config import Settings
from vobiz_stream.app.handlers import Handler
from vobiz_stream.app.server import StreamServer

DATA = Path(__file__).parent.parent / "data"

MEDIA_TRANSPORTS = ("aiohttp", "picows", "asgi")
"""The media socket's shells; a test marked ``all_transports`` runs once on each."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "all_transports: run the test's servers on each media transport in turn"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``all_transports`` whose servers come from ``start_server`` (or that asks
    for ``media_transport``) runs once per transport."""
    marked = metafunc.definition.get_closest_marker("all_transports") is not None
    if marked and "media_transport" in metafunc.fixturenames:
        metafunc.parametrize("media_transport", MEDIA_TRANSPORTS)


@pytest.fixture
def media_transport() -> str:
    """The media transport of the test's servers: aiohttp unless the test is marked
    ``all_transports``."""
    return "aiohttp"


def speech(name: str = "speech_male_8k") -> tuple[np.ndarray, int]:
    """A committed espeak-ng utterance as int16 samples and its rate."""
    with wave.open(str(DATA / f"{name}.wav")) as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return samples.astype(np.int16), reader.getframerate()


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    """Samples (channels as columns), rate and channel count of a WAV written by the server."""
    with wave.open(str(path)) as reader:
        channels = reader.getnchannels()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return samples.reshape(-1, channels), reader.getframerate(), channels


def frames_of(samples: np.ndarray, rate: int) -> list[np.ndarray]:
    """20 ms frames; the last one padded with silence."""
    size = rate // 50
    padded = np.concatenate([samples, np.zeros(-len(samples) % size, dtype=np.int16)])
    return [padded[i : i + size] for i in range(0, len(padded), size)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class RunningServer:
    server: StreamServer
    base: str
    data_dir: Path

    @property
    def ws_url(self) -> str:
        """The media socket's URL: on the app's port, or on the picows or ASGI one's own."""
        if self.server.media_port is not None:
            return f"ws://127.0.0.1:{self.server.media_port}/stream"
        return self.base.replace("http://", "ws://") + "/stream"

    def recordings(self) -> list[Path]:
        return sorted((self.data_dir / "recordings").glob("*.wav"))

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Until every socket is closed and finished (recordings finalised)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.server.sockets:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("server still has open streams")
            await asyncio.sleep(0.01)


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(tmp_path: Path, media_transport: str) -> AsyncIterator[StartServer]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler | None = None, **overrides: Any) -> RunningServer:
        overrides = {"media_transport": media_transport, **overrides}
        settings = replace(
            Settings(), data_dir=tmp_path / f"data{len(runners)}", port=0, **overrides
        )
        server = StreamServer(settings, handler)
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        own_port = settings.media_transport != "aiohttp"
        assert (server.media_port is not None) == own_port, "not on the transport asked for"
        return RunningServer(server, f"http://{host}:{port}", settings.data_dir)

    yield start
    for runner in runners:
        await runner.cleanup()


def on_database(start: StartServer, database: str | None) -> StartServer:
    """``start`` with the ``database`` setting (None: the data folder's SQLite file): a module
    overrides its ``start_server`` with this to run its tests on each store engine."""

    async def start_on(handler: Handler | None = None, **overrides: Any) -> RunningServer:
        return await start(handler, database=database, **overrides)

    return start_on


@dataclass
class Carrier:
    """The carrier's end of one socket: sends what it is told, keeps what the app sends back."""

    socket: aiohttp.ClientWebSocketResponse
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.socket.send_str(
            frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        )

    async def start(
        self,
        call_id: str = "call-1",
        stream_id: str = "stream-1",
        encoding: str = "audio/x-l16",
        rate: int = 8000,
        tracks: tuple[str, ...] = ("inbound",),
    ) -> None:
        await self.send(
            {
                "sequenceNumber": 0,
                "event": "start",
                "start": {
                    "callId": call_id,
                    "streamId": stream_id,
                    "accountId": "500025",
                    "tracks": list(tracks),
                    "mediaFormat": {"encoding": encoding, "sampleRate": rate},
                },
                "extra_headers": "{}",
            }
        )

    async def media(
        self, payload: bytes, chunk: int, track: str = "inbound", time_ms: int | None = None
    ) -> None:
        """One live-shape media frame; its timestamp is 20 ms per chunk unless ``time_ms``."""
        await self.send(
            {
                "sequenceNumber": chunk + 1,
                "streamId": "stream-1",
                "event": "media",
                "media": {
                    "track": track,
                    "timestamp": str(1778574097426 + (20 * chunk if time_ms is None else time_ms)),
                    "chunk": chunk,
                    "payload": b64(payload),
                },
                "extra_headers": "{}",
            }
        )

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self.socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.received.append((loop.time(), orjson.loads(message.data)))
                self.arrived.set()

    def commands(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, frame) for at, frame in self.received if frame["event"] == event]

    async def wait_for(self, event: str, count: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.commands(event)) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[str], Awaitable[Carrier]]]:
    sessions: list[aiohttp.ClientSession] = []

    async def open_socket(url: str) -> Carrier:
        client = aiohttp.ClientSession()
        sessions.append(client)
        carrier = Carrier(await client.ws_connect(url, autoping=True))
        carrier.reader = asyncio.create_task(carrier._read())
        return carrier

    yield open_socket
    for client in sessions:
        await client.close()


async def run_cli(*args: str, timeout: float = 30) -> tuple[int, bytes, bytes]:
    """Run ``python -m vobiz_stream ARGS`` as users do; return its exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vobiz_stream",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers run as subprocesses)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_healthy(base: str) -> None:
    """Wait until the server at ``base`` answers ``/healthz`` (at most about 10 s)."""
    async with aiohttp.ClientSession() as client:
        for _ in range(200):
            try:
                async with client.get(base + "/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"the server at {base} did not come up")


async def serve_process(
    port: int, data: Path, *flags: str, **spawn: Any
) -> asyncio.subprocess.Process:
    """``vobiz-stream serve`` as users run it, on 127.0.0.1:``port``, once it answers; its
    stderr (the log) is piped. ``spawn`` goes to the subprocess (``env``, ``preexec_fn``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "vobiz_stream", "serve", "--port", str(port), "--data-dir", str(data)),
        *flags,
        stderr=asyncio.subprocess.PIPE,
        **spawn,
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    return process


async def serve_app(routes: list[web.RouteDef]) -> web.AppRunner:
    """A small aiohttp app on a free loopback port (an answer URL, a callback sink...)."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def url_of(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}/"


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    """``samples`` as a mono 16-bit WAV (a caller's audio for the emulator)."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return path


# The local carrier fixture (start_carrier) for the REST tests; imported last, since it uses the
# helpers above.
from tests.e2e.carrier_support import start_carrier  # noqa: E402, F401
