"""When each call of a load starts, by profile: steady, ramp, spike or soak. No I/O.

``rate`` is the highest start rate a profile reaches (calls per second); every call starts at a
spread moment inside its slot (:func:`start_offset`), so the calls' frames never fall due in
lockstep.

* ``steady``: ``rate`` from the first call to the last;
* ``ramp``: the start rate climbs evenly from 0 to ``rate`` (call ``i`` of ``n`` starts at
  ``T * sqrt(i / n)``, ``T = 2 n / rate``): where the app starts to fall behind shows as the
  moment its latency climbs in the report's plot;
* ``spike``: a quarter of the calls at a fifth of ``rate``, then half of them at ``rate``, then
  the last quarter at a fifth again: a sudden surge and the way back from it;
* ``soak``: ``steady``, meant for a long run (many calls, each ``--duration`` long): the plot of
  latency over time shows drift (a leak, a queue that grows) that a short run hides.
"""

from __future__ import annotations

import math
from enum import StrEnum

__all__ = ["SPIKE_BASE", "LoadProfile", "profile_offset", "start_offset"]

SPIKE_BASE = 0.2
"""The start rate before and after a spike, as a fraction of the peak ``rate``."""


_GOLDEN_FRACTION = (5**0.5 - 1) / 2


def start_offset(index: int, rate: float) -> float:
    """Seconds from the load's start to when call ``index`` is placed.

    Each call has a slot of ``1 / rate`` seconds and starts at a point inside it taken from the
    golden-ratio sequence, so the calls' 20 ms frame deadlines fall evenly across the frame
    period, as real calls' do. Calls placed exactly on the rate's grid would send in lockstep:
    at 50 calls/s every call's frame would be due in the same millisecond, and the load would
    measure its own bursts instead of the app.
    """
    return (index + index * _GOLDEN_FRACTION % 1.0) / rate


class LoadProfile(StrEnum):
    """How a load's calls are spread over time."""

    STEADY = "steady"
    RAMP = "ramp"
    SPIKE = "spike"
    SOAK = "soak"


def profile_offset(profile: LoadProfile, index: int, calls: int, rate: float) -> float:
    """Seconds from the load's start to when call ``index`` (of ``calls``) is placed."""
    if profile is LoadProfile.RAMP:
        spread = start_offset(index, 1.0) - index  # where in its slot, 0 to 1
        return 2 * calls / rate * math.sqrt((index + spread) / calls)
    if profile is LoadProfile.SPIKE:
        base = rate * SPIKE_BASE
        before = calls // 4
        during = calls - 2 * before
        if index < before:
            return start_offset(index, base)
        if index < before + during:
            return before / base + start_offset(index - before, rate)
        return before / base + during / rate + start_offset(index - before - during, base)
    return start_offset(index, rate)
