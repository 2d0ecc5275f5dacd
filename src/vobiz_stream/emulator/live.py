"""A caller who decides as the call goes: what to send each 20 ms from what it has heard.

:func:`~vobiz_stream.emulator.call.run_call` plays a :class:`CallerSource` (audio known before
the call) or a :class:`LiveCaller`: a script asked for each frame when the frame is due, after
the caller heard everything played before it (:meth:`LiveCaller.hear`). It can press keys and hang
up through the :class:`CallerControls` it is given. Scenarios
(:mod:`vobiz_stream.emulator.scenario`) are live callers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import overload

from vobiz_stream.audio import ByteOrder, Pcm, encode_l16, encode_mulaw
from vobiz_stream.core.protocol import encode_payload
from vobiz_stream.emulator.keypad import press_key
from vobiz_stream.emulator.state import CallState
from vobiz_stream.formats import FRAME_SECONDS, AudioFormat, Encoding

__all__ = ["CallerControls", "LiveCaller", "LivePayloads"]


class CallerControls:
    """What a live caller may do to its call: read the clock, press keys, hang up."""

    def __init__(self, call: CallState) -> None:
        self._call = call

    def press(self, digit: str, at: float) -> None:
        """Send key ``digit`` now (``at`` is its call time, for the timeline)."""
        press_key(self._call, digit)

    def hang_up(self, at: float) -> None:
        """The caller hangs up at ``at`` (call seconds, on the frame grid): no more frames."""
        call = self._call
        call.call_end = call.caller_end = min(call.call_end, at)
        if call.sender is not None:
            call.sender.stop()


class LiveCaller(ABC):
    """A caller script: the longest the call lasts, then each frame asked for when due."""

    @property
    @abstractmethod
    def seconds(self) -> float:
        """The longest the call may last: the caller hangs up then at the latest."""

    @abstractmethod
    def begin(self, control: CallerControls, rate: int) -> None:
        """The stream is about to start at ``rate``: keep ``control`` to act on the call."""

    @abstractmethod
    def frame(self, index: int) -> Pcm:
        """The caller's samples (``rate // 50``) for frame ``index``, due at ``index * 20 ms``."""

    @abstractmethod
    def hear(self, pcm: Pcm) -> None:
        """What the caller heard next, in call order from 0 s, at the stream's rate."""


class LivePayloads(Sequence[bytes]):
    """A live caller's frames as ``media`` payloads, made in call order as the sender takes them.

    The caller is always asked for its frames in order, whatever order they leave in: a frame
    swapped with the next one (the ``reorder`` fault) is made before it, and frames the sender
    skips (dropped, or due while no socket was up) are still made, so the caller's script goes on
    through them as a real caller talks on through a network's losses.
    """

    def __init__(
        self,
        caller: LiveCaller,
        media_format: AudioFormat,
        order: ByteOrder,
        count: int | None = None,
    ) -> None:
        self._caller = caller
        self._format = media_format
        self._order = order
        self._count = math.ceil(caller.seconds / FRAME_SECONDS - 1e-9) if count is None else count
        self._made = 0
        """Frames made so far: the next one the caller is asked for."""
        self._ready: dict[int, bytes] = {}
        """Frames made and not taken yet (a swapped frame's partner, for one frame)."""

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):  # only the first frames (the verbs end the call sooner)
            start, stop, step = index.indices(self._count)
            if start != 0 or step != 1:
                raise IndexError("a live caller's frames are taken from the first, in order")
            return LivePayloads(self._caller, self._format, self._order, stop)
        while self._made <= index:
            self._ready[self._made] = self._make(self._made)
            self._made += 1
        payload = self._ready.pop(index)
        for stale in [made for made in self._ready if made < index - 1]:
            del self._ready[stale]  # never taken: dropped on the way
        return payload

    def _make(self, index: int) -> bytes:
        pcm = self._caller.frame(index)
        if self._format.encoding is Encoding.MULAW:
            data = encode_mulaw(pcm)
        else:
            data = encode_l16(pcm, self._order)
        return encode_payload(data).encode()
