"""The emulator's status callbacks, reconnects, streamTimeout and the app's stop, over loopback.

Callbacks go to the real server's ``/webhook`` and are checked where the server keeps them (its
store). Where a test needs an app that misbehaves on purpose (drops its socket, overfills the
queue), a small scripted app below serves the answer XML and the socket, and points the
callbacks at the real server.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.e2e.conftest import (
    DATA,
    RunningServer,
    StartServer,
    run_cli,
    serve_app,
    url_of,
    write_wav,
)
from vobiz_stream.app.session import CallSession
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.emulator import CallOptions, CallReport, run_call
from vobiz_stream.emulator.callbacks import SignatureVersion
from vobiz_stream.store import CallbackRecord

FIXTURE = DATA / "speech_male_8k.wav"
RATE = 8000
TOKEN = "secret-token"
SPEED = 4.0
COMMON = ("Event", "CallUUID", "StreamID", "From", "To", "Timestamp", "ParentAuthID", "Error")


def caller_wav(path: Path, seconds: float) -> Path:
    """Quiet noise, ``seconds`` long."""
    rng = np.random.default_rng(3)
    return write_wav(path, rng.integers(-200, 201, round(seconds * RATE)), RATE)


def frames_in(path: Path) -> int:
    with wave.open(str(path)) as reader:
        samples: int = reader.getnframes()
    return -(-samples // (RATE // 50))


def callbacks_of(running: RunningServer) -> list[CallbackRecord]:
    [call] = running.server.store.list_calls()
    return call["status_callbacks"]


def check_common(record: CallbackRecord, report: CallReport, stream_id: str) -> None:
    """The fields every callback carries (PROTOCOL.md section 5)."""
    fields = record["fields"]
    assert set(COMMON) <= set(fields), fields
    assert fields["CallUUID"] == report.call_uuid
    assert fields["StreamID"] == stream_id == record["stream_id"]
    assert fields["From"] == CallOptions.from_number
    assert fields["To"] == CallOptions.to_number
    assert fields["ParentAuthID"] == CallOptions.account_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", fields["Timestamp"])
    stamped = datetime.strptime(fields["Timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 30


def events(records: list[CallbackRecord]) -> list[str]:
    return [record["event"] for record in records]


# --- against the real server ---------------------------------------------------------------------


def hanging_until(release: asyncio.Event) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A callback endpoint that answers only once ``release`` is set (10 s at most)."""

    async def hang(_request: web.Request) -> web.Response:
        async with asyncio.timeout(10):
            await release.wait()
        return web.Response(text="late")

    return hang


async def test_callbacks_reach_the_server_with_every_field(start_server: StartServer) -> None:
    running = await start_server(extra_headers="sessionId=abc123,agentId=john")
    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=SPEED))
    await running.wait_idle()
    assert report.completed and report.end_reason == "hangup", report.summary()
    assert report.stream_id is not None
    # The caller hanging up ends the stream with the call: no StopStream (PROTOCOL.md section 5
    # sends it only when the stream ends on its own: the app's stop, REST stop, streamTimeout).
    records = callbacks_of(running)
    assert events(records) == ["StartStream"]
    for record in records:
        check_common(record, report, report.stream_id)
        assert record["fields"]["Error"] == ""
        assert record["fields"]["X-VH-sessionId"] == "abc123"
        assert record["fields"]["X-VH-agentId"] == "john"
        assert record["signature"] == "unsigned"
    start = records[0]["fields"]
    assert start["ServiceURL"] == report.stream_url
    assert "?call=" in start["ServiceURL"]
    # The report keeps what came of each, on the call clock.
    assert [(sent.event, sent.status) for sent in report.callbacks] == [("StartStream", 200)]
    assert report.callbacks[0].at < 0.1
    assert all(sent.latency_ms < 500 for sent in report.callbacks)
    assert any(line.startswith("status callbacks: StartStream 1") for line in report.summary())
    assert report.to_json()["callbacks"][0]["ok"] is True


@pytest.mark.parametrize("signature", list(SignatureVersion))
async def test_signed_with_the_server_token_they_are_accepted(
    start_server: StartServer, signature: SignatureVersion
) -> None:
    running = await start_server(auth_token=TOKEN)
    report = await run_call(
        running.base + "/",
        FIXTURE,
        CallOptions(speed=SPEED, auth_token=TOKEN, signature=signature),
    )
    assert report.completed, report.summary()
    assert [sent.status for sent in report.callbacks] == [200]
    records = callbacks_of(running)
    assert events(records) == ["StartStream"]
    assert {record["signature"] for record in records} == {"valid"}


