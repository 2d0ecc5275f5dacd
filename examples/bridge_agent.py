"""A voice-agent skeleton: the caller's speech to your speech-to-text, the text to your logic, the
answer to your text-to-speech, and the audio back to the caller, with barge-in.

    .venv/bin/python examples/bridge_agent.py

Plug real services in by writing a :class:`SpeechToText` and a :class:`TextToSpeech` (clients of
your STT and TTS vendors' HTTP or WebSocket APIs) and a ``reply`` (your LLM); nothing else
changes. For the demo, stand-ins that need no network: :class:`UtteranceLength` "transcribes"
an utterance as its length, and :class:`Espeak` speaks with espeak-ng (a tone without it).

The session does the telephony: :class:`~vobiz_stream.app.handlers.UtteranceCutter` cuts each
utterance out of the caller audio by the speech events, ``play`` paces the answer to the carrier
as the TTS streams it, and when the caller talks over the answer the session clears it by itself
(``BargeIn``); the agent then stops synthesizing and answers the new utterance.
For real calls: ``../.venv/bin/vobiz-stream serve --handler bridge_agent:handle`` from this
folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import demo
import numpy as np

from vobiz_stream import (
    BargeIn,
    CallerSource,
    CallSession,
    Handler,
    Pcm,
    SpeechDetection,
    SpeechUnavailable,
    UtteranceCutter,
    asynthesize,
    read_caller_audio,
    tone,
)

log = logging.getLogger("bridge_agent")


class SpeechToText(Protocol):
    async def transcribe(self, pcm: Pcm, rate: int) -> str:
        """The text of one utterance (int16 samples at ``rate``)."""
        ...


class TextToSpeech(Protocol):
    rate: int
    """The rate of the audio :meth:`speak` yields."""

    def speak(self, text: str) -> AsyncIterator[Pcm]:
        """``text`` as audio chunks, yielded as soon as each is ready (streaming TTS)."""
        ...


Reply = Callable[[str], Awaitable[str]]
"""What the agent answers to what the caller said: your LLM."""


def bridge(stt: SpeechToText, tts: TextToSpeech, reply: Reply) -> Handler:
    """A handler that answers every caller utterance through ``stt``, ``reply`` and ``tts``."""

    async def answer(session: CallSession, utterance: Pcm, rate: int) -> None:
        text = await stt.transcribe(utterance, rate)
        response = await reply(text)
        log.info("call %s: heard %r, answering %r", session.describe(), text, response)
        async for chunk in tts.speak(response):
            await session.play(chunk, tts.rate, final=False)
        done = await session.play(np.zeros(0, dtype=np.int16), tts.rate)  # the end: flush
        log.info("call %s: answer %s", session.describe(), await done)

    async def handle(session: CallSession) -> None:
        detection = SpeechDetection(barge_in=True)
        session.detect_speech(detection)
        rate = session.inbound_format.sample_rate
        utterances = UtteranceCutter(rate, detection.start_ms)
        speaking: asyncio.Task[None] | None = None
        try:
            async for event in session.events():
                utterance = utterances.feed(event)
                if utterance is None and not isinstance(event, BargeIn):
                    continue
                if speaking is not None:
                    speaking.cancel()  # talked over, or a new question: drop the old answer
                if utterance is not None:
                    speaking = asyncio.create_task(answer(session, utterance, rate))
        finally:
            if speaking is not None:
                speaking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaking

    return handle


# --- stand-ins for the demo ---------------------------------------------------------------------


class UtteranceLength:
    """A speech-to-text that needs no service: the "text" is how long the caller spoke."""

    async def transcribe(self, pcm: Pcm, rate: int) -> str:
        return f"{len(pcm) / rate:.1f} seconds of speech"


class Espeak:
    """Text-to-speech with espeak-ng, one chunk per sentence; beeps when it is not installed."""

    rate = 16000

    async def speak(self, text: str) -> AsyncIterator[Pcm]:
        for sentence in filter(None, (part.strip() for part in text.split("."))):
            try:
                yield await asynthesize(sentence + ".", self.rate)
            except SpeechUnavailable as exc:
                log.warning("%s; beeping instead", exc)
                yield tone(0.3, self.rate)


async def echo_reply(text: str) -> str:
    return f"I heard {text}. Thank you."


handle = bridge(UtteranceLength(), Espeak(), echo_reply)


def caller_audio() -> CallerSource:
    """Half a second of silence, a question, then silence while the agent answers."""
    speech = read_caller_audio(demo.FIXTURES / "speech_male_8k.wav").at_rate(8000)
    pause = np.zeros(4000, dtype=np.int16)
    return CallerSource(np.concatenate([pause, speech, np.zeros(28000, dtype=np.int16)]), 8000)


if __name__ == "__main__":
    demo.main(demo.serving_handler(handle), caller_audio(), name="bridge_agent")
