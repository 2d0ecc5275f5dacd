"""The server records what a carrier sends, in any shape, byte order or format, sample by sample."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp
import numpy as np
import pytest

from tests.e2e.conftest import (
    Carrier,
    StartServer,
    b64,
    frames_of,
    read_wav,
    speech,
)
from vobiz_stream.app.handlers import Handler, listens_only
from vobiz_stream.app.session import CallSession
from vobiz_stream.audio import ByteOrder, decode_mulaw, encode_l16, encode_mulaw
from vobiz_stream.core.answer import parse_response

pytestmark = pytest.mark.all_transports

ONE_WAY = {"bidirectional": False, "keep_call_alive": False}


def assert_recorded(recorded: np.ndarray, sent: np.ndarray) -> None:
    """The recording holds ``sent`` from its first sample, then only silence."""
    assert len(recorded) >= len(sent), f"recorded {len(recorded)} samples, sent {len(sent)}"
    np.testing.assert_array_equal(recorded[: len(sent)], sent)
    assert not recorded[len(sent) :].any()


async def send_call(
    carrier: Carrier, samples: np.ndarray, rate: int, order: ByteOrder = ByteOrder.LITTLE
) -> np.ndarray:
    """Send ``samples`` as L16 frames; return what was sent, padded to whole frames."""
    frames = frames_of(samples, rate)
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, order), chunk)
    return np.concatenate(frames)


@pytest.mark.parametrize("order", [ByteOrder.LITTLE, ByteOrder.BIG])
@pytest.mark.parametrize("name", ["speech_male_8k", "speech_female_16k"])
async def test_nested_start_records_speech_in_either_byte_order(
    start_server: StartServer, connect, order: ByteOrder, name: str
) -> None:
    running = await start_server(**ONE_WAY)
    samples, rate = speech(name)
    carrier = await connect(running.ws_url)
    await carrier.start(rate=rate)
    sent = await send_call(carrier, samples, rate, order)
    await carrier.socket.close()  # live Vobiz: no stop, the socket just closes
    await running.wait_idle()
    [path] = running.recordings()
    recorded, recorded_rate, channels = read_wav(path)
    assert (recorded_rate, channels) == (rate, 1)
    assert_recorded(recorded[:, 0], sent)
    with sqlite3.connect(running.server.settings.database_path) as db:
        byte_order, received = db.execute(
            "SELECT byte_order, frames_received FROM streams"
        ).fetchone()
    assert received == len(frames_of(samples, rate))
    del byte_order  # detected order is kept in the event log


async def silent_handler(session: CallSession) -> None:
    """A handler that could play (not marked listens_only) but never does."""


@listens_only
async def marked_silent_handler(session: CallSession) -> None:
    """The same handler, marked as never playing."""


@pytest.mark.parametrize(
    ("handler", "channels"),
    [(None, 1), (marked_silent_handler, 1), (silent_handler, 2)],
    ids=["record", "marked", "unmarked"],
)
async def test_a_bidirectional_stream_gets_a_heard_channel_only_if_its_handler_may_play(
    start_server: StartServer, connect, handler: Handler | None, channels: int
) -> None:
    running = await start_server(handler)  # bidirectional, as by default
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start(rate=rate)
    sent = await send_call(carrier, samples, rate)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, recorded_channels = read_wav(running.recordings()[0])
    assert recorded_channels == channels
    assert_recorded(recorded[:, 0], sent)
    if channels == 2:
        assert not recorded[:, 1].any()  # nothing played: the caller heard silence


async def test_flat_seed_start_with_seed_media_and_stop(start_server: StartServer, connect) -> None:
    running = await start_server(**ONE_WAY)
    samples, rate = speech("speech_female_8k")
    carrier = await connect(running.ws_url)
    await carrier.send(
        {
            "event": "start",
            "streamId": "20170ada",
            "accountId": "MA_2210JXXN",
            "callId": "CALL_abc123xyz",
            "from": "+14155551111",
            "to": "+14155552222",
            "direction": "inbound",
            "contentType": "audio/x-l16;rate=8000",
            "audioTrack": "inbound",
        }
    )
    frames = frames_of(samples, rate)
    for number, frame in enumerate(frames):
        await carrier.send(
            {
                "event": "media",
                "streamId": "20170ada",
                "media": {
                    "payload": b64(encode_l16(frame, ByteOrder.BIG)),
                    "contentType": "audio/x-l16",
                    "sampleRate": 8000,
                    "timestamp": 1634567890123 + 20 * number,
                },
            }
        )
    await carrier.send({"event": "stop", "streamId": "20170ada", "reason": "call_ended"})
    await running.wait_idle()
    [path] = running.recordings()
    assert "CALL_abc123xyz" in path.name
    recorded, _, _ = read_wav(path)
    assert_recorded(recorded[:, 0], np.concatenate(frames))
    calls = running.server.store.list_calls()
    assert calls[0]["from_number"] == "+14155551111"


async def test_mulaw_is_decoded(start_server: StartServer, connect) -> None:
    running = await start_server(content_type="audio/x-mulaw;rate=8000", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start(encoding="audio/x-mulaw")
    payloads = [encode_mulaw(frame) for frame in frames_of(samples, rate)]
    for chunk, payload in enumerate(payloads):
        await carrier.media(payload, chunk)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    assert_recorded(recorded[:, 0], decode_mulaw(b"".join(payloads)))


async def test_both_tracks_make_a_stereo_file_on_one_clock(
    start_server: StartServer, connect
) -> None:
    running = await start_server(audio_track="both", **ONE_WAY)
    caller, rate = speech("speech_male_8k")
    other, _ = speech("speech_female_8k")
    carrier = await connect(running.ws_url)
    await carrier.start(tracks=("inbound", "outbound"))
    caller_frames = frames_of(caller, rate)
    other_frames = frames_of(other, rate)
    # The other leg starts 10 frames (200 ms) later; frames interleave as on the wire.
    for chunk in range(max(len(caller_frames), len(other_frames) + 10)):
        if chunk < len(caller_frames):
            await carrier.media(encode_l16(caller_frames[chunk], ByteOrder.LITTLE), chunk)
        if 10 <= chunk < len(other_frames) + 10:
            frame = other_frames[chunk - 10]
            await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk, track="outbound")
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, channels = read_wav(running.recordings()[0])
    assert channels == 2
    assert_recorded(recorded[:, 0], np.concatenate(caller_frames))
    offset = 10 * rate // 50
    assert not recorded[:offset, 1].any()
    assert_recorded(recorded[offset:, 1], np.concatenate(other_frames))


async def test_reordered_and_missing_frames_land_on_the_clock(
    start_server: StartServer, connect
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    frames = frames_of(samples, rate)[:60]
    carrier = await connect(running.ws_url)
    await carrier.start()
    order = list(range(60))
    order[20], order[21] = order[21], order[20]  # swapped pair
    order.remove(30)  # lost frame
    for chunk in order:
        await carrier.media(encode_l16(frames[chunk], ByteOrder.LITTLE), chunk)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    expected = np.concatenate(frames)
    expected[30 * 160 : 31 * 160] = 0  # silence fills the gap
    assert_recorded(recorded[:, 0], expected)
    with sqlite3.connect(running.server.settings.database_path) as db:
        stored = db.execute("SELECT byte_order FROM streams").fetchall()
    assert stored == [("little",)]  # configured: stored with the stream's row


async def test_a_late_first_frame_starts_the_recording_in_the_slot_it_arrived_in(
    start_server: StartServer, connect
) -> None:
    """Audio starting 70 ms after ``start`` starts on the 20 ms grid where it arrived (not at
    0), and the next frames follow it by their chunks."""
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start()
    await asyncio.sleep(0.07)
    sent = await send_call(carrier, samples[:8000], rate)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    frame = rate // 50
    lead = int(np.flatnonzero(recorded[:, 0])[0]) // frame * frame
    # A busy machine may deliver it later still, never earlier.
    assert 3 * frame <= lead <= 5 * frame, lead
    assert not recorded[:lead, 0].any()
    assert_recorded(recorded[lead:, 0], sent)


async def test_media_before_start_is_kept(start_server: StartServer, connect) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    sent = await send_call(carrier, samples[:8000], rate)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    assert_recorded(recorded[:, 0], sent)


async def test_malformed_frames_are_skipped_and_the_call_goes_on(
    start_server: StartServer, connect
) -> None:
    running = await start_server(**ONE_WAY)
    samples, rate = speech("speech_male_8k")
    frames = frames_of(samples, rate)
    carrier = await connect(running.ws_url)
    await carrier.start()
    garbage = [
        "not json",
        "[1,2,3]",
        '{"no": "event"}',
        '{"event": "media", "media": {"payload": "@@@"}}',
        '{"event": "media", "media": {"payload": "AAA="}}',  # 2 bytes? no: 2 bytes is fine
        '{"event": "media", "media": {"payload": "AAAA"}}',  # 3 bytes: not whole samples
        '{"event": "media", "media": {"payload": 5}}',
        '{"event": "start", "start": {"tracks": ["sideways"]}}',
        '{"event": "somethingNew", "x": 1}',
    ]
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
        if chunk % 10 == 0:
            await carrier.send(garbage[(chunk // 10) % len(garbage)])
            await carrier.socket.send_bytes(b"\x00\x01binary")
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    # "AAA=" is a valid 2-byte payload with no chunk: it is audio, placed after the last frame.
    np.testing.assert_array_equal(
        recorded[: len(samples), 0], np.concatenate(frames)[: len(samples)]
    )
    [stream] = running.server.store.list_calls()[0]["streams"]  # type: ignore[misc]
    assert stream["frames_malformed"] >= len(frames) // 10 * 2 - 5


async def test_abrupt_drop_finalises_the_recording(start_server: StartServer, connect) -> None:
    running = await start_server(**ONE_WAY)
    samples, rate = speech("speech_male_8k")
    carrier = await connect(running.ws_url)
    await carrier.start()
    sent = await send_call(carrier, samples, rate)
    await asyncio.sleep(0.05)
    transport = carrier.socket._response.connection.transport  # type: ignore[union-attr]
    transport.abort()  # no close frame, no FIN handshake: the TCP connection is reset
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    assert_recorded(recorded[:, 0], sent)
    [stream] = running.server.store.list_calls()[0]["streams"]  # type: ignore[misc]
    assert stream["ended_at"] is not None


async def test_fifty_concurrent_calls_each_get_their_own_exact_recording(
    start_server: StartServer, connect
) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    rng = np.random.default_rng(7)

    async def one_call(number: int) -> np.ndarray:
        carrier = await connect(running.ws_url)
        await carrier.start(call_id=f"call-{number:02d}", stream_id=f"stream-{number}")
        mine = (samples[: rate * 2] // 2 + rng.integers(-200, 200, rate * 2)).astype(np.int16)
        sent = await send_call(carrier, mine, rate)
        await carrier.socket.close()
        return sent

    sent = await asyncio.gather(*(one_call(number) for number in range(50)))
    await running.wait_idle(timeout=20)
    paths = running.recordings()
    assert len(paths) == 50
    for number, expected in enumerate(sent):
        [path] = [path for path in paths if path.name.endswith(f"call-{number:02d}.wav")]
        recorded, _, _ = read_wav(path)
        assert_recorded(recorded[:, 0], expected)


async def test_answer_xml_points_at_the_stream_socket(start_server: StartServer) -> None:
    running = await start_server(content_type="audio/x-l16;rate=16000", extra_headers="a=1,b=2")
    async with (
        aiohttp.ClientSession() as client,
        client.post(running.base + "/", data={"CallUUID": "u-1&x", "From": "1"}) as reply,
    ):
        text = await reply.text()
    response = parse_response(text)
    [stream] = response.streams
    assert stream.url.startswith(running.ws_url + "?call=")
    assert stream.bidirectional and stream.keep_call_alive
    assert stream.content_type.sample_rate == 16000
    assert stream.status_callback_url == running.base + "/webhook"
    assert stream.extra_headers == (("a", "1"), ("b", "2"))
    assert "&amp;" not in stream.url and "u-1%26x" in stream.url


async def test_chunks_counted_across_both_tracks_still_line_up(
    start_server: StartServer, connect
) -> None:
    """If the carrier numbers every frame of the stream, each track's chunks step by 2."""
    running = await start_server(audio_track="both", l16_byte_order="little", **ONE_WAY)
    caller, rate = speech("speech_male_8k")
    other, _ = speech("speech_female_8k")
    caller_frames, other_frames = frames_of(caller, rate)[:80], frames_of(other, rate)[:80]
    carrier = await connect(running.ws_url)
    await carrier.start(tracks=("inbound", "outbound"))
    for number in range(80):
        frame = encode_l16(caller_frames[number], ByteOrder.LITTLE)
        await carrier.media(frame, 2 * number, time_ms=20 * number)
        frame = encode_l16(other_frames[number], ByteOrder.LITTLE)
        await carrier.media(frame, 2 * number + 1, track="outbound", time_ms=20 * number)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    assert_recorded(recorded[:, 0], np.concatenate(caller_frames))
    assert_recorded(recorded[:, 1], np.concatenate(other_frames))