@pytest.mark.parametrize("token", ["wrong-token", None])
async def test_with_a_wrong_token_or_none_they_are_rejected(
    start_server: StartServer, token: str | None
) -> None:
    running = await start_server(auth_token=TOKEN)
    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=SPEED, auth_token=token))
    await running.wait_idle()
    # The call itself is unharmed; the rejections are in the report.
    assert report.completed and report.end_reason == "hangup", report.summary()
    assert [(sent.event, sent.status) for sent in report.callbacks] == [("StartStream", 403)]
    assert "1 failed (HTTP 403)" in report.summary()[-1]
    [call] = running.server.store.list_calls()
    assert call["status_callbacks"] == []
    assert len(call["streams"]) == 1  # the stream ran


async def test_get_callbacks_carry_the_fields_in_a_signed_query(
    start_server: StartServer,
) -> None:
    running = await start_server(
        status_callback_method="GET", auth_token=TOKEN, extra_headers="tenant=a b&c"
    )
    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=SPEED, auth_token=TOKEN))
    assert report.completed, report.summary()
    assert report.stream_id is not None
    records = callbacks_of(running)
    assert events(records) == ["StartStream"]
    for record in records:
        check_common(record, report, report.stream_id)
        assert record["signature"] == "valid"  # over the URL with its query
        assert record["fields"]["X-VH-tenant"] == "a b&c"
    # The stream URL has its own query: it survives being a query value.
    assert records[0]["fields"]["ServiceURL"] == report.stream_url


async def test_stream_timeout_ends_the_stream_with_stop_stream(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(stream_timeout=1)
    audio = caller_wav(tmp_path / "long.wav", 8.0)
    report = await run_call(running.base + "/", audio, CallOptions(speed=SPEED))
    await running.wait_idle()
    assert report.completed and report.end_reason == "stream_timeout", report.summary()
    assert report.duration == pytest.approx(1.0, abs=0.2)
    assert report.frames_sent == pytest.approx(50, abs=10)
    assert report.stream_id is not None
    records = callbacks_of(running)
    assert events(records) == ["StartStream", "StopStream"]
    check_common(records[-1], report, report.stream_id)
    assert records[-1]["fields"]["Error"] == ""


async def test_the_app_stop_ends_the_stream_with_stop_stream(
    start_server: StartServer, tmp_path: Path
) -> None:
    async def stop_soon(session: CallSession) -> None:
        await asyncio.sleep(0.5 / SPEED)  # half a second of call time
        await session.stop()

    running = await start_server(stop_soon)
    audio = caller_wav(tmp_path / "long.wav", 8.0)
    report = await run_call(running.base + "/", audio, CallOptions(speed=SPEED))
    await running.wait_idle()
    assert report.completed and report.end_reason == "app_stop", report.summary()
    assert report.commands == {"stop": 1}
    assert 0.3 < report.duration < 2.0
    assert report.reconnects == 0  # a stop is not a drop, whatever maxRetries says
    records = callbacks_of(running)
    assert events(records) == ["StartStream", "StopStream"]
    events_stored = [event["kind"] for event in running.server.store.list_calls()[0]["events"]]
    assert "app_stop" in events_stored


async def test_a_slow_callback_endpoint_never_stalls_the_media(
    start_server: StartServer,
) -> None:
    """Callbacks to an endpoint that never answers time out in the background; the media
    keeps its pacing and the call completes."""
    release = asyncio.Event()
    sink = await serve_app([web.post("/slow", hanging_until(release))])
    try:
        running = await start_server(status_callback_url=url_of(sink) + "slow")
        began = time.monotonic()
        report = await run_call(
            running.base + "/", FIXTURE, CallOptions(speed=SPEED, callback_timeout=0.3)
        )
        elapsed = time.monotonic() - began
    finally:
        release.set()
        await sink.cleanup()
    assert report.completed and report.end_reason == "hangup", report.summary()
    # A frame held up by the callback would be late by its 0.3 s timeout; load makes a few
    # milliseconds at most.
    assert report.max_lateness_ms < 100, report.summary()
    assert [(sent.event, sent.status, sent.error) for sent in report.callbacks] == [
        ("StartStream", None, "no answer within 0.3 s"),
    ]
    # The call's own length, plus at most the last callback's timeout to flush it.
    assert elapsed < report.duration / SPEED + 0.3 + 1.0


async def test_cli_signs_callbacks_with_auth_token(start_server: StartServer) -> None:
    running = await start_server(auth_token=TOKEN)
    returncode, stdout, stderr = await run_cli(
        "call",
        running.base + "/",
        "--audio",
        str(FIXTURE),
        "--speed",
        "8",
        "--auth-token",
        TOKEN,
        "--signature",
        "v2",
        "--callback-timeout",
        "2.5",
        timeout=30,
    )
    assert returncode == 0, stderr.decode()
    output = stdout.decode()
    assert "callback" in output and "StartStream HTTP 200" in output
    assert "status callbacks: StartStream 1; 0 failed" in output
    assert {record["signature"] for record in callbacks_of(running)} == {"valid"}


# --- a scripted app ------------------------------------------------------------------------------

Script = Callable[["AppSocket"], Awaitable[None]]


@dataclass
class AppSocket:
    """The app's end of one socket: what arrived, and helpers to script the conversation."""

    socket: web.WebSocketResponse
    index: int
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def until(self, event: str, timeout: float = 10.0) -> dict[str, Any] | None:
        """Read until a frame of ``event`` arrives (returned) or the socket closes (None)."""
        async with asyncio.timeout(timeout):
            async for message in self.socket:
                if message.type is WSMsgType.TEXT:
                    frame: dict[str, Any] = orjson.loads(message.data)
                    self.frames.append(frame)
                    if frame.get("event") == event:
                        return frame
        return None

    async def drain(self) -> None:
        await self.until("no such event", timeout=30.0)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send_str(orjson.dumps(frame).decode())

    async def play(self, stream_id: str, seconds: float) -> None:
        tone = (3000 * np.sin(np.arange(round(seconds * RATE)) * 0.3)).astype(np.int16)
        await self.send(
            {
                "event": "playAudio",
                "streamId": stream_id,
                "media": {
                    "contentType": "audio/x-l16",
                    "sampleRate": RATE,
                    "payload": base64.b64encode(encode_l16(tone, ByteOrder.LITTLE)).decode(),
                },
            }
        )

    def of(self, event: str) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame.get("event") == event]


