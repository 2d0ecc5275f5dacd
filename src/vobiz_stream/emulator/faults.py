"""Network faults for testing agents: when each media frame of a call leaves, without I/O.

A real carrier's frames do not always arrive on their 20 ms grid. :class:`Faults` says what to
inject; :func:`plan_faults` turns a call's frames into a :class:`FaultPlan`: the send schedule
(``(send_time, frame_index)`` pairs in send order, times in call seconds) and a record of what was
injected. Everything is drawn up front from one random seed, each fault from its own stream, so a
run repeats exactly and turning one fault on does not change what another one does.
:mod:`vobiz_stream.emulator.call` then sends by the schedule, and measures each frame's pacing
against its own scheduled time, so an injected delay is never counted as a late frame.

What each fault looks like on the wire (frame ``n`` is due at ``n * 20 ms``):

* ``jitter_ms`` J: each frame leaves up to J ms after its deadline (uniformly random). TCP keeps
  order, so a frame never overtakes the one before it: a frame behind a late one waits for it,
  and the two leave back to back.
* ``bunch`` K: frames leave in groups of K, all at the deadline of the group's last frame (a
  carrier that packs K frames per network write).
* ``drop_probability`` P or ``drop_every`` N: a frame is never sent, each one with probability P,
  or every Nth frame (frames N-1, 2N-1, ... counting from 0). Its ``chunk`` and ``timestamp`` are
  simply missing from the stream.
* ``reorder`` P: with probability P a frame is held back and sent right after the next one, at
  the next one's deadline: two adjacent frames swapped (a frame is in at most one swap).
* ``drop_at`` S: at S seconds of call time the TCP connection is cut: the transport is aborted,
  with no WebSocket close frame, and nothing more is sent. The stream ends there, with no
  reconnect whatever ``maxRetries`` says (the call too, unless verbs after a background
  ``<Stream>`` keep it up).

The fields of a frame under faults: ``chunk`` and ``timestamp`` are those of the frame's true
place in the call, which is what lets a server put reordered frames back and see where frames are
missing. ``sequenceNumber`` counts the socket's messages in the order they are sent (``start`` is
0), as the live carrier numbers them: it never goes back and has no hole for a dropped frame, so a
reordered frame shows as a ``chunk`` out of step with its ``sequenceNumber``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from vobiz_stream.emulator.source import EmulatorError
from vobiz_stream.formats import FRAME_SECONDS

__all__ = ["FaultPlan", "Faults", "InjectedFaults", "ScheduledFrame", "plan_faults"]


@dataclass(frozen=True)
class Faults:
    """What to inject into a call's media frames; the defaults inject nothing."""

    jitter_ms: float = 0.0
    """Most extra delay of a frame, in milliseconds (uniformly random per frame)."""
    bunch: int = 1
    """Send frames in groups of this many, at the group's last deadline; 1 is no bunching."""
    drop_probability: float = 0.0
    """Chance that each frame is never sent."""
    drop_every: int | None = None
    """Never send every Nth frame."""
    reorder: float = 0.0
    """Chance that a frame is swapped with the next one."""
    drop_at: float | None = None
    """Call seconds at which the connection is cut, with no close frame."""
    seed: int | None = None
    """The random seed of every choice; None draws a new one per call (kept in the report)."""

    @property
    def active(self) -> bool:
        """True when any fault is asked for."""
        return (
            self.jitter_ms > 0
            or self.bunch > 1
            or self.drop_probability > 0
            or self.drop_every is not None
            or self.reorder > 0
            or self.drop_at is not None
        )

    def check(self) -> None:
        """Raise :class:`EmulatorError` for values that cannot make a fault."""
        if not 0 <= self.jitter_ms < math.inf:
            raise EmulatorError(f"jitter must be 0 or more milliseconds, got {self.jitter_ms}")
        if self.bunch < 1:
            raise EmulatorError(f"bunch must be 1 or more frames, got {self.bunch}")
        if not 0 <= self.drop_probability < 1:
            raise EmulatorError(
                f"drop probability must be at least 0 and below 1, got {self.drop_probability}"
            )
        if self.drop_every is not None and self.drop_every < 2:
            raise EmulatorError(
                f"drop_every must be 2 or more (every Nth frame), got {self.drop_every}"
            )
        if not 0 <= self.reorder <= 1:
            raise EmulatorError(f"reorder must be a probability from 0 to 1, got {self.reorder}")
        if self.drop_at is not None and not 0 < self.drop_at < math.inf:
            raise EmulatorError(f"drop_at must be positive call seconds, got {self.drop_at}")
        if self.seed is not None and self.seed < 0:
            raise EmulatorError(f"the random seed must be 0 or more, got {self.seed}")


ScheduledFrame: TypeAlias = tuple[float, int]
"""``(at, frame)``: frame ``frame`` of the call leaves at ``at`` call seconds. Plain tuples: a call
of an hour has 180 000 of them."""


