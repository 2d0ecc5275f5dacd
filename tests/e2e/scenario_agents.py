"""Agents that fail the example scenarios on purpose: one too slow, one that never stops.

Both say what the greeting agent (examples/greeting_agent.py) says, so the same scenarios run
against all three; only their timing and their manners differ.
"""

from __future__ import annotations

import asyncio

from vobiz_stream import CallSession, DtmfReceived, SpeechDetection, asynthesize

RATE = 16000
SLOW_SECONDS = 2.5
"""How long the slow agent thinks before each thing it says."""
GREETING = "Hello! Thanks for calling. Press any key on your phone."
MONOLOGUE = (
    "Hello! Thanks for calling. Let me tell you everything about our opening hours, our "
    "prices, our history and our staff, whether you want to hear it or not."
)


async def slow_agent(session: CallSession) -> None:
    """Greets, and answers each key, :data:`SLOW_SECONDS` late."""
    session.detect_speech(SpeechDetection(barge_in=True))
    await asyncio.sleep(SLOW_SECONDS)
    await session.play(await asynthesize(GREETING, RATE), RATE)
    async for event in session.events():
        if isinstance(event, DtmfReceived):
            await asyncio.sleep(SLOW_SECONDS)
            await session.play(await asynthesize(f"You pressed {event.digit}.", RATE), RATE)


async def non_stopping_agent(session: CallSession) -> None:
    """Talks on through anything the caller says (no barge-in)."""
    session.detect_speech(SpeechDetection(barge_in=False))
    await session.play(await asynthesize(MONOLOGUE, RATE), RATE)
    async for _event in session.events():
        pass