class ScriptedApp:
    """Answers with one ``<Stream>`` to itself and runs ``script`` on each socket."""

    def __init__(self, attributes: str, script: Script) -> None:
        self.attributes = attributes
        self.script = script
        self.sockets: list[AppSocket] = []
        self.runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        assert self.runner is not None
        return url_of(self.runner)

    async def answer(self, _request: web.Request) -> web.Response:
        ws_url = self.base.replace("http://", "ws://") + "stream?call=42&amp;lang=en"
        xml = (
            f'<Response><Stream bidirectional="true" keepCallAlive="true" {self.attributes}>'
            f"{ws_url}</Stream></Response>"
        )
        return web.Response(text=xml, content_type="application/xml")

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        app_socket = AppSocket(ws, len(self.sockets))
        self.sockets.append(app_socket)
        await self.script(app_socket)
        await ws.close()
        return ws


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[str, Script], Awaitable[ScriptedApp]]]:
    apps: list[ScriptedApp] = []

    async def start(attributes: str, script: Script) -> ScriptedApp:
        app = ScriptedApp(attributes, script)
        app.runner = await serve_app([web.post("/", app.answer), web.get("/stream", app.stream)])
        apps.append(app)
        return app

    yield start
    for app in apps:
        assert app.runner is not None
        await app.runner.cleanup()


def callback_attributes(running: RunningServer, extra: str = "") -> str:
    return f'statusCallbackUrl="{running.base}/webhook" {extra}'


