"""What one emulated call knows while it runs, shared by the parts that run it.

:func:`~vobiz_stream.emulator.call.run_call` is split by job (the socket's life in
:mod:`~vobiz_stream.emulator.leg`, the app's commands in :mod:`~vobiz_stream.emulator.commands`,
the playout's answers in :mod:`~vobiz_stream.emulator.replies`, the end of the stream in
:mod:`~vobiz_stream.emulator.ending`...); :class:`CallState` is the one place they read and write
the call's report, clock, socket and playout, with the few acts every part needs (the call
clock, sending a message, queueing a status callback, writing what the caller heard).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from array import array
from collections import Counter, deque
from typing import TYPE_CHECKING

from vobiz_stream.audio import Pcm
from vobiz_stream.core.answer import Verb
from vobiz_stream.core.protocol import ClearedAudio, Dtmf, PlayedStream, Start, Stop, encode
from vobiz_stream.emulator.callbacks import CallbackEvent, CallbackSender
from vobiz_stream.emulator.conduct import AppConduct
from vobiz_stream.emulator.faults import ScheduledFrame
from vobiz_stream.emulator.heard import HeardWav
from vobiz_stream.emulator.options import CallOptions
from vobiz_stream.emulator.playout import Playout
from vobiz_stream.emulator.report import CallReport, CheckpointTiming, Timeline
from vobiz_stream.emulator.sender import MediaSender
from vobiz_stream.emulator.source import CallerSource
from vobiz_stream.emulator.verbs import VerbPlan, Voice
from vobiz_stream.formats import AudioFormat

if TYPE_CHECKING:  # the socket imports picows, an optional package
    from vobiz_stream.emulator.socket import CarrierSocket

__all__ = ["CallFailedError", "CallState"]


class CallFailedError(Exception):
    """The call cannot go on; the message is the report's ``failure``."""


class CallState:
    """One call's report, clock, socket, playout and plans, as its parts go along."""

    def __init__(self, answer_url: str, caller: CallerSource, options: CallOptions) -> None:
        self.caller = caller
        self.options = options
        self.report = CallReport(
            answer_url=answer_url,
            call_uuid=str(uuid.uuid4()),
            legacy_shape=options.legacy_shape,
            speed=options.speed,
            jitter_buffer=options.jitter_buffer,
        )
        self.timeline = Timeline(options.on_event)
        self.conduct = AppConduct(self.report.call_uuid)
        self.media_format: AudioFormat | None = None
        """The stream's format, once its ``<Stream>`` is known."""
        self.began = time.monotonic()
        self.sequence = itertools.count()
        self.lateness: array[float] = array("d")
        self.commands: Counter[str] = Counter()
        self.checkpoints: dict[str, deque[CheckpointTiming]] = {}
        self.wake = asyncio.Event()
        self.heard: HeardWav | None = None
        self.sender: MediaSender | None = None
        """The media sender of the socket up now, while it runs."""
        self.socket: CarrierSocket | None = None
        self.epoch_ms = 0
        """Wall-clock epoch milliseconds of ``start``: the base of media timestamps."""
        self.playout: Playout | None = None
        self.callbacks: CallbackSender | None = None
        self.call_end = 0.0
        """Call-clock seconds when the call hangs up, unless the stream ends first: the end of
        the caller audio, or of the verbs after a background ``<Stream>``."""
        self.caller_end = 0.0
        """Call-clock seconds when the caller audio ends (the caller hangs up)."""
        self.hangup_reason = "hangup"
        """The end reason at ``call_end``: the caller's, or the verbs'."""
        self.schedule: tuple[ScheduledFrame, ...] = ()
        """When each caller frame leaves (:mod:`~vobiz_stream.emulator.faults`)."""
        self.next_entry = 0
        """Index in the schedule of the next frame to send; it carries over a reconnect."""
        self.cut_at: float | None = None
        """Call seconds at which the connection is cut (the ``drop_at`` fault)."""
        self.cutting = False
        self.drop_error = ""
        """Why the current socket failed or dropped: ``Error`` of its ``DroppedStream``."""
        self.verbs_after: tuple[Verb, ...] = ()
        """The answer's verbs after its ``<Stream>``."""
        self.voice = Voice()
        self.plan: VerbPlan | None = None
        """The verbs after the ``<Stream>`` on the call clock, once they run."""
        self.announced = 0
        """Steps of the plan already on the timeline and in the report."""
        self.announcer: asyncio.Task[None] | None = None
        self.keypad: asyncio.Task[None] | None = None

    def now(self) -> float:
        """Seconds on the call clock (0 is ``start``; before it, the time since the call began)."""
        return (time.monotonic() - self.began) * self.options.speed

    def next_sequence(self) -> int:
        return next(self.sequence)

    def send(self, message: Start | PlayedStream | ClearedAudio | Dtmf | Stop) -> None:
        """Send one message now; on a socket already gone it goes nowhere, as on a real
        carrier (not an error)."""
        socket = self.socket
        assert socket is not None
        socket.send_text(encode(message))

    def callback(
        self,
        event: CallbackEvent,
        stream_id: str | None,
        *,
        error: str = "",
        extra: dict[str, str] | None = None,
    ) -> None:
        """Queue a status callback when the ``<Stream>`` has a ``statusCallbackUrl``."""
        if self.callbacks is not None:
            self.callbacks.send(event, stream_id or "", error=error, extra=extra)

    def write_heard(self, pcm: Pcm) -> None:
        """Write heard audio to the heard WAV, if one is written, with the verbs' audio mixed
        in at its place."""
        if self.heard is not None:
            self.heard.write(pcm, self.plan)
