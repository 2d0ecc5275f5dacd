"""The console over real HTTP: sign-in, the pages and the JSON API, with real emulator calls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from tests.e2e.conftest import RunningServer, StartServer
from vobiz_stream.app.session import CallSession
from vobiz_stream.emulator import CallOptions, run_call

TOKEN = "console-admin-token-0123456789"
FIXTURE = Path(__file__).parent.parent / "data" / "speech_male_8k.wav"


async def greeter(session: CallSession) -> None:
    """Plays a second of tone and a checkpoint, then listens until the call ends."""
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    await session.play(tone, 8000)
    await session.checkpoint("greeting")
    async for _ in session.events():
        pass


async def a_call(running: RunningServer, **options: object) -> None:
    report = await run_call(running.base + "/", FIXTURE, CallOptions(**options))  # type: ignore[arg-type]
    assert report.completed, report.failure
    await running.wait_idle()


async def test_without_the_token_pages_send_to_the_login_and_the_api_answers_401(
    start_server: StartServer,
) -> None:
    running = await start_server(admin_token=TOKEN)
    async with aiohttp.ClientSession() as http:
        for path in ("/ui", "/ui/calls/x", "/ui?number=98"):
            async with http.get(running.base + path, allow_redirects=False) as response:
                assert response.status == 303, path
                assert response.headers["Location"].startswith("/ui/login?next=")
        for path in ("/api/calls", "/api/calls/x", "/api/calls/x/peaks", "/api/live"):
            async with http.get(running.base + path) as response:
                assert response.status == 401, path
        async with http.get(running.base + "/ui/login") as response:
            assert response.status == 200
            assert 'name="token"' in await response.text()
        async with http.get(running.base + "/ui/static/console.css") as response:
            assert response.status == 200


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(
    start_server: StartServer,
) -> None:
    running = await start_server(admin_token=TOKEN)
    origin = {"Origin": running.base}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        login = running.base + "/ui/login"
        async with http.post(
            login, data={"token": "wrong-token-xxxxxxxx"}, headers=origin
        ) as response:
            assert response.status == 401
        async with http.post(login, data={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 403  # no Origin: not the console's own form
        foreign = {"Origin": "http://evil.example"}
        async with http.post(
            login, data={"token": TOKEN}, headers=foreign, allow_redirects=False
        ) as response:
            assert response.status == 403
        async with http.post(
            login,
            data={"token": TOKEN, "next": "//evil.example/"},
            headers=origin,
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/ui"  # never to another site
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with http.get(running.base + "/ui", allow_redirects=False) as response:
            assert response.status == 200
            assert "Content-Security-Policy" in response.headers
        async with http.get(running.base + "/api/calls") as response:
            assert response.status == 200  # the pages' own reads
        async with http.get(running.base + "/stats") as response:
            assert response.status == 401  # the cookie opens the console only
        async with http.get(running.base + "/ui/logout", allow_redirects=False) as response:
            assert response.status != 303  # signing out is POST only
        async with http.post(
            running.base + "/ui/logout", headers=origin, allow_redirects=False
        ) as response:
            assert response.status == 303
        cookies = {"vobiz_console": cookie.split(";")[0].split("=", 1)[1]}
        async with (
            aiohttp.ClientSession(cookies=cookies) as replay,
            replay.get(running.base + "/api/calls") as response,
        ):
            assert response.status == 401  # the old cookie opens nothing any more


async def test_wrong_tokens_are_throttled_per_address(start_server: StartServer) -> None:
    running = await start_server(admin_token=TOKEN)
    origin = {"Origin": running.base}
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(12):
            async with http.post(
                running.base + "/ui/login", data={"token": "nope"}, headers=origin
            ) as response:
                statuses.append(response.status)
        async with http.post(
            running.base + "/ui/login",
            data={"token": TOKEN},
            headers=origin,
            allow_redirects=False,
        ) as response:
            assert response.status == 429  # even the right token waits out the minute
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str | None:
    """The server's ``--database``: its data folder's SQLite file, or a new PostgreSQL one."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


