"""Built-in call handlers, finding a user's handler from ``MODULE:FUNCTION``, and
:class:`UtteranceCutter`, which handlers use to get whole caller utterances.

A handler is ``async def handler(session: CallSession) -> None``. The server records every call
whatever the handler does, so ``record`` (a plain recorder) has nothing to do. A handler that never
plays audio (a recorder, a transcriber) can say so with :func:`listens_only`: its calls are then
recorded in mono, the caller alone, where a bidirectional stream would otherwise get a second
channel for what the caller heard of the app, silent from start to end.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from vobiz_stream.app.advice import handler_import_failure
from vobiz_stream.app.session import (
    BargeIn,
    CallerAudio,
    CallSession,
    SessionEvent,
    SpeechDetection,
)
from vobiz_stream.audio import Pcm
from vobiz_stream.audio.vad import SpeechEnded, SpeechStarted
from vobiz_stream.core.protocol import Track
from vobiz_stream.errors import VobizStreamError

MARGIN = 0.1
"""Seconds kept before a detected onset and after a detected end, so no word is clipped."""

Handler = Callable[[CallSession], Awaitable[None]]
AnyHandler = TypeVar("AnyHandler", bound=Handler)

log = logging.getLogger("vobiz_stream.app.handlers")

_LISTEN_ONLY: set[Handler] = set()
"""The handlers marked with :func:`listens_only`."""


def listens_only(handler: AnyHandler) -> AnyHandler:
    """Mark ``handler`` as never playing audio, so its calls are recorded in mono (the caller).

    On a bidirectional stream the recording's right channel holds what the caller heard of the
    app's audio; for a handler that never plays, that channel would be silence for the whole
    call, written to disk at the same rate as the caller. Audio such a handler plays anyway still
    reaches the caller, but is not recorded. Use it as a decorator: ``@listens_only``.
    """
    _LISTEN_ONLY.add(handler)
    return handler


def plays_audio(handler: Handler) -> bool:
    """Whether ``handler`` may play audio: False only if it is marked :func:`listens_only`."""
    return handler not in _LISTEN_ONLY


class HandlerError(VobizStreamError, ValueError):
    """A ``--handler`` that cannot be found or is not an async function of one session."""


@listens_only
async def record(session: CallSession) -> None:
    """Record only: the server writes the WAV; the handler just lets the stream run."""


async def echo(session: CallSession) -> None:
    """Play each caller utterance back when it ends; if the caller talks over the echo, the
    session clears it (barge-in) and the new utterance is echoed in turn.

    Each play carries a checkpoint, so its handle resolves when the carrier has played it.
    """
    detection = SpeechDetection(barge_in=True)
    session.detect_speech(detection)
    rate = session.inbound_format.sample_rate
    utterances = UtteranceCutter(rate, detection.start_ms)
    async for event in session.events():
        utterance = utterances.feed(event)
        if utterance is not None:
            await session.play(utterance, rate)
        elif isinstance(event, BargeIn):
            log.info("call %s: caller spoke over the echo: cleared", session.describe())


class UtteranceCutter:
    """Cuts the caller's utterances out of a session's events, speech detection being on.

    Feed it every event; at each :class:`SpeechEnded` it returns the utterance:
    the caller audio from ``MARGIN`` before the onset to ``MARGIN`` after the end. Between
    utterances it holds only enough audio to reach back past the next onset. The events must be
    at the stream's rate (``session.events()`` without ``sample_rate``), so that the detector's
    times and the audio agree.
    """

    def __init__(self, rate: int, start_ms: int, margin: float = MARGIN) -> None:
        self.rate = rate
        self.margin = margin
        self._keep = round((start_ms / 1000 + 2 * margin) * rate)
        self._chunks: deque[Pcm] = deque()
        self._first = 0
        """Absolute index of the first sample held."""
        self._end = 0
        """Absolute index just past the last sample held."""
        self._begin: int | None = None
        """Absolute index where the utterance in progress starts."""

    def feed(self, event: SessionEvent) -> Pcm | None:
        """Take the next event; return an utterance when this event ended one."""
        if isinstance(event, CallerAudio) and event.track is Track.INBOUND:
            self._append(event.pcm)
        elif isinstance(event, SpeechStarted):
            self._begin = self._ago(event.delay + self.margin)
        elif isinstance(event, SpeechEnded) and self._begin is not None:
            end = self._ago(event.delay - self.margin)
            return self._take(end)
        return None

    def _append(self, pcm: Pcm) -> None:
        self._chunks.append(pcm)
        self._end += len(pcm)
        while self._begin is None and self._end - self._first - len(self._chunks[0]) >= self._keep:
            self._first += len(self._chunks.popleft())

    def _ago(self, seconds: float) -> int:
        """The absolute index ``seconds`` before the end, within what is held."""
        return min(self._end, max(self._first, self._end - round(seconds * self.rate)))

    def _take(self, end: int) -> Pcm:
        assert self._begin is not None
        held = np.concatenate([np.zeros(0, dtype=np.int16), *self._chunks])
        utterance = held[self._begin - self._first : end - self._first]
        self._chunks = deque([held[end - self._first :]])
        self._first, self._begin = end, None
        return utterance


BUILT_IN: dict[str, Handler] = {"record": record, "echo": echo}


def resolve_handler(spec: str) -> Handler:
    """``record``, ``echo`` or ``package.module:function``.

    The module is looked up on ``sys.path`` and then in the current directory, as uvicorn does
    with ``module:app``: the ``vobiz-stream`` command's own ``sys.path`` does not include it.
    """
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise HandlerError(
            f"handler {spec!r} is not built in ({', '.join(BUILT_IN)}) and not MODULE:FUNCTION"
        )
    here = os.getcwd()
    if here not in sys.path:
        sys.path.append(here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise HandlerError(handler_import_failure(spec, exc)) from None  # an import inside
        raise HandlerError(
            f"cannot import {module_name!r} for handler {spec!r}: {exc}; run from the folder "
            "that holds it, add that folder to PYTHONPATH, or pip install it"
        ) from None
    except Exception as exc:  # the module itself is broken: its line, not a traceback
        raise HandlerError(handler_import_failure(spec, exc)) from None
    function = getattr(module, attribute, None)
    if function is None or not inspect.iscoroutinefunction(function):
        raise HandlerError(
            f"{spec!r} must name an async function taking one session, e.g. "
            "async def handler(session): ..."
        )
    handler: Handler = function
    return handler
