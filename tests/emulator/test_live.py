"""A live caller's frames: made in call order whatever order the sender takes them in."""

from __future__ import annotations

import base64

import numpy as np

from vobiz_stream.audio import ByteOrder, Pcm, decode_l16
from vobiz_stream.emulator.live import CallerControls, LiveCaller, LivePayloads
from vobiz_stream.formats import AudioFormat, Encoding

RATE = 8000


class Counting(LiveCaller):
    """Says its frame number in every sample, and notes the order it was asked in."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    @property
    def seconds(self) -> float:
        return 1.0

    def begin(self, control: CallerControls, rate: int) -> None:
        pass

    def frame(self, index: int) -> Pcm:
        self.asked.append(index)
        return np.full(RATE // 50, index, dtype=np.int16)

    def hear(self, pcm: Pcm) -> None:
        pass


def said(payload: bytes) -> int:
    return int(decode_l16(base64.b64decode(payload), ByteOrder.LITTLE)[0])


def test_swapped_and_skipped_frames_are_still_made_in_order() -> None:
    caller = Counting()
    frames = LivePayloads(caller, AudioFormat(Encoding.L16, RATE), ByteOrder.LITTLE)
    assert len(frames) == 50
    # Frame 1 leaves before frame 0 (a swap), 3 and 4 never leave (dropped), then 5.
    assert [said(frames[index]) for index in (1, 0, 2, 5)] == [1, 0, 2, 5]
    assert caller.asked == [0, 1, 2, 3, 4, 5]


def test_the_first_frames_only_is_still_live() -> None:
    caller = Counting()
    frames = LivePayloads(caller, AudioFormat(Encoding.L16, RATE), ByteOrder.LITTLE)[:10]
    assert isinstance(frames, LivePayloads) and len(frames) == 10 and caller.asked == []
