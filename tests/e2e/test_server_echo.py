"""The echo handler over a real socket: pacing, checkpoints, barge-in clear, what was heard."""

from __future__ import annotations

import asyncio
import base64
import statistics
from typing import Any

import aiohttp
import numpy as np
import orjson

from tests.e2e.conftest import StartServer, frames_of, read_wav, speech
from vobiz_stream.app.handlers import echo
from vobiz_stream.audio import ByteOrder, encode_l16

MAX_LEAD = 0.2


class LoopStalls:
    """The longest the event loop was held up while running: the server and this carrier share it.

    A stall between the server's send and the carrier's read delays delivery, and the carrier's
    view of the lead grows by that delay (on a real network, by the delivery jitter).
    """

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.longest = 0.0
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.tick
            await asyncio.sleep(self.tick)
            self.longest = max(self.longest, loop.time() - due)

    def stop(self) -> None:
        self._task.cancel()


class PlayoutModel:
    """The carrier's side of playback: a queue played in real time, checkpoints, clears."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.loop = asyncio.get_running_loop()
        self.drain_at = 0.0
        self.arrivals: list[float] = []
        self.leads: list[float] = []
        self.played: list[tuple[float, bytes]] = []
        self.clears: list[float] = []
        self.checkpoints: list[tuple[str, float]] = []
        self._replies: list[asyncio.TimerHandle] = []
        self._sending: set[asyncio.Future[None]] = set()

    def _send_later(self, at: float, frame: dict[str, Any]) -> None:
        def send() -> None:
            self._sending.add(
                asyncio.ensure_future(self.socket.send_str(orjson.dumps(frame).decode()))
            )

        self._replies.append(self.loop.call_at(at, send))

    async def run(self) -> None:
        async for message in self.socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(message.data)
            now = self.loop.time()
            if frame["event"] == "playAudio":
                assert frame["streamId"] == "stream-1"
                assert frame["media"]["contentType"] == "audio/x-l16"
                payload = base64.b64decode(frame["media"]["payload"])
                starts = max(now, self.drain_at)
                self.drain_at = starts + len(payload) / 2 / frame["media"]["sampleRate"]
                self.arrivals.append(now)
                self.leads.append(self.drain_at - now)
                self.played.append((starts, payload))
            elif frame["event"] == "checkpoint":
                self.checkpoints.append((frame["name"], max(now, self.drain_at)))
                reply = {"event": "playedStream", "streamId": "stream-1", "name": frame["name"]}
                self._send_later(max(now, self.drain_at), reply)
            elif frame["event"] == "clearAudio":
                self.clears.append(now)
                for handle in self._replies:
                    handle.cancel()
                self.played = [(at, data) for at, data in self.played if at < now]
                self.drain_at = now
                reply = {"sequenceNumber": 0, "event": "clearedAudio", "streamId": "stream-1"}
                await self.socket.send_str(orjson.dumps(reply).decode())


async def test_echo_paces_checkpoints_and_clears_on_barge_in(start_server: StartServer) -> None:
    running = await start_server(echo, max_lead=MAX_LEAD, l16_byte_order="little")
    samples, rate = speech("speech_male_8k")
    first = frames_of(samples[:rate], rate)  # 1 s of speech
    second = frames_of(samples[rate : rate + rate // 2], rate)  # 0.5 s: the barge-in
    silence = np.zeros(rate // 50, dtype=np.int16)
    stalls = LoopStalls()
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(running.ws_url)
        model = PlayoutModel(socket)
        reader = asyncio.create_task(model.run())
        await socket.send_str(
            orjson.dumps(
                {
                    "event": "start",
                    "start": {
                        "callId": "echo-call",
                        "streamId": "stream-1",
                        "tracks": ["inbound"],
                        "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": rate},
                    },
                }
            ).decode()
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        chunk = 0

        async def send(frame: np.ndarray) -> None:
            nonlocal chunk
            await asyncio.sleep(max(0.0, began + chunk * 0.02 - loop.time()))  # real time
            media = {
                "payload": base64.b64encode(encode_l16(frame, ByteOrder.LITTLE)).decode(),
                "chunk": chunk,
                "track": "inbound",
            }
            await socket.send_str(orjson.dumps({"event": "media", "media": media}).decode())
            chunk += 1

        for frame in first:
            await send(frame)
        while not model.arrivals or loop.time() < model.arrivals[0] + 0.3:
            await send(silence)  # the echo starts after the caller's pause
            assert chunk < 300, "the echo never started"
        for frame in second:
            await send(frame)  # the caller talks over the echo
        for _ in range(150):
            await send(silence)  # 3 s: the second utterance is echoed to the end
        await socket.close()
        await reader
    await running.wait_idle()
    stalls.stop()

    # Pacing: 20 ms cadence after the initial fill, the carrier's queue never above the bound.
    assert model.clears, "the barge-in did not clear the echo"
    steady = [b - a for a, b in zip(model.arrivals[12:], model.arrivals[13:], strict=False)]
    assert 0.015 < statistics.median(steady) < 0.025
    # The bound holds on the server's clock; the carrier sees it shifted by how late frames were
    # delivered: loopback jitter (a few ms) plus any stall of the loop both ends share.
    assert max(model.leads) <= MAX_LEAD + stalls.longest + 0.005
    # The first echo is the first utterance, sample for sample, until the clear cut it.
    heard_first = [data for at, data in model.played if at < model.clears[0]]
    echoed = np.frombuffer(b"".join(heard_first), dtype="<i2")
    sent = np.concatenate(first)
    start = next(
        i for i in range(0, len(sent), 1) if np.array_equal(sent[i : i + 160], echoed[:160])
    )
    np.testing.assert_array_equal(echoed, sent[start : start + len(echoed)])
    # The second echo played to the end and its checkpoint was confirmed.
    events = running.server.store.list_calls()[0]["events"]
    kinds = [event["kind"] for event in events]  # type: ignore[index]
    assert "clear" in kinds and "cleared" in kinds
    assert "checkpoint_played" in kinds
    # What the caller heard: the right channel holds the echo up to the clear, then the second.
    recorded, _, channels = read_wav(running.recordings()[0])
    assert channels == 2
    right = recorded[:, 1]
    assert right.any()
    heard_samples = int(np.count_nonzero(right))
    played_samples = sum(len(data) // 2 for _, data in model.played)
    assert heard_samples <= played_samples
