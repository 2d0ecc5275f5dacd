"""Authentication on the wire: the answer XML carries a per-call token in the socket URL (``&``
escaped), calls placed through the answer stream, sockets without a valid token for their call are
refused before the upgrade; no secret or token reaches the log; no path comes from the wire."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.dom import minidom

import aiohttp
import pytest

from tests.e2e.conftest import StartServer, free_port, serve_process
from tests.e2e.test_reliability_crash import RATE, caller_audio
from tests.e2e.test_server_recording import ONE_WAY
from vobiz_stream.app.admission import StreamTokens
from vobiz_stream.core.answer import parse_response
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.source import CallerSource

SECRET = "stream-secret-for-tests-0123456789"
AUTH_TOKEN = "MAUTHTOKEN-for-tests-9876543210"
HOSTILE_CALL = "c&1<2>\"3'4 /../x"


async def answer(base: str, call_uuid: str) -> tuple[str, str]:
    """The raw answer XML for ``call_uuid``, and the socket URL in it."""
    async with (
        aiohttp.ClientSession() as client,
        client.post(base + "/", data={"CallUUID": call_uuid}) as reply,
    ):
        assert reply.status == 200
        xml = await reply.text()
    [stream] = parse_response(xml).streams
    return xml, stream.url


async def upgrade(url: str) -> tuple[int, str]:
    """Status and text of an upgrade to ``url``: 101, or the refusal and what it says."""
    async with aiohttp.ClientSession() as client:
        async with client.get(url.replace("ws://", "http://")) as plain:
            text = await plain.text()
            if plain.status != 400:  # admission answers before the handshake is looked at
                return plain.status, text
        socket = await client.ws_connect(url)
        await socket.close()
        return 101, ""


async def test_the_answer_carries_a_token_with_the_ampersand_escaped(
    start_server: StartServer,
) -> None:
    running = await start_server(stream_secret=SECRET)
    xml, url = await answer(running.base, HOSTILE_CALL)
    assert "&amp;token=" in xml and "&token=" not in xml
    [element] = minidom.parseString(xml).getElementsByTagName("Stream")
    assert (
        "".join(node.data for node in element.childNodes).strip() == url
    )  # an independent parser reads the same URL
    query = parse_qs(urlsplit(url).query)
    assert query["call"] == [HOSTILE_CALL]
    expires, _, signature = query["token"][0].partition(".")
    assert int(expires) - time.time() == pytest.approx(3600, abs=5)
    assert len(signature) == 43
    assert (await upgrade(url))[0] == 101


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("", 401, "no stream token"),
        ("?call=c-1", 401, "no stream token"),
        ("?call=c-1&token=nonsense", 401, "not <expires>.<signature>"),
        ("?call=c-2&token={good}", 403, "does not match this call"),
        ("?token={good}", 403, "names no call"),
        ("?call=c-1&token={expired}", 403, "expired"),
        ("?call=c-1&token={foreign}", 403, "does not match this call"),
    ],
)
async def test_sockets_without_a_valid_token_for_their_call_are_refused(
    start_server: StartServer, query: str, status: int, says: str
) -> None:
    running = await start_server(stream_secret=SECRET)
    _, url = await answer(running.base, "c-1")
    good = parse_qs(urlsplit(url).query)["token"][0]
    expired = StreamTokens(SECRET.encode(), 60, clock=lambda: time.time() - 3600).issue("c-1")
    foreign = StreamTokens(b"another-secret-0123456789", 60).issue("c-1")
    bad_url = running.ws_url + query.format(good=good, expired=expired, foreign=foreign)
    refused_status, text = await upgrade(bad_url)
    assert (refused_status, says in text) == (status, True), text
    assert not running.server.sockets
    assert running.server.store.list_calls() == []  # nothing of a refused socket is kept


async def test_an_emulated_call_through_the_answer_is_admitted_and_recorded(
    start_server: StartServer,
) -> None:
    running = await start_server(stream_secret=SECRET, l16_byte_order="little")
    report = await run_call(
        running.base + "/", CallerSource(caller_audio(0, 2.0), RATE), CallOptions(speed=4.0)
    )
    assert report.completed, report.summary()
    await running.wait_idle()
    [call] = running.server.store.list_calls()
    assert call["call_id"] == report.call_uuid
    counters = running.server.admission.counters()
    assert counters["admitted"] == 1
    assert not any(counters["refused"].values())  # type: ignore[attr-defined]


async def test_no_path_comes_from_the_wire(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server(**ONE_WAY)
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url + "?call=../../escaped")
        start = {
            "event": "start",
            "start": {"callId": "../../../../tmp/escaped\x00.wav", "streamId": "/etc/passwd"},
        }
        await socket.send_json(start)
        await socket.send_json({"event": "media", "media": {"payload": "AAAA" * 100}})
        await socket.close()
    await running.wait_idle()
    [recording] = running.recordings()
    assert recording.parent == running.data_dir / "recordings"
    assert "/" not in recording.name and ".." not in recording.name
    assert all(path.is_relative_to(running.data_dir) for path in tmp_path.rglob("*"))


async def test_no_secret_and_no_token_reaches_the_log(tmp_path: Path) -> None:
    """``serve`` at DEBUG, with both secrets from the environment, answering a call, refusing a
    socket and a badly signed callback: neither secret, nor any token it issued, is in its log."""
    port, data = free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "VOBIZ_STREAM_STREAM_SECRET": SECRET,
        "VOBIZ_STREAM_AUTH_TOKEN": AUTH_TOKEN,
        "VOBIZ_STREAM_LOG_LEVEL": "DEBUG",
    }
    process = await serve_process(port, data, env=environment)
    try:
        _, url = await answer(base, "logged-call")
        token = parse_qs(urlsplit(url).query)["token"][0]
        report = await run_call(
            base + "/",
            CallerSource(caller_audio(1, 1.0), RATE),
            CallOptions(speed=4.0, auth_token=AUTH_TOKEN),
        )
        assert report.completed, report.summary()
        assert (await upgrade(url.replace("logged-call", "other-call")))[0] == 403
        async with aiohttp.ClientSession() as client:
            headers = {"X-Vobiz-Signature-V3": "bad", "X-Vobiz-Signature-V3-Nonce": "1"}
            async with client.post(base + "/webhook", data={"Event": "x"}, headers=headers) as r:
                assert r.status == 403
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert "answered with a stream" in log and "refused a media socket" in log
    assert "rejected a status callback" in log
    for secret in (SECRET, AUTH_TOKEN, token, token.partition(".")[2]):
        assert secret not in log
    # The secrets are nowhere in the data either (nor the tokens: test_security_access.py).
    for path in data.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert SECRET.encode() not in content and AUTH_TOKEN.encode() not in content
