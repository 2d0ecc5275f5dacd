"""The caller's key presses, each sent as a ``dtmf`` event at its call time."""

from __future__ import annotations

import asyncio
import time

from vobiz_stream.core.protocol import Dtmf
from vobiz_stream.emulator.state import CallState

__all__ = ["press_keys"]


async def press_keys(call: CallState) -> None:
    """Send each key press at its call time, on whichever socket is up then; a key pressed
    while no socket is up, or after the call, reaches nobody."""
    for at, digit in sorted(call.options.dtmf):
        if at >= call.call_end:
            break
        delay = call.began + at / call.options.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        socket = call.socket
        if socket is None or socket.closed:
            call.timeline.add(at, "dtmf lost", f"{digit}: no socket up")
            continue
        call.send(Dtmf(digit, call.report.stream_id, call.next_sequence()))
        call.report.dtmf_sent += 1
        call.timeline.add(call.now(), "dtmf", f"the caller pressed {digit}")
