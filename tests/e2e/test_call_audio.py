"""Playing into a call and clearing it from the API: ``POST /api/calls/<id>/play`` and
``/clear``, here and on another server sharing PostgreSQL (the audio goes through the database,
the order over LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
import soundfile

from tests.e2e.conftest import Carrier, StartServer, b64, free_port, serve_process
from vobiz_stream.app.call_audio import MAX_PLAY_BYTES, MAX_PLAY_SAMPLES
from vobiz_stream.app.session import CallSession
from vobiz_stream.audio.speech import speech_available

ADMIN = "call-audio-admin-token-0123456789"
SPEECH = Path(__file__).parent.parent / "data" / "speech_male_8k.wav"
BEARER = {"Authorization": f"Bearer {ADMIN}"}


async def listener(session: CallSession) -> None:
    """Plays nothing of its own: only what the API sends."""
    async for _ in session.events():
        pass


async def post(
    base: str, path: str, body: bytes = b"", token: str | None = ADMIN, json: bool = False
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if json:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as client,
        client.post(base + path, data=body, headers=headers) as reply,
    ):
        text = await reply.text()
        return reply.status, orjson.loads(text) if reply.status != 401 else {}


async def events_of(base: str, call_id: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers=BEARER) as client,
        client.get(f"{base}/calls/{call_id}") as reply,
    ):
        return list((await reply.json())["events"])


async def test_play_from_the_api_queues_the_audio_and_a_checkpoint_the_events_show(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    running = await start_server(listener, admin_token=ADMIN)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="play-into-me")
    await running.server.streams.open.__iter__().__next__().session.wait_started()
    audio = SPEECH.read_bytes()

    assert (await post(running.base, "/api/calls/play-into-me/play", audio, token=None))[0] == 401
    status, body = await post(running.base, "/api/calls/play-into-me/play", audio)
    assert (status, body["outcome"]) == (202, "queued")
    name = body["checkpoint"]
    await carrier.wait_for("checkpoint", count=2, timeout=20)  # the play's own, then ours
    assert carrier.commands("playAudio")  # the speech went out
    assert name in [frame["name"] for _, frame in carrier.commands("checkpoint")]
    await carrier.send({"event": "playedStream", "streamId": "stream-1", "name": name})

    status, body = await post(running.base, "/api/calls/play-into-me/play", b"RIFF not audio")
    assert status == 400 and "cannot be read" in body["error"]
    status, body = await post(running.base, "/api/calls/play-into-me/play", b"\0" * (6 << 20))
    assert status == 413 and "5 MB" in body["error"]
    assert (await post(running.base, "/api/calls/nobody/play", audio))[0] == 404
    status, body = await post(running.base, "/api/calls/play-into-me/clear")
    assert (status, body["outcome"]) == (200, "cleared")
    await carrier.wait_for("clearAudio")
    assert (await post(running.base, "/api/calls/nobody/clear"))[0] == 404

    async with asyncio.timeout(10):
        while not any(
            e["kind"] == "checkpoint_played" and e["detail"].get("name") == name
            for e in await events_of(running.base, "play-into-me")
        ):
            await asyncio.sleep(0.05)
    await carrier.socket.close()
    await running.wait_idle()


async def test_a_small_file_holding_too_long_a_sound_is_refused_before_decoding(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]], tmp_path: Path
) -> None:
    """A compressed file of silence: a few kilobytes that would decode to over 20 MB."""
    running = await start_server(listener, admin_token=ADMIN)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="bomb")
    await running.server.streams.open.__iter__().__next__().session.wait_started()
    bomb = tmp_path / "silence.flac"
    soundfile.write(bomb, np.zeros(MAX_PLAY_SAMPLES + 8000, np.int16), 8000, format="FLAC")
    assert bomb.stat().st_size < MAX_PLAY_BYTES
    status, body = await post(running.base, "/api/calls/bomb/play", bomb.read_bytes())
    assert status == 400 and f"at most {MAX_PLAY_SAMPLES} are taken" in body["error"]
    assert not carrier.commands("playAudio")
    await carrier.socket.close()
    await running.wait_idle()


async def test_play_speaks_a_text_with_espeak(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    if not speech_available():
        pytest.skip("SKIPPED LOUDLY: no espeak-ng (apt install espeak-ng): spoken text untested")
    running = await start_server(listener, admin_token=ADMIN)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="say-it")
    await running.server.streams.open.__iter__().__next__().session.wait_started()
    said = orjson.dumps({"text": "Please hold, an agent will be with you shortly."})
    status, body = await post(running.base, "/api/calls/say-it/play", said, json=True)
    assert (status, body["outcome"]) == (202, "queued")
    await carrier.wait_for("checkpoint", count=2, timeout=20)
    assert len(carrier.commands("playAudio")) >= 1
    for wrong in (b"{}", b'{"text": 5}', b"not json", orjson.dumps({"text": "x" * 2001})):
        status, body = await post(running.base, "/api/calls/say-it/play", wrong, json=True)
        assert status == 400 and '{"text": "what to say"}' in body["error"], wrong
    await carrier.socket.close()
    await running.wait_idle()


async def test_play_on_a_one_way_stream_says_why_not(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    running = await start_server(
        listener, admin_token=ADMIN, bidirectional=False, keep_call_alive=False
    )
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="one-way")
    await running.server.streams.open.__iter__().__next__().session.wait_started()
    status, body = await post(running.base, "/api/calls/one-way/play", SPEECH.read_bytes())
    assert status == 409 and "bidirectional" in body["error"]
    await carrier.socket.close()
    await running.wait_idle()


async def test_play_and_clear_sent_to_another_server_reach_the_one_holding_the_call(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two servers on one PostgreSQL: play and clear go to the one that does not hold the call;
    the one that does plays the audio (read from the database) and clears it."""
    flags = ("--database", postgres_url, "--admin-token", ADMIN)
    port_a, port_b = free_port(), free_port()
    holder = await serve_process(port_a, tmp_path / "a", *flags)
    other = await serve_process(port_b, tmp_path / "b", *flags)
    base_b = f"http://127.0.0.1:{port_b}"
    try:
        async with aiohttp.ClientSession() as client:
            socket = await client.ws_connect(f"ws://127.0.0.1:{port_a}/stream")
            start = {
                "event": "start",
                "start": {
                    "callId": "played-by-a",
                    "streamId": "s-1",
                    "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
                },
            }
            await socket.send_str(orjson.dumps(start).decode())
            media = {"event": "media", "media": {"chunk": 0, "payload": b64(b"\0\1" * 160)}}
            await socket.send_str(orjson.dumps(media).decode())
            async with asyncio.timeout(10):  # until the stream's row is in the shared database
                status, body = 404, {}
                while status == 404:
                    status, body = await post(
                        base_b, "/api/calls/played-by-a/play", SPEECH.read_bytes()
                    )
            assert (status, body["outcome"]) == (202, "sent")
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                while not any(frame.get("name") == body["checkpoint"] for frame in seen):
                    message = await socket.receive()
                    assert message.type is aiohttp.WSMsgType.TEXT, message
                    seen.append(orjson.loads(message.data))
            assert any(frame["event"] == "playAudio" for frame in seen)

            status, body = await post(base_b, "/api/calls/played-by-a/clear")
            assert (status, body["outcome"]) == (202, "sent")
            async with asyncio.timeout(10):
                while (frame := orjson.loads((await socket.receive()).data))[
                    "event"
                ] != "clearAudio":
                    assert frame["event"] == "playAudio"
            await socket.close()
    finally:
        for process in (holder, other):
            process.send_signal(signal.SIGTERM)
            await process.communicate()
