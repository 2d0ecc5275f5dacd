"""The Pipecat serializer on every wire shape (PROTOCOL.md), and the playback tracker in a real
Pipecat pipeline: BotStoppedSpeakingFrame goes upstream only when the carrier says it played."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest

pytest.importorskip("pipecat", reason="needs the extra: pip install 'vobiz-stream[pipecat]'")

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from vobiz_stream.audio import ByteOrder, Pcm, decode_mulaw, encode_l16, encode_mulaw
from vobiz_stream.core.protocol import (
    Checkpoint,
    ClearAudio,
    PlayAudio,
    StopCommand,
    parse_command,
)
from vobiz_stream.formats import Encoding
from vobiz_stream.integrations.pipecat import (
    VobizAudioClearedFrame,
    VobizCheckpointPlayedFrame,
    VobizFrameSerializer,
    VobizPlaybackTracker,
)

# --- carrier frames ------------------------------------------------------------------------------


def text(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def nested_start(encoding: str = "audio/x-l16", rate: int = 8000) -> str:
    start = {
        "callId": "C1",
        "streamId": "S1",
        "accountId": "500025",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": encoding, "sampleRate": rate},
    }
    return text({"sequenceNumber": 0, "event": "start", "start": start, "extra_headers": "{}"})


def flat_start(content_type: str) -> str:
    return text(
        {
            "event": "start",
            "streamId": "S2",
            "callId": "C2",
            "accountId": "500025",
            "from": "+911234",
            "to": "+919876",
            "direction": "inbound",
            "contentType": content_type,
            "audioTrack": "inbound",
        }
    )


def live_media(payload: bytes, chunk: int = 1, track: str = "inbound") -> str:
    media = {
        "track": track,
        "timestamp": str(1778574097426 + 20 * chunk),
        "chunk": chunk,
        "payload": base64.b64encode(payload).decode(),
    }
    return text(
        {
            "sequenceNumber": str(chunk),
            "streamId": "S1",
            "event": "media",
            "media": media,
            "extra_headers": "{}",
        }
    )


def seed_media(payload: bytes, rate: int = 8000) -> str:
    media = {
        "payload": base64.b64encode(payload).decode(),
        "contentType": "audio/x-l16",
        "sampleRate": rate,
        "timestamp": 1634567890123,
    }
    return text({"event": "media", "streamId": "S2", "media": media})


def sine(seconds: float, rate: int, hz: float = 440.0) -> Pcm:
    t = np.arange(round(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def samples(frame: Frame | None) -> Pcm:
    assert isinstance(frame, InputAudioRawFrame)
    return np.frombuffer(frame.audio, dtype="<i2").astype(np.int16)


async def audio_of(serializer: VobizFrameSerializer, frames: list[str]) -> tuple[Pcm, int]:
    """Deserialize ``frames``; the caller audio they carried, and its rate."""
    out: list[Pcm] = []
    rate = 0
    for frame_text in frames:
        frame = await serializer.deserialize(frame_text)
        if frame is not None:
            assert isinstance(frame, InputAudioRawFrame)
            out.append(samples(frame))
            rate = frame.sample_rate
    return np.concatenate(out), rate


def l16_frames(pcm: Pcm, order: ByteOrder, rate: int = 8000) -> list[bytes]:
    size = rate // 50
    return [encode_l16(pcm[i : i + size], order) for i in range(0, len(pcm), size)]


# --- carrier to pipeline -------------------------------------------------------------------------


@pytest.mark.parametrize("order", [ByteOrder.BIG, ByteOrder.LITTLE])
async def test_live_shapes_in_either_byte_order_come_out_as_the_caller_said_them(
    order: ByteOrder,
) -> None:
    serializer = VobizFrameSerializer()
    assert await serializer.deserialize(nested_start()) is None
    assert (serializer.call_id, serializer.stream_id) == ("C1", "S1")
    caller = sine(1.0, 8000)
    frames = [live_media(p, i) for i, p in enumerate(l16_frames(caller, order))]
    heard, rate = await audio_of(serializer, frames)
    assert rate == 8000
    np.testing.assert_array_equal(heard, caller)


async def test_seed_shapes_flat_start_and_seed_media_at_16_khz() -> None:
    serializer = VobizFrameSerializer(params=VobizFrameSerializer.InputParams(l16_byte_order="big"))
    await serializer.deserialize(flat_start("audio/x-l16;rate=16000"))
    assert (serializer.call_id, serializer.stream_id) == ("C2", "S2")
    assert serializer.inbound_format.sample_rate == 16000
    caller = sine(0.2, 16000)
    frames = [seed_media(p, 16000) for p in l16_frames(caller, ByteOrder.BIG, 16000)]
    heard, rate = await audio_of(serializer, frames)
    assert rate == 16000
    np.testing.assert_array_equal(heard, caller)


async def test_mulaw_caller_audio() -> None:
    serializer = VobizFrameSerializer()
    await serializer.deserialize(nested_start("audio/x-mulaw", 8000))
    caller = sine(0.2, 8000)
    payload = encode_mulaw(caller)
    frames = [live_media(payload[i : i + 160], i) for i in range(0, len(payload), 160)]
    heard, _ = await audio_of(serializer, frames)
    np.testing.assert_array_equal(heard, decode_mulaw(payload))


async def test_media_before_start_uses_the_xml_format_and_learns_the_stream_id() -> None:
    serializer = VobizFrameSerializer(
        params=VobizFrameSerializer.InputParams(l16_byte_order="little")
    )
    frame = await serializer.deserialize(live_media(encode_l16(sine(0.02, 8000), ByteOrder.LITTLE)))
    np.testing.assert_array_equal(samples(frame), sine(0.02, 8000))
    assert serializer.stream_id == "S1"


async def test_caller_audio_is_resampled_to_the_pipeline_rate() -> None:
    serializer = VobizFrameSerializer(
        params=VobizFrameSerializer.InputParams(l16_byte_order="little", sample_rate=16000)
    )
    await serializer.deserialize(nested_start())
    caller = sine(1.0, 8000, hz=440)
    frames = [live_media(p, i) for i, p in enumerate(l16_frames(caller, ByteOrder.LITTLE))]
    heard, rate = await audio_of(serializer, frames)
    assert rate == 16000
    assert 16000 - 1840 <= len(heard) <= 16000  # HQ holds back up to 115 ms (resample.py)
    spectrum = np.abs(np.fft.rfft(heard[4000:12000].astype(np.float64)))
    assert np.fft.rfftfreq(8000, 1 / 16000)[int(np.argmax(spectrum))] == pytest.approx(440, abs=2)


async def test_the_other_leg_of_a_both_stream_is_not_the_caller() -> None:
    serializer = VobizFrameSerializer()
    await serializer.deserialize(nested_start())
    frame = live_media(encode_l16(sine(0.02, 8000), ByteOrder.LITTLE), track="outbound")
    assert await serializer.deserialize(frame) is None


async def test_played_cleared_dtmf_stop_unknown_and_malformed() -> None:
    serializer = VobizFrameSerializer()
    await serializer.deserialize(nested_start())
    played = await serializer.deserialize(text({"event": "playedStream", "name": "turn-1"}))
    assert isinstance(played, VobizCheckpointPlayedFrame) and played.checkpoint == "turn-1"
    older = await serializer.deserialize(text({"event": "played", "name": "turn-2"}))
    assert isinstance(older, VobizCheckpointPlayedFrame) and older.checkpoint == "turn-2"

    cleared = await serializer.deserialize(text({"event": "clearedAudio", "streamId": "S1"}))
    assert isinstance(cleared, VobizAudioClearedFrame) and cleared.round_trip is None
    await serializer.serialize(InterruptionFrame())
    cleared = await serializer.deserialize(text({"event": "clearedAudio", "streamId": "S1"}))
    assert isinstance(cleared, VobizAudioClearedFrame)
    assert cleared.round_trip is not None and 0 <= cleared.round_trip < 1.0

    dtmf = await serializer.deserialize(text({"event": "dtmf", "dtmf": {"digit": "5"}}))
    assert isinstance(dtmf, InputDTMFFrame) and dtmf.button is KeypadEntry.FIVE
    top_level = await serializer.deserialize(text({"event": "dtmf", "digit": "#"}))
    assert isinstance(top_level, InputDTMFFrame) and top_level.button is KeypadEntry.POUND
    assert await serializer.deserialize(text({"event": "dtmf", "digit": "x"})) is None

    assert await serializer.deserialize(text({"event": "stop", "streamId": "S1"})) is None
    assert await serializer.deserialize(text({"event": "mark", "name": "x"})) is None
    assert await serializer.deserialize("not json") is None
    assert await serializer.deserialize(text({"event": "media", "media": {}})) is None


async def test_carrier_text_reaches_the_log_escaped(caplog: pytest.LogCaptureFixture) -> None:
    forged = "\n2026-01-01 INFO forged\x1b[31m"
    serializer = VobizFrameSerializer()
    start = {"callId": "C" + forged, "streamId": "S" + forged, "tracks": ["inbound"]}
    with caplog.at_level(logging.INFO, logger="vobiz_stream"):
        await serializer.deserialize(text({"event": "start", "start": start}))
        await serializer.deserialize(text({"event": "playedStream", "name": "turn" + forged}))
        await serializer.deserialize(text({"event": "stop", "reason": "bye" + forged}))
        await serializer.deserialize(text({"event": "mark" + forged}))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4
    for message in messages:
        assert "\n" not in message and "\x1b" not in message, message
        assert "C\\x0a2026-01-01 INFO forged\\x1b[31m" in message


# --- pipeline to carrier -------------------------------------------------------------------------


async def started(**params: Any) -> VobizFrameSerializer:
    serializer = VobizFrameSerializer(params=VobizFrameSerializer.InputParams(**params))
    await serializer.deserialize(nested_start())
    return serializer


async def test_bot_audio_is_play_audio_little_endian_at_its_rate() -> None:
    serializer = await started()
    for rate in (8000, 16000, 24000):
        pcm = sine(0.04, rate)
        sent = await serializer.serialize(TTSAudioRawFrame(pcm.tobytes(), rate, 1))
        assert isinstance(sent, str)
        play = parse_command(sent)
        assert play == PlayAudio(encode_l16(pcm, ByteOrder.LITTLE), Encoding.L16, rate, "S1")
        assert orjson.loads(sent)["media"]["contentType"] == "audio/x-l16"


async def test_big_endian_and_mulaw_outbound() -> None:
    pcm = sine(0.04, 8000)
    big = await started(outbound_byte_order="big")
    sent = await big.serialize(OutputAudioRawFrame(pcm.tobytes(), 8000, 1))
    assert isinstance(sent, str)
    assert parse_command(sent) == PlayAudio(
        encode_l16(pcm, ByteOrder.BIG), Encoding.L16, 8000, "S1"
    )

    mulaw = await started(outbound_encoding="mulaw")
    sent = await mulaw.serialize(OutputAudioRawFrame(pcm.tobytes(), 8000, 1))
    assert isinstance(sent, str)
    assert parse_command(sent) == PlayAudio(encode_mulaw(pcm), Encoding.MULAW, 8000, "S1")


async def test_a_rate_vobiz_cannot_play_is_resampled_without_holding_audio_back() -> None:
    serializer = await started()
    pcm = sine(0.04, 48000)
    sent = await serializer.serialize(OutputAudioRawFrame(pcm.tobytes(), 48000, 1))
    assert isinstance(sent, str)
    play = parse_command(sent)
    assert isinstance(play, PlayAudio) and play.sample_rate == 24000
    assert len(play.payload) // 2 >= 955  # the 40 ms but a fraction of a ms: nothing to lose

    mulaw = await started(outbound_encoding="mulaw")
    sent = await mulaw.serialize(OutputAudioRawFrame(sine(0.04, 24000).tobytes(), 24000, 1))
    assert isinstance(sent, str)
    play = parse_command(sent)
    assert isinstance(play, PlayAudio) and (play.sample_rate, len(play.payload)) == (8000, 320)


async def test_interruption_clears_and_the_end_stops_once() -> None:
    serializer = await started()
    clear = await serializer.serialize(InterruptionFrame())
    assert clear == '{"event":"clearAudio","streamId":"S1"}'
    stop = await serializer.serialize(EndFrame())
    assert stop is not None and parse_command(stop) == StopCommand("S1")
    assert await serializer.serialize(CancelFrame()) is None  # already stopped

    quiet = await started(stop_on_end=False)
    assert await quiet.serialize(EndFrame()) is None


async def test_messages_are_app_commands_sent_with_the_stream_id() -> None:
    serializer = await started()
    checkpoint = {"event": "checkpoint", "name": "turn-1"}
    for frame in (
        OutputTransportMessageFrame(message=checkpoint),
        OutputTransportMessageUrgentFrame(message=checkpoint),
    ):
        sent = await serializer.serialize(frame)
        assert sent is not None and parse_command(sent) == Checkpoint("turn-1", "S1")
    clear = await serializer.serialize(OutputTransportMessageFrame(message={"event": "clearAudio"}))
    assert clear is not None and parse_command(clear) == ClearAudio("S1")
    custom = await serializer.serialize(OutputTransportMessageFrame(message={"event": "x", "a": 1}))
    assert custom == '{"event":"x","a":1}'
    assert await serializer.serialize(OutputTransportMessageFrame(message={"no": "event"})) is None
    rtvi = OutputTransportMessageFrame(message={"label": "rtvi-ai", "type": "bot-ready"})
    assert await serializer.serialize(rtvi) is None


# --- the tracker in a real pipeline --------------------------------------------------------------


class Recorder(FrameProcessor):
    """Keeps the frames passing one way, with the loop time they passed at."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__()
        self.direction = direction
        self.frames: list[tuple[float, Frame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is self.direction:
            self.frames.append((asyncio.get_running_loop().time(), frame))
        await self.push_frame(frame, direction)

    def of(self, kind: type[Frame]) -> list[Frame]:
        return [frame for _, frame in self.frames if isinstance(frame, kind)]


class TrackerPipeline:
    """head (what is upstream of the tracker) -> tracker -> tail (the output transport's place)."""

    def __init__(self, confirm_timeout: float = 5.0) -> None:
        self.head = Recorder(FrameDirection.UPSTREAM)
        self.tail = Recorder(FrameDirection.DOWNSTREAM)
        pipeline = Pipeline(
            [self.head, VobizPlaybackTracker(confirm_timeout=confirm_timeout), self.tail]
        )
        self.worker = PipelineWorker(
            pipeline, params=PipelineParams(), cancel_on_idle_timeout=False
        )

    async def up(self, frame: Frame) -> None:
        """As the output transport does: a frame upstream from the tracker's downstream side."""
        await self.worker.queue_frame(frame, FrameDirection.UPSTREAM)

    async def down(self, frame: Frame) -> None:
        """As the input transport does: a frame from the head of the pipeline."""
        await self.worker.queue_frame(frame, FrameDirection.DOWNSTREAM)

    def checkpoints(self) -> list[str]:
        return [
            frame.message["name"]
            for frame in self.tail.of(OutputTransportMessageFrame)
            if isinstance(frame, OutputTransportMessageFrame)
        ]


@pytest.fixture
async def tracked() -> AsyncIterator[TrackerPipeline]:
    pipeline = TrackerPipeline(confirm_timeout=0.3)
    started_event = asyncio.Event()

    @pipeline.worker.event_handler("on_pipeline_started")
    async def on_started(_worker: object, _frame: object) -> None:
        started_event.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(pipeline.worker)
    running = asyncio.create_task(runner.run())
    await asyncio.wait_for(started_event.wait(), 5.0)
    yield pipeline
    await pipeline.worker.cancel()
    await asyncio.wait_for(running, 5.0)


async def settle() -> None:
    await asyncio.sleep(0.05)


async def test_bot_stopped_waits_for_the_carriers_played_stream(tracked: TrackerPipeline) -> None:
    await tracked.up(BotStartedSpeakingFrame())
    stopped = BotStoppedSpeakingFrame()
    await tracked.up(stopped)
    await settle()
    assert tracked.head.of(BotStartedSpeakingFrame)
    assert tracked.head.of(BotStoppedSpeakingFrame) == []  # held
    assert tracked.checkpoints() == ["bot-stopped-1"]  # sent behind the audio

    await tracked.down(VobizCheckpointPlayedFrame("another"))
    await settle()
    assert tracked.head.of(BotStoppedSpeakingFrame) == []  # not its checkpoint
    await tracked.down(VobizCheckpointPlayedFrame("bot-stopped-1"))
    await settle()
    assert tracked.head.of(BotStoppedSpeakingFrame) == [stopped]  # the very frame, released


async def test_a_clear_releases_the_held_stop(tracked: TrackerPipeline) -> None:
    await tracked.up(BotStoppedSpeakingFrame())
    await settle()
    await tracked.down(VobizAudioClearedFrame(0.01))
    await settle()
    assert len(tracked.head.of(BotStoppedSpeakingFrame)) == 1


async def test_speaking_again_before_the_caller_heard_the_end_drops_the_pause(
    tracked: TrackerPipeline,
) -> None:
    await tracked.up(BotStartedSpeakingFrame())
    await tracked.up(BotStoppedSpeakingFrame())
    await tracked.up(BotStartedSpeakingFrame())
    await tracked.up(BotStoppedSpeakingFrame())
    await settle()
    assert tracked.checkpoints() == ["bot-stopped-1", "bot-stopped-2"]
    await tracked.down(VobizCheckpointPlayedFrame("bot-stopped-1"))  # came late: forgotten
    await settle()
    assert len(tracked.head.of(BotStartedSpeakingFrame)) == 1
    assert tracked.head.of(BotStoppedSpeakingFrame) == []
    await tracked.down(VobizCheckpointPlayedFrame("bot-stopped-2"))
    await settle()
    assert len(tracked.head.of(BotStoppedSpeakingFrame)) == 1


async def test_no_answer_releases_by_the_local_clock_after_the_timeout(
    tracked: TrackerPipeline,
) -> None:
    await tracked.up(BotStoppedSpeakingFrame())
    await asyncio.sleep(0.1)
    assert tracked.head.of(BotStoppedSpeakingFrame) == []
    await asyncio.sleep(0.5)  # confirm_timeout is 0.3 s here
    assert len(tracked.head.of(BotStoppedSpeakingFrame)) == 1


async def test_sending_before_the_start_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    serializer = VobizFrameSerializer()
    pcm = sine(0.02, 8000)
    with caplog.at_level("WARNING", logger="vobiz_stream.pipecat"):
        for _ in range(3):
            sent = await serializer.serialize(OutputAudioRawFrame(pcm.tobytes(), 8000, 1))
            assert sent is not None and "streamId" not in orjson.loads(sent)
    [warning] = caplog.records
    assert "before the carrier's start" in warning.message
    # Handing it the socket's first message, as the docstring says, fixes it.
    await serializer.deserialize(nested_start())
    sent = await serializer.serialize(OutputAudioRawFrame(pcm.tobytes(), 8000, 1))
    assert sent is not None and orjson.loads(sent)["streamId"] == "S1"
