"""Pipecat on Vobiz audio streams (``pip install 'vobiz-stream[pipecat]'``).

Two pieces, for a Pipecat pipeline behind a WebSocket transport (FastAPI's, or the websockets
server's) that Vobiz's ``<Stream bidirectional="true">`` connects to:

* :class:`VobizFrameSerializer` speaks the protocol (``docs/protocol.md``): every shape of
  ``start`` and ``media`` the carrier sends, L16 in either byte order (detected per stream) or
  mu-law, ``dtmf``, ``playedStream`` and ``clearedAudio`` in; ``playAudio``, ``checkpoint``,
  ``clearAudio`` (on every interruption) and ``stop`` (at the end of the pipeline) out;
* :class:`VobizPlaybackTracker`, placed just before ``transport.output()``, makes "the bot stopped
  speaking" true for the caller: Pipecat's output transport says so when it has *sent* the last
  audio, by its own clock; the tracker holds that :class:`BotStoppedSpeakingFrame` back, sends a
  ``checkpoint`` behind the audio, and lets the frame go upstream when the carrier's
  ``playedStream`` says the caller has heard it all (or a clear emptied the queue).

::

    serializer = VobizFrameSerializer()
    transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
        audio_in_enabled=True, audio_out_enabled=True, serializer=serializer))
    pipeline = Pipeline([transport.input(), stt, llm, tts, VobizPlaybackTracker(),
                         transport.output()])
    task = PipelineTask(pipeline, params=PipelineParams(audio_in_sample_rate=8000,
                                                        audio_out_sample_rate=8000))

Audio rates. Vobiz sends 8 or 16 kHz and plays L16 at 8, 16 or 24 kHz (mu-law at 8 kHz). When
the pipeline's rates are those, nothing is resampled (best: set ``audio_in_sample_rate`` to the
stream's rate and ``audio_out_sample_rate`` to 8000, 16000 or 24000). Otherwise caller audio is
resampled with soxr's HQ filter (about 64 ms of delay from 8 to 16 kHz, see
:mod:`vobiz_stream.audio.resample`) and the bot's audio with its QQ interpolation, which holds
nothing back: a filter would keep the end of every turn until the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np
import orjson
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    AudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    SystemFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.serializers.base_serializer import FrameSerializer

from vobiz_stream.audio import (
    ByteOrder,
    Pcm,
    Quality,
    Resampler,
    decode_l16,
    encode_l16,
    encode_mulaw,
)
from vobiz_stream.core.protocol import (
    MAX_ID_CHARS,
    ClearedAudio,
    PlayAudio,
    Start,
    Stop,
    Track,
    Unknown,
    encode,
    parse_command,
)
from vobiz_stream.core.stream import StreamState
from vobiz_stream.core.stream_events import (
    AudioCleared,
    ByteOrderFound,
    CallerAudio,
    CheckpointPlayed,
    DtmfReceived,
    MalformedFrame,
    SessionOptions,
    StreamEvent,
    StreamStarted,
)
from vobiz_stream.errors import ProtocolError
from vobiz_stream.formats import OUTBOUND_RATES, AudioFormat, Encoding, parse_content_type
from vobiz_stream.logtext import loggable

__all__ = [
    "VobizAudioClearedFrame",
    "VobizCheckpointPlayedFrame",
    "VobizFrameSerializer",
    "VobizPlaybackTracker",
]

log = logging.getLogger("vobiz_stream.pipecat")


@dataclass
class VobizCheckpointPlayedFrame(SystemFrame):
    """The carrier's ``playedStream``: the audio sent before checkpoint ``checkpoint`` played."""

    checkpoint: str


@dataclass
class VobizAudioClearedFrame(SystemFrame):
    """The carrier's ``clearedAudio``: its queue is empty. ``round_trip`` is seconds since the
    ``clearAudio`` (clear to silence), None if none was sent."""

    round_trip: float | None


