"""Who may read call data, where stream tokens go, and which call a token admits: each attack
performed over loopback against a real server (in-process, or ``vobiz-stream serve`` itself)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import RunningServer, StartServer, free_port, serve_process
from tests.e2e.test_reliability_auth import answer, upgrade
from tests.e2e.test_reliability_crash import RATE, caller_audio
from vobiz_stream import __version__
from vobiz_stream.app.config import Settings
from vobiz_stream.app.server import StreamServer
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.source import CallerSource

ADMIN = "admin-token-for-tests-0123456789"
SECRET = "stream-secret-for-tests-0123456789"
AUTH_TOKEN = "MAUTHTOKEN-for-tests-9876543210"
GUARDED = ["/calls", "/calls?limit=5", "/calls/c-1", "/stats", "/admission"]
SNEAKY = ["//calls", "/%63alls", "/calls/", "/healthz/", "/stream/../calls", "/CALLS"]
"""Spellings that might slip past a guard that lists what to guard instead of what is open: each
is refused like the page it names, or, where no route serves it, answered 404 with nothing but
the answer URL (tests/app/test_guard.py shows a route added later is guarded without being
listed)."""


def refused_or_unrouted(status: int, text: str, refused: int) -> bool:
    return status == refused or (status == 404 and "no answer XML at" in text)


TRANSPORTS = ["aiohttp", "picows"]


async def fetch(
    url: str,
    token: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    **request: Any,
) -> tuple[int, str, Mapping[str, str]]:
    """Status, text and headers of a request to ``url``, with ``token`` as a bearer token."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, url, headers=headers, allow_redirects=False, **request) as reply,
    ):
        return reply.status, await reply.text(), reply.headers


async def record_a_call(running: RunningServer) -> str:
    """One emulated call through the answer, recorded; its call id."""
    report = await run_call(
        running.base + "/", CallerSource(caller_audio(0, 1.0), RATE), CallOptions(speed=4.0)
    )
    assert report.completed, report.summary()
    await running.wait_idle()
    return report.call_uuid


# --- 1: the admin token ------------------------------------------------------------------------


async def test_every_page_but_the_carriers_needs_the_admin_token(
    start_server: StartServer,
) -> None:
    running = await start_server(admin_token=ADMIN)
    call_id = await record_a_call(running)  # so there is call data to leak
    for path in GUARDED + SNEAKY:
        for token in (None, "wrong-token-0123456789", ADMIN + "x", ADMIN[:-1], ""):
            status, text, headers = await fetch(running.base + path, token)
            assert call_id not in text, (path, token)
            if path in SNEAKY and status == 404:
                assert refused_or_unrouted(status, text, 401), (path, token)
                continue
            assert status == 401, (path, token)
            assert headers["WWW-Authenticate"] == 'Bearer realm="vobiz-stream"'
            assert "--admin-token" in text
    status, _, _ = await fetch(running.base + "/calls", headers={"Authorization": f"Basic {ADMIN}"})
    assert status == 401  # the right secret in another scheme is not a bearer token
    status, text, _ = await fetch(running.base + "/calls", ADMIN)
    assert status == 200 and orjson.loads(text)["calls"][0]["call_id"] == call_id
    for path in ("/stats", "/admission"):
        assert (await fetch(running.base + path, ADMIN))[0] == 200
    assert (await fetch(running.base + "/a-page-added-later", ADMIN))[0] == 404
    # The carrier's routes stay open: the answer, the socket (a call just ran), callbacks.
    assert (await fetch(running.base + "/", method="POST", data={"CallUUID": "c-2"}))[0] == 200
    assert (await fetch(running.base + "/webhook", method="POST", data={"Event": "x"}))[0] == 200


async def test_healthz_is_open_and_tells_nothing_of_calls(start_server: StartServer) -> None:
    running = await start_server(admin_token=ADMIN)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url + "?call=c-open")
        await socket.send_json({"event": "start", "start": {"callId": "c-open"}})
        async with asyncio.timeout(5):
            while not running.server.sockets:
                await asyncio.sleep(0.01)
        status, text, _ = await fetch(running.base + "/healthz")
        await socket.close()
    assert status == 200
    assert orjson.loads(text) == {"status": "ok", "version": __version__}  # no count of calls


