"""The local carrier's REST API over loopback: Vobiz's own Python SDK pointed at it, raw HTTP for
the shapes and errors, an app that receives the calls and streams it places."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

import aiohttp
import pytest
from vobiz.exceptions import AuthenticationError, ResourceNotFoundError, ValidationError

from tests.e2e.carrier_support import (
    AUTH_ID,
    AUTH_TOKEN,
    HEADERS,
    StartCarrier,
    StreamApp,
    eventually,
    place,
)
from tests.e2e.conftest import DATA, StartServer
from vobiz_stream.emulator import CallOptions
from vobiz_stream.rest import VobizClient


async def test_the_vobiz_sdk_places_lists_presses_and_hangs_up(
    start_carrier: StartCarrier,
) -> None:
    carrier = await start_carrier()
    app = StreamApp()
    runner = await app.serve()
    sdk = carrier.sdk()
    try:
        placed = await asyncio.to_thread(
            sdk.calls.create, "+911111111111", "+912222222222", app.url + "answer",
            answer_method="GET",
        )  # fmt: skip
        call_uuid = placed.request_uuid
        assert placed.message == "call fired" and placed.api_id
        await eventually(lambda: bool(app.of("media")))
        live = await asyncio.to_thread(sdk.calls.list_live)
        assert live.calls == [call_uuid]
        call = await asyncio.to_thread(sdk.calls.get_live, call_uuid)
        assert (call.call_uuid, call.call_status, call.direction) == (
            call_uuid, "in-progress", "outbound",
        )  # fmt: skip
        assert (call.__dict__["from"], call.to) == ("+911111111111", "+912222222222")
        [start] = app.of("start")
        assert start["start"]["callId"] == call_uuid and start["start"]["accountId"] == AUTH_ID
        assert call.stream_id == start["start"]["streamId"]
        await asyncio.to_thread(sdk.calls.send_digits, call_uuid, "4#", "aleg")
        await eventually(lambda: len(app.of("dtmf")) == 2)
        assert [m["dtmf"]["digit"] for m in app.of("dtmf")] == ["4", "#"]
        began = time.monotonic()
        await asyncio.to_thread(sdk.calls.hangup, call_uuid)
        assert time.monotonic() - began < 5
        await eventually(lambda: app.closed == 1)
        assert (await asyncio.to_thread(sdk.calls.list_live)).calls == []
        with pytest.raises(ResourceNotFoundError):
            await asyncio.to_thread(sdk.calls.get_live, call_uuid)
        ended = await asyncio.to_thread(sdk.calls.get, call_uuid)
        assert ended.call_status == "completed" and ended.hangup_cause == "api_hangup"
        with pytest.raises(ResourceNotFoundError):
            await asyncio.to_thread(sdk.calls.hangup, call_uuid)
    finally:
        await runner.cleanup()
    # The answer was fetched as asked (GET, the call's fields in the query), as an outbound call.
    [(method, fields)] = app.answer_requests
    assert method == "GET" and fields["CallUUID"] == call_uuid
    assert fields["From"] == "+911111111111" and fields["ParentAuthID"] == AUTH_ID


async def test_wrong_credentials_are_refused_with_401(
    start_carrier: StartCarrier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "vobiz_stream.carrier")
    carrier = await start_carrier()
    async with aiohttp.ClientSession() as http:  # the first refusal, with a hostile path
        evil = {"X-Auth-ID": AUTH_ID, "X-Auth-Token": "x"}
        async with http.get(carrier.account + "/Call/%1b[31m%0a/", headers=evil) as response:
            assert response.status == 401
    with pytest.raises(AuthenticationError, match="wrong X-Auth-ID or X-Auth-Token"):
        await asyncio.to_thread(carrier.sdk("not-the-token").calls.list_live)
    async with aiohttp.ClientSession() as http:
        async with http.get(carrier.account + "/Call/") as response:
            assert response.status == 401
            body = await response.json()
            assert body["error"] == "authentication failed: send X-Auth-ID and X-Auth-Token"
            assert body["api_id"]
        other = {**HEADERS, "X-Auth-ID": "MA_SOMEONE"}
        async with http.get(carrier.account + "/Call/", headers=other) as response:
            assert response.status == 401
        async with http.get(f"{carrier.base}/Account/MA_OTHER/Call/", headers=HEADERS) as response:
            assert response.status == 404
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1  # the first is logged, the next three counted
    assert "(401); later refusals are counted, not logged" in refusals[0]
    assert "Call/\\x1b[31m\\x0a/" in refusals[0]  # escaped, on one line
    assert not any(ch in refusals[0] for ch in "\x1b\n\r")


async def test_errors_are_json_that_say_what_to_change(start_carrier: StartCarrier) -> None:
    carrier = await start_carrier()
    sdk = carrier.sdk()
    with pytest.raises(ValidationError, match="answer_url is required"):
        await asyncio.to_thread(sdk.calls.create, "+911", "+912", "")
    with pytest.raises(ValidationError, match="answer_url must be an http or https URL"):
        await asyncio.to_thread(sdk.calls.create, "+911", "+912", "ftp://x")
    with pytest.raises(ValidationError, match="digits must be 1 to 64 of 0-9"):
        await asyncio.to_thread(sdk.calls.send_digits, "nope", "12x", "aleg")
    async with aiohttp.ClientSession(headers=HEADERS) as http:
        cases = [
            ("GET", "/Call/nope/", None, 404, "no call nope on this carrier"),
            ("DELETE", "/Call/nope/", None, 404, "no live call nope on this carrier"),
            ("GET", "/Bogus/", None, 404, "Not Found"),
            ("PUT", "/Call/", None, 405, "Method Not Allowed"),
            ("POST", "/Call/", b"[1]", 400, "the body must be a JSON object of fields"),
            ("POST", "/Call/", b"{", 400, "the body is not valid JSON"),
            ("GET", "/Call/?limit=21", None, 400, "limit must be from 1 to 20, got 21"),
            ("GET", "/Call/?offset=-1", None, 400, "offset must be 0 or more, got -1"),
            ("GET", "/Call/?limit=x", None, 400, "limit must be a whole number, got x"),
            ("POST", "/Call/", b"{" + b" " * 70_000 + b"}", 413, "Request Entity Too Large"),
        ]
        for method, path, body, status, error in cases:
            headers = {"Content-Type": "application/json"}
            async with http.request(
                method, carrier.account + path, data=body, headers=headers
            ) as response:
                assert response.status == status, (method, path, await response.text())
                assert error in (await response.json())["error"], (method, path)


async def test_streams_started_listed_and_stopped_through_the_api(
    start_carrier: StartCarrier,
) -> None:
    carrier = await start_carrier()
    app = StreamApp(answer='<Response><Speak>Hello</Speak><Wait length="20"/></Response>')
    runner = await app.serve()
    try:
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            call_uuid = await place(http, carrier, app)
            streams = f"{carrier.account}/Call/{call_uuid}/Stream/"
            async with http.get(streams) as response:
                assert (await response.json())["objects"] == []  # no <Stream> in the answer
            request = {
                "service_url": app.url.replace("http", "ws") + "stream",
                "bidirectional": "true",
                "content_type": "audio/x-l16;rate=16000",
                "status_callback_url": app.url + "callback",
                "extra_headers": "agent=a1",
            }
            async with http.post(streams, json=request) as response:
                assert response.status == 202
                started = await response.json()
            stream_id = started["stream_id"]
            assert started["message"] == "audio streaming started"
            await eventually(lambda: bool(app.of("media")))
            [start] = app.of("start")
            assert start["start"]["streamId"] == stream_id
            assert start["start"]["mediaFormat"] == {"encoding": "audio/x-l16", "sampleRate": 16000}
            async with http.post(streams, json=request) as response:
                assert response.status == 400  # one stream per call
            async with http.get(streams) as response:
                page = await response.json()
            assert page["meta"] == {
                "count": 1, "limit": 20, "offset": 0, "next": None, "previous": None,
            }  # fmt: skip
            [listed] = page["objects"]
            assert listed["stream_id"] == stream_id and listed["status"] == "in-progress"
            assert listed["bidirectional"] is True and listed["audio_track"] == "inbound"
            async with http.get(streams + stream_id + "/") as response:
                assert (await response.json())["service_url"] == request["service_url"]
            async with http.delete(streams + "not-a-stream/") as response:
                assert response.status == 404
            async with http.delete(streams + stream_id) as response:  # no trailing slash
                assert response.status == 204
            await eventually(lambda: app.closed == 1)
            await eventually(lambda: [c["Event"] for c in app.callbacks][-1:] == ["StopStream"])
            assert app.callbacks[0]["X-VH-agent"] == "a1"
            async with http.get(streams + stream_id + "/") as response:
                stopped = await response.json()
            assert stopped["status"] == "stopped" and stopped["end_reason"] == "api_stop"
            async with http.get(f"{carrier.account}/Call/?status=live") as response:
                assert (await response.json())["calls"] == [call_uuid]  # the call goes on
            async with http.delete(streams) as response:
                assert response.status == 204  # nothing streams: nothing to stop
            await hang_up_at_once(http, f"{carrier.account}/Call/{call_uuid}/")
    finally:
        await runner.cleanup()


async def hang_up_at_once(http: aiohttp.ClientSession, call: str) -> None:
    """DELETE a call that would go on for seconds: it ends at once, hung up through the API."""
    began = time.monotonic()
    async with http.delete(call) as response:
        assert response.status == 204
    assert time.monotonic() - began < 4  # hung up at once, not cut after the grace
    async with http.get(call) as response:
        ended = await response.json()
    assert (ended["call_status"], ended["hangup_cause"]) == ("completed", "api_hangup")


async def test_stream_requests_are_checked_like_answer_xml(start_carrier: StartCarrier) -> None:
    carrier = await start_carrier()
    app = StreamApp(answer='<Response><Wait length="20"/></Response>')
    runner = await app.serve()
    try:
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            call_uuid = await place(http, carrier, app)
            streams = f"{carrier.account}/Call/{call_uuid}/Stream/"
            bad = [
                ({}, "service_url is required"),
                ({"service_url": "http://x/s"}, "service_url"),
                (
                    {"service_url": "ws://x/s", "bidirectional": "true", "audio_track": "both"},
                    "audio_track='both' is not allowed with bidirectional='true'",
                ),
                ({"service_url": "ws://x/s", "stream_timeout": "0"}, "stream_timeout="),
                ({"service_url": "ws://x/s", "audio_track": ["x"]}, "audio_track must be a str"),
            ]
            for body, error in bad:
                async with http.post(streams, json=body) as response:
                    assert response.status == 400, body
                    assert error in (await response.json())["error"], body
            async with http.delete(f"{carrier.account}/Call/{call_uuid}/") as response:
                assert response.status == 204
    finally:
        await runner.cleanup()


async def test_calls_over_the_limit_are_refused_with_429_and_retry_after(
    start_carrier: StartCarrier,
) -> None:
    carrier = await start_carrier(max_calls=2)
    app = StreamApp()
    runner = await app.serve()
    try:
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            first = [await place(http, carrier, app) for _ in range(2)]
            body = {"from": "+911", "to": "+912", "answer_url": app.url + "answer"}
            async with http.post(carrier.account + "/Call/", json=body) as response:
                assert response.status == 429
                assert response.headers["Retry-After"] == "1"
                assert "too many live calls (2" in (await response.json())["error"]
            async with http.delete(f"{carrier.account}/Call/{first[0]}/") as response:
                assert response.status == 204
            assert await place(http, carrier, app)  # room again
    finally:
        await runner.cleanup()


async def test_a_call_to_an_answer_without_a_stream_ends_when_the_caller_does(
    start_carrier: StartCarrier,
) -> None:
    carrier = await start_carrier(tone_seconds=1.0, call_options=CallOptions(speed=4))
    app = StreamApp(answer='<Response><Wait length="5"/></Response>')
    runner = await app.serve()
    try:
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            call_uuid = await place(http, carrier, app)
            deadline = time.monotonic() + 10
            while True:  # 1 s of caller at 4x: the call ends in a quarter second, less its answer
                async with http.get(f"{carrier.account}/Call/{call_uuid}/") as response:
                    ended = await response.json()
                if ended["call_status"] == "completed" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert ended["call_status"] == "completed"
    assert ended["hangup_cause"] == (
        "the answer XML has no <Stream> and none was started through the API before the caller "
        "hung up"
    )


async def test_the_carrier_command_places_calls_on_the_real_server(
    start_server: StartServer,
) -> None:
    """``vobiz-stream carrier`` as a process, the async client placing a call through it, and
    the project's own server answering it: the call is stored under the uuid the API gave."""
    running = await start_server()
    env = {**os.environ, "VOBIZ_AUTH_ID": AUTH_ID, "VOBIZ_AUTH_TOKEN": AUTH_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vobiz_stream", "carrier", "--port", "0",
        "--audio", str(DATA / "speech_male_8k.wav"), "--speed", "4", "--carrier", "documented",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("local Vobiz carrier: http://127.0.0.1:"), line
        base = line.split(": ", 1)[1].strip()
        async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=base) as vobiz:
            placed = await vobiz.place_call("+911", "+912", running.base + "/")
            deadline = time.monotonic() + 30
            while placed.request_uuid in await vobiz.live_calls():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        await running.wait_idle()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    [call] = running.server.store.list_calls()
    assert call["call_id"] == placed.request_uuid
    assert len(running.recordings()) == 1
    log = stderr.decode()
    assert f"call {placed.request_uuid}: placed from +911 to +912" in log
    assert f"call {placed.request_uuid}: ended (hangup)" in log
    assert "profile documented" in log
    assert "stopped: 1 calls placed, 0 refused (too many live calls), 0 requests refused" in log


async def test_the_carrier_command_without_credentials_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOBIZ_AUTH")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vobiz_stream", "carrier",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "set VOBIZ_AUTH_ID and VOBIZ_AUTH_TOKEN (or --auth-id and --auth-token)" in (
        stderr.decode()
    )
