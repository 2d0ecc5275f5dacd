"""One socket's caller frames, each sent on its deadline by the loop's shared frame clock.

The schedule (:mod:`~vobiz_stream.emulator.faults`) says when each frame leaves, as call seconds
from ``start``; frame ``n`` carries the caller's ``n``-th 20 ms of audio, whose ``timestamp`` is
``start`` plus ``n * 20 ms`` and whose ``chunk`` counts from the socket's first frame. Nothing
here waits in a task per frame: :class:`MediaSender` hands :class:`FrameClock` a function that
sends every frame due and says when the next is, and the call awaits one future for the lot.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vobiz_stream.core.protocol import MediaEncoder
from vobiz_stream.emulator.faults import ScheduledFrame
from vobiz_stream.formats import FRAME_MS
from vobiz_stream.frame_clock import FrameClock

if TYPE_CHECKING:  # the socket imports picows, an optional package
    from vobiz_stream.emulator.socket import CarrierSocket

__all__ = ["MediaSender", "TrackEncoder"]


@dataclass(frozen=True, slots=True)
class TrackEncoder:
    """One track's frames: its encoder, and whether it carries the caller (else silence)."""

    encoder: MediaEncoder
    caller: bool


class MediaSender:
    """Sends ``payloads`` (base64, one per 20 ms) by ``schedule`` over ``socket``.

    ``began`` is the monotonic time of ``start`` and ``speed`` how much faster than the wall
    clock the call runs. Frames before ``first_frame`` were due while no socket was up: they are
    skipped and counted. ``next_entry`` always says where in the schedule the sender is, so a
    reconnect carries on from there.

    Per frame sent it appends how late it left (wall seconds after its deadline) to each array
    of ``lateness`` (the call's own, and a load's shared one), counts it in ``sent``, and calls
    ``on_sent``, while it is set, with the frame's due time in call seconds. This runs 50 times a
    second per call, so it is kept to C-level calls: no objects made, and no callback unless
    someone listens (the call sets ``on_sent`` only while its playout has audio to follow).
    """

    def __init__(
        self,
        *,
        socket: CarrierSocket,
        schedule: Sequence[ScheduledFrame],
        payloads: Sequence[bytes],
        silence: bytes,
        tracks: Sequence[TrackEncoder],
        began: float,
        speed: float,
        epoch_ms: int,
        first_frame: int,
        next_entry: int,
        sequence: Iterator[int],
        lateness: Sequence[array[float]],
        on_sent: Callable[[float], None] | None,
    ) -> None:
        self._socket = socket
        self._send = socket.send_frame
        self._schedule = schedule
        self._payloads = payloads
        self._silence = silence
        self._tracks = tracks
        self._began = began
        self._step = 1 / speed
        self._epoch_ms = epoch_ms
        self._first_frame = first_frame
        self._sequence = sequence
        self._lateness = tuple(log.append for log in lateness)
        self.on_sent = on_sent
        self.next_entry = next_entry
        self.sent = 0
        self.skipped = 0
        self._done: asyncio.Future[bool] | None = None
        self._stopped = False

    async def run(self) -> bool:
        """Send every frame still to go; True when all went, False when the socket went first."""
        self._done = asyncio.get_running_loop().create_future()
        self._socket.when_closed(lambda: self._finish(all_sent=False))
        ticket = FrameClock.current().schedule(time.monotonic(), self._send_due)
        try:
            return await self._done
        finally:
            ticket.cancel()

    def stop(self) -> None:
        """Send nothing more (the caller hung up): :meth:`run` returns True."""
        self._finish(all_sent=True)

    def _finish(self, all_sent: bool) -> None:
        assert self._done is not None
        self._stopped = True
        if not self._done.done():
            self._done.set_result(all_sent)

    def _send_due(self) -> float | None:
        """The clock's action: send what is due now; return when the next frame is."""
        if self._stopped:  # the socket closed (the clock may fire once more before the cancel)
            return None
        schedule, entry, now = self._schedule, self.next_entry, time.monotonic()
        send = self._send
        try:
            while entry < len(schedule):
                at, frame = schedule[entry]
                deadline = self._began + at * self._step
                if deadline > now:
                    return deadline
                entry += 1
                if frame < self._first_frame:
                    self.skipped += 1
                    continue
                timestamp = self._epoch_ms + frame * FRAME_MS
                chunk = frame - self._first_frame + 1
                for track in self._tracks:
                    payload = self._payloads[frame] if track.caller else self._silence
                    send(track.encoder.encode(payload, timestamp, chunk, next(self._sequence)))
                self.sent += 1
                for append in self._lateness:
                    append(now - deadline)
                on_sent = self.on_sent
                if on_sent is not None:
                    on_sent(at)
        finally:
            self.next_entry = entry
        self._finish(all_sent=True)
        return None
