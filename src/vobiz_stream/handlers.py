"""Built-in call handlers, and finding a user's handler from ``MODULE:FUNCTION``.

A handler is ``async def handler(session: CallSession) -> None``. The server records every call
whatever the handler does, so ``record`` (seed 002's sink) has nothing to do.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np

from vobiz_stream.audio import Pcm
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.playback import PlayHandle
from vobiz_stream.protocol import Track
from vobiz_stream.session import CallerAudio, CallSession
from vobiz_stream.vad import EnergyVad, VoiceChange

PREROLL_CHUNKS = 5
"""Chunks (20 ms each) kept from before speech was detected, so a word's start is not cut."""

Handler = Callable[[CallSession], Awaitable[None]]

log = logging.getLogger("vobiz_stream.handlers")


class HandlerError(VobizStreamError, ValueError):
    """A ``--handler`` that cannot be found or is not an async function of one session."""


async def record(session: CallSession) -> None:
    """Record only: the server writes the WAV; the handler just lets the stream run."""


async def echo(session: CallSession) -> None:
    """Play each caller utterance back when it ends; clear the playback if the caller talks over it.

    Each playback carries a checkpoint, so its handle resolves when the carrier played it.
    """
    vad: EnergyVad | None = None
    utterance: list[Pcm] = []
    preroll: deque[Pcm] = deque(maxlen=PREROLL_CHUNKS)
    playing: PlayHandle | None = None
    async for event in session.events():
        if not isinstance(event, CallerAudio) or event.track is not Track.INBOUND:
            continue
        if vad is None:
            vad = EnergyVad(event.sample_rate)
        change = vad.update(event.pcm)
        if change is VoiceChange.SPEECH_STARTED and playing is not None and not playing.done:
            log.info("call %s: caller spoke over the echo: clearing", session.describe())
            await session.clear()
        if change is VoiceChange.SPEECH_STARTED:
            utterance.extend(preroll)  # the onset the detector needed to be sure
        if vad.speaking or change is VoiceChange.SPEECH_ENDED:
            utterance.append(event.pcm)
        else:
            preroll.append(event.pcm)
        if change is VoiceChange.SPEECH_ENDED and utterance:
            playing = await session.play(np.concatenate(utterance), event.sample_rate)
            utterance = []


BUILT_IN: dict[str, Handler] = {"record": record, "echo": echo}


def resolve_handler(spec: str) -> Handler:
    """``record``, ``echo`` or ``package.module:function``."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise HandlerError(
            f"handler {spec!r} is not built in ({', '.join(BUILT_IN)}) and not MODULE:FUNCTION"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerError(
            f"cannot import {module_name!r} for handler {spec!r}: {exc}; "
            "is it on PYTHONPATH (run from its folder, or pip install it)?"
        ) from None
    function = getattr(module, attribute, None)
    if function is None or not inspect.iscoroutinefunction(function):
        raise HandlerError(
            f"{spec!r} must name an async function taking one session, e.g. "
            "async def handler(session): ..."
        )
    handler: Handler = function
    return handler
