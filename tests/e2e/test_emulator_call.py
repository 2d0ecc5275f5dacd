"""The carrier emulator against the real stream server over loopback.

Record-only calls run at 4x; the echo call runs in real time because the server paces its
playback on the wall clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from aiohttp import web

from tests.e2e.conftest import (
    DATA,
    StartServer,
    read_wav,
    run_cli,
    serve_app,
    speech,
    url_of,
    write_wav,
)
from vobiz_stream.app.handlers import echo
from vobiz_stream.app.session import CallSession, DtmfReceived
from vobiz_stream.audio import ByteOrder, decode_mulaw, encode_mulaw
from vobiz_stream.emulator import CallOptions, run_call

FIXTURE = DATA / "speech_male_8k.wav"
RATE = 8000


def padded(samples: np.ndarray, frame: int = RATE // 50) -> np.ndarray:
    """The caller audio as sent: whole 20 ms frames, the last padded with silence."""
    return np.concatenate([samples, np.zeros(-len(samples) % frame, dtype=np.int16)])


async def record_call(
    start_server: StartServer,
    options: CallOptions,
    codec: Callable[[np.ndarray], np.ndarray] = lambda pcm: pcm,
    **settings: object,
) -> tuple[np.ndarray, np.ndarray, str]:
    """One call to a record-only server: the caller audio as sent (through ``codec``), the
    recording's caller track from where that audio starts, and the call id the server stored."""
    running = await start_server(**settings)
    report = await run_call(running.base + "/", FIXTURE, options)
    await running.wait_idle()
    assert report.completed, report.failure
    assert report.end_reason == "hangup"
    [recording] = running.recordings()
    recorded, rate, _ = read_wav(recording)
    assert rate == RATE
    [call] = running.server.store.list_calls()
    caller = codec(padded(speech()[0]))
    assert report.frames_sent == len(padded(caller)) // (RATE // 50)
    # Paced on the deadlines: on a loaded machine a few frames leave late, never many.
    assert report.mean_lateness_ms < 5, report.summary()
    sent = len(caller)
    # The recording starts with the first frame and may run on in silence, never short.
    assert len(recorded) >= sent and not recorded[sent:, 0].any()
    return caller, recorded[:sent, 0], str(call["call_id"])


async def test_record_only_call_is_recorded_sample_for_sample(start_server: StartServer) -> None:
    caller, recorded, call_id = await record_call(start_server, CallOptions(speed=4))
    # Little-endian by default, detected by the server: the recording is the caller audio.
    np.testing.assert_array_equal(recorded, caller)
    assert call_id


async def test_mulaw_call(start_server: StartServer) -> None:
    caller, recorded, _ = await record_call(
        start_server,
        CallOptions(speed=4),
        lambda pcm: decode_mulaw(encode_mulaw(pcm)),
        content_type="audio/x-mulaw;rate=8000",
    )
    np.testing.assert_array_equal(recorded, caller)


async def test_legacy_shape_with_stop_and_big_endian(start_server: StartServer) -> None:
    options = CallOptions(speed=4, legacy_shape=True, send_stop=True, l16_byte_order=ByteOrder.BIG)
    caller, recorded, call_id = await record_call(start_server, options)
    np.testing.assert_array_equal(recorded, caller)
    assert call_id


def barge_in_caller() -> np.ndarray:
    """Quiet noise, an utterance, a pause, a second utterance over the echo, a long pause.

    No sample is zero, so in what the caller heard every nonzero run is played app audio and
    every zero is the carrier's silence (an empty queue).
    """
    rng = np.random.default_rng(7)
    male, _ = speech("speech_male_8k")
    female, _ = speech("speech_female_8k")

    def noise(seconds: float) -> np.ndarray:
        return rng.integers(-20, 21, round(seconds * RATE)).astype(np.int16)

    audio = np.concatenate([noise(0.3), male, noise(1.0), female[: round(1.2 * RATE)], noise(3.0)])
    audio[audio == 0] = 1
    return audio