async def test_api_search_detail_timeline_peaks_and_ranges(
    start_server: StartServer, database: str | None
) -> None:
    running = await start_server(greeter, admin_token=TOKEN, database=database)
    await a_call(running, from_number="+15550001111", dtmf=((1.0, "7"),), hangup_after=3.0)
    await a_call(running, from_number="+15550002222", hangup_after=1.0)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=bearer) as http:
        async with http.get(running.base + "/api/calls?number=0001111") as response:
            body = await response.json()
        [found] = body["calls"]
        assert found["from_number"] == "+15550001111" and body["next"] is None
        call = f"{running.base}/api/calls/{found['call_id']}"
        async with http.get(running.base + "/api/calls?per_page=1") as response:
            body = await response.json()
            assert len(body["calls"]) == 1 and body["next"] == "/api/calls?page=2&per_page=1"
        async with http.get(running.base + "/api/calls?since=yesterday") as response:
            assert response.status == 400
            assert "YYYY-MM-DD" in (await response.json())["error"]
        async with http.get(call + "/events") as response:
            texts = [entry["text"] for entry in (await response.json())["timeline"]]
        assert "DTMF digit 7" in texts and "checkpoint greeting played" in texts, texts
        assert texts.index("checkpoint greeting sent") < texts.index("checkpoint greeting played")
        async with http.get(call + "/peaks") as response:
            [stream] = (await response.json())["streams"]
        caller, heard = stream["channels"]
        assert max(caller["max"]) > 0.05 and max(heard["max"]) > 0.05
        assert stream["figures"]["first_agent_audio"] is not None
        recording = running.base + stream["recording"]
        async with http.get(recording, headers={"Range": "bytes=44-143"}) as response:
            assert response.status == 206 and len(await response.read()) == 100
        async with http.get(call + "/streams/999/recording") as response:
            assert response.status == 404
        async with http.get(f"{running.base}/ui/calls/{found['call_id']}") as response:
            page = await response.text()
        assert "DTMF digit 7" in page and "Time to first agent audio" in page


async def test_a_recording_path_outside_the_recordings_folder_is_not_served(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(greeter, admin_token=TOKEN)
    await a_call(running, hangup_after=1.0)
    [call] = running.server.store.list_calls()
    secret = tmp_path / "secret.wav"
    secret.write_bytes(Path(FIXTURE).read_bytes())
    row = call["streams"][0]["id"]
    engine = running.server.store._reader  # the test plays a tampered database
    engine._db.execute(  # type: ignore[attr-defined]
        "UPDATE streams SET recording_path = ? WHERE id = ?", (str(secret), row)
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=bearer) as http:
        url = f"{running.base}/api/calls/{call['call_id']}/streams/{row}/recording"
        async with http.get(url) as response:
            assert response.status == 404


async def test_the_live_feed_shows_a_running_call_with_levels(start_server: StartServer) -> None:
    running = await start_server(greeter, admin_token=TOKEN)
    call = asyncio.create_task(a_call(running, hangup_after=3.0, dtmf=((0.5, "3"),)))
    seen: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(30),
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        http.get(running.base + "/api/live") as response,
    ):
        assert response.headers["Content-Type"] == "text/event-stream"
        async for line in response.content:
            if line.startswith(b"data: "):
                snapshot = orjson.loads(line[6:])
                seen.extend(snapshot["calls"])
                if seen and call.done() and not snapshot["calls"]:
                    break  # the call ended and left the feed
    await call
    assert any((c["level_caller"] or -90) > -60 for c in seen)  # the caller spoke
    assert any((c["level_heard"] or -90) > -60 for c in seen)  # and heard the greeting
    assert any(e["text"] == "DTMF digit 3" for c in seen for e in c["events"])
    assert max(c["elapsed"] for c in seen) >= 1.0
