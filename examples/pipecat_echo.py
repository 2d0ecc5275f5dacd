"""A Pipecat pipeline on a Vobiz stream, with no AI services: it greets the caller with a tone,
then plays back each thing the caller says; talking over it interrupts it.

    .venv/bin/python examples/pipecat_echo.py                           # one emulated call
    .venv/bin/uvicorn --app-dir examples pipecat_echo:app --port 3000   # serve real calls

Needs ``pip install 'vobiz-stream[pipecat]'``. The app is the usual Pipecat telephony shape: a
FastAPI app whose ``/`` answers Vobiz with ``<Stream bidirectional="true">`` XML pointing at its
``/ws`` socket, where each call runs its own pipeline:

    transport.input() -> UtteranceEcho -> VobizPlaybackTracker -> transport.output()

with :class:`~vobiz_stream.integrations.pipecat.VobizFrameSerializer` on the transport. The echo
stands in for STT -> LLM -> TTS: it speaks the way a TTS service does (``TTSStartedFrame``,
``TTSAudioRawFrame``... ``TTSStoppedFrame``) and interrupts the way a user turn does
(``broadcast_interruption``, which the serializer turns into ``clearAudio``). It knows the bot
is still audible from ``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame``, which, with the
tracker in the pipeline, end when the carrier's ``playedStream`` says so, not when the last
audio left.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import demo
import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response as HttpResponse
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from vobiz_stream import (
    AudioFormat,
    ByteOrder,
    CallerAudio,
    CallerSource,
    Encoding,
    Pcm,
    Response,
    SpeechStarted,
    Stream,
    UtteranceCutter,
    VoiceActivityDetector,
    decode_l16,
    encode_l16,
    read_caller_audio,
    render,
    tone,
)
from vobiz_stream.integrations.pipecat import VobizFrameSerializer, VobizPlaybackTracker

RATE = 8000
"""The stream's rate, and the pipeline's both ways: nothing is resampled."""
GREETING_SECONDS = 1.0
CHUNK = RATE // 50
"""Samples per TTSAudioRawFrame (20 ms)."""

log = logging.getLogger("pipecat_echo")


class UtteranceEcho(FrameProcessor):
    """Greets with a tone, then speaks each caller utterance back; speech over it interrupts."""

    def __init__(self) -> None:
        super().__init__()
        self._vad = VoiceActivityDetector(RATE)
        self._utterances = UtteranceCutter(RATE, start_ms=200)
        self._greeted = False
        self._bot_speaking = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, InputAudioRawFrame):
            await self._listen(decode_l16(frame.audio, ByteOrder.LITTLE))

    async def _listen(self, pcm: Pcm) -> None:
        if not self._greeted:  # the caller's first audio: the stream is up
            self._greeted = True
            await self._speak(tone(GREETING_SECONDS, RATE))
        self._utterances.feed(CallerAudio(pcm, RATE))
        for event in self._vad.push(pcm):
            if isinstance(event, SpeechStarted) and self._bot_speaking:
                log.info("caller spoke over the bot: interrupting")
                await self.broadcast_interruption()  # type: ignore[no-untyped-call]
            utterance = self._utterances.feed(event)
            if utterance is not None:
                await self._speak(utterance)

    async def _speak(self, pcm: Pcm) -> None:
        await self.push_frame(TTSStartedFrame())
        for start in range(0, len(pcm), CHUNK):
            audio = encode_l16(pcm[start : start + CHUNK], ByteOrder.LITTLE)
            await self.push_frame(TTSAudioRawFrame(audio, RATE, 1))
        await self.push_frame(TTSStoppedFrame())


app = FastAPI()


@app.api_route("/", methods=["GET", "POST"])
async def answer(request: Request) -> HttpResponse:
    """Vobiz's answer URL: a bidirectional stream to this app's ``/ws``."""
    scheme = "wss" if request.url.scheme == "https" else "ws"
    socket_url = str(request.url.replace(scheme=scheme, path="/ws", query=""))
    stream = Stream(
        socket_url,
        bidirectional=True,
        keep_call_alive=True,
        content_type=AudioFormat(Encoding.L16, RATE),
    )
    return HttpResponse(render(Response.of(stream)), media_type="application/xml")


@app.websocket("/ws")
async def call(websocket: WebSocket) -> None:
    await websocket.accept()
    await run_bot(websocket)


async def run_bot(websocket: WebSocket, observers: Sequence[BaseObserver] = ()) -> None:
    """One call: its own transport, serializer and pipeline, until the carrier hangs up."""
    serializer = VobizFrameSerializer()
    await serializer.deserialize(await websocket.receive_text())  # start: ids, audio format
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, serializer=serializer
        ),
    )
    worker = PipelineWorker(
        Pipeline([transport.input(), UtteranceEcho(), VobizPlaybackTracker(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        observers=list(observers),
    )

    @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
    async def hang_up(_transport: object, _websocket: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def caller_audio() -> CallerSource:
    """Silence through the greeting, a sentence, a pause in which the echo starts, a sentence
    over the echo, then silence while that one is echoed."""
    male = read_caller_audio(demo.FIXTURES / "speech_male_8k.wav").at_rate(RATE)
    female = read_caller_audio(demo.FIXTURES / "speech_female_8k.wav").at_rate(RATE)

    def pause(seconds: float) -> Pcm:
        return np.zeros(round(seconds * RATE), dtype=np.int16)

    parts = [pause(1.5), male, pause(1.5), female, pause(4.0)]
    return CallerSource(np.concatenate(parts), RATE)


if __name__ == "__main__":
    logger.remove()  # Pipecat logs with loguru, at DEBUG by default: many lines per turn
    logger.add(sys.stderr, level="INFO")
    demo.main(demo.serving_asgi(app), caller_audio(), name="pipecat_echo")
