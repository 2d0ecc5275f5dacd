"""The picows media socket (``media_transport = "picows"``) against the real server and carrier.

The same server as every other e2e test, with the carrier's WebSocket on picows on its own port:
the answer XML must point there, calls must record sample for sample and play back as on the
aiohttp socket, and what picows does differently (admission after the upgrade, fragments it
hands over one by one) must still come out right. A raw socket client covers the frames aiohttp's
client never sends (fragmented messages).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import orjson
import pytest

from tests.e2e.conftest import (
    DATA,
    RunningServer,
    StartServer,
    frames_of,
    free_port,
    read_wav,
    run_cli,
    serve_process,
    speech,
)
from vobiz_stream.app.handlers import echo
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.core.answer import parse_response
from vobiz_stream.emulator import CallOptions, run_call

FIXTURE = DATA / "speech_male_8k.wav"
RATE = 8000
FRAME = RATE // 50
SECRET = "picows-stream-secret-0123456789"


def assert_recorded(recorded: np.ndarray, pcm: np.ndarray, most_frames: int = 5) -> None:
    """The recording's caller track is ``pcm`` sample for sample, after at most ``most_frames``
    frames of silence: a stream's first frame lands where it arrived after ``start``, which on a
    busy machine may be a frame or two late."""
    track = recorded[:, 0]
    for k in range(most_frames + 1):
        start = k * FRAME
        if not track[:start].any() and np.array_equal(track[start : start + len(pcm)], pcm):
            return
    raise AssertionError(f"the recording is not the audio sent after 0-{most_frames} frames")


def caller_audio() -> np.ndarray:
    """The fixture as the emulator sends it: whole 20 ms frames."""
    samples = speech()[0]
    return np.concatenate([samples, np.zeros(-len(samples) % FRAME, dtype=np.int16)])


async def answer_stream_url(running: RunningServer, call_uuid: str = "picows-call") -> str:
    async with (
        aiohttp.ClientSession() as client,
        client.post(running.base + "/", data={"CallUUID": call_uuid}) as reply,
    ):
        assert reply.status == 200
        return parse_response(await reply.text()).streams[0].url


def start_frame(call_id: str = "raw-call") -> str:
    start = {
        "event": "start",
        "start": {
            "callId": call_id,
            "streamId": "raw-stream",
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": RATE},
        },
    }
    return orjson.dumps(start).decode()


def media_frame(pcm: np.ndarray, chunk: int) -> str:
    payload = base64.b64encode(encode_l16(pcm, ByteOrder.LITTLE)).decode()
    return orjson.dumps({"event": "media", "media": {"payload": payload, "chunk": chunk}}).decode()


# --- a raw WebSocket client: for the frames aiohttp's client does not send --------------------


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return head + mask + masked


async def raw_socket(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


# --- calls over picows -----------------------------------------------------------------------


async def test_answer_points_at_the_picows_port_and_a_call_records_sample_for_sample(
    start_server: StartServer,
) -> None:
    running = await start_server(media_transport="picows")
    media_port = running.server.media_port
    assert media_port is not None
    stream_url = urlsplit(await answer_stream_url(running))
    assert (stream_url.scheme, stream_url.port, stream_url.path) == ("ws", media_port, "/stream")
    assert media_port != urlsplit(running.base).port

    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=4))
    await running.wait_idle()
    assert report.completed and report.end_reason == "hangup", report.summary()
    caller = caller_audio()
    assert report.frames_sent == len(caller) // FRAME
    [path] = running.recordings()
    recorded, rate, _ = read_wav(path)
    assert rate == RATE
    # Big-endian from the emulator, detected by the server; the first frame lands at 0.
    np.testing.assert_array_equal(recorded[: len(caller), 0], caller)
    assert not recorded[len(caller) :, 0].any()
    [call] = running.server.store.list_calls()
    [stream] = call["streams"]
    assert stream["frames_received"] == report.frames_sent and stream["ended_at"] is not None
    assert call["status_callbacks"][0]["event"] == "StartStream"
    async with aiohttp.ClientSession() as client, client.get(running.base + "/stats") as reply:
        stats = await reply.json()
    assert stats["frames"] == report.frames_sent
    assert stats["handling_latency_ms"]["count"] == report.frames_sent
    assert stats["open_streams"] == 0


async def test_echo_over_picows_plays_back_and_confirms_checkpoints(
    start_server: StartServer,
) -> None:
    running = await start_server(echo, media_transport="picows")
    report = await run_call(running.base + "/", FIXTURE, CallOptions(hangup_after=7.0))
    await running.wait_idle()
    assert report.completed, report.summary()
    assert report.first_audio_latency is not None, report.summary()
    assert report.commands.get("playAudio", 0) > 50
    played = [c for c in report.checkpoints if c.answered_at is not None]
    assert played, report.summary()
    assert not [gap for gap in report.gaps if gap.mid_utterance], report.gaps
    [call] = running.server.store.list_calls()
    kinds = [event["kind"] for event in call["events"]]
    assert "checkpoint_played" in kinds
    [stream] = call["streams"]
    assert stream["frames_sent"] >= report.commands["playAudio"]  # some left as it hung up


# --- what picows does its own way --------------------------------------------------------------


async def test_a_refused_socket_is_closed_with_the_refusal_and_nothing_is_kept(
    start_server: StartServer,
) -> None:
    """picows knows the peer only after the upgrade: admission refuses with a close frame."""
    running = await start_server(media_transport="picows", stream_secret=SECRET)
    url = await answer_stream_url(running, "admitted-call")
    forged = url.replace("admitted-call", "other-call")
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(forged)
        message = await socket.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 1008  # policy violation: a token problem
        assert "token" in message.extra
        without_token = await client.ws_connect(url.partition("?")[0])
        message = await without_token.receive(timeout=5)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)
    await running.wait_idle()
    assert running.server.store.list_calls() == []
    assert running.server.admission.open_calls == 0


async def test_at_capacity_a_socket_is_told_to_try_again_later(start_server: StartServer) -> None:
    running = await start_server(media_transport="picows", max_calls=1)
    url = await answer_stream_url(running)
    async with aiohttp.ClientSession() as client:
        first = await client.ws_connect(url)  # admitted as it opened
        second = await client.ws_connect(url)
        message = await second.receive(timeout=5)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1013)
        await first.close()
    await running.wait_idle()
    assert running.server.admission.open_calls == 0


async def test_an_oversized_frame_ends_only_its_own_call(start_server: StartServer) -> None:
    running = await start_server(
        media_transport="picows", max_message_bytes=4096, l16_byte_order="little"
    )
    url = await answer_stream_url(running)
    pcm = speech()[0][: 50 * FRAME]
    async with aiohttp.ClientSession() as client:
        good = await client.ws_connect(url)
        bad = await client.ws_connect(url)
        await good.send_str(start_frame("good-call"))
        await bad.send_str(start_frame("bad-call"))
        await bad.send_str("x" * 5000)
        closing = await bad.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1009)
        for chunk, frame in enumerate(frames_of(pcm, RATE)):
            await good.send_str(media_frame(frame, chunk))
        await good.close()
    await running.wait_idle()
    calls = {call["call_id"]: call for call in running.server.store.list_calls()}
    [good_stream] = calls["good-call"]["streams"]
    assert good_stream["frames_received"] == 50
    [bad_stream] = calls["bad-call"]["streams"]
    assert bad_stream["end_reason"] == "socket_closed (1009)"
    assert_recorded(
        read_wav(next(p for p in running.recordings() if "good-call" in p.name))[0], pcm
    )


async def test_fragmented_messages_are_gathered_and_binary_frames_counted(
    start_server: StartServer,
) -> None:
    running = await start_server(media_transport="picows", l16_byte_order="little")
    reader, writer = await raw_socket(await answer_stream_url(running))
    pcm = speech()[0][: 10 * FRAME]
    start = start_frame().encode()
    writer.write(ws_frame(0x1, start[:10], fin=False))  # text, in three fragments
    writer.write(ws_frame(0x0, start[10:30], fin=False))
    writer.write(ws_frame(0x0, start[30:]))
    for chunk, frame in enumerate(frames_of(pcm, RATE)):
        text = media_frame(frame, chunk).encode()
        if chunk == 4:  # one media frame in two fragments, with a ping between them
            writer.write(ws_frame(0x1, text[:100], fin=False))
            writer.write(ws_frame(0x9, b"between"))
            writer.write(ws_frame(0x0, text[100:]))
        else:
            writer.write(ws_frame(0x1, text))
    writer.write(ws_frame(0x2, b"\x00" * 64))  # binary: malformed, the call goes on
    writer.write(ws_frame(0x8, (1000).to_bytes(2, "big")))
    await writer.drain()
    replies = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    writer.close()
    assert b"between" in replies  # the pong
    await running.wait_idle()
    [call] = running.server.store.list_calls()
    [stream] = call["streams"]
    assert (stream["frames_received"], stream["frames_malformed"]) == (10, 1)
    assert stream["end_reason"] == "socket_closed"
    [path] = running.recordings()
    assert_recorded(read_wav(path)[0], pcm)


async def test_shutdown_closes_picows_sockets_and_finalises_their_recordings(
    start_server: StartServer,
) -> None:
    running = await start_server(media_transport="picows", l16_byte_order="little")
    url = await answer_stream_url(running)
    pcm = speech()[0][: 40 * FRAME]
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(url)
        await socket.send_str(start_frame("open-call"))
        for chunk, frame in enumerate(frames_of(pcm, RATE)):
            await socket.send_str(media_frame(frame, chunk))
        await asyncio.sleep(0.2)  # the frames reach the server
        running.server.draining = True
        refused = await client.ws_connect(url)
        message = await refused.receive(timeout=5)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1013)
        await running.server.close_sockets()
        closing = await socket.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert not running.server.sockets
    [path] = running.recordings()
    assert_recorded(read_wav(path)[0], pcm)
    with sqlite3.connect(running.server.settings.database_path) as db:
        row = db.execute("SELECT ended_at, frames_received FROM streams").fetchone()
    assert row[0] is not None and row[1] == 40


async def test_a_carrier_that_stops_reading_is_dropped_after_send_timeout(
    start_server: StartServer,
) -> None:
    """Sends wait while the socket's buffers are full, then give up and drop the socket."""
    running = await start_server(media_transport="picows", send_timeout=0.5)
    reader, writer = await raw_socket(await answer_stream_url(running))  # never read from
    writer.write(ws_frame(0x1, start_frame("deaf-call").encode()))
    await writer.drain()
    async with asyncio.timeout(5):
        while not running.server.sockets:
            await asyncio.sleep(0.01)
    [stream] = running.server.sockets
    big = "x" * 65536
    began = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionError, match="send_timeout"):
        for _ in range(2000):  # at most 128 MiB: far past any socket buffer
            await stream.transport.send_text(big)
    assert asyncio.get_running_loop().time() - began >= 0.5
    await running.wait_idle()
    [call] = running.server.store.list_calls()
    assert call["streams"][0]["end_reason"] == "socket_closed (1006)"
    writer.close()
    del reader


# --- the command line ------------------------------------------------------------------------


async def test_serve_with_picows_answers_with_its_media_port_and_records(tmp_path: Path) -> None:
    port, media_port = free_port(), free_port()
    process = await serve_process(
        port, tmp_path, "--media-transport", "picows", "--media-port", str(media_port)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        report = await run_call(base + "/", FIXTURE, CallOptions(speed=4))
        assert report.completed, report.summary()
        assert urlsplit(report.stream_url or "").port == media_port
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert f"media socket (picows) on ws://127.0.0.1:{media_port}/stream" in stderr.decode()
    [path] = sorted((tmp_path / "recordings").glob("*.wav"))
    caller = caller_audio()
    np.testing.assert_array_equal(read_wav(path)[0][: len(caller), 0], caller)


async def test_bad_media_settings_stop_the_server_at_start() -> None:
    code, _, stderr = await run_cli("serve", "--media-transport", "quic")
    assert code == 2 and b"invalid choice: 'quic'" in stderr
    code, _, stderr = await run_cli("serve", "--port", "4000", "--media-port", "4000")
    assert code == 2 and b"media_port must be 0 (any free port) or 1-65535" in stderr
