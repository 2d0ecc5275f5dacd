"""One timer for the media frames of every call in an event loop: the emulator's caller audio
and the server's ``playAudio`` pacing.

A call sends a frame every 20 ms. Sleeping for each one (``asyncio.sleep`` in a task per call)
costs a timer, a future and a task step per frame: with a thousand calls, 50 000 task switches a
second before any frame is sent. Here each call hands the clock a plain function that sends its
frame due now and says when its next one is due; the clock keeps the deadlines in a heap and runs
every function whose deadline has come from one loop timer, with no task switch in between.
Deadlines are absolute (``time.monotonic``), so pacing never drifts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import weakref
from collections.abc import Callable

__all__ = ["RESOLUTION", "FrameClock", "Ticket"]

log = logging.getLogger("vobiz_stream.frame_clock")

RESOLUTION = 0.001
"""The clock fires at most once per this many seconds and then runs everything due: event loop
timers are no finer than 1 ms anyway (libuv counts milliseconds), and one timer per millisecond
serves every call due in it instead of one per frame."""

Action = Callable[[], float | None]
"""Does what is due now; returns the monotonic time it is next due, or None when it is done."""

_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameClock] = (
    weakref.WeakKeyDictionary()
)


class Ticket:
    """A scheduled action; :meth:`cancel` stops it before its next run."""

    __slots__ = ("action", "cancelled")

    def __init__(self, action: Action) -> None:
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FrameClock:
    """Runs actions at their deadlines; get the running loop's with :meth:`current`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Ticket]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    @classmethod
    def current(cls) -> FrameClock:
        """The clock of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        clock = _clocks.get(loop)
        if clock is None:
            clock = _clocks[loop] = cls(loop)
        return clock

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, due: float, action: Action) -> Ticket:
        """Run ``action`` at monotonic time ``due`` (at once if past), then whenever it asks."""
        ticket = Ticket(action)
        self._push(due, ticket)
        return ticket

    def _push(self, due: float, ticket: Ticket) -> None:
        heapq.heappush(self._heap, (due, next(self._order), ticket))
        if due < self._timer_at:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # loop.time() and time.monotonic() may differ by an offset: convert the deadline.
        self._timer = self._loop.call_at(self._loop.time() + due - time.monotonic(), self._fire)
        self._timer_at = due

    def _fire(self) -> None:
        """Run every action now due, each once (one due again at once runs at the next fire,
        after the loop has had its turn)."""
        self._timer, self._timer_at = None, float("inf")
        heap, again = self._heap, []
        while heap and heap[0][0] <= (now := time.monotonic()):
            entry = heap[0]
            ticket = entry[2]
            following = None
            if not ticket.cancelled:
                try:
                    following = ticket.action()
                except Exception:  # one call's bug must not stop every other call's frames
                    log.exception("a scheduled frame action failed; it is dropped")
            if following is None or ticket.cancelled:
                self._remove(entry)
            elif following > now and heap[0] is entry:
                # Put back at its next deadline in one step (an action that scheduled an
                # earlier one meanwhile is no longer on top: then it is removed and pushed).
                heapq.heapreplace(heap, (following, next(self._order), ticket))
            else:
                self._remove(entry)
                again.append((following, next(self._order), ticket))
        for entry in again:
            heapq.heappush(heap, entry)
        if heap:
            self._arm(max(heap[0][0], time.monotonic() + RESOLUTION))

    def _remove(self, entry: tuple[float, int, Ticket]) -> None:
        heap = self._heap
        if heap[0] is entry:
            heapq.heappop(heap)
        else:
            heap.remove(entry)
            heapq.heapify(heap)