@dataclass(frozen=True)
class InjectedFaults:
    """What the faults did to one call, for its report."""

    options: Faults
    seed: int
    """The random seed used: pass it back as ``Faults.seed`` to repeat the call's faults exactly."""
    dropped: tuple[int, ...] = ()
    """Frames never sent (before the cut, if any)."""
    reordered: tuple[int, ...] = ()
    """Frames sent right after the frame that follows them."""
    bunched: int = 0
    """Frames held back to leave with a later one."""
    max_delay_ms: float = 0.0
    """The most any sent frame left after its own deadline (jitter, bunching and swaps)."""
    cut_at: float | None = None
    """Call seconds at which the connection was cut; None when the call ended first."""
    lost_to_cut: int = 0
    """Frames neither sent nor dropped: still to leave when the connection was cut."""

    def summary(self) -> str:
        """One readable line."""
        parts = [
            f"random seed {self.seed}",
            f"{len(self.dropped)} frames dropped",
            f"{len(self.reordered)} reordered",
            f"{self.bunched} bunched",
            f"max delay {self.max_delay_ms:.1f} ms",
        ]
        if self.cut_at is not None:
            parts.append(
                f"connection cut at {self.cut_at:.2f}s ({self.lost_to_cut} frames never sent)"
            )
        return "faults: " + "; ".join(parts)


@dataclass(frozen=True)
class FaultPlan:
    """The send schedule of a call's frames and what was injected to make it."""

    schedule: tuple[ScheduledFrame, ...]
    """In send order; times never go back."""
    injected: InjectedFaults


def plan_faults(frame_count: int, faults: Faults, seed: int) -> FaultPlan:
    """The schedule of frames ``0 .. frame_count - 1`` under ``faults``, from random seed ``seed``.

    Without faults every frame leaves on its deadline, ``n * 20 ms``. The steps, in order: drop,
    bunch, jitter (kept in order, as TCP does), swap, and last the cut, which removes whatever was
    still to leave at ``drop_at``.
    """
    faults.check()
    if not faults.active:
        return FaultPlan(_on_time(frame_count), InjectedFaults(faults, seed))
    drop_stream, jitter_stream, reorder_stream = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    # Each fault draws for every frame, whatever the others do, so that one fault's choices do
    # not depend on another being on.
    drop_draws = drop_stream.random(frame_count)
    delays = jitter_stream.uniform(0.0, faults.jitter_ms / 1000, frame_count)
    swap_draws = reorder_stream.random(frame_count)

    frames = np.arange(frame_count)
    kept = np.ones(frame_count, dtype=bool)
    if faults.drop_every is not None:
        kept[faults.drop_every - 1 :: faults.drop_every] = False
    kept &= drop_draws >= faults.drop_probability
    bunch = faults.bunch
    group_last = np.minimum(frames // bunch * bunch + bunch - 1, frame_count - 1)
    send = group_last * FRAME_SECONDS
    if faults.jitter_ms > 0:
        send = send + delays
    in_order = frames[kept]
    in_order_times = np.maximum.accumulate(send[kept])

    swaps = _swaps(swap_draws[in_order[:-1]] < faults.reorder)
    sent_frames, times = in_order.copy(), in_order_times.copy()
    sent_frames[swaps], sent_frames[swaps + 1] = in_order[swaps + 1], in_order[swaps]
    times[swaps] = in_order_times[swaps + 1]
    reordered = in_order[swaps]
    dropped = frames[~kept]

    cut_at = faults.drop_at
    if cut_at is not None and cut_at >= frame_count * FRAME_SECONDS:
        cut_at = None  # the call ends before the cut
    if cut_at is not None:
        before_cut = times < cut_at
        sent_frames, times = sent_frames[before_cut], times[before_cut]
        dropped = dropped[dropped * FRAME_SECONDS < cut_at]
        was_sent = np.zeros(frame_count, dtype=bool)
        was_sent[sent_frames] = True
        reordered = reordered[was_sent[reordered]]
    delays_sent = times - sent_frames * FRAME_SECONDS
    injected = InjectedFaults(
        options=faults,
        seed=seed,
        dropped=tuple(dropped.tolist()),
        reordered=tuple(reordered.tolist()),
        bunched=int(np.count_nonzero(group_last[sent_frames] != sent_frames)),
        max_delay_ms=round(float(delays_sent.max()) * 1000, 3) if len(delays_sent) else 0.0,
        cut_at=cut_at,
        lost_to_cut=0 if cut_at is None else frame_count - len(sent_frames) - len(dropped),
    )
    return FaultPlan(tuple(zip(times.tolist(), sent_frames.tolist(), strict=True)), injected)


@functools.lru_cache(maxsize=16)
def _on_time(frame_count: int) -> tuple[ScheduledFrame, ...]:
    """Every frame on its deadline; one copy for all the calls of a load that share a length."""
    return tuple((n * FRAME_SECONDS, n) for n in range(frame_count))


def _swaps(wanted: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """Positions ``i`` whose frame swaps with the one at ``i + 1``, from left to right: a swap
    is skipped when its frame was just swapped in (each frame is in at most one swap)."""
    chosen: list[int] = []
    for position in np.flatnonzero(wanted).tolist():
        if not chosen or position > chosen[-1] + 1:
            chosen.append(position)
    return np.array(chosen, dtype=np.intp)
