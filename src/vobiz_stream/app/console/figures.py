"""Who talked when, from a recording's loudness: the figures at the top of a call's page.

Each side is "talking" in a 20 ms frame whose RMS is above :data:`TALK_DBFS`; gaps shorter than
:data:`BRIDGE_SECONDS` inside a turn (between words) do not end it. From the two sides:

* time to first agent audio: from the recording's start to the first frame the caller heard
  the app;
* response latency: from the end of each caller turn to the start of the app's next audio, when
  the app answered before the caller spoke again;
* talk-over: the time both sides talked at once;
* longest silence: the longest time neither side talked, between the first and the last talk.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import numpy.typing as npt

__all__ = ["BRIDGE_SECONDS", "TALK_DBFS", "TalkFigures", "talk_figures", "turns"]

TALK_DBFS = -40.0
BRIDGE_SECONDS = 0.3


class TalkFigures(TypedDict):
    """Seconds (None when the recording cannot tell: no app audio, no caller turn)."""

    first_agent_audio: float | None
    response_latencies: list[float]
    talk_over: float
    longest_silence: float | None


def _talking(rms: npt.NDArray[np.float64], frame: float) -> npt.NDArray[np.bool_]:
    """Frames in a turn: loud enough, with the short gaps inside a turn filled in."""
    loud = rms > 10 ** (TALK_DBFS / 20)
    talking = loud.copy()
    gap = round(BRIDGE_SECONDS / frame)
    for start, end in turns(~loud):
        if start > 0 and end < len(loud) and end - start < gap:
            talking[start:end] = True
    return talking


def turns(talking: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The runs of True as ``(first frame, frame after the last)``."""
    edges = np.diff(np.concatenate(([0], talking.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _seconds(frames: int, frame: float) -> float:
    return round(frames * frame, 3)


def talk_figures(
    caller: npt.NDArray[np.float64], heard: npt.NDArray[np.float64] | None, frame: float
) -> TalkFigures:
    """The figures of a recording whose 20 ms frames have the RMS ``caller`` and ``heard``
    (None: a mono recording, the app's side unknown)."""
    caller_talks = _talking(caller, frame)
    agent_talks = _talking(heard, frame) if heard is not None else np.zeros(len(caller), dtype=bool)
    agent_turns = turns(agent_talks)
    latencies = []
    caller_turns = turns(caller_talks)
    for index, (_, end) in enumerate(caller_turns):
        next_caller = caller_turns[index + 1][0] if index + 1 < len(caller_turns) else None
        answer = next((start for start, _ in agent_turns if start >= end), None)
        if answer is not None and (next_caller is None or answer < next_caller):
            latencies.append(_seconds(answer - end, frame))
    anyone = caller_talks | agent_talks
    silence = None
    if anyone.any():
        first, last = int(np.argmax(anyone)), len(anyone) - int(np.argmax(anyone[::-1]))
        quiet = turns(~anyone[first:last])
        silence = _seconds(max((end - start for start, end in quiet), default=0), frame)
    return {
        "first_agent_audio": _seconds(agent_turns[0][0], frame) if agent_turns else None,
        "response_latencies": latencies,
        "talk_over": _seconds(int(np.count_nonzero(caller_talks & agent_talks)), frame),
        "longest_silence": silence,
    }