async def test_40_ms_frames_are_placed_by_their_length(start_server: StartServer, connect) -> None:
    running = await start_server(l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    frames = frames_of(samples, rate // 2)  # 320 samples: 40 ms at 8 kHz
    carrier = await connect(running.ws_url)
    await carrier.start()
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, ByteOrder.LITTLE), chunk)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    assert_recorded(recorded[:, 0], np.concatenate(frames))


async def test_a_very_short_big_endian_call_is_read_by_its_evidence(
    start_server: StartServer, connect
) -> None:
    """Five frames are too few for a confident decision; the best guess still gets them right."""
    running = await start_server(**ONE_WAY)
    samples, rate = speech("speech_female_8k")
    frames = frames_of(samples, rate)[10:15]  # speech, not the leading silence
    carrier = await connect(running.ws_url)
    await carrier.start()
    for chunk, frame in enumerate(frames):
        await carrier.media(encode_l16(frame, ByteOrder.BIG), chunk)
    await carrier.socket.close()
    await running.wait_idle()
    recorded, _, _ = read_wav(running.recordings()[0])
    assert_recorded(recorded[:, 0], np.concatenate(frames))


async def test_an_oversized_frame_ends_only_its_own_call(
    start_server: StartServer, connect
) -> None:
    """Frames over max_message_bytes close that socket (1009); its recording and others survive."""
    running = await start_server(max_message_bytes=4096, l16_byte_order="little", **ONE_WAY)
    samples, rate = speech("speech_male_8k")
    bad, good = await connect(running.ws_url), await connect(running.ws_url)
    await bad.start(call_id="bad-call")
    await good.start(call_id="good-call")
    bad_sent = await send_call(bad, samples[:4000], rate)
    await bad.send("x" * 10_000)
    good_sent = await send_call(good, samples, rate)
    await good.socket.close()
    await running.wait_idle()
    assert bad.socket.close_code == 1009
    [bad_path] = [path for path in running.recordings() if path.stem.endswith("-bad-call")]
    [good_path] = [path for path in running.recordings() if path.stem.endswith("-good-call")]
    bad_recorded, _, _ = read_wav(bad_path)
    good_recorded, _, _ = read_wav(good_path)
    assert_recorded(bad_recorded[:, 0], bad_sent)
    assert_recorded(good_recorded[:, 0], good_sent)
