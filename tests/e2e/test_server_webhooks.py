"""Status callbacks, the call list, health, restarts and the answer XML, over real loopback HTTP.

Each test runs a real server with a real data folder: callbacks go through aiohttp to ``/webhook``
and are checked in the SQLite file and in ``webhook-events.log`` as written on disk.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import logging
import sqlite3
import statistics
import time
import wave
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.dom import minidom

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.conftest import Carrier, RunningServer, StartServer, frames_of, speech
from vobiz_stream import __version__
from vobiz_stream.app.server import StreamServer
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.core.answer import CallbackMethod, parse_response
from vobiz_stream.core.callbacks import sign_v2, sign_v3

log = logging.getLogger(__name__)

Connect = Callable[[str], Awaitable[Carrier]]

TOKEN = "secret-token"
NONCE = "31415926535897932384"
CALL = "5401fd2e-5e1c-4f3c-9a59-0d6f0a1b2c3d"
STREAM = "c4dfd815-1d1b-4a43-8d3c-5a6b7c8d9e0f"
CALLBACK_DEADLINE = 3.0
"""PROTOCOL.md section 5: a callback must be answered within 3 s."""

CALL_KEYS = {
    "call_id",
    "status",
    "first_seen",
    "last_seen",
    "from_number",
    "to_number",
    "direction",
    "account_id",
    "streams",
    "events",
    "status_callbacks",
}
STREAM_KEYS = {
    "id",
    "stream_id",
    "started_at",
    "ended_at",
    "end_reason",
    "tracks",
    "encoding",
    "sample_rate",
    "byte_order",
    "recording_path",
    "frames_received",
    "frames_malformed",
    "frames_sent",
    "error",
}
EVENT_KEYS = {"id", "stream_row", "at", "kind", "detail"}
CALLBACK_KEYS = {"id", "received_at", "event", "stream_id", "signature", "fields"}


# --- helpers -------------------------------------------------------------------------------------


def callback(event: str, call: str = CALL, **extra: str) -> dict[str, str]:
    """A status callback's fields as the carrier sends them (section 5), plus ``extra``."""
    return {
        "Event": event,
        "CallUUID": call,
        "StreamID": STREAM,
        "From": "+14155551111",
        "To": "+14155552222",
        "Timestamp": "2026-05-12 09:30:15",
        "ParentAuthID": "MA_2210JXXN",
        "Error": "",
        "X-VH-sessionId": "abc123",
        "X-VH-agentId": "john",
        **extra,
    }


def every_kind() -> list[dict[str, str]]:
    """One callback of each kind in PROTOCOL.md section 5, then an event nobody documented."""
    return [
        callback("StartStream", ServiceURL="wss://app.example/stream?call=42&lang=en"),
        callback("PlayedStream", Name="turn-3"),
        callback("ClearedAudio"),
        callback("DegradedStream", Error="playback queue 35 s & rising; lag=1200ms"),
        callback("DroppedStream", Error="socket closed by the app (1006): ünïcode ok"),
        callback("StopStream"),
        callback("MediaError"),
        callback("TranscriptionReadySomeday", Error="never seen before"),
    ]


def hmac_b64(key: str, message: str) -> str:
    """The signature scheme written out from the standard library, independent of the package."""
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


_FRESH_NONCES = (f"{NONCE[:-6]}{number:06d}" for number in itertools.count())
"""A nonce is accepted once: each signed request takes a new one unless a test names one."""


def v3_headers(url: str, token: str = TOKEN, nonce: str | None = None) -> dict[str, str]:
    nonce = nonce or next(_FRESH_NONCES)
    signature = sign_v3(token, url, nonce)
    assert signature == hmac_b64(token, f"{url}.{nonce}")
    return {"X-Vobiz-Signature-V3": signature, "X-Vobiz-Signature-V3-Nonce": nonce}


