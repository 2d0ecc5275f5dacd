"""A call's outbound pacing: what its stream says is due, sent on time.

Where the transport can send without waiting (picows), the due frames go out from the tick of
the one :class:`~vobiz_stream.frame_clock.FrameClock` that paces every call, so no task wakes per
frame. Otherwise, or while the socket cannot take more, a task per call sends them, awaiting
each send, and sleeps until the stream's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from vobiz_stream.core.kinds import EventKind
from vobiz_stream.core.stream import StreamState
from vobiz_stream.core.stream_events import SessionError
from vobiz_stream.frame_clock import FrameClock, Ticket
from vobiz_stream.transports.gateway import SendsAtOnce, Transport

__all__ = ["PacedSender"]

log = logging.getLogger("vobiz_stream.app.session")


class PacedSender:
    """Sends ``state``'s due frames on ``transport`` by the clock ``now``; ``note`` keeps a call
    event."""

    def __init__(
        self,
        state: StreamState,
        transport: Transport,
        describe: Callable[[], str],
        note: Callable[..., None],
        now: Callable[[], float],
    ) -> None:
        self._state = state
        self._now = now  # the session's clock
        self._transport = transport
        self._describe = describe
        self._note = note
        self._wake = asyncio.Event()
        self._clock = FrameClock.current()  # one timer paces every call's playAudio frames
        self._pacing: Ticket | None = None
        self._at_once = transport if isinstance(transport, SendsAtOnce) else None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def kick(self) -> None:
        """Something was queued: send what is due now, and keep pacing."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sender-{self._describe()}")
        self._wake.set()

    async def send_frame(self, data: bytes) -> None:
        """Send one frame now, waiting for the socket; :class:`SessionError` if it is gone."""
        try:
            await self._transport.send_frame(data)
        except (ConnectionError, RuntimeError) as exc:
            raise SessionError(f"call {self._describe()}: could not send: {exc}") from exc

    def stop(self) -> None:
        """The stream is over: send nothing more."""
        self._stopped = True
        self._wake.set()
        if self._pacing is not None:
            self._pacing.cancel()
        if self._task is not None:
            self._task.cancel()

    async def stopped(self) -> None:
        """Wait until the sending task (if any) has stopped."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """Send what the stream says is due, sleeping until its next deadline (never drifting)."""
        state = self._state
        while not self._stopped:
            now = self._now()
            outgoing = state.outgoing
            clears = 0 if outgoing is None else outgoing.clears
            for frame in state.due(now):
                if outgoing is not None and outgoing.clears != clears:
                    break  # a clear came while sending: the rest was voided, its clear goes next
                try:
                    await self.send_frame(frame)
                except SessionError as exc:
                    log.warning("%s", exc)
                    return
            self._after_sending(now)
            deadline = state.next_deadline(self._now())
            self._wake.clear()
            if self._pacing is not None:
                self._pacing.cancel()
            self._pacing = (
                None if deadline is None else self._clock.schedule(deadline, self._on_pace)
            )
            await self._wake.wait()

    def _on_pace(self) -> float | None:
        """The deadline came: send what is due from the frame clock's tick, with no task woken,
        when the transport can send without waiting, and say when to come back; else wake the
        sending task."""
        transport = self._at_once
        if self._stopped:
            return None
        if transport is None or not transport.can_send_now():
            self._wake.set()
            return None
        now = self._now()
        try:
            for frame in self._state.due(now):
                transport.send_now(frame)
        except (ConnectionError, RuntimeError) as exc:
            log.warning("call %s: could not send: %s", self._describe(), exc)
            return None
        self._after_sending(now)
        return self._state.next_deadline(self._now())

    def _after_sending(self, now: float) -> None:
        """Note the checkpoints just sent, and those the carrier never confirmed in time."""
        outgoing = self._state.outgoing
        if outgoing is not None and outgoing.checkpoints_sent:
            for name in outgoing.checkpoints_sent:
                self._note(EventKind.CHECKPOINT_SENT, logging.DEBUG, name=name)
            outgoing.checkpoints_sent.clear()
        for handle in self._state.expire(now):
            self._note(EventKind.CHECKPOINT_LOST, level=logging.WARNING, name=handle.name)