async def test_reconnect_after_the_app_drops_the_socket(
    start_server: StartServer,
    scripted: Callable[[str, Script], Awaitable[ScriptedApp]],
) -> None:
    async def drop_once(app: AppSocket) -> None:
        if app.index == 0:  # the first socket: close after a few frames
            async with asyncio.timeout(10):
                while len(app.of("media")) < 5:
                    await app.until("media")
            return
        await app.drain()

    running = await start_server()
    app = await scripted(
        callback_attributes(running, 'maxRetries="2" extraHeaders="agent=ann"'), drop_once
    )
    report = await run_call(app.base, FIXTURE, CallOptions(speed=SPEED))
    assert report.completed and report.end_reason == "hangup", report.summary()

    # Two sockets: two starts, new streamId, same callId; media carries on after the gap.
    assert len(app.sockets) == 2
    starts = [socket.of("start")[0]["start"] for socket in app.sockets]
    assert starts[0]["callId"] == starts[1]["callId"] == report.call_uuid
    assert starts[0]["streamId"] != starts[1]["streamId"]
    assert [leg.stream_id for leg in report.streams] == [s["streamId"] for s in starts]
    assert report.stream_id == starts[1]["streamId"]
    assert report.reconnects == 1
    assert [leg.end_reason for leg in report.streams] == ["dropped", "hangup"]
    first, second = (socket.of("media") for socket in app.sockets)
    assert second[0]["media"]["chunk"] == 1  # a per-stream index
    assert app.sockets[1].frames[0]["sequenceNumber"] == 0
    assert {frame["streamId"] for frame in second} == {starts[1]["streamId"]}
    gap_ms = int(second[0]["media"]["timestamp"]) - int(first[-1]["media"]["timestamp"])
    assert gap_ms >= 500 - 20  # the reconnect took retry_delay of call time: that audio is lost
    assert report.frames_sent + report.frames_skipped == frames_in(FIXTURE)
    assert report.streams[1].first_frame == report.streams[0].frames_sent + report.frames_skipped
    assert report.frames_sent == len(first) + len(second)

    # Callbacks: started, dropped (with the reason), started again; the hangup sends none.
    records = callbacks_of(running)
    assert events(records) == ["StartStream", "DroppedStream", "StartStream"]
    ids = [starts[0]["streamId"]] * 2 + [starts[1]["streamId"]]
    for record, stream_id in zip(records, ids, strict=True):
        check_common(record, report, stream_id)
        assert record["fields"]["X-VH-agent"] == "ann"
    assert "closed the socket" in records[1]["fields"]["Error"]
    assert records[2]["fields"]["Error"] == ""
    assert "reconnect" in [entry.event for entry in report.timeline]
    assert "streams: 2 (1 reconnects" in "\n".join(report.summary())


async def test_retries_run_out_when_the_app_keeps_dropping(
    start_server: StartServer,
    scripted: Callable[[str, Script], Awaitable[ScriptedApp]],
) -> None:
    async def always_drop(app: AppSocket) -> None:
        await app.until("media")

    running = await start_server()
    app = await scripted(callback_attributes(running, 'maxRetries="1"'), always_drop)
    report = await run_call(app.base, FIXTURE, CallOptions(speed=SPEED, retry_delay=0.1))
    assert report.completed and report.end_reason == "app_closed", report.summary()
    assert len(app.sockets) == 2 and report.reconnects == 1
    assert report.duration < 1.0
    records = callbacks_of(running)
    assert events(records) == ["StartStream", "DroppedStream"] * 2
    assert all(records[i]["fields"]["Error"] for i in (1, 3))


async def test_a_failed_connect_is_retried_then_fails_the_call(
    start_server: StartServer,
    scripted: Callable[[str, Script], Awaitable[ScriptedApp]],
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    running = await start_server()
    xml = (
        f'<Response><Stream bidirectional="true" keepCallAlive="true" maxRetries="2" '
        f'statusCallbackUrl="{running.base}/webhook">ws://127.0.0.1:{port}/s</Stream></Response>'
    )

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(text=xml, content_type="application/xml")

    runner = await serve_app([web.post("/", answer)])
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=SPEED))
    finally:
        await runner.cleanup()
    assert not report.completed and report.failure is not None
    assert "cannot connect" in report.failure
    assert report.reconnects == 2 and report.streams == []
    # There is no call id on the server's side but the callbacks': three drops, one per try.
    records = callbacks_of(running)
    assert events(records) == ["DroppedStream"] * 3
    assert len({record["stream_id"] for record in records}) == 3
    assert all("cannot connect" in record["fields"]["Error"] for record in records)


