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
from vobiz_stream.core.inbound import InboundDecoder
from vobiz_stream.core.protocol import (
    MAX_ID_CHARS,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    Media,
    PlayAudio,
    PlayedStream,
    Start,
    Stop,
    StopCommand,
    Track,
    Unknown,
    encode,
    parse_command,
    parse_event,
)
from vobiz_stream.errors import ProtocolError, VobizStreamError
from vobiz_stream.formats import OUTBOUND_RATES, Encoding, parse_content_type
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
        self.stream_id = stream_id
        self.call_id: str | None = None
        self.start: Start | None = None
        self.inbound_format = parse_content_type(self._settings.content_type)
        self._decoder: InboundDecoder | None = None
        self._pipeline_rate = self._settings.sample_rate or 0
        """The rate caller audio goes down the pipeline at; 0 until known: the stream's."""
        self._in_resampler: Resampler | None = None
        self._out_resampler: Resampler | None = None
        self._out_encoding = (
            Encoding.L16 if self._settings.outbound_encoding == "l16" else Encoding.MULAW
        )
        self._clear_sent_at: float | None = None
        self._stopped = False
        self._warned_no_stream = False

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        # (FrameSerializer.setup itself narrows BaseObject.setup; this is Pipecat's signature.)
        self._pipeline_rate = self._settings.sample_rate or setup.audio_in_sample_rate

    def describe(self) -> str:
        """The call id, else the stream id, for log lines (escaped: the carrier chose it)."""
        return loggable(self.call_id or self.stream_id or "unknown-call", MAX_ID_CHARS)

    # -- carrier to pipeline ------------------------------------------------------------------

    async def deserialize(self, data: str | bytes) -> Frame | None:
        try:
            event = parse_event(data, self.inbound_format.encoding.sample_width)
        except ProtocolError as exc:
            log.warning("call %s: malformed frame ignored: %s", self.describe(), exc)
            return None
        if isinstance(event, Media):
            return self._on_media(event)
        if isinstance(event, Start):
            self._on_start(event)
        elif isinstance(event, PlayedStream):
            log.info("call %s: checkpoint %s played", self.describe(), loggable(event.name))
            return VobizCheckpointPlayedFrame(event.name)
        elif isinstance(event, ClearedAudio):
            return self._on_cleared()
        elif isinstance(event, Dtmf):
            return self._on_dtmf(event)
        elif isinstance(event, Stop):
            log.info("call %s: carrier stop (%s)", self.describe(), loggable(str(event.reason)))
        elif isinstance(event, Unknown):
            log.info("call %s: unknown event %s ignored", self.describe(), loggable(event.event))
        return None

    def _on_start(self, start: Start) -> None:
        if self.start is not None:
            log.info("call %s: ignored a second start", self.describe())
            return
        self.start = start
        self.call_id = start.call_id or self.call_id
        self.stream_id = start.stream_id or self.stream_id
        if self._decoder is None and start.media_format is not None:
            self.inbound_format = start.media_format
        log.info(
            "call %s: stream %s started: %s",
            self.describe(),
            loggable(str(self.stream_id), MAX_ID_CHARS),
            self.inbound_format.content_type,
        )

    def _on_media(self, media: Media) -> InputAudioRawFrame | None:
        if media.track is not Track.INBOUND:
            return None  # the other leg of a one-way "both" stream: not the caller
        if self._decoder is None:
            self.stream_id = self.stream_id or media.stream_id
            order = self._settings.l16_byte_order
            self._decoder = InboundDecoder(
                self.inbound_format,
                None if order == "auto" else ByteOrder(order),
                on_decided=self._on_byte_order,
            )
        try:
            decoded = self._decoder.push(media)
        except VobizStreamError as exc:
            log.warning("call %s: media frame ignored: %s", self.describe(), exc)
            return None
        if not decoded:
            return None  # held while the byte order is detected
        pcm = decoded[0][1] if len(decoded) == 1 else np.concatenate([p for _, p in decoded])
        rate = self.inbound_format.sample_rate
        pipeline_rate = self._pipeline_rate or rate
        if pipeline_rate != rate:
            if self._in_resampler is None:
                self._in_resampler = Resampler(rate, pipeline_rate)
            pcm = self._in_resampler.process(pcm)
            if not len(pcm):
                return None
        return InputAudioRawFrame(
            audio=encode_l16(pcm, ByteOrder.LITTLE), sample_rate=pipeline_rate, num_channels=1
        )

    def _on_byte_order(self, order: ByteOrder, frames: int) -> None:
        log.info("call %s: caller L16 is %s-endian (%d frames)", self.describe(), order, frames)

    def _on_cleared(self) -> VobizAudioClearedFrame:
        round_trip = None
        if self._clear_sent_at is not None:
            round_trip = time.monotonic() - self._clear_sent_at
            self._clear_sent_at = None
        log.info(
            "call %s: cleared%s",
            self.describe(),
            "" if round_trip is None else f" round_trip_ms={round_trip * 1000:.1f}",
        )
        return VobizAudioClearedFrame(round_trip)

    def _on_dtmf(self, dtmf: Dtmf) -> InputDTMFFrame | None:
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
        self._clear_sent_at = time.monotonic()
        if self._out_resampler is not None:
            self._out_resampler.reset()
        log.info("call %s: interruption: clear", self.describe())
        return encode(ClearAudio(self._stream_id()))

    def _stop(self) -> str | None:
        if not self._settings.stop_on_end or self._stopped:
            return None
        self._stopped = True
        log.info("call %s: pipeline ended: stop", self.describe())
        return encode(StopCommand(self._stream_id()))

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
