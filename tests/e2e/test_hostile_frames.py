"""Hostile media-socket frames cannot amplify: a huge string in a frame costs no disk, one long
frame cannot stretch the recording, events before ``start`` are neither lost nor break the store,
and text from the carrier cannot forge a log record."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.e2e.conftest import (
    Carrier,
    StartServer,
    b64,
    free_port,
    read_wav,
    wait_healthy,
)
from tests.e2e.test_reliability_hostile import assert_recorded
from tests.e2e.test_server_recording import ONE_WAY
from vobiz_stream.audio import ByteOrder, encode_l16

pytestmark = pytest.mark.all_transports

Connect = Callable[[str], Awaitable[Carrier]]

HUGE = "x" * 500_000
"""A string of 500 KB, half the largest frame the server takes."""

MB = 1_000_000


def noise(frames: int, seed: int) -> np.ndarray:
    """``frames`` 20 ms frames at 8 kHz of random samples: any misplaced sample shows."""
    return np.random.default_rng(seed).integers(-20000, 20000, 160 * frames, dtype=np.int16)


def lead_of(recorded: np.ndarray, audio: np.ndarray) -> int:
    """Where the call's first frame landed: after the silence of however many 20 ms frames passed
    between ``start`` and it (a busy machine may deliver it a little later)."""
    for lead in range(0, 50 * 160, 160):
        if np.array_equal(recorded[lead : lead + 160], audio[:160]):
            assert not recorded[:lead].any()
            return lead
    raise AssertionError("the call's first frame is not in the recording's first second")


def media(payload: bytes, chunk: int, **top: Any) -> str:
    """A live-shape media frame, 20 ms apart per chunk."""
    body = {"track": "inbound", "timestamp": str(1778574097426 + 20 * chunk), "chunk": chunk}
    frame = {"sequenceNumber": chunk + 1, "streamId": "stream-1", "event": "media", **top}
    return orjson.dumps({**frame, "media": {**body, "payload": b64(payload)}}).decode()


class ServerProcess:
    """``vobiz-stream serve`` in a subprocess, its log (stderr) going to a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.data = tmp_path / "data"
        self.log_path = tmp_path / "server.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    async def start(self) -> None:
        """A one-way server that records, told the byte order (the frames are little-endian)."""
        flags = ("--bidirectional", "false", "--keep-call-alive", "false")
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "vobiz_stream", "serve", "--port", str(self.port)),
                *("--data-dir", str(self.data), "--l16-byte-order", "little", *flags),
                stderr=log,
            )
        await wait_healthy(f"http://127.0.0.1:{self.port}")

    async def stop(self) -> None:
        """SIGTERM, as users stop it: open streams end, recordings and rows are finalised."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 60)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def database_bytes(self) -> int:
        """The database with its journal files."""
        return sum(path.stat().st_size for path in self.data.glob("*.db*"))

    def log_bytes(self) -> int:
        """The server's log, and the log files it keeps in its data folder."""
        kept = sum(path.stat().st_size for path in self.data.glob("*.log"))
        return self.log_path.stat().st_size + kept

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.data / 'vobiz-stream.db'}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path)
    yield server
    if server.process is not None:
        await server.stop()


# --- 1. every text field is bounded ----------------------------------------------------------