async def test_beyond_loopback_without_a_token_call_data_is_refused_naming_the_setting(
    start_server: StartServer,
) -> None:
    # The settings say 0.0.0.0 (what the guard decides on); the test server still binds loopback.
    running = await start_server(host="0.0.0.0")
    call_id = await record_a_call(running)
    for path in GUARDED + SNEAKY:
        status, text, _ = await fetch(running.base + path, "any-token-at-all-0123")
        assert call_id not in text, path
        if path in SNEAKY and status == 404:
            assert refused_or_unrouted(status, text, 403), path
            continue
        assert status == 403, path
        assert "--admin-token" in text and "VOBIZ_STREAM_ADMIN_TOKEN" in text
    assert (await fetch(running.base + "/healthz"))[0] == 200


async def test_on_loopback_without_a_token_call_data_is_open_for_development(
    start_server: StartServer,
) -> None:
    running = await start_server()
    call_id = await record_a_call(running)
    status, text, _ = await fetch(running.base + "/calls")
    assert status == 200 and orjson.loads(text)["calls"][0]["call_id"] == call_id


@pytest.mark.parametrize(
    "proxied", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9;proto=https"}]
)
async def test_on_loopback_without_a_token_a_tunnel_cannot_read_call_data(
    start_server: StartServer, proxied: dict[str, str]
) -> None:
    """A tunnel or local proxy to the loopback port (how a carrier reaches a developer's
    machine) adds its header; what comes through it is refused as from anywhere else."""
    running = await start_server()
    call_id = await record_a_call(running)
    for path in GUARDED:
        status, text, _ = await fetch(running.base + path, headers=proxied)
        assert status == 403 and "proxy or tunnel" in text and call_id not in text
    assert (await fetch(running.base + "/healthz", headers=proxied))[0] == 200


async def test_the_picows_media_port_serves_the_stream_only(start_server: StartServer) -> None:
    running = await start_server(media_transport="picows", admin_token=ADMIN)
    call_id = await record_a_call(running)
    media = f"http://127.0.0.1:{running.server.media_port}"
    for path in ["/", "/healthz", "/webhook", *GUARDED]:
        for token in (None, ADMIN):
            status, text, _ = await fetch(media + path, token)
            assert status == 404, path
            assert call_id not in text
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await client.ws_connect(media.replace("http", "ws") + "/calls")


# --- 2: stream tokens never leave the server ---------------------------------------------------


async def test_no_stream_token_is_stored_served_or_logged(tmp_path: Path) -> None:
    """A real ``serve`` at DEBUG with a stream secret runs a call whose status callbacks carry
    its socket URL (``ServiceURL``): the token is in no file of the data folder (the database,
    its journal, webhook-events.log), not in ``/calls``, not in the log."""
    port, data = free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "VOBIZ_STREAM_STREAM_SECRET": SECRET,
        "VOBIZ_STREAM_LOG_LEVEL": "DEBUG",
    }
    process = await serve_process(port, data, env=environment)
    try:
        report = await run_call(
            base + "/", CallerSource(caller_audio(1, 1.0), RATE), CallOptions(speed=4.0)
        )
        assert report.completed, report.summary()
        assert report.stream_url is not None
        token = parse_qs(urlsplit(report.stream_url).query)["token"][0]
        status, listing, _ = await fetch(base + "/calls")
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    [call] = orjson.loads(listing)["calls"]
    [start] = [c for c in call["status_callbacks"] if c["fields"].get("ServiceURL")]
    assert "token=<redacted>" in start["fields"]["ServiceURL"]  # kept, without its token
    assert "answered with a stream to" in log and "token=<redacted>" in log
    signature = token.partition(".")[2]
    files = [path for path in data.rglob("*") if path.is_file()]
    assert data / "vobiz-stream.db" in files and data / "webhook-events.log" in files
    for name, content in [
        ("log", stderr),
        ("/calls", listing.encode()),
        *((str(path), path.read_bytes()) for path in files),
    ]:
        assert signature.encode() not in content, name
    with sqlite3.connect(data / "vobiz-stream.db") as db:  # read back, not only as bytes
        fields = [row[0] for row in db.execute("SELECT fields FROM status_callbacks")]
    assert fields and not any(signature in value for value in fields)


