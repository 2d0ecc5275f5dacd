"""A second hostile review of ``vobiz-stream serve``: each attack performed over loopback against a
real server (in-process, or ``vobiz-stream serve`` itself), for holes the first review's fixes left
or the merge of them opened."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import StartServer, serve_app, url_of
from tests.e2e.test_emulator_fidelity import FIXTURE, App, call_app
from tests.e2e.test_hostile_frames import Connect, ServerProcess
from tests.e2e.test_security_access import GUARDED, fetch, record_a_call
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.report import REPORT_ITEMS

SECRET = "stream-secret-for-tests-0123456789"
AUTH_TOKEN = "MAUTHTOKEN-for-tests-9876543210"

# --- 1. the admin guard on loopback without a token ------------------------------------------


@pytest.mark.parametrize(
    "proxied",
    [
        {"X-Real-IP": "203.0.113.9"},  # nginx's usual proxy configuration adds only this
        {"X-Forwarded-Host": "abc.example"},
        {"X-Forwarded-Proto": "https"},
        {"Via": "1.1 proxy.example"},
        {"CF-Connecting-IP": "203.0.113.9"},
    ],
)
async def test_on_loopback_without_a_token_any_proxy_header_refuses_call_data(
    start_server: StartServer, proxied: dict[str, str]
) -> None:
    """The first review refused ``Forwarded`` and ``X-Forwarded-For`` only; a proxy that sets
    another of the usual headers passed the world's requests through to ``/calls``."""
    running = await start_server()
    call_id = await record_a_call(running)
    for path in GUARDED:
        status, text, _ = await fetch(running.base + path, headers=proxied)
        assert status == 403 and "proxy or tunnel" in text and call_id not in text, path


async def test_on_loopback_without_a_token_a_foreign_host_header_is_refused(
    start_server: StartServer,
) -> None:
    """DNS rebinding: a web page at ``attacker.example``, whose name was made to resolve to
    127.0.0.1, has the developer's browser fetch ``/calls`` with ``Host: attacker.example:3000``
    and no proxy header. Loopback names (any port) stay open for development."""
    running = await start_server()
    call_id = await record_a_call(running)
    for host in ["attacker.example:3000", "attacker.example", "10.0.0.1", "127.0.0.1.nip.io"]:
        for path in GUARDED:
            status, text, _ = await fetch(running.base + path, headers={"Host": host})
            assert status == 403 and "Host" in text and call_id not in text, (host, path)
    for host in ["127.0.0.1", "localhost:3000", "[::1]:3000", "127.0.0.2"]:
        status, text, _ = await fetch(running.base + "/calls", headers={"Host": host})
        assert status == 200 and call_id in text, host


# --- 2. log lines per hostile frame -------------------------------------------------------------


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path)
    yield server
    if server.process is not None:
        await server.stop()


FLOODS = {
    "dtmf": '{"event":"dtmf","streamId":"s","dtmf":{"digit":"1"}}',
    "checkpoint_played": '{"event":"playedStream","streamId":"s","name":"cp-%d"}',
    "clearedAudio without a clear": '{"event":"clearedAudio","streamId":"s"}',
}


@pytest.mark.parametrize("kind", FLOODS)
async def test_a_flood_of_one_event_kind_costs_a_bounded_log(
    serve: ServerProcess, connect: Connect, kind: str
) -> None:
    """5000 tiny ``dtmf`` / ``playedStream`` / ``clearedAudio`` frames once made a log line each
    (62 to 181 bytes of log per frame, without bound); the store already kept 100 and counted
    the rest. Now the first 100 of a kind are logged and one line says the rest are not."""
    await serve.start()
    before = serve.log_bytes()
    carrier = await connect(serve.ws_url)
    await carrier.start(call_id="flood")
    frame = FLOODS[kind]
    for number in range(5000):
        await carrier.send(frame.replace("%d", str(number)))
    await carrier.socket.close()
    await serve.stop()
    grown = serve.log_bytes() - before
    log = serve.log_path.read_text()
    print(f"\n{kind}: log +{grown} B for 5000 frames")
    assert log.count("the rest of this stream's are not logged") == 1
    assert grown < 30_000
    [(stored,)] = serve.query(
        "SELECT count(*) FROM call_events WHERE stream_row IS NOT NULL"
        " AND kind != 'events_not_stored'"
    )
    assert stored <= 100


