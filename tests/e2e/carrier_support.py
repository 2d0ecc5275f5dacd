"""The local carrier for tests: the ``start_carrier`` fixture (an in-process carrier on a free
loopback port), an app that records what its calls bring, and Vobiz's SDK pointed at the carrier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
import vobiz
from aiohttp import WSMsgType, web

from tests.e2e.conftest import serve_app, url_of
from vobiz_stream.emulator.rest import CarrierSettings, run_carrier

AUTH_ID = "MA_LOCAL0001"
AUTH_TOKEN = "local-token-for-tests"
HEADERS = {"X-Auth-ID": AUTH_ID, "X-Auth-Token": AUTH_TOKEN}


@dataclass
class LocalCarrier:
    base: str
    """``http://127.0.0.1:PORT/api/v1``"""

    @property
    def account(self) -> str:
        return f"{self.base}/Account/{AUTH_ID}"

    def sdk(self, token: str = AUTH_TOKEN) -> Any:
        """Vobiz's Python SDK, pointed at this carrier."""
        client = vobiz.RestClient(auth_id=AUTH_ID, auth_token=token)
        client.base_uri = f"{self.base}/Account"
        return client


StartCarrier = Callable[..., Awaitable[LocalCarrier]]


@pytest.fixture
async def start_carrier() -> AsyncIterator[StartCarrier]:
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> LocalCarrier:
        settings = CarrierSettings(
            **{"auth_id": AUTH_ID, "auth_token": AUTH_TOKEN, "port": 0, "tone_seconds": 20.0}
            | overrides
        )
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_carrier(settings, stop, ready.set_result))
        stops.append((stop, task))
        return LocalCarrier(await asyncio.wait_for(ready, 10))

    yield start
    for stop, task in stops:
        stop.set()
        await asyncio.wait_for(task, 20)


@dataclass
class StreamApp:
    """An app: its answer XML, and every message its stream socket and callback URL got."""

    answer: str = (
        '<Response><Stream bidirectional="true" keepCallAlive="true">ws://{host}/stream'
        "</Stream></Response>"
    )
    messages: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, str]] = field(default_factory=list)
    answer_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    closed: int = 0
    url: str = ""

    def of(self, event: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message.get("event") == event]

    async def serve(self) -> web.AppRunner:
        async def answer(request: web.Request) -> web.Response:
            fields = dict(await request.post()) if request.method == "POST" else {}
            self.answer_requests.append((request.method, {**request.query, **fields}))  # type: ignore[dict-item]
            return web.Response(
                text=self.answer.replace("{host}", request.host), content_type="application/xml"
            )

        async def stream(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    self.messages.append(orjson.loads(message.data))
            self.closed += 1
            return socket

        async def callback(request: web.Request) -> web.Response:
            self.callbacks.append({k: str(v) for k, v in (await request.post()).items()})
            return web.Response(text="ok")

        runner = await serve_app(
            [
                web.route("*", "/answer", answer),
                web.get("/stream", stream),
                web.post("/callback", callback),
            ]
        )
        self.url = url_of(runner)
        return runner


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def place(http: aiohttp.ClientSession, carrier: LocalCarrier, app: StreamApp) -> str:
    body = {"from": "+911", "to": "+912", "answer_url": app.url + "answer"}
    async with http.post(carrier.account + "/Call/", json=body) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["request_uuid"])