# --- 3: a token admits its own call only -------------------------------------------------------


async def close_code_of(socket: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes ``socket``; its close code."""
    async with asyncio.timeout(5):
        while not socket.closed:
            message = await socket.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
    return socket.close_code


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_token_for_one_call_cannot_stream_another(
    start_server: StartServer, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server(stream_secret=SECRET, media_transport=transport)
    _, url = await answer(running.base, "c-own")
    start = {"event": "start", "start": {"callId": "c-other\nforged line", "streamId": "s-1"}}
    media = {"event": "media", "media": {"payload": "AAAA" * 80, "track": "inbound"}}
    with caplog.at_level(logging.INFO, logger="vobiz_stream"):
        async with aiohttp.ClientSession() as client:
            socket = await client.ws_connect(url)
            await socket.send_json(start)
            for _ in range(20):  # frames behind the start change nothing
                await socket.send_json(media)
            assert await close_code_of(socket) == 1008
            own = await client.ws_connect(url)  # the call the token is for still streams
            await own.send_json({**start, "start": {"callId": "c-own", "streamId": "s-2"}})
            await own.send_json(media)
            await own.close()
        await running.wait_idle()
    status, text, _ = await fetch(running.base + "/admission")
    counters = orjson.loads(text)
    assert status == 200 and counters["refused"]["call_mismatch"] == 1
    assert counters["admitted"] == 2
    [call] = running.server.store.list_calls()  # nothing of the other call is kept
    assert call["call_id"] == "c-own" and len(call["streams"]) == 1
    assert len(running.recordings()) == 1
    logged = [record.getMessage() for record in caplog.records]
    refusals = [line for line in logged if "refused a media socket" in line]
    assert len(refusals) == 1 and "c-other\\x0aforged line" in refusals[0]
    assert "call c-own: refused a media socket from 127.0.0.1 with close code 1008" in refusals[0]
    assert "\n" not in refusals[0]


async def test_a_start_of_another_call_after_media_ends_the_stream_it_interrupted(
    start_server: StartServer,
) -> None:
    """Media first (the session begins as the token's call), then a start of another call: the
    stream ends there, what came before stays the token's call's, nothing is the other's."""
    running = await start_server(stream_secret=SECRET)
    _, url = await answer(running.base, "c-own")
    media = {"event": "media", "media": {"payload": "AAAA" * 80, "track": "inbound"}}
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(url)
        for _ in range(5):
            await socket.send_json(media)
        await socket.send_json({"event": "start", "start": {"callId": "c-other"}})
        await socket.send_json(media)
        assert await close_code_of(socket) == 1008
    await running.wait_idle()
    [call] = running.server.store.list_calls()
    assert call["call_id"] == "c-own"
    [stream] = call["streams"]
    assert stream["end_reason"] == "call_mismatch"
    assert running.server.admission.counters()["refused"]["call_mismatch"] == 1  # type: ignore[index]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_answer_without_a_call_gets_a_url_that_admits_nothing(
    start_server: StartServer, transport: str
) -> None:
    running = await start_server(stream_secret=SECRET, media_transport=transport)
    _, url = await answer(running.base, "")
    assert "token=" not in url
    if transport == "aiohttp":
        assert (await upgrade(url))[0] == 401
    else:  # picows refuses right after the upgrade, with a close frame
        async with aiohttp.ClientSession() as client:
            socket = await client.ws_connect(url)
            await socket.send_json({"event": "start", "start": {"callId": "any-call"}})
            assert await close_code_of(socket) == 1008
    await asyncio.sleep(0.1)
    assert not running.server.sockets
    assert running.server.store.list_calls() == []
    assert running.server.admission.counters()["admitted"] == 0


# --- 4: start-up names every unsafe setting once -----------------------------------------------

WARNINGS = {
    "--stream-secret": "no --stream-secret:",
    "--auth-token": "no --auth-token: anyone can post status callbacks",
    "--admin-token": "no --admin-token:",
}
VALUES = {"--stream-secret": SECRET, "--auth-token": AUTH_TOKEN, "--admin-token": ADMIN}


async def startup_log(data: Path, *flags: str) -> str:
    """The log of a real ``serve`` on loopback given ``flags``, from start to stop."""
    process = await serve_process(free_port(), data, *flags)
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return stderr.decode()


@pytest.mark.parametrize("given", [None, *WARNINGS])
async def test_startup_warns_once_per_unsafe_setting_until_its_flag_is_given(
    given: str | None, tmp_path: Path
) -> None:
    log = await startup_log(tmp_path / "data", *(() if given is None else (given, VALUES[given])))
    for flag, line in WARNINGS.items():
        found = [row for row in log.splitlines() if line in row]
        if flag == given:
            assert found == [], flag
        else:
            assert len(found) == 1 and "WARNING" in found[0] and f"set {flag}" in found[0], log
    assert "listening on" not in log  # loopback
    assert all(value not in log for value in VALUES.values())


def can_isolate_network() -> bool:
    """Whether this machine lets a process run in a network namespace of its own."""
    try:
        return subprocess.run(["unshare", "-rn", "true"], check=False).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not can_isolate_network(), reason="needs unshare -rn (user namespaces)")