def runs(samples: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of nonzero samples."""
    edges = np.diff(np.concatenate([[0], (samples != 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


async def test_echo_checkpoints_and_barge_in(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server(echo, max_lead=0.2)
    caller = barge_in_caller()
    heard_path = tmp_path / "heard.wav"
    report = await run_call(
        running.base + "/",
        write_wav(tmp_path / "caller.wav", caller),
        CallOptions(heard_path=heard_path),
    )
    await running.wait_idle()
    assert report.completed and report.end_reason == "hangup", report.summary()
    heard, rate, channels = read_wav(heard_path)
    heard = heard[:, 0]
    assert (rate, channels) == (RATE, 1)
    assert len(heard) == len(padded(caller))  # one clock for both

    # Two echoes: the first cut by the barge-in's clear (the app had not yet sent its
    # checkpoint, so none was voided here), the second played to its end and confirmed.
    [clear] = report.clears
    assert clear.round_trip is not None and clear.round_trip < 0.01
    assert clear.dropped_seconds > 0
    [checkpoint] = report.checkpoints
    assert checkpoint.played_at is not None and checkpoint.answered_at is not None
    assert [gap.mid_utterance for gap in report.gaps] == [False]
    echoes = runs(heard)
    assert len(echoes) == 2, echoes

    # The first echo is the first utterance, sample for sample, and stops at the clear.
    start, end = echoes[0]
    anchor = heard[start : start + 160]
    offset = next(i for i in range(len(caller)) if np.array_equal(caller[i : i + 160], anchor))
    np.testing.assert_array_equal(heard[start:end], caller[offset : offset + end - start])
    assert abs(end / RATE - clear.received_at) < 0.001
    assert offset < 0.3 * RATE + 0.2 * RATE  # the echo starts near the utterance's start

    # The second checkpoint is answered when the second echo's last sample has played.
    true_end = echoes[1][1] / RATE
    assert abs(checkpoint.played_at - true_end) < 0.001
    assert abs(checkpoint.answered_at - true_end) < 0.04
    events = running.server.store.list_calls()[0]["events"]
    kinds = [event["kind"] for event in events]
    assert "cleared" in kinds and "checkpoint_played" in kinds


async def serve_xml(xml: str) -> web.AppRunner:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(text=xml, content_type="application/xml")

    return await serve_app([web.post("/", answer)])


async def test_invalid_xml_fails_the_call_in_the_cli(tmp_path: Path) -> None:
    runner = await serve_xml(
        '<Response><Stream bidirectional="true">ws://127.0.0.1:1/s?a=1&b=2</Stream></Response>'
    )
    try:
        returncode, stdout, stderr = await run_cli(
            "call",
            url_of(runner),
            "--audio",
            str(FIXTURE),
            "--report",
            str(tmp_path / "report.json"),
            timeout=20,
        )
    finally:
        await runner.cleanup()
    assert returncode == 1, stderr.decode()
    assert "call failed: answer XML is not well-formed" in stdout.decode()
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["completed"] is False
    assert "&amp;" in report["failure"]


async def test_bidirectional_both_tracks_is_refused() -> None:
    runner = await serve_xml(
        '<Response><Stream bidirectional="true" audioTrack="both">ws://127.0.0.1:1/s'
        "</Stream></Response>"
    )
    try:
        report = await run_call(url_of(runner), FIXTURE)
    finally:
        await runner.cleanup()
    assert not report.completed
    assert report.failure is not None and "audioTrack='both'" in report.failure
    assert report.stream_id is None  # it never connected


async def test_cli_completes_a_call(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server()
    returncode, stdout, stderr = await run_cli(
        "call",
        running.base + "/",
        "--audio",
        str(FIXTURE),
        "--speed",
        "8",
        "--heard",
        str(tmp_path / "heard.wav"),
        timeout=20,
    )
    assert returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert any(" start " in line for line in lines)
    assert any(line.startswith("call ended (hangup)") for line in lines)
    await running.wait_idle()
    assert len(running.recordings()) == 1


async def test_key_presses_reach_the_handler_in_order_and_are_stored(
    start_server: StartServer,
) -> None:
    pressed: list[tuple[str, float]] = []

    async def listen(session: CallSession) -> None:
        async for event in session.events():
            if isinstance(event, DtmfReceived):
                pressed.append((event.digit, session.now()))

    running = await start_server(listen)
    presses = ((0.5, "5"), (1.0, "#"), (1.5, "A"), (99.0, "9"))  # the last is after the hangup
    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=4, dtmf=presses))
    await running.wait_idle()
    assert report.completed, report.failure
    assert report.dtmf_sent == 3
    assert [digit for digit, _ in pressed] == ["5", "#", "A"]
    # each arrives at its call time (0.5 s of call time apart at 4x: 0.125 s of wall time)
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(pressed)]
    assert all(0.05 < gap < 0.5 for gap in gaps), gaps
    [call] = running.server.store.list_calls()
    assert [e["detail"]["digit"] for e in call["events"] if e["kind"] == "dtmf"] == ["5", "#", "A"]
    assert [e.detail for e in report.timeline if e.event == "dtmf"] == [
        "the caller pressed 5",
        "the caller pressed #",
        "the caller pressed A",
    ]


async def test_cli_refuses_a_bad_key_press(tmp_path: Path) -> None:
    returncode, _, stderr = await run_cli(
        "call", "http://127.0.0.1:9/", "--audio", str(FIXTURE), "--dtmf", "5:x", timeout=20
    )
    assert returncode == 2
    assert "SECONDS:DIGIT" in stderr.decode()


async def test_what_the_caller_heard_at_another_rate_is_recorded_at_the_call_s_rate(
    start_server: StartServer,
) -> None:
    """The app plays 16 kHz audio on an 8 kHz call: the recording's right channel holds it,
    resampled to 8 kHz, from when it played."""
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)  # 1 s

    async def greeter(session: CallSession) -> None:
        await session.play(tone, 16000)

    running = await start_server(greeter, outbound_content_type="audio/x-l16;rate=16000")
    report = await run_call(running.base + "/", FIXTURE, CallOptions(speed=1))
    await running.wait_idle()
    assert report.completed, report.failure
    recorded, rate, channels = read_wav(running.recordings()[0])
    assert (rate, channels) == (RATE, 2)
    right = recorded[:, 1].astype(np.float64)
    loud = np.flatnonzero(np.abs(right) > 1000)
    assert 0.9 * RATE <= loud[-1] - loud[0] <= 1.1 * RATE  # about one second of it
    assert loud[0] < 0.5 * RATE  # played at once
    heard = right[loud[0] + 400 : loud[-1] - 400]  # away from the resampler's edges
    spectrum = np.abs(np.fft.rfft(heard))
    peak_hz = np.argmax(spectrum) * RATE / len(heard)
    assert abs(peak_hz - 440) < 5  # the tone, at 8 kHz: not a 16 kHz stream read as 8 kHz
    assert np.sqrt(np.mean(heard**2)) > 4000  # and at its level (8000 peak: 5657 RMS)
