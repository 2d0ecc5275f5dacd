"""The carrier profiles (``live``, ``documented``, ``strict``) against a real app over loopback:
what reaches the app's socket under each, what the strict carrier refuses, and that the report,
the CLI and the pytest fixture say which profile ran."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import run_cli, serve_app, speech, url_of
from tests.e2e.test_emulator_fidelity import (
    FIXTURE,
    RATE,
    App,
    call_app,
    correlation,
    play_audio,
    rms,
    serve_stream_app,
    tone,
)
from vobiz_stream.emulator import CallOptions, CarrierProfile, run_call

pytest_plugins = ["pytester"]


def stream_id_of(start: dict[str, Any]) -> str:
    """The streamId of a ``start`` in either shape."""
    nested = start.get("start")
    return str(nested["streamId"] if isinstance(nested, dict) else start["streamId"])


async def test_live_sends_the_nested_start_no_stop_and_little_endian() -> None:
    app = App()
    report = await call_app(app, FIXTURE, CallOptions(speed=4, carrier=CarrierProfile.LIVE))
    assert report.completed, report.summary()
    [start] = app.of("start")
    assert set(start["start"]) >= {"callId", "streamId", "accountId", "tracks", "mediaFormat"}
    assert "from" not in start
    assert app.of("stop") == []
    assert all("chunk" in m["media"] and "contentType" not in m["media"] for m in app.of("media"))
    received = np.frombuffer(app.caller_audio(), dtype="<i2")
    assert correlation(received, speech()[0]) >= 0.99
    assert report.carrier == "live" and report.l16_byte_order == "little"
    assert "carrier profile live: nested start, no stop, little-endian L16" in report.summary()


@pytest.mark.parametrize("profile", [CarrierProfile.DOCUMENTED, CarrierProfile.STRICT])
async def test_documented_sends_the_flat_start_a_stop_and_big_endian(
    profile: CarrierProfile,
) -> None:
    app = App()
    report = await call_app(app, FIXTURE, CallOptions(speed=4, carrier=profile))
    assert report.completed, report.summary()
    [start] = app.of("start")
    assert "start" not in start
    assert start["contentType"] == "audio/x-l16;rate=8000"
    assert {"streamId", "callId", "accountId", "from", "to", "direction"} <= set(start)
    media = app.of("media")
    assert all(m["media"]["contentType"] == "audio/x-l16" for m in media)
    assert all(m["media"]["sampleRate"] == RATE for m in media)
    [stop] = app.of("stop")
    assert app.messages[-1] == stop and stop["streamId"] == start["streamId"]
    received = np.frombuffer(app.caller_audio(), dtype=">i2")
    assert correlation(received, speech()[0]) >= 0.99
    assert report.carrier == profile.value and report.l16_byte_order == "big"
    assert report.to_json()["carrier"] == profile.value
    summary = report.summary()
    assert any(line.startswith(f"carrier profile {profile.value}: flat start") for line in summary)


async def sloppy_but_tolerated(socket: web.WebSocketResponse, start: dict[str, Any]) -> None:
    """What a lenient carrier takes: playAudio without streamId, and with ``;rate`` in its
    contentType (0.5 s each)."""
    stream_id = stream_id_of(start)
    await asyncio.sleep(0.1)
    for _ in range(25):
        await socket.send_json(play_audio(tone(0.02), None))
    for _ in range(25):
        loose = play_audio(tone(0.02), stream_id)
        loose["media"]["contentType"] = "audio/x-l16;rate=8000"
        del loose["media"]["sampleRate"]
        await socket.send_json(loose)


async def test_live_and_documented_play_what_the_documents_call_invalid(tmp_path: Path) -> None:
    for profile in (CarrierProfile.LIVE, CarrierProfile.DOCUMENTED):
        heard_path = tmp_path / f"{profile}.wav"
        options = CallOptions(heard_path=heard_path, carrier=profile)
        report = await call_app(App(script=sloppy_but_tolerated), FIXTURE, options)
        assert report.completed and not report.app_broke_stream, report.summary()
        heard = np.frombuffer(heard_path.read_bytes()[44:], dtype="<i2")
        assert rms(heard[int(0.2 * RATE) : int(1.0 * RATE)]) > 4000, profile
        assert {w.kind for w in report.app_warnings} == {"no_stream_id"}


async def test_strict_refuses_what_the_documents_call_invalid(tmp_path: Path) -> None:
    heard_path = tmp_path / "heard.wav"
    options = CallOptions(heard_path=heard_path, carrier=CarrierProfile.STRICT)
    report = await call_app(App(script=sloppy_but_tolerated), FIXTURE, options)
    assert report.completed, report.summary()
    assert report.app_broke_stream  # the CLI exits 1
    counts = {warning.kind: warning.count for warning in report.app_warnings}
    assert counts == {"no_stream_id": 25, "undocumented_play_audio": 25}
    by_kind = {warning.kind: warning for warning in report.app_warnings}
    assert by_kind["no_stream_id"].carrier.startswith("refused (strict carrier)")
    assert by_kind["no_stream_id"].fatal and by_kind["undocumented_play_audio"].fatal
    assert "media.contentType 'audio/x-l16;rate=8000' is not one of" in (
        by_kind["undocumented_play_audio"].first
    )
    heard = np.frombuffer(heard_path.read_bytes()[44:], dtype="<i2")
    assert rms(heard) == 0  # nothing refused was played
    assert report.commands.get("playAudio", 0) == 0


async def test_strict_refuses_commands_on_a_one_way_stream() -> None:
    async def answer(request: web.Request) -> web.Response:
        xml = f'<Response><Stream>ws://{request.host}/stream</Stream><Wait length="2"/></Response>'
        return web.Response(text=xml, content_type="application/xml")

    async def stream(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            start = orjson.loads(message.data)
            if start.get("event") == "start":
                stream_id = stream_id_of(start)
                await socket.send_json(play_audio(tone(0.02), stream_id))
                await socket.send_json({"event": "checkpoint", "streamId": stream_id, "name": "x"})
        return socket

    for profile, refused in ((CarrierProfile.LIVE, False), (CarrierProfile.STRICT, True)):
        runner = await serve_app([web.post("/", answer), web.get("/stream", stream)])
        try:
            report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=4, carrier=profile))
        finally:
            await runner.cleanup()
        assert report.completed, report.summary()
        assert report.ignored_commands == 2
        assert report.app_broke_stream is refused, profile
        if refused:
            [warning] = report.app_warnings
            assert warning.kind == "one_way_command" and warning.count == 2


@pytest.mark.parametrize("profile", ["documented", "strict"])
async def test_the_cli_runs_and_reports_the_profile(tmp_path: Path, profile: str) -> None:
    app = App()
    runner = await serve_stream_app(app)
    try:
        code, stdout, stderr = await run_cli(
            "call", url_of(runner), "--audio", str(FIXTURE), "--speed", "4", "--quiet",
            "--carrier", profile, "--report", str(tmp_path / "report.json"),
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 0, stderr.decode()
    assert f"carrier profile {profile}: flat start, a stop at the end" in stdout.decode()
    assert orjson.loads((tmp_path / "report.json").read_bytes())["carrier"] == profile
    assert len(app.of("stop")) == 1 and "start" not in app.of("start")[0]


async def test_the_cli_exits_1_when_the_strict_carrier_refused_a_command() -> None:
    runner = await serve_stream_app(App(script=sloppy_but_tolerated))
    try:
        code, stdout, _ = await run_cli(
            "call", url_of(runner), "--audio", str(FIXTURE), "--quiet", "--carrier", "strict"
        )
    finally:
        await runner.cleanup()
    assert code == 1
    assert "refused (strict carrier)" in stdout.decode()


FIXTURE_USER_TEST = """
import pytest