async def test_played_cleared_and_degraded_callbacks(
    start_server: StartServer,
    scripted: Callable[[str, Script], Awaitable[ScriptedApp]],
) -> None:
    async def playback(app: AppSocket) -> None:
        start = await app.until("start")
        assert start is not None
        stream_id = start["start"]["streamId"]
        await app.play(stream_id, 0.2)
        await app.send({"event": "checkpoint", "streamId": stream_id, "name": "greeting"})
        assert await app.until("playedStream") is not None
        await app.play(stream_id, 0.4)
        await app.send({"event": "clearAudio", "streamId": stream_id})
        assert await app.until("clearedAudio") is not None
        await app.play(stream_id, 1.0)  # over the carrier's 0.5 s queue: degraded
        await app.drain()

    running = await start_server()
    app = await scripted(callback_attributes(running), playback)
    report = await run_call(app.base, FIXTURE, CallOptions(speed=SPEED, queue_cap=0.5))
    assert report.completed and report.end_reason == "hangup", report.summary()
    assert report.degraded
    assert report.stream_id is not None
    records = callbacks_of(running)
    assert events(records) == ["StartStream", "PlayedStream", "ClearedAudio", "DegradedStream"]
    for record in records:
        check_common(record, report, report.stream_id)
    fields = {record["event"]: record["fields"] for record in records}
    assert fields["PlayedStream"]["Name"] == "greeting"
    assert fields["ClearedAudio"]["Error"] == ""
    assert "queue over 0.5s" in fields["DegradedStream"]["Error"]
    assert all(sent.ok for sent in report.callbacks)


async def test_cancelling_a_call_does_not_wait_for_its_callbacks(
    start_server: StartServer,
) -> None:
    release = asyncio.Event()
    sink = await serve_app([web.post("/slow", hanging_until(release))])
    try:
        running = await start_server(status_callback_url=url_of(sink) + "slow")
        call = asyncio.create_task(
            run_call(running.base + "/", FIXTURE, CallOptions(speed=SPEED, callback_timeout=5))
        )
        await asyncio.sleep(0.2)  # socket up, StartStream hanging
        began = time.monotonic()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert time.monotonic() - began < 1.0
    finally:
        release.set()
        await sink.cleanup()


async def test_a_failed_reconnect_ends_the_call(start_server: StartServer) -> None:
    """The app drops the socket, then refuses the reconnect: the stream is over, so is the call."""
    running = await start_server()
    connects: list[int] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        connects.append(len(connects))
        if len(connects) > 1:
            return web.Response(status=503, text="down")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        app = AppSocket(ws, 0)
        async with asyncio.timeout(10):
            while len(app.of("media")) < 3:
                await app.until("media")
        await ws.close()
        return ws

    async def answer(request: web.Request) -> web.Response:
        ws_url = f"ws://{request.host}/stream"
        xml = (
            f'<Response><Stream bidirectional="true" keepCallAlive="true" maxRetries="1" '
            f'statusCallbackUrl="{running.base}/webhook">{ws_url}</Stream></Response>'
        )
        return web.Response(text=xml, content_type="application/xml")

    runner = await serve_app([web.post("/", answer), web.get("/stream", stream)])
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=SPEED))
    finally:
        await runner.cleanup()
    assert report.completed and report.end_reason == "app_closed", report.summary()
    assert connects == [0, 1] and report.reconnects == 1 and len(report.streams) == 1
    assert report.duration < 1.5
    records = callbacks_of(running)
    assert events(records) == ["StartStream", "DroppedStream", "DroppedStream"]
    assert "closed the socket" in records[1]["fields"]["Error"]
    assert "503" in records[2]["fields"]["Error"]
    assert records[2]["stream_id"] != records[0]["stream_id"]


async def test_cli_retry_delay_sets_the_pause_before_a_reconnect(
    start_server: StartServer,
    scripted: Callable[[str, Script], Awaitable[ScriptedApp]],
    tmp_path: Path,
) -> None:
    async def drop_once(app: AppSocket) -> None:
        if app.index == 0:
            await app.until("media")
            return
        await app.drain()

    running = await start_server()
    app = await scripted(callback_attributes(running, 'maxRetries="1"'), drop_once)
    report_path = tmp_path / "report.json"
    returncode, _, stderr = await run_cli(
        "call",
        app.base,
        "--audio",
        str(FIXTURE),
        "--speed",
        "4",
        "--retry-delay",
        "1.5",
        "--report",
        str(report_path),
        "--quiet",
        timeout=30,
    )
    assert returncode == 0, stderr.decode()
    report = orjson.loads(report_path.read_bytes())
    first, second = report["streams"]
    assert first["end_reason"] == "dropped"
    assert second["started_at"] - first["ended_at"] == pytest.approx(1.5, abs=0.3)