def v2_headers(url: str, token: str = TOKEN, nonce: str | None = None) -> dict[str, str]:
    nonce = nonce or next(_FRESH_NONCES)
    signature = sign_v2(token, url, nonce)
    assert signature == hmac_b64(token, url + nonce)
    return {"X-Vobiz-Signature-V2": signature, "X-Vobiz-Signature-V2-Nonce": nonce}


async def post(
    client: aiohttp.ClientSession,
    url: str,
    fields: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> tuple[int, float]:
    """POST ``fields`` form-encoded; the status and the seconds until the answer was read."""
    began = time.perf_counter()
    async with client.post(url, data=dict(fields), headers=dict(headers or {})) as reply:
        await reply.read()
        return reply.status, time.perf_counter() - began


def log_lines(running: RunningServer) -> list[dict[str, str]]:
    path = running.data_dir / "webhook-events.log"
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    return [json.loads(line) for line in lines]


def db_callbacks(running: RunningServer) -> list[tuple[str, str | None, str | None, str, str]]:
    """(event, call_uuid, stream_id, signature, fields) of every stored callback, in order."""
    with sqlite3.connect(running.server.settings.database_path) as db:
        return db.execute(
            "SELECT event, call_uuid, stream_id, signature, fields FROM status_callbacks"
            " ORDER BY id"
        ).fetchall()


def parse_utc(text: str) -> datetime:
    """An ISO 8601 UTC time ending in ``Z``; fails on anything else."""
    assert text.endswith("Z"), text
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text
    return moment


def minidom_stream(text: str) -> tuple[str, dict[str, str]]:
    """The ``<Stream>`` URL and attributes as the standard library's DOM reads them."""
    document = minidom.parseString(text)
    root = document.documentElement
    assert root is not None and root.tagName == "Response"
    [element] = root.getElementsByTagName("Stream")
    url = "".join(
        node.data for node in element.childNodes if isinstance(node, minidom.Text)
    ).strip()
    attributes = {name: value for name, value in element.attributes.items()}
    return url, attributes


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def send_speech(carrier: Carrier, seconds: float = 1.0) -> int:
    """Send ``seconds`` of an 8 kHz utterance as little-endian L16; returns the frame count."""
    samples, rate = speech("speech_male_8k")
    frames = frames_of(samples[: int(rate * seconds)], rate)
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
    return len(frames)


# --- 1, 2: every kind of callback, POST and GET --------------------------------------------------


async def test_every_callback_kind_is_answered_stored_and_logged_in_order(
    start_server: StartServer,
) -> None:
    running = await start_server()
    sent = every_kind()
    before = datetime.now(UTC)
    timings: list[float] = []
    async with aiohttp.ClientSession() as client:
        for fields in sent:
            status, elapsed = await post(client, running.base + "/webhook", fields)
            assert status == 200, fields["Event"]
            timings.append(elapsed)
    after = datetime.now(UTC)
    assert max(timings) < CALLBACK_DEADLINE
    log.info("callback answered in %.2f ms (median)", statistics.median(timings) * 1000)

    # The store, through its API: one call known only from callbacks, every callback in order.
    call = running.server.store.get_call(CALL)
    assert call is not None
    assert call["status"] == "callbacks_only"
    assert (call["from_number"], call["to_number"]) == ("+14155551111", "+14155552222")
    assert call["streams"] == []
    stored = call["status_callbacks"]
    assert [record["event"] for record in stored] == [fields["Event"] for fields in sent]
    assert [record["fields"] for record in stored] == sent
    assert {record["stream_id"] for record in stored} == {STREAM}
    assert {record["signature"] for record in stored} == {"unsigned"}

    # The SQLite file itself, read by another connection.
    rows = db_callbacks(running)
    assert [(event, uuid, stream) for event, uuid, stream, _, _ in rows] == [
        (fields["Event"], CALL, STREAM) for fields in sent
    ]
    assert [json.loads(row[4]) for row in rows] == sent

    # The log: one JSON line per callback, in order, with its fields and when it arrived.
    lines = log_lines(running)
    assert len(lines) == len(sent)
    received: list[datetime] = []
    for line, fields, record in zip(lines, sent, stored, strict=True):
        assert {k: v for k, v in line.items() if k not in ("receivedAt", "signature")} == fields
        assert line["signature"] == "unsigned"
        assert line["receivedAt"] == record["received_at"]
        received.append(parse_utc(line["receivedAt"]))
    assert received == sorted(received)
    slack = timedelta(milliseconds=1)  # receivedAt is kept to the millisecond
    assert before - slack <= received[0] and received[-1] <= after + slack


async def test_get_callbacks_carry_their_fields_in_the_query(start_server: StartServer) -> None:
    running = await start_server(status_callback_method="GET")
    sent = [
        callback("StartStream", call="get-call", ServiceURL="wss://app.example/stream?call=7"),
        callback("DroppedStream", call="get-call", Error="connect failed: 502"),
    ]
    async with aiohttp.ClientSession() as client:
        for fields in sent:
            began = time.perf_counter()
            async with client.get(running.base + "/webhook", params=fields) as reply:
                assert reply.status == 200
            assert time.perf_counter() - began < CALLBACK_DEADLINE
        async with client.get(running.base + "/") as reply:
            [stream] = parse_response(await reply.text()).streams
    assert stream.status_callback_method is CallbackMethod.GET
    call = running.server.store.get_call("get-call")
    assert call is not None
    assert [record["fields"] for record in call["status_callbacks"]] == sent
    assert call["status_callbacks"][1]["fields"]["Error"] == "connect failed: 502"
    lines = log_lines(running)
    assert [{k: line[k] for k in fields} for line, fields in zip(lines, sent, strict=True)] == sent


# --- 3: signatures -------------------------------------------------------------------------------


async def test_signed_callbacks_are_accepted_and_bad_ones_rejected_unstored(
    start_server: StartServer,
) -> None:
    running = await start_server(auth_token=TOKEN)
    url = running.base + "/webhook?x=1"
    accepted = {
        "v3": (callback("StartStream", call="ok-v3"), v3_headers(url)),
        "v2": (callback("StopStream", call="ok-v2"), v2_headers(url)),
    }
    wrong_token = v3_headers(url, token="not-the-token")
    other_url = v3_headers(running.base + "/webhook?x=2")
    no_nonce = {"X-Vobiz-Signature-V3": sign_v3(TOKEN, url, NONCE)}
    v3_wrong_but_v2_right = {
        **v2_headers(url),
        "X-Vobiz-Signature-V3": wrong_token["X-Vobiz-Signature-V3"],
        "X-Vobiz-Signature-V3-Nonce": NONCE,
    }
    rejected = {
        "wrong": (callback("StartStream", call="bad-wrong"), wrong_token),
        "other-url": (callback("StartStream", call="bad-url"), other_url),
        "no-nonce": (callback("StartStream", call="bad-nonce"), no_nonce),
        "unsigned": (callback("StartStream", call="bad-unsigned"), {}),
        "v3-judged-first": (callback("StartStream", call="bad-v3"), v3_wrong_but_v2_right),
    }
    async with aiohttp.ClientSession() as client:
        for name, (fields, headers) in rejected.items():
            status, _ = await post(client, url, fields, headers)
            assert status == 403, name
        for name, (fields, headers) in accepted.items():
            status, _ = await post(client, url, fields, headers)
            assert status == 200, name
        # A GET callback is signed over its full URL, the callback's query included.
        get_fields = callback("ClearedAudio", call="ok-get")
        async with client.get(running.base + "/webhook", params=get_fields) as probe:
            assert probe.status == 403  # unsigned
            full_url = str(probe.url)
        async with client.get(full_url, headers=v3_headers(full_url)) as reply:
            assert reply.status == 200

    for fields, _ in rejected.values():
        assert running.server.store.get_call(fields["CallUUID"]) is None
    rows = db_callbacks(running)
    assert [(row[1], row[3]) for row in rows] == [
        ("ok-v3", "valid"),
        ("ok-v2", "valid"),
        ("ok-get", "valid"),
    ]
    lines = log_lines(running)
    assert [(line["CallUUID"], line["signature"]) for line in lines] == [
        ("ok-v3", "valid"),
        ("ok-v2", "valid"),
        ("ok-get", "valid"),
    ]
    # The query of a POSTed callback's URL is kept with its fields.
    assert lines[0]["x"] == "1"


async def test_signature_over_the_public_url_is_accepted(start_server: StartServer) -> None:
    running = await start_server(auth_token=TOKEN, public_url="https://app.example/")
    async with aiohttp.ClientSession() as client:
        status, _ = await post(
            client,
            running.base + "/webhook?x=1",
            callback("StartStream", call="public"),
            v3_headers("https://app.example/webhook?x=1"),
        )
        assert status == 200
        status, _ = await post(
            client,
            running.base + "/webhook?x=1",
            callback("StartStream", call="elsewhere"),
            v3_headers("https://other.example/webhook?x=1"),
        )
        assert status == 403
    assert [row[1] for row in db_callbacks(running)] == ["public"]
    assert [line["CallUUID"] for line in log_lines(running)] == ["public"]


async def test_signature_over_the_advertised_forwarded_url_is_accepted(
    start_server: StartServer,
) -> None:
    """Behind a TLS proxy (ngrok and the like) with no ``public_url``, the answer advertises
    ``https://<host>/webhook`` from ``X-Forwarded-Proto``; the carrier signs over that URL, so a
    callback arriving through the same proxy must verify against it."""
    running = await start_server(auth_token=TOKEN, trust_proxy=True)
    forwarded = {"X-Forwarded-Proto": "https"}
    async with aiohttp.ClientSession() as client:
        async with client.get(running.base + "/", headers=forwarded) as reply:
            [stream] = parse_response(await reply.text()).streams
        advertised = stream.status_callback_url
        assert advertised is not None and advertised.startswith("https://")
        status, _ = await post(
            client,
            running.base + "/webhook",
            callback("StartStream", call="via-proxy"),
            {**forwarded, **v3_headers(advertised)},
        )
    assert status == 200, "a callback signed over the server's own statusCallbackUrl was refused"
    assert running.server.store.get_call("via-proxy") is not None


# --- 4: a call that streamed and called back -----------------------------------------------------


async def test_calls_joins_a_stream_its_events_and_its_callbacks(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(bidirectional=False, keep_call_alive=False)
    async with aiohttp.ClientSession() as client:
        start = callback("StartStream", ServiceURL=running.ws_url + f"?call={CALL}")
        assert (await post(client, running.base + "/webhook", start))[0] == 200
        carrier = await connect(running.ws_url + f"?call={CALL}")
        await carrier.start(call_id=CALL, stream_id=STREAM)
        frames = await send_speech(carrier)
        await carrier.socket.close()
        await running.wait_idle()
        stop = callback("StopStream")
        assert (await post(client, running.base + "/webhook", stop))[0] == 200
        async with client.get(running.base + "/calls") as reply:
            assert reply.status == 200
            assert reply.content_type == "application/json"
            listing = await reply.json()

    [call] = [item for item in listing["calls"] if item["call_id"] == CALL]
    assert len(listing["calls"]) == 1
    assert call["status"] == "ended"
    assert set(call) == CALL_KEYS
    [stream] = call["streams"]
    assert set(stream) == STREAM_KEYS
    assert all(set(event) == EVENT_KEYS for event in call["events"])
    assert stream["stream_id"] == STREAM
    assert stream["frames_received"] == frames
    assert stream["ended_at"] is not None
    path = Path(stream["recording_path"])
    assert path.is_file() and path.parent == running.data_dir / "recordings"
    with wave.open(str(path)) as recording:
        assert recording.getnframes() >= frames * 160
    assert call["events"], "the stream's events are listed with the call"
    assert {event["stream_row"] for event in call["events"]} == {stream["id"]}
    assert [cb["event"] for cb in call["status_callbacks"]] == ["StartStream", "StopStream"]
    assert [cb["fields"] for cb in call["status_callbacks"]] == [start, stop]
    assert call["from_number"] == "+14155551111"


# --- 5: /calls and /healthz ----------------------------------------------------------------------


async def test_calls_shape_limit_and_bad_limit(start_server: StartServer) -> None:
    running = await start_server()
    names = [f"call-{number}" for number in range(5)]
    async with aiohttp.ClientSession() as client:
        for name in names:
            assert (await post(client, running.base + "/webhook", callback("X", name)))[0] == 200

        async def listing(query: str) -> tuple[int, Any]:
            async with client.get(running.base + "/calls" + query) as reply:
                body = await reply.read()
                is_json = reply.content_type == "application/json"
                return reply.status, json.loads(body) if is_json else body.decode()

        status, everything = await listing("")
        assert status == 200
        assert set(everything) == {"calls"}
        assert [call["call_id"] for call in everything["calls"]] == names[::-1]  # newest first
        for call in everything["calls"]:
            assert set(call) == CALL_KEYS
            assert call["status"] == "callbacks_only"
            [record] = call["status_callbacks"]
            assert set(record) == CALLBACK_KEYS
            assert record["fields"]["CallUUID"] == call["call_id"]
            parse_utc(call["first_seen"])
            parse_utc(record["received_at"])
        for limit, expected in ((1, names[-1:]), (3, names[:1:-1]), (5000, names[::-1])):
            status, page = await listing(f"?limit={limit}")
            assert status == 200
            assert [call["call_id"] for call in page["calls"]] == expected
        for bad in ("abc", "1.5", "", "ten"):
            status, text = await listing(f"?limit={bad}")
            assert status == 400, bad
            assert "limit" in text


async def test_stats_counts_open_streams_and_healthz_tells_nothing_of_calls(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server()
    healthy = {"status": "ok", "version": __version__}
    async with aiohttp.ClientSession() as client:

        async def page(path: str) -> dict[str, Any]:
            async with client.get(running.base + path) as reply:
                assert reply.status == 200
                assert reply.content_type == "application/json"
                body: dict[str, Any] = await reply.json()
                return body

        async def settles_at(streams: int) -> None:
            """Until /stats reports ``streams`` open (a socket is counted once its handshake
            is done, and uncounted once its session has finished)."""
            async with asyncio.timeout(3):
                while (await page("/stats"))["open_streams"] != streams:
                    await asyncio.sleep(0.01)
            assert await page("/healthz") == healthy  # liveness only, whatever is open

        await settles_at(0)
        carrier = await connect(running.ws_url)
        await carrier.start()
        await settles_at(1)
        second = await connect(running.ws_url)
        await settles_at(2)
        await second.socket.close()
        await settles_at(1)
        await carrier.socket.close()
        await settles_at(0)
        assert not running.server.sockets


# --- 6: a restart after a crash ------------------------------------------------------------------


async def test_restart_marks_streams_left_open_interrupted(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(bidirectional=False, keep_call_alive=False)
    carrier = await connect(running.ws_url + "?call=crashed-call")
    await carrier.start(call_id="crashed-call", stream_id="crashed-stream")
    await send_speech(carrier, seconds=0.5)

    def stream_open() -> bool:
        call = running.server.store.get_call("crashed-call")
        return call is not None and call["status"] == "active"

    await wait_until(stream_open)
    database = running.server.settings.database_path
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM streams WHERE ended_at IS NULL").fetchone() == (1,)

    # The "crashed" first server never closed its stream; a new process starts on the same data.
    settings = dataclasses.replace(running.server.settings)
    second = StreamServer(settings)
    runner = web.AppRunner(second.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://{host}:{port}/calls") as reply,
        ):
            listing = await reply.json()
    finally:
        await runner.cleanup()

    [call] = listing["calls"]
    assert call["call_id"] == "crashed-call"
    assert call["status"] == "interrupted"
    [stream] = call["streams"]
    assert stream["stream_id"] == "crashed-stream"
    assert stream["end_reason"] == "interrupted"
    assert stream["ended_at"] is not None
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT status FROM calls").fetchall() == [("interrupted",)]
        assert db.execute("SELECT end_reason FROM streams").fetchall() == [("interrupted",)]

    # Clean up the first server: its socket closes and its recording is finalised.
    await carrier.socket.close()
    await running.wait_idle()
    [path] = running.recordings()
    with wave.open(str(path)) as recording:
        assert recording.getnframes() > 0


# --- 7: the answer XML ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_answer_xml_parses_with_both_parsers(start_server: StartServer, method: str) -> None:
    running = await start_server(extra_headers="sessionId=abc123,agentId=john")
    host = urlsplit(running.base).netloc
    async with aiohttp.ClientSession() as client:
        async with client.request(method, running.base + "/") as reply:
            assert reply.status == 200
            assert reply.content_type == "application/xml"
            plain = await reply.text()
        if method == "POST":
            request = client.post(running.base + "/", data={"CallUUID": CALL, "From": "1"})
        else:
            request = client.get(running.base + "/", params={"CallUUID": CALL})
        async with request as reply:
            with_call = await reply.text()

    [stream] = parse_response(plain).streams
    url, attributes = minidom_stream(plain)
    assert stream.url == url == f"ws://{host}/stream"
    assert stream.status_callback_url == attributes["statusCallbackUrl"]
    assert attributes["statusCallbackUrl"] == f"http://{host}/webhook"
    assert stream.extra_headers == (("sessionId", "abc123"), ("agentId", "john"))
    assert attributes["extraHeaders"] == "sessionId=abc123,agentId=john"
    assert attributes["bidirectional"] == "true" and stream.bidirectional

    [stream] = parse_response(with_call).streams
    url, _ = minidom_stream(with_call)
    assert stream.url == url
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("ws", host, "/stream")
    assert parse_qs(parts.query) == {"call": [CALL]}


async def test_answer_xml_uses_the_public_url_and_forwarded_scheme(
    start_server: StartServer,
) -> None:
    public = await start_server(public_url="https://app.example")
    local = await start_server(trust_proxy=True)
    host = urlsplit(local.base).netloc
    async with aiohttp.ClientSession() as client:
        async with client.post(public.base + "/", data={"CallUUID": CALL}) as reply:
            public_xml = await reply.text()
        async with client.get(local.base + "/", headers={"X-Forwarded-Proto": "https"}) as reply:
            forwarded_xml = await reply.text()

    [stream] = parse_response(public_xml).streams
    url, attributes = minidom_stream(public_xml)
    assert stream.url == url == f"wss://app.example/stream?call={CALL}"
    assert stream.status_callback_url == attributes["statusCallbackUrl"]
    assert attributes["statusCallbackUrl"] == "https://app.example/webhook"

    [stream] = parse_response(forwarded_xml).streams
    url, attributes = minidom_stream(forwarded_xml)
    assert stream.url == url == f"wss://{host}/stream"
    assert attributes["statusCallbackUrl"] == f"https://{host}/webhook"


async def test_answer_xml_reads_the_first_of_a_chain_of_forwarded_headers(
    start_server: StartServer,
) -> None:
    """Each proxy in a chain may append to ``X-Forwarded-Proto`` / ``X-Forwarded-Host``; the first
    value is the one the carrier used. The answer must stay a valid ``<Stream>``, never a 500."""
    running = await start_server(trust_proxy=True)
    host = urlsplit(running.base).netloc
    chained = {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": f"{host}, proxy.internal"}
    async with (
        aiohttp.ClientSession() as client,
        client.get(running.base + "/", headers=chained) as reply,
    ):
        status, text = reply.status, await reply.text()
    assert status == 200, text
    [stream] = parse_response(text).streams
    assert stream.url == f"wss://{host}/stream"
    assert stream.status_callback_url == f"https://{host}/webhook"
