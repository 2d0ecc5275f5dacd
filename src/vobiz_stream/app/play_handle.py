"""The play handle a handler awaits: a :class:`~vobiz_stream.core.playback.PlayMark` whose
outcome an asyncio task can wait for (the core itself never touches the event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from vobiz_stream.core.playback import PlayMark, PlayOutcome


class PlayHandle(PlayMark):
    """Resolves to a :class:`PlayOutcome` when the carrier has played, cleared or lost the audio.

    ``await handle`` waits for the outcome; ``handle.done`` tells without waiting.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._future: asyncio.Future[PlayOutcome] | None = None

    def _resolved(self, outcome: PlayOutcome) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(outcome)

    async def wait(self) -> PlayOutcome:
        outcome = self.outcome
        if outcome is not None:
            return outcome
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return await self._future

    def __await__(self) -> Generator[Any, None, PlayOutcome]:
        return self.wait().__await__()
