"""The WAV of what the caller heard, written on the call clock as the playout plays it out."""

from __future__ import annotations

from collections.abc import Callable

from vobiz_stream.audio import Pcm, WavWriter
from vobiz_stream.emulator.verbs import VerbPlan

__all__ = ["HeardWav"]


class HeardWav:
    """Heard audio into ``writer`` (if any) and to ``listener`` (a live caller, if any), never
    past ``samples`` (the caller audio's length, the longest the call can last)."""

    def __init__(
        self,
        writer: WavWriter | None,
        samples: int,
        listener: Callable[[Pcm], None] | None = None,
    ) -> None:
        self._writer = writer
        self._listener = listener
        self._left = samples
        self.position = 0
        """Samples of the call clock written so far."""

    def write(self, pcm: Pcm, plan: VerbPlan | None) -> None:
        """Write heard audio, with the verbs' audio (``plan``) mixed in at its place."""
        if not len(pcm):
            return
        pcm = pcm[: self._left]
        if plan is not None:
            pcm = plan.mix(pcm, self.position)
        self._left -= len(pcm)
        self.position += len(pcm)
        if self._writer is not None:
            self._writer.write(pcm)
        if self._listener is not None:
            self._listener(pcm)
