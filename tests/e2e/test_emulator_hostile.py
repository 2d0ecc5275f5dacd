"""The emulator facing a hostile app: redirect loops, huge answers, messages over the cap,
fragments, protocol breaches. Each ends in a clear report, never a traceback or a full memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import picows
import pytest
from aiohttp import web

from tests.e2e.conftest import DATA, run_cli, serve_app, url_of
from tests.e2e.test_emulator_fidelity import FIXTURE, App, play_audio, serve_stream_app, tone
from vobiz_stream.emulator import CallOptions, CallReport, run_call
from vobiz_stream.emulator.limits import MAX_APP_BYTES


async def test_a_redirect_loop_in_the_answer_url_is_named(tmp_path: Path) -> None:
    async def bounce(request: web.Request) -> web.Response:
        other = "/b" if request.path == "/a" else "/a"
        raise web.HTTPFound(other)

    runner = await serve_app([web.route("*", "/a", bounce), web.route("*", "/b", bounce)])
    base = url_of(runner).rstrip("/")
    try:
        code, stdout, stderr = await run_cli(
            "call", base + "/a", "--audio", str(FIXTURE), "--report", str(tmp_path / "r.json")
        )
    finally:
        await runner.cleanup()
    assert code == 1, stderr.decode()
    assert "Traceback" not in stderr.decode()
    failure = orjson.loads((tmp_path / "r.json").read_bytes())["failure"]
    assert failure.startswith(
        f"the answer URL redirects in a loop: {base}/a -> {base}/b -> {base}/a"
    ), failure
    assert len(failure) < 1000
    assert f"call failed: {failure}" in stdout.decode()


async def test_an_answer_body_over_the_cap_is_refused_unread() -> None:
    sent = 0

    async def huge(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        await response.write(b"<Response><Stream>ws://127.0.0.1:9/s</Stream>")
        chunk = b"<!--" + b"x" * 65536 + b"-->"
        try:
            for _ in range(1000):  # 64 MiB at most, chunked: no length to refuse it by
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    runner = await serve_app([web.post("/", huge)])
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=4))
    finally:
        await runner.cleanup()
    assert report.failure == (
        "the answer body is over 1 MiB (1048576 bytes): Vobiz expects a short XML document"
    )
    assert sent < 32 * 1024 * 1024  # the emulator stopped reading well before the end


@pytest.mark.parametrize(
    ("body", "charset", "failure"),
    [
        (b"x" * (MAX_APP_BYTES + 1), "utf-8", "the answer body is over 1 MiB (1048576 bytes)"),
        (b"<Response><Stream>ws://127.0.0.1:9/s</Stream>", "no-such-charset", "not well-formed"),
    ],
)
async def test_an_answer_with_a_length_over_the_cap_or_a_bogus_charset(
    body: bytes, charset: str, failure: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(
            body=body, headers={"Content-Type": f"application/xml; charset={charset}"}
        )

    runner = await serve_app([web.post("/", answer)])
    try:
        report = await run_call(url_of(runner), FIXTURE, CallOptions(speed=4))
    finally:
        await runner.cleanup()
    assert report.failure is not None and failure in report.failure, report.failure


@pytest.mark.parametrize("megabytes", [2, 12])
async def test_a_play_audio_over_the_cap_is_a_warning_and_exit_1(
    tmp_path: Path, megabytes: int
) -> None:
    async def flood(socket: web.WebSocketResponse, start: dict[str, Any]) -> None:
        stream_id = start["start"]["streamId"]
        await socket.send_json(play_audio(tone(0.2), stream_id))
        await asyncio.sleep(0.2)
        huge = play_audio(bytes(megabytes * 1024 * 1024 * 3 // 4), stream_id)
        await socket.send_str(orjson.dumps(huge).decode())

    app = App(script=flood)
    runner = await serve_stream_app(app)
    report_path = tmp_path / "report.json"
    try:
        code, stdout, stderr = await run_cli(
            "call", url_of(runner), "--audio", str(FIXTURE), "--quiet",
            "--report", str(report_path),
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 1, stdout.decode() + stderr.decode()
    assert "Traceback" not in stderr.decode() and "Traceback" not in stdout.decode()
    [logged] = stderr.decode().splitlines()  # once, in the call's words
    assert "the app sent messages over the 1 MiB (1048576 bytes) cap" in logged
    report = orjson.loads(report_path.read_bytes())
    assert report["completed"] and report["app_broke_stream"]
    [warning] = report["app_warnings"]
    assert (warning["kind"], warning["count"]) == ("oversized_message", 1)
    assert warning["what"] == "messages over the 1 MiB (1048576 bytes) cap"
    assert "closed the socket (1009" in warning["carrier"]
    assert report["end_reason"] == "app_closed"
    assert "warning: messages over the 1 MiB (1048576 bytes) cap (1)" in stdout.decode()


async def test_the_cap_in_the_help_and_readme_is_the_cap_in_the_code() -> None:
    code, stdout, _ = await run_cli("call", "--help")
    assert code == 0
    help_text = " ".join(stdout.decode().split())
    assert f"up to {MAX_APP_BYTES >> 20} MiB" in help_text
    assert f"over {MAX_APP_BYTES >> 20} MiB" in help_text
    readme = " ".join((DATA.parent.parent / "README.md").read_text().split())
    assert f"a message over {MAX_APP_BYTES >> 20} MiB is refused" in readme


async def call_picows_app(listener: Callable[[], picows.WSListener]) -> CallReport:
    """One emulated call to a stream socket served by picows (which can send what aiohttp
    will not: fragments, raw bytes), with an aiohttp answer pointing at it."""
    stream_server = await picows.ws_create_server(lambda _request: listener(), "127.0.0.1", 0)
    port = stream_server.sockets[0].getsockname()[1]

    async def answer(_request: web.Request) -> web.Response:
        url = f"ws://127.0.0.1:{port}/"
        xml = (
            f'<Response><Stream bidirectional="true" keepCallAlive="true">{url}</Stream></Response>'
        )
        return web.Response(text=xml, content_type="application/xml")

    runner = await serve_app([web.post("/", answer)])
    try:
        return await run_call(url_of(runner), FIXTURE, CallOptions(speed=4))
    finally:
        await runner.cleanup()
        stream_server.close()


async def test_a_message_over_the_cap_in_fragments_is_refused_as_it_grows() -> None:
    """Fragments each under the cap, together over it: the carrier adds them up."""
    closed_with: list[int] = []

    class Fragmenter(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type is picows.WSMsgType.CLOSE:
                closed_with.append(frame.get_close_code().value)
            elif frame.msg_type is picows.WSMsgType.TEXT and b'"start"' in (
                frame.get_payload_as_bytes()
            ):
                piece = b" " * (MAX_APP_BYTES // 2)
                transport.send(picows.WSMsgType.TEXT, b'{"event": "playAudio",' + piece, fin=False)
                for _ in range(4):  # 2.5 MiB in all, never ended
                    transport.send(picows.WSMsgType.CONTINUATION, piece, fin=False)

    report = await call_picows_app(Fragmenter)
    assert report.completed and report.app_broke_stream, report.summary()
    [warning] = report.app_warnings
    assert warning.kind == "oversized_message"
    assert warning.first == "fragments of one message adding up to over 1 MiB (1048576 bytes)"
    assert closed_with == [1009]


async def test_a_frame_breaking_the_websocket_protocol_is_named() -> None:
    class Breaker(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if b'"start"' in frame.get_payload_as_bytes():
                transport.underlying_transport.write(b"\x83\x00")  # opcode 3 is reserved

    report = await call_picows_app(Breaker)
    assert report.completed and report.end_reason == "app_closed", report.summary()
    [closed] = [entry for entry in report.timeline if entry.event == "app closed"]
    assert closed.detail.startswith("the app broke the WebSocket protocol: "), closed.detail
    assert "\n" not in closed.detail