async def test_startup_says_when_it_listens_beyond_loopback(tmp_path: Path) -> None:
    """``--host 0.0.0.0`` for real, in a network namespace of its own (only an unconfigured
    loopback there, so nothing outside this test can reach it)."""
    lines: dict[str, list[str]] = {}
    for admin in (False, True):
        process = await asyncio.create_subprocess_exec(
            "unshare",
            "-rn",
            sys.executable,
            *("-m", "vobiz_stream", "serve", "--host", "0.0.0.0", "--port", str(free_port())),
            *("--data-dir", str(tmp_path / f"data-{admin}")),
            *(("--admin-token", ADMIN) if admin else ()),
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        log = []
        async with asyncio.timeout(20):
            while not log or "serving on" not in log[-1]:
                line = await process.stderr.readline()
                assert line, "".join(log)
                log.append(line.decode())
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
        lines[str(admin)] = [row for row in log if "WARNING" in row]
    [exposed] = [row for row in lines["False"] if "listening on 0.0.0.0" in row]
    assert "refused until an admin token is set" in exposed
    [admin_line] = [row for row in lines["False"] if "no --admin-token" in row]
    assert "answer 403 on 0.0.0.0" in admin_line
    [exposed] = [row for row in lines["True"] if "listening on 0.0.0.0" in row]
    assert "call data needs the admin token" in exposed
    assert not [row for row in lines["True"] if "no --admin-token" in row]


async def test_a_page_added_later_is_guarded_without_being_listed(tmp_path: Path) -> None:
    """A route the server's app gains later (a console page, say) needs the admin token at once:
    the guard lists what is open, not what is guarded."""
    settings = replace(Settings(), data_dir=tmp_path / "data", port=0, admin_token=ADMIN)
    app = StreamServer(settings).app()
    secret_page = "call data a later page would show"

    async def later_page(_request: web.Request) -> web.Response:
        return web.Response(text=secret_page)

    app.router.add_get("/a-page-added-later", later_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}/a-page-added-later"
        status, text, headers = await fetch(url)
        assert status == 401 and secret_page not in text
        assert headers["WWW-Authenticate"] == 'Bearer realm="vobiz-stream"'
        assert (await fetch(url, ADMIN))[:2] == (200, secret_page)
    finally:
        await runner.cleanup()