# The media frames carry a valid payload (2 bytes): only the long field makes them malformed.
HOSTILE_FRAMES = [
    orjson.dumps(frame).decode()
    for frame in (
        {"event": "start", "start": {"callId": HUGE, "streamId": "s"}},  # ids
        {"event": "start", "start": {"callId": "c", "streamId": "s", "accountId": HUGE}},
        {"event": "media", "streamId": HUGE, "media": {"payload": "AAA=", "chunk": 1}},
        {"event": "media", "extra_headers": HUGE, "media": {"payload": "AAA=", "chunk": 1}},
        {"event": "playedStream", "name": HUGE},  # names
        {"event": HUGE},
        {"event": "dtmf", "dtmf": {"digit": HUGE}},  # a digit
        {"event": "media", "media": {"payload": "AAA=", "track": HUGE}},  # other fields
        {"event": "media", "media": {"payload": "AAA=", "contentType": HUGE}},
        {"event": "somethingNew", "field": HUGE},  # an unknown event with an unknown field
    )
]
MALFORMED_OF_EACH_ROUND = len(HOSTILE_FRAMES) - 1  # all but the unknown event
STOP_WITH_A_HUGE_REASON = orjson.dumps({"event": "stop", "reason": HUGE}).decode()
"""Malformed too, so not a stop: sent last (a server that took it would end the call)."""


async def test_a_thousand_frames_of_500_kb_strings_grow_the_database_and_log_by_under_1_mb(
    server_process: ServerProcess, connect: Connect
) -> None:
    server = server_process
    await server.start()
    before = (server.database_bytes(), server.log_bytes())
    carrier = await connect(server.ws_url)
    await carrier.start(call_id="amplify")
    audio = noise(999, seed=1)
    for chunk in range(999):
        await carrier.send(HOSTILE_FRAMES[chunk % len(HOSTILE_FRAMES)])
        await carrier.send(
            media(encode_l16(audio[160 * chunk : 160 * (chunk + 1)], ByteOrder.LITTLE), chunk)
        )
    await carrier.send(STOP_WITH_A_HUGE_REASON)  # the thousandth
    await carrier.socket.close()
    await server.stop()

    after = (server.database_bytes(), server.log_bytes())
    print(f"\ndatabase and log bytes: before {before}, after {after}")
    assert sum(after) - sum(before) < 1 * MB
    [(received, malformed)] = server.query("SELECT frames_received, frames_malformed FROM streams")
    rounds, rest = divmod(999, len(HOSTILE_FRAMES))
    expected = rounds * MALFORMED_OF_EACH_ROUND + min(rest, MALFORMED_OF_EACH_ROUND) + 1
    assert (received, malformed) == (999, expected)
    kept = server.query("SELECT detail FROM call_events WHERE kind = 'malformed_frame'")
    assert 1 <= len(kept) <= 10
    assert all(len(detail) < 200 for (detail,) in kept)
    # The call went on: every valid frame is in the recording, in place.
    [path] = sorted((server.data / "recordings").glob("*amplify.wav"))
    assert_recorded(read_wav(path)[0][:, 0], audio)
    text = server.log_path.read_text()
    assert text.count("malformed_frame") == 1  # logged once per call, then counted
    assert f"stream ended (socket_closed): 999 frames, {expected} malformed" in text


async def test_a_flood_of_tiny_unknown_events_is_noted_ten_times_and_counted(
    server_process: ServerProcess, connect: Connect
) -> None:
    """13 bytes on the wire once made a log line and a row each: 1000 of them cost 13 KB to send
    and over 100 KB of disk."""
    server = server_process
    await server.start()
    before = (server.database_bytes(), server.log_bytes())
    carrier = await connect(server.ws_url)
    await carrier.start(call_id="chatter")
    for _ in range(1000):
        await carrier.send('{"event":"x"}')
    await carrier.media(encode_l16(noise(1, seed=6), ByteOrder.LITTLE), 0)
    await carrier.socket.close()
    await server.stop()

    after = (server.database_bytes(), server.log_bytes())
    print(f"\ndatabase and log bytes: before {before}, after {after}")
    rows = server.query("SELECT count(*) FROM call_events WHERE kind = 'unknown_event'")
    assert rows == [(10,)]
    assert server.log_path.read_text().count("unknown_event") == 10
    [(received, malformed)] = server.query("SELECT frames_received, frames_malformed FROM streams")
    assert (received, malformed) == (1, 0)


# --- 2. the recording clock cannot be stretched ----------------------------------------------