class VobizFrameSerializer(FrameSerializer):
    """Pipecat frames to and from one Vobiz stream's JSON frames.

    The stream id (which every command must carry), the call id and the caller's audio format
    come from the carrier's ``start``. A pipeline that may speak before the transport has read
    it (a greeting on ``on_client_connected``) should hand the socket's first message over
    before starting: ``await serializer.deserialize(await websocket.receive_text())``.
    ``stream_id`` is for a socket whose ``start`` was read elsewhere.
    """

    class InputParams(FrameSerializer.InputParams):
        """Settings of :class:`VobizFrameSerializer`.

        Parameters:
            content_type: The format the answer XML asked for, used when ``start`` does not say.
            l16_byte_order: Byte order of the caller's L16: ``auto`` detects it per stream.
            outbound_encoding: ``l16`` or ``mulaw`` for ``playAudio``.
            outbound_byte_order: Byte order of the L16 sent.
            sample_rate: The pipeline's input rate, if not the pipeline's ``audio_in_sample_rate``.
            stop_on_end: Send ``stop`` at an EndFrame/CancelFrame: the stream ends, and with no
                XML after the ``<Stream>`` the call hangs up.
        """

        content_type: str = "audio/x-l16;rate=8000"
        l16_byte_order: Literal["auto", "little", "big"] = "auto"
        outbound_encoding: Literal["l16", "mulaw"] = "l16"
        outbound_byte_order: Literal["little", "big"] = "little"
        sample_rate: int | None = None
        stop_on_end: bool = True

    def __init__(self, stream_id: str | None = None, params: InputParams | None = None) -> None:
        self._settings = params or VobizFrameSerializer.InputParams()
        super().__init__(self._settings)
        order = self._settings.l16_byte_order
        options = SessionOptions(
            expected_format=parse_content_type(self._settings.content_type),
            byte_order=None if order == "auto" else ByteOrder(order),
        )
        # Media before a start begins the stream at once (a pipeline cannot wait for audio).
        self._state = StreamState(
            options, caller_rate=self._settings.sample_rate, hold_before_start=0
        )
        """The stream's protocol state: parsing, byte order, decoding, resampling, clears."""
        self._state.stream_id = stream_id
        self._out_resampler: Resampler | None = None
        self._out_encoding = (
            Encoding.L16 if self._settings.outbound_encoding == "l16" else Encoding.MULAW
        )
        self._stopped = False
        self._warned_no_stream = False

    @property
    def stream_id(self) -> str | None:
        return self._state.stream_id

    @property
    def call_id(self) -> str | None:
        return self._state.call_id

    @property
    def start(self) -> Start | None:
        return self._state.start

    @property
    def inbound_format(self) -> AudioFormat:
        return self._state.inbound_format

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        # (FrameSerializer.setup itself narrows BaseObject.setup; this is Pipecat's signature.)
        self._state.listen(self._settings.sample_rate or setup.audio_in_sample_rate)

    def describe(self) -> str:
        """The call id, else the stream id, for log lines (escaped: the carrier chose it)."""
        return self._state.describe()

    # -- carrier to pipeline ------------------------------------------------------------------

    async def deserialize(self, data: str | bytes) -> Frame | None:
        audio: list[Pcm] = []
        rate = 0
        frame: Frame | None = None
        for event in self._state.feed(data, time.monotonic()):
            if isinstance(event, CallerAudio):
                if event.track is Track.INBOUND:  # not the other leg of a one-way "both" stream
                    audio.append(event.pcm)
                    rate = event.sample_rate
            else:
                frame = self._on_event(event) or frame
        if audio:
            pcm = audio[0] if len(audio) == 1 else np.concatenate(audio)
            if len(pcm):
                return InputAudioRawFrame(
                    audio=encode_l16(pcm, ByteOrder.LITTLE), sample_rate=rate, num_channels=1
                )
        return frame

    def _on_event(self, event: StreamEvent) -> Frame | None:
        if isinstance(event, CheckpointPlayed):
            log.info("call %s: checkpoint %s played", self.describe(), loggable(event.name))
            return VobizCheckpointPlayedFrame(event.name)
        if isinstance(event, AudioCleared | ClearedAudio):
            return self._on_cleared(event)
        if isinstance(event, DtmfReceived):
            return self._on_dtmf(event)
        if isinstance(event, StreamStarted):
            log.info(
                "call %s: stream %s started: %s",
                self.describe(),
                loggable(str(self.stream_id), MAX_ID_CHARS),
                self.inbound_format.content_type,
            )
        elif isinstance(event, ByteOrderFound):
            log.info(
                "call %s: caller L16 is %s-endian (%d frames)",
                self.describe(),
                event.order,
                event.frames,
            )
        elif isinstance(event, MalformedFrame):
            log.warning("call %s: malformed frame ignored: %s", self.describe(), event.problem)
        elif isinstance(event, Stop):
            log.info("call %s: carrier stop (%s)", self.describe(), loggable(str(event.reason)))
        elif isinstance(event, Unknown):
            log.info("call %s: unknown event %s ignored", self.describe(), loggable(event.event))
        return None

    def _on_cleared(self, event: AudioCleared | ClearedAudio) -> VobizAudioClearedFrame:
        round_trip = event.round_trip if isinstance(event, AudioCleared) else None
        log.info(
            "call %s: cleared%s",
            self.describe(),
            "" if round_trip is None else f" round_trip_ms={round_trip * 1000:.1f}",
        )
        return VobizAudioClearedFrame(round_trip)

    def _on_dtmf(self, dtmf: DtmfReceived) -> InputDTMFFrame | None:
        try:
            button = KeypadEntry(dtmf.digit)
        except ValueError:
            log.warning("call %s: dtmf digit %r is not a key", self.describe(), dtmf.digit)
            return None
        log.info("call %s: dtmf %s", self.describe(), dtmf.digit)
        return InputDTMFFrame(button)

    # -- pipeline to carrier ------------------------------------------------------------------

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, EndFrame | CancelFrame):
            return self._stop()
        if isinstance(frame, InterruptionFrame):
            return self._clear()
        if isinstance(frame, AudioRawFrame):
            return self._play(frame)
        if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
            return None if self.should_ignore_frame(frame) else self._command(frame.message)
        return None

    def _play(self, frame: AudioRawFrame) -> str | None:
        rate = frame.sample_rate
        allowed = OUTBOUND_RATES[self._out_encoding]
        if rate not in allowed:
            target = max(allowed)
            if self._out_resampler is None or self._out_resampler.in_rate != rate:
                self._out_resampler = Resampler(rate, target, Quality.QQ)
            pcm: Pcm = self._out_resampler.process(decode_l16(frame.audio, ByteOrder.LITTLE))
            rate = target
        else:
            pcm = decode_l16(frame.audio, ByteOrder.LITTLE)
        if not len(pcm):
            return None
        if self._out_encoding is Encoding.MULAW:
            payload = encode_mulaw(pcm)
        else:
            payload = encode_l16(pcm, ByteOrder(self._settings.outbound_byte_order))
        return encode(PlayAudio(payload, self._out_encoding, rate, self._stream_id()))

    def _clear(self) -> str:
        self._stream_id()
        if self._out_resampler is not None:
            self._out_resampler.reset()
        now = time.monotonic()
        self._state.clear(now)
        log.info("call %s: interruption: clear", self.describe())
        return b"".join(self._state.due(now)).decode()  # the clear (the queue here is empty)

    def _stop(self) -> str | None:
        if not self._settings.stop_on_end or self._stopped:
            return None
        self._stopped = True
        log.info("call %s: pipeline ended: stop", self.describe())
        self._stream_id()
        return self._state.stop().decode()

    def _stream_id(self) -> str | None:
        """The stream id for a command; warns once when the carrier has not said it yet."""
        if self.stream_id is None and not self._warned_no_stream:
            self._warned_no_stream = True
            log.warning(
                "sending before the carrier's start: commands go without a streamId, which "
                "Vobiz may ignore; give the serializer the socket's first message before the "
                "pipeline speaks (see VobizFrameSerializer)"
            )
        return self.stream_id

    def _command(self, message: object) -> str | None:
        """A message frame holding an app command (``{"event": "checkpoint", "name": ...}``):
        sent with this stream's id; anything else is sent as it is."""
        try:
            text = orjson.dumps(message)
            command = parse_command(text)
        except (TypeError, orjson.JSONEncodeError, ProtocolError) as exc:
            log.warning("call %s: message not sent: %s", self.describe(), exc)
            return None
        if isinstance(command, Unknown):
            return text.decode()
        if command.stream_id is None:
            command = msgspec.structs.replace(command, stream_id=self._stream_id())
        return encode(command)


