"""The verbs after the ``<Stream>``, against small apps that answer with them.

A background ``<Stream>`` (no ``keepCallAlive``) runs while ``<Speak>``, ``<Wait>``... execute, and
the call ends when they do: the socket closes then, with no ``stop``, and what was said is in the
heard WAV at its place on the call clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.e2e.conftest import read_wav, run_cli, serve_app, url_of, write_wav
from vobiz_stream.audio import Pcm
from vobiz_stream.audio.speech import SpeechUnavailable, synthesize, tone
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.verbs import speak_tone_seconds

RATE = 8000
FRAME = RATE // 50
SPEED = 2.0

Script = Callable[[web.WebSocketResponse], Coroutine[Any, Any, None]]
"""What an app does on its socket while it reads the carrier's frames."""


def said(text: str) -> Pcm:
    """What the emulator plays for ``<Speak>text</Speak>``: espeak-ng's speech, else its tone."""
    try:
        return synthesize(text, RATE)
    except SpeechUnavailable:
        return tone(speak_tone_seconds(text), RATE)


def caller_wav(path: Path, seconds: float) -> Path:
    """Noise with no zero sample, so every sample the app receives is the caller's."""
    rng = np.random.default_rng(1)
    return write_wav(path, rng.integers(1, 300, round(seconds * RATE)), RATE)


@dataclass
class VerbApp:
    """Answers with ``<Stream>`` to itself followed by ``after``; keeps the socket's frames, when
    it opened and closed (wall clock) and how, and the status callbacks."""

    stream_attributes: str
    after: str
    script: Script | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    opened: float = 0.0
    closed: float = 0.0
    last: WSMsgType | None = None
    callbacks: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def answer(self, request: web.Request) -> web.Response:
        xml = (
            f'<Response><Stream statusCallbackUrl="http://{request.host}/events" '
            f"{self.stream_attributes}>ws://{request.host}/stream</Stream>{self.after}</Response>"
        )
        return web.Response(text=xml, content_type="application/xml")

    async def events(self, request: web.Request) -> web.Response:
        self.callbacks.append(str((await request.post())["Event"]))
        return web.Response(text="OK")

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.opened = time.monotonic()
        if self.script is not None:
            asyncio.create_task(self.script(ws))  # noqa: RUF006 - ends with the socket
        async with asyncio.timeout(20):
            while True:
                message = await ws.receive()
                if message.type is not WSMsgType.TEXT:
                    self.closed, self.last = time.monotonic(), message.type
                    break
                self.frames.append(orjson.loads(message.data))
        self.ended.set()
        return ws

    def media(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["event"] == "media"]


@pytest.fixture
async def verb_app() -> AsyncIterator[Callable[..., Awaitable[tuple[VerbApp, str]]]]:
    runners: list[web.AppRunner] = []

    async def start(
        after: str,
        stream_attributes: str = "",
        script: Script | None = None,
    ) -> tuple[VerbApp, str]:
        app = VerbApp(stream_attributes, after, script)
        runner = await serve_app(
            [
                web.post("/", app.answer),
                web.post("/events", app.events),
                web.get("/stream", app.stream),
            ]
        )
        runners.append(runner)
        return app, url_of(runner)

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_speak_wait_hangup_after_a_one_way_stream(
    verb_app: Callable[..., Awaitable[tuple[VerbApp, str]]], tmp_path: Path
) -> None:
    app, url = await verb_app('<Speak>Hello</Speak><Wait length="1"/><Hangup/>')
    heard_path, caller_path = tmp_path / "heard.wav", tmp_path / "caller.wav"
    report = await run_call(
        url,
        caller_wav(tmp_path / "in.wav", 6.0),
        CallOptions(speed=SPEED, heard_path=heard_path, caller_path=caller_path),
    )
    async with asyncio.timeout(5):
        await app.ended.wait()
    speech = said("Hello")
    speak_seconds = len(speech) / RATE
    frames = math.ceil((speak_seconds + 1) * 50)  # the call ends on the frame grid
    end = frames / 50

    assert report.completed and report.end_reason == "xml_hangup", report.summary()
    assert report.duration == pytest.approx(end)
    assert [(verb.verb, verb.started_at) for verb in report.verbs] == [
        ("Speak", 0.0),
        ("Wait", pytest.approx(speak_seconds, abs=1e-4)),
        ("Hangup", pytest.approx(speak_seconds + 1, abs=1e-4)),
    ]
    assert report.verbs[0].ended_at == pytest.approx(speak_seconds, abs=1e-4)

    # The socket closed at the hangup (call clock: wall seconds times the speed), no stop.
    assert (app.closed - app.opened) * SPEED == pytest.approx(end, abs=0.25)
    assert app.last is WSMsgType.CLOSE
    assert [frame["event"] for frame in app.frames if frame["event"] != "media"] == ["start"]
    # The caller's audio stopped at the hangup.
    media = app.media()
    assert len(media) == report.frames_sent == frames
    assert media[-1]["media"]["chunk"] == frames
    caller, _, _ = read_wav(caller_path)
    assert len(caller) == frames * FRAME

    # What the caller heard: the speech from 0, then silence to the hangup.
    heard, rate, _ = read_wav(heard_path)
    heard = heard[:, 0]
    assert rate == RATE and len(heard) == frames * FRAME
    np.testing.assert_array_equal(heard[: len(speech)], speech)
    assert speech.any() and not heard[len(speech) :].any()

    # A hangup is no StopStream (PROTOCOL.md section 5): the callbacks end with the start.
    assert app.callbacks == ["StartStream"]