# --- 3. stream tokens ----------------------------------------------------------------------------


async def test_with_verify_answers_an_unsigned_answer_request_mints_no_stream_token(
    start_server: StartServer,
) -> None:
    """A stranger who reaches the answer URL asks it for ``CallUUID=anything``: with
    ``verify_answers`` (and the carrier's auth token) an unsigned request gets 403 and no token.
    (tests/e2e/test_verify_answers.py: signed ones are answered, and the default says in the
    log whether answers come signed.)"""
    running = await start_server(stream_secret=SECRET, auth_token=AUTH_TOKEN, verify_answers=True)
    async with (
        aiohttp.ClientSession() as client,
        client.post(running.base + "/", data={"CallUUID": "stranger-call"}) as reply,
    ):
        status, text = reply.status, await reply.text()
    assert status == 403 and "signature" in text
    assert "token=" not in text and "<Stream" not in text


# --- 4. a body that trickles, stalls or stops halfway ------------------------------------------

PARTIAL_BODY = (
    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nCallUUID=x"
)


async def half_sent_bodies(base: str, path: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections that sent their headers and the start of a 60 000-byte body."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(PARTIAL_BODY.format(path=path).encode())
        await writer.drain()
        writers.append(writer)
        writer.reader = reader  # type: ignore[attr-defined]
    return writers


async def trickle_until_closed(writer: asyncio.StreamWriter, seconds: float) -> float | None:
    """Send one byte a second until the server closes the connection (after how many seconds)
    or ``seconds`` pass (None)."""
    reader: asyncio.StreamReader = writer.reader  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    began = loop.time()
    while loop.time() - began < seconds:
        try:
            writer.write(b"a")
            async with asyncio.timeout(1.0):
                await reader.read()  # b"" or a 408 then b"": the server is done with us
            return loop.time() - began
        except TimeoutError:
            continue
        except ConnectionError:  # reset: the unread rest of our body made the close abrupt
            return loop.time() - began
    return None


@pytest.mark.parametrize("path", ["/webhook", "/"])
async def test_a_body_that_trickles_is_dropped_after_start_timeout(
    start_server: StartServer, path: str
) -> None:
    """Headers, then one byte a second: each connection was held as long as the sender liked
    (20 of 20 still open after 8 s with ``--start-timeout 2``; enough of them exhaust the
    server's descriptors). Now the body has ``--start-timeout`` seconds to arrive: 408, closed."""
    running = await start_server(start_timeout=1.0)
    writers = await half_sent_bodies(running.base, path, 10)
    closed_after = await asyncio.gather(*(trickle_until_closed(w, 6.0) for w in writers))
    for writer in writers:
        writer.close()
    print(f"\n{path}: closed after {closed_after}")
    assert all(after is not None and after < 3.0 for after in closed_after), closed_after


async def test_a_body_cut_off_halfway_logs_no_traceback(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender that hangs up in the middle of its body once cost a 28-line ERROR traceback per
    connection (20 connections: 560 lines). Now each is a refusal counted at ``/stats``, its
    log line at most once a minute."""
    running = await start_server()
    with caplog.at_level(logging.INFO):
        for path in ["/webhook", "/"]:
            writers = await half_sent_bodies(running.base, path, 20)
            for writer in writers:
                writer.transport.abort()
            await asyncio.sleep(0.5)
    assert not [record for record in caplog.records if record.exc_info], caplog.text[:2000]
    assert len(caplog.records) <= 2, caplog.text[:2000]
    _, stats, _ = await fetch(running.base + "/stats")
    assert orjson.loads(stats)["status_callbacks"]["refused"] == {"body_incomplete": 20}


# --- 5. a socket that starts, then sends nothing -------------------------------------------------


@pytest.mark.all_transports
@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_a_socket_that_starts_then_sends_nothing_gives_its_slot_back(
    start_server: StartServer, connect: Connect, transport: str
) -> None:
    """A carrier sends media all call long (silence too, 50 frames a second). A peer that sends
    ``start`` and then nothing, answering the server's pings, held its slot past 20 s on both
    transports; 1000 of them fill ``--max-calls``. Now media that stops for ``--start-timeout``
    seconds after the start closes the socket (1008), as a start that never comes does."""
    running = await start_server(media_transport=transport, heartbeat=1.0, start_timeout=1.0)
    url = running.ws_url
    if transport == "picows":
        url = f"ws://127.0.0.1:{running.server.media_port}/stream"
    carrier = await connect(url)
    await carrier.start(call_id="idle")
    assert carrier.reader is not None
    await asyncio.wait_for(asyncio.shield(carrier.reader), 5.0)  # the server closed the socket


# --- 6. the emulator facing an app's hostile answer XML ------------------------------------------

BIG = "A" * 900_000
HOSTILE_ANSWERS = {
    "a 900 KB attribute value": f'<Response><Stream extraHeaders="{BIG}">ws://127.0.0.1:9/s</Stream>'
    "</Response>",
    "a 900 KB URL": f"<Response><Stream>file:///{BIG}</Stream></Response>",
    "200 000 child elements": "<Response><Stream>ws://127.0.0.1:9/s"
    + "<x/>" * 200_000
    + "</Stream></Response>",
    "60 000 unknown attributes": "<Response><Stream "
    + " ".join(f'a{number}="v"' for number in range(60_000))
    + ">ws://127.0.0.1:9/s</Stream></Response>",
    "200 000 unknown verbs before the stream": "<Response>"
    + "<x/>" * 200_000
    + "<Stream>ws://127.0.0.1:9/s</Stream></Response>",
    "a 900 KB verb name": f"<Response><{BIG}/><Stream>ws://127.0.0.1:9/s</Stream></Response>",
}


@pytest.mark.parametrize("case", HOSTILE_ANSWERS)
async def test_a_hostile_answer_xml_makes_a_short_report(case: str) -> None:
    """Under 1 MiB of answer XML once made up to 20 MB of timeline and 46 MB of report (each
    unknown element a warning, each long value quoted whole, twice). Now an error quotes at most
    80 characters of a value and the warnings name 10 things and count the rest."""
    body = HOSTILE_ANSWERS[case]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/xml")

    runner = await serve_app([web.post("/", answer)])
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=4))
    finally:
        await runner.cleanup()
    assert report.failure is not None
    shown = orjson.dumps(report.to_json())
    print(f"\n{case}: report {len(shown)} characters, {len(report.warnings)} warnings")
    assert len(report.failure) < 1000, report.failure[:200]
    assert len(report.warnings) <= 30
    assert len(shown) < 20_000


# --- 7. requests aiohttp cannot parse, and Host headers that are no host -------------------------


async def raw_request(port: int, request: bytes) -> bytes:
    """The status line the server answers ``request`` with (b"" if it just closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    return answer.split(b"\r\n", 1)[0]


MALFORMED_REQUESTS = [
    b"GET /calls HTTP/1.1\r\nHost: evil\x1b[31m.example\r\n\r\n",  # ESC in a header
    b"X" * 9000 + b" / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # a request line past 8 KiB
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: \x00\r\n\r\n",  # NUL in a header
]


async def test_a_flood_of_malformed_requests_logs_one_line_not_a_traceback_each(
    serve: ServerProcess,
) -> None:
    """300 requests aiohttp cannot parse once logged an ERROR with a traceback each (about
    2.5 KB of log per request). Now: 400 each, one WARNING line with a count."""
    await serve.start()
    before = serve.log_bytes()
    statuses = set()
    for number in range(300):
        statuses.add(await raw_request(serve.port, MALFORMED_REQUESTS[number % 3]))
    await serve.stop()
    grown = serve.log_bytes() - before
    log = serve.log_path.read_text()
    print(f"\nlog +{grown} B for 300 malformed requests; statuses {statuses}")
    assert statuses <= {b"HTTP/1.0 400 Bad Request", b"HTTP/1.1 400 Bad Request"}
    assert "Traceback" not in log
    assert log.count("refused a malformed HTTP request") == 1
    assert grown < 2_000


@pytest.mark.parametrize(
    "host",
    [b"ev\x85il.example", "evil\u2028forged.example".encode(), b"h" * 8000, b"a b"],
    ids=["latin-1 byte", "line separator", "8000 characters", "space"],
)
@pytest.mark.parametrize("path", ["/?CallUUID=c-1", "/webhook?CallUUID=c-1", "/no-such-page"])
async def test_a_host_header_that_is_no_host_gets_400_and_no_traceback(
    serve: ServerProcess, host: bytes, path: str
) -> None:
    """A byte past ASCII in ``Host`` made the answer, the callback and the 404 page answer 500
    with a traceback in the log; a line separator and 8000 characters reached the log and the
    URLs. Now the host is checked first: 400 naming ``--public-url``."""
    await serve.start()
    request = f"GET {path} HTTP/1.1\r\nHost: ".encode() + host + b"\r\nConnection: close\r\n\r\n"
    status = await raw_request(serve.port, request)
    await serve.stop()
    log = serve.log_path.read_text()
    assert status == b"HTTP/1.1 400 Bad Request"
    assert "Traceback" not in log and "\u2028" not in log and "h" * 300 not in log


# --- 8. permessage-deflate ----------------------------------------------------------------------


@pytest.mark.all_transports
@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_the_media_socket_does_not_inflate_what_a_peer_deflated(
    start_server: StartServer, transport: str
) -> None:
    """The aiohttp socket accepted permessage-deflate: 1000 frames of about 1 KB on the wire,
    each a valid 1 MB frame once inflated, cost the server 0.86 s of CPU and 1 GB of inflating
    (the same CPU takes 1 GB of plain frames). Now it declines the extension, as picows does."""
    running = await start_server(media_transport=transport)
    url = running.ws_url
    if transport == "picows":
        url = f"ws://127.0.0.1:{running.server.media_port}/stream"
    async with aiohttp.ClientSession() as client, client.ws_connect(url, compress=15) as socket:
        assert socket.compress == 0, "the server agreed to inflate this socket's frames"


# --- 9. compressed request bodies ---------------------------------------------------------------


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_a_gzip_bomb_at_the_answer_or_callback_url_costs_no_inflating(
    serve: ServerProcess,
) -> None:
    """60 KB of gzip that inflate to 60 MB, sent to ``/webhook`` and ``/`` (and any other path),
    cost the server about 170 ms of CPU each on its event loop (every call stalled meanwhile):
    3.7 s for these 24. Now the server inflates nothing: the answer and callback URLs answer
    415, other paths what they answer to a POST."""
    bomb = gzip.compress(b"a=" + b"b" * (60 * 1024 * 1024), 9)
    await serve.start()
    assert serve.process is not None
    before = server_cpu_seconds(serve.process.pid)
    for path in ["/webhook", "/"] * 10 + ["/healthz", "/no-such-page", "/calls", "/stream"]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: gzip\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            await raw_request(serve.port, head.encode() + bomb)
    spent = server_cpu_seconds(serve.process.pid) - before
    await serve.stop()
    print(f"\nserver CPU for 24 gzip bombs: {spent:.2f} s")
    assert spent < 0.5


# --- 10. the emulator facing an app's command flood ---------------------------------------------


@pytest.mark.parametrize("command", ["checkpoint", "clearAudio"])
async def test_a_flood_of_app_commands_makes_a_bounded_report(command: str) -> None:
    """``playAudio`` floods are bounded by the playout queue's cap; checkpoints and clears by the
    report's: the first ``REPORT_ITEMS`` kept, every one counted."""

    async def flood(socket: web.WebSocketResponse, start: dict[str, Any]) -> None:
        stream_id = start["start"]["streamId"]
        for number in range(20_000):
            message = {"event": command, "streamId": stream_id, "name": f"cp-{number}"}
            await socket.send_str(orjson.dumps(message).decode())

    report = await call_app(App(script=flood), options=CallOptions(speed=8, hangup_after=3.0))
    size = len(orjson.dumps(report.to_json()))
    print(f"\n20 000 {command}: report {size} bytes")
    assert size < 1_000_000
    received = report.commands[command]
    assert received > REPORT_ITEMS
    if command == "checkpoint":
        assert (len(report.checkpoints), report.checkpoints_omitted) == (
            REPORT_ITEMS,
            received - REPORT_ITEMS,
        )
    else:
        assert len(report.clears) == REPORT_ITEMS
        assert len(report.clears) + report.clears_omitted == received
    assert report.timeline_omitted[command] == received - REPORT_ITEMS