class VobizPlaybackTracker(FrameProcessor):
    """Lets ``BotStoppedSpeakingFrame`` go upstream only when the caller has heard the bot.

    Put it just before ``transport.output()``. When the output transport reports upstream that
    the bot stopped speaking (all its audio is sent), the tracker sends a ``checkpoint`` after
    that audio and holds the frame until the carrier's ``playedStream`` for it
    (:class:`VobizCheckpointPlayedFrame`), a ``clearedAudio`` (an interruption emptied the queue),
    or ``confirm_timeout`` seconds without an answer. If the bot starts speaking again first, the
    caller never heard a pause: both the held stop and the new start are dropped.
    """

    def __init__(self, *, confirm_timeout: float = 5.0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.confirm_timeout = confirm_timeout
        self._turns = 0
        self._held: tuple[str, BotStoppedSpeakingFrame] | None = None
        self._timer: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        upstream = direction is FrameDirection.UPSTREAM
        if upstream and isinstance(frame, BotStoppedSpeakingFrame):
            await self._hold(frame)
            return
        if upstream and isinstance(frame, BotStartedSpeakingFrame) and self._held is not None:
            await self._forget_held()
            return
        if isinstance(frame, VobizCheckpointPlayedFrame) and self._held is not None:
            if frame.checkpoint == self._held[0]:
                await self._release("played")
        elif isinstance(frame, VobizAudioClearedFrame) and self._held is not None:
            await self._release("cleared")
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._forget_held()
        await self.push_frame(frame, direction)

    async def _hold(self, frame: BotStoppedSpeakingFrame) -> None:
        await self._forget_held()
        self._turns += 1
        checkpoint = f"bot-stopped-{self._turns}"
        self._held = (checkpoint, frame)
        self._timer = self.create_task(self._time_out(checkpoint), f"{self}::confirm")
        await self.push_frame(
            OutputTransportMessageFrame(message={"event": "checkpoint", "name": checkpoint})
        )

    async def _time_out(self, checkpoint: str) -> None:
        await asyncio.sleep(self.confirm_timeout)
        if self._held is not None and self._held[0] == checkpoint:
            log.warning(
                "no playedStream for %s after %.1f s: bot stopped speaking by the local clock",
                checkpoint,
                self.confirm_timeout,
            )
            self._timer = None
            await self._release("timeout")

    async def _release(self, why: str) -> None:
        assert self._held is not None
        checkpoint, frame = self._held
        self._held = None
        await self._cancel_timer()
        log.debug("bot stopped speaking (%s, %s)", checkpoint, why)
        await self.push_frame(frame, FrameDirection.UPSTREAM)

    async def _forget_held(self) -> None:
        self._held = None
        await self._cancel_timer()

    async def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            await self.cancel_task(timer)
