"""The emulator tells apps the truth: what live Vobiz sends, what it does with sloppy commands,
which audio files it takes, what ``/stats`` counts. Each app here is a small aiohttp app on
loopback that serves an answer and a stream socket of its own.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
import soundfile
from aiohttp import WSMsgType, web

from tests.e2e.conftest import (
    DATA,
    Carrier,
    StartServer,
    run_cli,
    serve_app,
    speech,
    url_of,
)
from vobiz_stream.audio import Resampler
from vobiz_stream.emulator import CallOptions, CallReport, run_call

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


async def call_app(
    app: App, audio: Path = FIXTURE, options: CallOptions | None = None
) -> CallReport:
    """One emulated call to ``app`` (served for the call only)."""
    runner = await serve_stream_app(app)
    try:
        return await run_call(url_of(runner), audio, options or CallOptions(speed=4))
    finally:
        await runner.cleanup()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    size = min(len(a), len(b))
    return float(np.corrcoef(a[:size].astype(np.float64), b[:size].astype(np.float64))[0, 1])


async def test_l16_goes_out_little_endian_by_default(tmp_path: Path) -> None:
    app = App()
    report = await call_app(app)
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
    report = await call_app(app)
    assert report.completed, report.summary()
    [cleared] = app.of("clearedAudio")
    numbers = [int(message["sequenceNumber"]) for message in app.messages]
    assert numbers == list(range(len(app.messages)))  # one count over every event, cleared too
    assert cleared["sequenceNumber"] > app.of("start")[0]["sequenceNumber"]


def tone(seconds: float, rate: int = RATE, hz: float = 440.0) -> bytes:
    """A loud little-endian L16 tone (what the app plays)."""
    t = np.arange(round(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def play_audio(audio: bytes, stream_id: str | None, rate: int = RATE) -> dict[str, Any]:
    message: dict[str, Any] = {
        "event": "playAudio",
        "media": {
            "contentType": "audio/x-l16",
            "sampleRate": rate,
            "payload": base64.b64encode(audio).decode(),
        },
    }
    if stream_id is not None:
        message["streamId"] = stream_id
    return message


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


async def test_sloppy_commands_are_counted_warnings_saying_what_the_carrier_did(
    tmp_path: Path,
) -> None:
    async def sloppy(socket: web.WebSocketResponse, start: dict[str, Any]) -> None:
        stream_id = start["start"]["streamId"]
        await asyncio.sleep(0.1)
        for _ in range(25):  # 0.5 s of tone, no streamId: played, as older documents allow
            await socket.send_json(play_audio(tone(0.02), None))
        await asyncio.sleep(0.9)
        await socket.send_json({"event": "evil\nline\x1b[31m", "junk": "x" * 100_000})
        await socket.send_json({"event": "hello"})
        for _ in range(2):  # 16 kHz on an 8 kHz stream: played, converted
            await socket.send_json(play_audio(tone(0.02, 16000), stream_id, 16000))
        await socket.send_str("{not json\r\n")
        await socket.send_str("\x00" * 50_000)
        await asyncio.sleep(0.2)
        for _ in range(25):  # another stream's id: not played
            await socket.send_json(play_audio(tone(0.02), "not-" + stream_id))

    app = App(script=sloppy)
    heard_path = tmp_path / "heard.wav"
    report = await call_app(app, FIXTURE, CallOptions(heard_path=heard_path))
    assert report.completed, report.summary()
    counts = {warning.kind: warning.count for warning in report.app_warnings}
    assert counts == {
        "no_stream_id": 25,
        "unknown_event": 2,
        "format_mismatch": 2,
        "invalid_json": 2,
        "wrong_stream_id": 25,
    }
    assert report.malformed_commands == 2
    by_kind = {warning.kind: warning for warning in report.app_warnings}
    assert "acted on" in by_kind["no_stream_id"].carrier
    assert "ignored" in by_kind["wrong_stream_id"].carrier
    assert "played, converted" in by_kind["format_mismatch"].carrier
    assert "audio/x-l16;rate=16000 on a audio/x-l16;rate=8000 stream" in str(
        by_kind["format_mismatch"]
    )
    unknown = by_kind["unknown_event"].first
    assert unknown.startswith('{"event": "evil') and "(100045 bytes)" in unknown
    assert len(unknown) < 300
    assert by_kind["invalid_json"].first == "{not json\\x0d\\x0a"
    assert len(report.warnings) == 5
    assert report.warnings[0].startswith("commands without streamId (25): acted on")
    for line in report.warnings:  # escaped: one line each, no terminal escapes
        assert not any(ch in line for ch in "\r\n\x1b\x00"), line
        assert len(line) < 600
    summary = "\n".join(report.summary())
    assert "warning: commands naming another stream (25): ignored" in summary
    data = orjson.loads(orjson.dumps(report.to_json()))
    assert {w["kind"]: w["count"] for w in data["app_warnings"]} == counts
    # What the caller heard: the tone sent without streamId, then nothing of the other stream.
    heard = np.frombuffer(heard_path.read_bytes()[44:], dtype="<i2")
    assert rms(heard[int(0.2 * RATE) : int(0.5 * RATE)]) > 4000
    assert rms(heard[int(1.45 * RATE) :]) == 0


async def test_any_wav_reaches_the_app_sample_for_sample(tmp_path: Path) -> None:
    """A 24-bit WAVE_FORMAT_EXTENSIBLE file (once refused as "unknown format: 65534")."""
    caller, _ = speech()
    path = tmp_path / "wide.wav"
    soundfile.write(path, caller, RATE, subtype="PCM_24", format="WAVEX")
    app = App()
    report = await call_app(app, path)
    assert report.completed, report.summary()
    received = np.frombuffer(app.caller_audio(), dtype="<i2")
    np.testing.assert_array_equal(received[: len(caller)], caller)
    assert not received[len(caller) :].any()  # the last frame padded with silence
    assert report.caller_audio == (
        f"caller audio {path}: 8 kHz mono 24-bit WAV (extensible), converted to 16-bit"
    )


async def test_a_stereo_flac_at_44k_is_mixed_resampled_and_said_so(tmp_path: Path) -> None:
    caller, _ = speech()
    high = Resampler(RATE, 44100)
    upsampled = np.concatenate([high.process(caller), high.flush()])
    path = tmp_path / "caller.flac"
    soundfile.write(path, np.stack([upsampled, upsampled], axis=1), 44100)
    app = App()
    runner = await serve_stream_app(app)
    try:
        code, stdout, stderr = await run_cli(
            "call", url_of(runner), "--audio", str(path), "--speed", "4", "--quiet"
        )
    finally:
        await runner.cleanup()
    assert code == 0, stderr.decode()
    assert (
        f"caller audio {path}: 44.1 kHz stereo 16-bit FLAC, mixed to mono and resampled to 8 kHz"
        in stdout.decode().splitlines()
    )
    received = np.frombuffer(app.caller_audio(), dtype="<i2")
    assert correlation(received, caller) >= 0.99


@pytest.mark.parametrize("command", ["call", "load"])
async def test_an_unreadable_file_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "caller.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(2000))
    extra = ["--calls", "1"] if command == "load" else []
    code, _, stderr = await run_cli(command, "http://127.0.0.1:9/", "--audio", str(path), *extra)
    lines = stderr.decode().splitlines()
    assert code == 2, stderr.decode()
    assert len(lines) == 1 and "Traceback" not in stderr.decode()
    assert lines[0].startswith(
        f"vobiz-stream {command}: caller audio {path} cannot be read: 2012 bytes, "
        "looks like MP4/M4A (AAC)"
    )
    assert "ffmpeg -i" in lines[0] and "sox " in lines[0]


async def test_stats_leave_out_timestamps_that_cannot_be_due_times(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    """A carrier (or a forger) stamping frames -2**63, 2**64 - 1 or NaN among normal frames:
    ``GET /stats`` keeps its percentiles to the normal ones."""
    running = await start_server(l16_byte_order="little")
    carrier = await connect(running.ws_url)
    await carrier.start()
    silence = bytes(2 * FRAME)
    wild = [str(-(2**63)), str(2**64 - 1), str(-(2**63)), str(2**64 - 1), "NaN", "1e400"]
    for chunk in range(40):
        now_ms = int(time.time() * 1000)
        stamp = wild[chunk // 5] if chunk % 5 == 4 and chunk // 5 < len(wild) else str(now_ms)
        await carrier.send(
            {
                "event": "media",
                "sequenceNumber": chunk + 1,
                "streamId": "stream-1",
                "media": {"track": "inbound", "timestamp": stamp, "chunk": chunk,
                          "payload": base64.b64encode(silence).decode()},
            }
        )  # fmt: skip
    await carrier.socket.close()
    await running.wait_idle()
    async with aiohttp.ClientSession() as client, client.get(running.base + "/stats") as reply:
        stats = await reply.json()
    latency = stats["handling_latency_ms"]
    assert latency["p99"] is not None and latency["p99"] < 5_000, latency
    assert latency["max"] is not None and latency["max"] < 5_000, latency
    assert latency["count"] == 34, latency
    assert latency["unplaced"] == 4  # NaN and 1e400 are not integers: skipped as bad frames


async def test_a_load_totals_the_warnings_of_its_calls(tmp_path: Path) -> None:
    async def no_stream_id(socket: web.WebSocketResponse, start: dict[str, Any]) -> None:
        for _ in range(5):
            await socket.send_json(play_audio(tone(0.02), None))

    runner = await serve_stream_app(App(script=no_stream_id))
    try:
        code, stdout, stderr = await run_cli(
            "load", url_of(runner), "--calls", "2", "--duration", "1", "--quiet",
            "--report", str(tmp_path / "load.json"),
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 0, stderr.decode()
    assert orjson.loads((tmp_path / "load.json").read_bytes())["app_warnings"] == {
        "no_stream_id": 10
    }
    assert "app warnings (see one call's report for what the carrier does): no_stream_id 10" in (
        stdout.decode()
    )
