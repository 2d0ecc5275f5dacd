"""Acting on a call while it runs, as Vobiz's REST API does: hang up, stop the stream, start
one, press keys.

:func:`~vobiz_stream.emulator.call.run_call` takes a :class:`ApiCallControl` and watches it: a
hangup ends the call now (end reason ``api_hangup``, no ``StopStream``), a stream stop ends the
stream and not the call (``api_stop``, with ``StopStream``), and a call whose answer has no
``<Stream>`` waits, up to the caller audio's length, for one started by :meth:`start_stream`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from vobiz_stream.core.answer import Stream, Verb

if TYPE_CHECKING:
    from vobiz_stream.emulator.state import CallState

__all__ = ["API_HANGUP", "API_STOP", "ApiCallControl"]

API_HANGUP = "api_hangup"
"""The end reason of a call hung up through the API."""
API_STOP = "api_stop"
"""The end reason of a stream stopped through the API (the call goes on)."""


class ApiCallControl:
    """What the API asked of one running call; the call reads it, the API writes it."""

    def __init__(self, call_uuid: str) -> None:
        self.call_uuid = call_uuid
        self.state: CallState | None = None
        """The running call's state, once it runs (read it, never write it)."""
        self.hung_up = asyncio.Event()
        self.stream_stopped = asyncio.Event()
        self.stream: Stream | None = None
        """The call's stream, from its answer or the API, once known."""
        self.stream_id: str | None = None
        """The streamId the API gave the stream it started, for its first socket."""
        self.requested_stream: Stream | None = None
        """A stream started through the API, for a call whose answer has none."""
        self.verbs_after: tuple[Verb, ...] = ()
        """The verbs that run after the requested stream (they keep a one-way stream's call
        up)."""
        self._stream_requested = asyncio.Event()

    def hang_up(self) -> None:
        self.hung_up.set()

    def stop_stream(self) -> None:
        self.stream_stopped.set()

    def start_stream(
        self, stream: Stream, stream_id: str, verbs_after: tuple[Verb, ...] = ()
    ) -> None:
        self.requested_stream = stream
        self.stream_id = stream_id
        self.verbs_after = verbs_after
        self._stream_requested.set()

    async def wait_for_stream(self, timeout: float) -> Stream | None:
        """The stream started through the API within ``timeout`` wall seconds, or None (the
        time ran out, or the call was hung up first)."""
        requested = asyncio.create_task(self._stream_requested.wait())
        hung_up = asyncio.create_task(self.hung_up.wait())
        try:
            await asyncio.wait(
                {requested, hung_up}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (requested, hung_up):
                task.cancel()
        return None if self.hung_up.is_set() else self.requested_stream

    async def end_of_stream(self) -> str:
        """Wait until the API ends the stream: ``api_hangup`` or ``api_stop``."""
        hung_up = asyncio.create_task(self.hung_up.wait())
        stopped = asyncio.create_task(self.stream_stopped.wait())
        try:
            await asyncio.wait({hung_up, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (hung_up, stopped):
                task.cancel()
        return API_HANGUP if self.hung_up.is_set() else API_STOP

    async def sleep(self, delay: float) -> bool:
        """Sleep ``delay`` wall seconds; False, early, when the call is hung up meanwhile."""
        try:
            await asyncio.wait_for(self.hung_up.wait(), timeout=max(delay, 0.0))
        except TimeoutError:
            return True
        return False