async def test_the_verbs_running_out_end_the_call(
    verb_app: Callable[..., Awaitable[tuple[VerbApp, str]]], tmp_path: Path
) -> None:
    app, url = await verb_app('<Wait length="1"/><Dial>+911234567890</Dial><Play>x.mp3</Play>')
    heard_path = tmp_path / "heard.wav"
    report = await run_call(
        url, caller_wav(tmp_path / "in.wav", 6.0), CallOptions(speed=4, heard_path=heard_path)
    )
    assert report.completed and report.end_reason == "xml_done", report.summary()
    assert report.duration == pytest.approx(2.0)
    assert [verb.verb for verb in report.verbs] == ["Wait", "Dial", "Play"]
    assert "not emulated" in report.verbs[1].detail
    heard, _, _ = read_wav(heard_path)
    heard = heard[:, 0]
    assert len(heard) == 2 * RATE
    assert not heard[:RATE].any()
    np.testing.assert_array_equal(heard[RATE:], tone(1.0, RATE, hz=440))
    assert len(app.media()) == 100
    assert "hangup" in [entry.event for entry in report.timeline]


async def test_the_caller_hangs_up_before_the_verbs_end(
    verb_app: Callable[..., Awaitable[tuple[VerbApp, str]]], tmp_path: Path
) -> None:
    _app, url = await verb_app('<Wait length="30"/><Hangup/>')
    report = await run_call(url, caller_wav(tmp_path / "in.wav", 1.0), CallOptions(speed=4))
    assert report.completed and report.end_reason == "hangup", report.summary()
    assert report.duration == pytest.approx(1.0)
    assert [verb.verb for verb in report.verbs] == ["Wait"]  # the <Hangup> never ran
    assert report.verbs[0].ended_at == pytest.approx(1.0)


async def test_a_trailing_one_way_stream_ends_the_call_at_once(
    verb_app: Callable[..., Awaitable[tuple[VerbApp, str]]], tmp_path: Path
) -> None:
    app, url = await verb_app("")
    report = await run_call(url, caller_wav(tmp_path / "in.wav", 2.0), CallOptions(speed=4))
    assert report.completed and report.end_reason == "answer_ended", report.summary()
    assert report.duration == 0 and report.frames_sent == 0
    assert any("keepCallAlive" in warning for warning in report.warnings)
    async with asyncio.timeout(5):
        await app.ended.wait()
    assert app.media() == [] and app.callbacks == ["StartStream"]


async def test_after_a_keep_call_alive_stream_the_verbs_run_when_it_ends(
    verb_app: Callable[..., Awaitable[tuple[VerbApp, str]]], tmp_path: Path
) -> None:
    """The app stops its stream at 0.5 s; the call goes on to say goodbye, then hangs up."""

    async def stop_soon(ws: web.WebSocketResponse) -> None:
        await asyncio.sleep(0.5 / SPEED)
        await ws.send_str(orjson.dumps({"event": "stop"}).decode())

    app, url = await verb_app(
        "<Speak>Goodbye</Speak>", 'bidirectional="true" keepCallAlive="true"', stop_soon
    )
    heard_path = tmp_path / "heard.wav"
    report = await run_call(
        url,
        caller_wav(tmp_path / "in.wav", 6.0),
        CallOptions(speed=SPEED, heard_path=heard_path),
    )
    speech = said("Goodbye")
    assert report.completed and report.end_reason == "app_stop", report.summary()
    [speak] = report.verbs
    stopped = report.streams[0].ended_at
    assert stopped is not None and 0.4 < stopped < 1.0
    assert speak.started_at == pytest.approx(stopped, abs=1 / RATE)
    assert report.duration == pytest.approx(stopped + len(speech) / RATE, abs=1 / RATE)
    heard, _, _ = read_wav(heard_path)
    heard = heard[:, 0]
    start = round(speak.started_at * RATE)
    assert not heard[:start].any()
    np.testing.assert_array_equal(heard[start : start + len(speech)], speech)
    # The stream's own end, while the call goes on, is a StopStream.
    assert app.callbacks == ["StartStream", "StopStream"]


async def test_a_forbidden_stream_fails_the_call_in_the_cli(
    verb_app: Callable[..., Awaitable[tuple[VerbApp, str]]], tmp_path: Path
) -> None:
    _app, url = await verb_app("<Speak>never</Speak>", 'bidirectional="true" audioTrack="both"')
    returncode, stdout, stderr = await run_cli(
        "call", url, "--audio", str(caller_wav(tmp_path / "in.wav", 1.0)), timeout=20
    )
    assert returncode == 1, stderr.decode()
    assert "call failed: invalid answer XML" in stdout.decode()
    assert "audioTrack='both'" in stdout.decode()