@pytest.mark.asyncio
async def test_under_the_chosen_profile(vobiz_call):
    call = await vobiz_call("{url}", "{audio}", speed=4)
    assert call.carrier == "documented" and call.l16_byte_order == "big"
    named = await vobiz_call("{url}", "{audio}", speed=4, carrier="live")
    assert named.carrier == "live"
"""


async def test_the_fixture_takes_the_profile_from_the_command_line(
    pytester: pytest.Pytester,
) -> None:
    app = App()
    runner = await serve_stream_app(app)
    try:
        test = FIXTURE_USER_TEST.replace("{url}", url_of(runner)).replace("{audio}", str(FIXTURE))
        pytester.makepyfile(test_user=test)
        result = await asyncio.to_thread(
            pytester.runpytest_subprocess, "-p", "no:cacheprovider", "--vobiz-carrier", "documented"
        )
    finally:
        await runner.cleanup()
    result.assert_outcomes(passed=1)
    assert len(app.of("stop")) == 1  # the documented call sent one; the live one none


async def test_a_load_runs_every_call_under_the_profile_and_says_so(tmp_path: Path) -> None:
    app = App()
    runner = await serve_stream_app(app)
    try:
        code, stdout, stderr = await run_cli(
            "load", url_of(runner), "--calls", "3", "--rate", "20", "--duration", "1",
            "--carrier", "documented", "--quiet", "--report", str(tmp_path / "load.json"),
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 0, stderr.decode()
    assert "carrier profile documented, L16 sent big-endian" in stdout.decode()
    assert orjson.loads((tmp_path / "load.json").read_bytes())["carrier"] == "documented"
    starts = app.of("start")
    assert len(starts) == 3 and all("start" not in start for start in starts)
    assert len(app.of("stop")) == 3
