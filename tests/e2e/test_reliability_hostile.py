"""Hostile input on the wire: calls whose frames are mixed with garbage keep every valid sample,
their call is not renamed, and the server serves other calls throughout; hostile HTTP requests get
a 4xx, never a 500."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import aiohttp
import numpy as np
import orjson
import pytest

from tests.e2e.conftest import Carrier, StartServer, b64, frames_of, read_wav, speech
from tests.e2e.test_server_recording import ONE_WAY, send_call
from vobiz_stream.audio import ByteOrder, encode_l16

Connect = Callable[[str], Awaitable[Carrier]]

TWO_BYTES = "AAA="  # a valid 2-byte payload: garbage below never carries valid audio

GARBAGE: list[str] = [
    "",
    "not json",
    "{",
    "null",
    "[1, 2, 3]",
    '"media"',
    "1e999",
    '{"no": "event"}',
    '{"event": 5}',
    '{"event": ""}',
    '{"event": null, "media": {"payload": "AAAA"}}',
    '{"event": "media"}',
    '{"event": "media", "media": "AAAA"}',
    '{"event": "media", "media": {"payload": null}}',
    '{"event": "media", "media": {"payload": 5}}',
    '{"event": "media", "media": {"payload": "@@@@"}}',  # not base64
    '{"event": "media", "media": {"payload": "AAAA"}}',  # 3 bytes: not whole samples
    '{"event": "media", "media": {"payload": "AAA"}}',  # bad padding
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "chunk": "abc"}}}}',
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "chunk": [1]}}}}',
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "chunk": 1.5}}}}',
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "track": "sideways"}}}}',
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "track": 7}}}}',
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "timestamp": {{"a": 1}}}}}}',
    f'{{"event": "media", "media": {{"payload": "{TWO_BYTES}", "contentType": "audio/opus"}}}}',
    '{"event": "start", "start": {"tracks": "inbound"}}',
    '{"event": "start", "start": {"tracks": ["sideways"]}}',
    '{"event": "start", "start": {"mediaFormat": {"encoding": "audio/opus", "sampleRate": 48000}}}',
    '{"event": "start", "start": 7}',
    '{"event": "dtmf"}',
    '{"event": "dtmf", "dtmf": {"digit": ["5"]}}',
    '{"event": "playedStream"}',
    '{"event": "playedStream", "name": "never-sent"}',
    '{"event": "clearedAudio"}',
    '{"event": "somethingNew", "x": 1}',
    '{"event": "mark", "mark": {"name": "m"}}',
    "[" * 5000 + "]" * 5000,  # deeper than the JSON parser goes
    '{"event": "x", "a": ' * 2000 + "1" + "}" * 2000,
    orjson.dumps({"event": "wide", **{f"k{n}": n for n in range(20_000)}}).decode(),
    orjson.dumps({"event": "media", "media": {"payload": "@" * 900_000}}).decode(),  # near 1 MiB
]

START_FLOOD = [
    orjson.dumps(
        {
            "event": "start",
            "start": {
                "callId": f"impostor-{number}",
                "streamId": f"impostor-stream-{number}",
                "tracks": ["inbound", "outbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
        }
    ).decode()
    for number in range(1000)
]


def assert_recorded(recorded: np.ndarray, sent: np.ndarray) -> None:
    """The recording holds ``sent`` whole, after the silence of however many 20 ms frames passed
    between ``start`` and the first media frame (a flood of starts takes a moment), then only
    silence."""
    frame = 160
    for offset in range(0, len(recorded) - len(sent) + 1, frame):
        if np.array_equal(recorded[offset : offset + len(sent)], sent):
            assert not recorded[:offset].any() and not recorded[offset + len(sent) :].any()
            assert offset <= 50 * frame, f"the audio starts {offset / 8000:.2f} s late"
            return
    raise AssertionError(f"the {len(sent)} samples sent are not in the recording, in order")


async def hostile_call(
    running_url: str, connect: Connect, call_id: str, samples: np.ndarray, seed: int
) -> np.ndarray:
    """A call whose every valid frame is followed by garbage: text, binary, floods of start."""
    rng = random.Random(seed)
    carrier = await connect(running_url)
    await carrier.start(call_id=call_id, stream_id=f"stream-{call_id}")
    for frame in START_FLOOD:
        await carrier.send(frame)
    frames = frames_of(samples, 8000)
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
        for _ in range(3):
            await carrier.send(rng.choice(GARBAGE))
        if chunk % 7 == 0:
            await carrier.socket.send_bytes(rng.randbytes(rng.randrange(1, 70_000)))
        if chunk % 11 == 0:  # a valid media frame, but as a binary frame: not accepted
            media = {"event": "media", "media": {"payload": b64(b"\x01\x00" * 160), "chunk": chunk}}
            await carrier.socket.send_bytes(orjson.dumps(media))
    await carrier.socket.close()
    return np.concatenate(frames)


async def clean_call(
    running_url: str, connect: Connect, call_id: str, samples: np.ndarray
) -> np.ndarray:
    carrier = await connect(running_url)
    await carrier.start(call_id=call_id)
    sent = await send_call(carrier, samples, 8000)
    await carrier.socket.close()
    return sent


@pytest.mark.all_transports
async def test_garbage_mixed_into_calls_loses_no_valid_sample_and_harms_no_other_call(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, _ = speech("speech_male_8k")
    other, _ = speech("speech_female_8k")
    hostile = [samples[: 8000 * 2], other[: 8000 * 2], samples[8000 : 8000 * 3]]
    results = await asyncio.gather(
        *(
            hostile_call(running.ws_url, connect, f"hostile-{n}", audio, seed=n)
            for n, audio in enumerate(hostile)
        ),
        clean_call(running.ws_url, connect, "clean", other),
    )
    await running.wait_idle(timeout=30)

    names = {path.stem.split("-", 3)[-1] for path in running.recordings()}
    assert names == {"hostile-0", "hostile-1", "hostile-2", "clean"}  # no impostor renamed one
    for name, sent in zip(["hostile-0", "hostile-1", "hostile-2", "clean"], results, strict=True):
        [path] = [path for path in running.recordings() if path.stem.endswith(name)]
        recorded, rate, channels = read_wav(path)
        assert (rate, channels) == (8000, 1)  # a start flood in mu-law stereo changed nothing
        assert_recorded(recorded[:, 0], sent)

    calls = {call["call_id"]: call for call in running.server.store.list_calls()}
    assert set(calls) == {"hostile-0", "hostile-1", "hostile-2", "clean"}
    for n in range(3):
        [stream] = calls[f"hostile-{n}"]["streams"]
        frames = len(hostile[n]) // 160
        assert stream["frames_received"] >= frames
        assert stream["frames_malformed"] >= frames  # most garbage is counted as such
        assert stream["end_reason"] == "socket_closed"
    [clean] = calls["clean"]["streams"]
    assert clean["frames_malformed"] == 0

    # The server still serves: a new call is recorded exactly, /healthz answers.
    after = await clean_call(running.ws_url, connect, "after", samples[:8000])
    await running.wait_idle()
    [path] = [path for path in running.recordings() if path.stem.endswith("after")]
    assert_recorded(read_wav(path)[0][:, 0], after)


@pytest.mark.all_transports
async def test_a_huge_frame_ends_only_its_call_amid_garbage(
    start_server: StartServer, connect: Connect
) -> None:
    """Frames over max_message_bytes cannot be skipped (aiohttp closes the socket with 1009):
    that call ends with what it had; the hostile and clean calls beside it are untouched."""
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, _ = speech("speech_male_8k")
    huge = await connect(running.ws_url)
    await huge.start(call_id="huge")
    before = await send_call(huge, samples[:8000], 8000)

    async def blow_up() -> None:
        await huge.send(orjson.dumps({"event": "media", "junk": "x" * (2 << 20)}).decode())

    _, hostile_sent, clean_sent = await asyncio.gather(
        blow_up(),
        hostile_call(running.ws_url, connect, "hostile", samples[:12000], seed=9),
        clean_call(running.ws_url, connect, "clean", samples),
    )
    await running.wait_idle(timeout=30)
    assert huge.socket.close_code == 1009
    for name, sent in (("huge", before), ("hostile", hostile_sent), ("clean", clean_sent)):
        [path] = [path for path in running.recordings() if path.stem.endswith(f"-{name}")]
        assert_recorded(read_wav(path)[0][:, 0], sent)
    [stream] = running.server.store.get_call("huge")["streams"]  # type: ignore[index]
    assert stream["end_reason"].startswith("socket_closed (")  # 1009 to the carrier
    assert stream["ended_at"] is not None


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte (headers a client library would refuse)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


async def test_hostile_http_requests_get_a_4xx_never_a_500(start_server: StartServer) -> None:
    running = await start_server(auth_token="the-auth-token")
    port = int(running.base.rsplit(":", 1)[1])
    form = b"Content-Type: application/x-www-form-urlencoded\r\n"
    multipart = b"Content-Type: multipart/form-data; boundary=zz\r\n"
    cases = [
        # (request head, body, expected status)
        (b"POST / HTTP/1.1\r\nHost: x\r\n" + multipart, b"--zz\r\ngarbage", 200),
        (b"POST / HTTP/1.1\r\nHost: x\r\n" + form, b"CallUUID=%ff%fe&\xff\xfe=\xff", 200),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\n" + form,
            b"&".join(b"a%d=1" % n for n in range(5000)),
            400,
        ),
        (b"POST /webhook HTTP/1.1\r\nHost: x\r\n" + multipart, b"--zz\r\n\r\n--", 403),
        (
            b"POST /webhook HTTP/1.1\r\nHost: x\r\n"
            + form
            + b"X-Vobiz-Signature-V3: \xff\xfe\xfd\r\nX-Vobiz-Signature-V3-Nonce: \xc3\x28\r\n",
            b"Event=StartStream",
            403,
        ),
        (b"POST /webhook HTTP/1.1\r\nHost: x\r\n" + form, b"x" * (2 << 20), 413),
        (b"GET /calls?limit=%ff HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"", 400),  # a loopback Host
        (b"GET /stream?call=%ff HTTP/1.1\r\nHost: x\r\n", b"", 400),  # not a WebSocket upgrade
    ]
    for head, body, expected in cases:
        status, reply = await raw_request(port, head, body)
        assert status == expected, (head[:60], status, reply[:200])
    async with aiohttp.ClientSession() as client, client.get(running.base + "/healthz") as reply:
        assert (await reply.json())["status"] == "ok"
    assert running.server.store.list_calls() == []  # nothing unsigned was stored


@pytest.mark.all_transports
@pytest.mark.parametrize("ahead_ms", [600_000, 86_400_000, 10**12])
async def test_a_second_track_stamped_far_away_cannot_inflate_the_recording(
    start_server: StartServer, connect: Connect, ahead_ms: int
) -> None:
    """One outbound frame stamped 10 minutes ahead of the inbound track once made a 10-minute
    (19 MB) recording of a 1-second call; a day ahead would have allocated gigabytes, and 10^12
    ms ahead the allocation failed and dropped the socket."""
    running = await start_server(audio_track="both", l16_byte_order="little", **ONE_WAY)
    carrier = await connect(running.ws_url)
    await carrier.start(tracks=("inbound", "outbound"))
    frame = encode_l16(np.full(160, 1000, np.int16), ByteOrder.LITTLE)
    for number in range(50):
        await carrier.media(frame, 2 * number, time_ms=20 * number)
        ahead = ahead_ms if number == 0 else 0  # one frame claims to be that much later
        await carrier.media(frame, 2 * number + 1, track="outbound", time_ms=20 * number + ahead)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, rate, _ = read_wav(running.recordings()[0])
    assert len(recorded) / rate < 5.0, f"a 1 s call made a {len(recorded) / rate:.0f} s recording"
    np.testing.assert_array_equal(recorded[: 50 * 160, 0], np.full(50 * 160, 1000))
    [stream] = running.server.store.list_calls()[0]["streams"]  # type: ignore[misc]
    assert stream["frames_received"] == 100