@pytest.mark.parametrize(
    ("hostile_bytes", "malformed"),
    [
        (760_000, 2),  # 47.5 s of audio in one frame (its JSON just under 1 MiB): refused
        (8_000, 1),  # 0.5 s: taken, but the frames after it keep their 20 ms step
    ],
)
async def test_one_long_frame_cannot_stretch_a_60_second_recording(
    start_server: StartServer, connect: Connect, hostile_bytes: int, malformed: int
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="stretch")
    frames = 3000  # 60 s
    audio = noise(frames, seed=2)
    for chunk in range(frames):
        if chunk == frames // 2:
            await carrier.send(media(b"\x01\x02" * (hostile_bytes // 2), chunk))
            await carrier.send(media(b"\x01\x02\x03", chunk))  # odd bytes: not L16
        frame = audio[160 * chunk : 160 * (chunk + 1)]
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
    await carrier.socket.close()
    await running.wait_idle(timeout=30)

    [path] = running.recordings()
    recorded, rate, _ = read_wav(path)
    lead = lead_of(recorded[:, 0], audio)
    seconds = (len(recorded) - lead) / rate
    print(f"\n{hostile_bytes}-byte frame: {seconds:.3f} s recorded, {path.stat().st_size} bytes")
    assert abs(seconds - 60.0) <= 0.020
    call = recorded[lead:, 0]
    middle = 160 * (frames // 2)
    # Away from the long frame's own second, every sample is the caller's, in place.
    np.testing.assert_array_equal(call[:middle], audio[:middle])
    np.testing.assert_array_equal(call[middle + rate :], audio[middle + rate :])
    [stream] = running.server.store.get_call("stretch")["streams"]  # type: ignore[index]
    assert stream["frames_malformed"] == malformed


async def test_chunk_numbers_leaping_a_minute_per_frame_cannot_fill_the_disk_with_silence(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="leap")
    frames = 20
    audio = noise(frames, seed=3)
    chunk = 0
    for index in range(frames):
        frame = audio[160 * index : 160 * (index + 1)]
        await carrier.send(media(encode_l16(frame, ByteOrder.LITTLE), chunk))
        chunk += 2999 + index % 2  # each leap within a minute, never the same step
    await carrier.socket.close()
    await running.wait_idle(timeout=30)

    [path] = running.recordings()
    recorded, rate, _ = read_wav(path)
    print(f"\n{len(recorded) / rate:.2f} s recorded, {path.stat().st_size} bytes")
    # Each leap alone is a believable gap; added up they made 17 minutes of silence (16 MB)
    # out of 20 frames. The gaps may add at most a minute more than the call has lasted.
    assert len(recorded) <= 62 * rate
    # Every frame the carrier sent is in it once, in the order sent.
    channel = recorded[:, 0]
    found = []
    for index in range(frames):
        frame = audio[160 * index : 160 * (index + 1)]
        starts = np.flatnonzero(channel[: len(channel) - 159] == frame[0])
        found += [int(at) for at in starts if np.array_equal(channel[at : at + 160], frame)]
    assert len(found) == frames
    assert found == sorted(found)


# --- 3. events before start ------------------------------------------------------------------


async def test_media_and_dtmf_before_start_follow_it_into_the_recording_and_the_store(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    carrier = await connect(running.ws_url)
    audio = noise(60, seed=3)
    frames = [encode_l16(audio[160 * n : 160 * (n + 1)], ByteOrder.LITTLE) for n in range(60)]
    with caplog.at_level(logging.INFO, logger="vobiz_stream"):
        for chunk in range(10):
            await carrier.media(frames[chunk], chunk)
        await carrier.send({"event": "dtmf", "streamId": "stream-1", "dtmf": {"digit": "7"}})
        await carrier.start(call_id="early-bird")
        for chunk in range(10, 60):
            await carrier.media(frames[chunk], chunk)
        await carrier.send({"event": "dtmf", "streamId": "stream-1", "dtmf": {"digit": "#"}})
        await carrier.socket.close()
        await running.wait_idle()

    [path] = running.recordings()
    assert path.stem.endswith("-early-bird")
    recorded, _, _ = read_wav(path)
    np.testing.assert_array_equal(recorded[:, 0], audio)
    assert [call["call_id"] for call in running.server.store.list_calls()] == ["early-bird"]
    call = running.server.store.get_call("early-bird")
    assert call is not None
    [stream] = call["streams"]
    assert (stream["frames_received"], stream["frames_malformed"]) == (60, 0)
    stream_events = [event for event in call["events"] if event["stream_row"] is not None]
    assert [(event["kind"], event["detail"]) for event in stream_events] == [
        ("dtmf", {"digit": "7"}),
        ("dtmf", {"digit": "#"}),
    ]
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert problems == []


# --- 4. logs cannot be forged ----------------------------------------------------------------

FORGED = "\n2026-01-01 INFO forged\x1b[31m"
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


async def test_carrier_text_cannot_forge_a_log_record(
    server_process: ServerProcess, connect: Connect
) -> None:
    server = server_process
    await server.start()
    frame = encode_l16(noise(1, seed=4), ByteOrder.LITTLE)

    carrier = await connect(server.ws_url)
    await carrier.start(call_id="call" + FORGED, stream_id="stream" + FORGED)
    await carrier.media(frame, 0)
    await carrier.send({"event": "playedStream", "name": "checkpoint" + FORGED})
    await carrier.send({"event": "dtmf", "dtmf": {"digit": "5" + FORGED}})
    await carrier.send({"event": "event" + FORGED})
    await carrier.send({"event": "stop", "reason": "reason" + FORGED})
    await carrier.socket.close()

    # No start: the call id comes from the socket URL's query.
    query = "call=query%0A2026-01-01%20INFO%20forged%1B%5B31m"
    without_start = await connect(f"{server.ws_url}?{query}")
    await without_start.media(frame, 0)
    await without_start.socket.close()
    await asyncio.sleep(0.5)
    await server.stop()

    log = server.log_path.read_bytes()
    assert b"\x1b" not in log
    lines = log.decode().splitlines()
    assert lines and all(RECORD.match(line) for line in lines), [
        line for line in lines if not RECORD.match(line)
    ]
    text = "\n".join(lines)
    escaped = "\\x0a2026-01-01 INFO forged\\x1b[31m"
    for shown in ("call", "stream", "checkpoint", "event", "reason", "query"):
        assert f"{shown}{escaped}" in text, shown
    assert "malformed_frame" in text  # the digit: the frame is refused, its text not shown


@pytest.mark.parametrize("rate", [10**6, 10**12])
async def test_a_start_naming_a_rate_the_carrier_never_sends_cannot_size_the_recording(
    start_server: StartServer, connect: Connect, rate: int
) -> None:
    """The recording's buffers and the clock are sized by the start's rate: a start naming
    10^12 Hz once asked for terabytes (and 10^6 Hz for a recording of one sample per frame)."""
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    carrier = await connect(running.ws_url)
    await carrier.start(call_id="huge-rate", rate=rate)
    await carrier.start(call_id="huge-rate")  # the real one, 8 kHz
    audio = noise(50, seed=5)
    for chunk in range(50):
        frame = audio[160 * chunk : 160 * (chunk + 1)]
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
    await carrier.socket.close()
    await running.wait_idle()

    [path] = running.recordings()
    recorded, recorded_rate, _ = read_wav(path)
    assert recorded_rate == 8000
    np.testing.assert_array_equal(recorded[lead_of(recorded[:, 0], audio) :, 0], audio)
    [stream] = running.server.store.get_call("huge-rate")["streams"]  # type: ignore[index]
    assert (stream["sample_rate"], stream["frames_malformed"]) == (8000, 1)
