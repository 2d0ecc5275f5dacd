"""A greeting agent: says hello with espeak-ng, waits until the caller has heard it, then
answers each key the caller presses.

    .venv/bin/python examples/greeting_agent.py
    .venv/bin/python examples/greeting_agent.py --dtmf 5:4 --dtmf 7:2   # keys 4 at 5 s, 2 at 7 s

The greeting's ``play`` handle resolves when the carrier's ``playedStream`` confirms its
checkpoint (``played``), or ``cleared`` if the caller talked over it (barge-in is on), or ``lost``.
Only then does the agent listen: each DTMF digit gets "You pressed N." (``--dtmf 5:4``: the
emulated caller presses 4 at 5 s).
Without espeak-ng (``apt install espeak-ng``) it beeps instead: a tone for the greeting, N
short beeps per digit.
For real calls: ``../.venv/bin/vobiz-stream serve --handler greeting_agent:handle`` from this
folder.
"""

from __future__ import annotations

import logging

import demo
import numpy as np

from vobiz_stream import (
    CallerSource,
    CallSession,
    DtmfReceived,
    Pcm,
    SpeechDetection,
    SpeechUnavailable,
    asynthesize,
    tone,
)

RATE = 16000
"""The rate the agent speaks at; the session converts it to the stream's outbound format."""
GREETING = "Hello! Thanks for calling. Press any key on your phone."

log = logging.getLogger("greeting_agent")


async def say(text: str, beeps: int = 1) -> Pcm:
    """``text`` spoken by espeak-ng, or ``beeps`` short beeps without it."""
    try:
        return await asynthesize(text, RATE)
    except SpeechUnavailable as exc:
        log.warning("%s; beeping instead", exc)
        beep = np.concatenate([tone(0.15, RATE), np.zeros(RATE // 10, dtype=np.int16)])
        return np.tile(beep, beeps)


async def handle(session: CallSession) -> None:
    session.detect_speech(SpeechDetection(barge_in=True))
    greeting = await session.play(await say(GREETING), RATE)
    outcome = await greeting
    log.info("call %s: greeting %s; listening for keys", session.describe(), outcome)
    async for event in session.events():
        if isinstance(event, DtmfReceived):
            digits = int(event.digit) if event.digit.isdigit() else 1
            await session.play(await say(f"You pressed {event.digit}.", digits), RATE)


def silent_caller(seconds: float = 9.0) -> CallerSource:
    """A caller who listens and presses keys (``--dtmf``) without a word."""
    return CallerSource(np.zeros(round(seconds * 8000), dtype=np.int16), 8000)


if __name__ == "__main__":
    demo.main(demo.serving_handler(handle), silent_caller(), name="greeting_agent")
