"""What an emulated call did, as a JSON-ready report with a timeline. No I/O.

Times are seconds on the call clock: 0 is the moment ``start`` was sent, and with a ``speed``
factor the clock runs that many times faster than the wall clock. Pacing figures (how late media
frames left) are wall-clock milliseconds, since that is what the socket saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vobiz_stream.emulator.playout import Gap

__all__ = ["CallReport", "CheckpointTiming", "ClearTiming", "Timeline", "TimelineEntry"]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened: ``at`` seconds into the call, ``event``, and a short detail."""

    at: float
    event: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.at:9.3f}s  {self.event:<14} {self.detail}".rstrip()


class Timeline:
    """The call's entries in order, each also handed to ``listener`` as it happens."""

    def __init__(self, listener: Callable[[TimelineEntry], None] | None = None) -> None:
        self.entries: list[TimelineEntry] = []
        self._listener = listener

    def add(self, at: float, event: str, detail: str = "") -> None:
        entry = TimelineEntry(round(at, 4), event, detail)
        self.entries.append(entry)
        if self._listener is not None:
            self._listener(entry)


@dataclass(slots=True)
class CheckpointTiming:
    """One ``checkpoint``: when it came, when its audio finished, when ``playedStream`` left.

    ``played_at`` and ``answered_at`` stay None for a checkpoint voided by a clear or a hangup.
    """

    name: str
    received_at: float
    played_at: float | None = None
    answered_at: float | None = None

    @property
    def round_trip(self) -> float | None:
        """Seconds from the app's checkpoint to the carrier's ``playedStream``."""
        return None if self.answered_at is None else self.answered_at - self.received_at


@dataclass(slots=True)
class ClearTiming:
    """One ``clearAudio``: when it came, when ``clearedAudio`` left, and what it dropped."""

    received_at: float
    answered_at: float | None = None
    dropped_seconds: float = 0.0
    voided: tuple[str, ...] = ()

    @property
    def round_trip(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.received_at


@dataclass
class CallReport:
    """Everything one emulated call measured. ``failure`` says why a call could not run."""

    answer_url: str
    call_uuid: str
    stream_id: str | None = None
    stream_url: str | None = None
    content_type: str | None = None
    bidirectional: bool | None = None
    legacy_shape: bool = False
    speed: float = 1.0
    failure: str | None = None
    end_reason: str | None = None
    """``hangup`` (caller audio or hangup_after done), ``app_stop``, ``app_closed``,
    ``stream_timeout``, ``answer_ended`` (a background stream was the last verb), or None."""
    duration: float = 0.0
    frames_sent: int = 0
    late_frames: int = 0
    """Media frames that left more than the tolerance after their deadline."""
    max_lateness_ms: float = 0.0
    mean_lateness_ms: float = 0.0
    commands: dict[str, int] = field(default_factory=dict)
    malformed_commands: int = 0
    ignored_commands: int = 0
    """Commands on a one-way stream, which the carrier does not act on."""
    first_audio_latency: float | None = None
    """Seconds from ``start`` to the first ``playAudio``."""
    checkpoints: list[CheckpointTiming] = field(default_factory=list)
    clears: list[ClearTiming] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    dropped_audio_seconds: float = 0.0
    degraded: bool = False
    warnings: list[str] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``orjson``/``json``, with the derived round trips filled in."""
        data = dataclasses.asdict(self)
        data["completed"] = self.completed
        for record, timing in zip(data["checkpoints"], self.checkpoints, strict=True):
            record["round_trip"] = timing.round_trip
        for record, clear in zip(data["clears"], self.clears, strict=True):
            record["round_trip"] = clear.round_trip
        for record, gap in zip(data["gaps"], self.gaps, strict=True):
            record["seconds"] = gap.seconds
        return data

    def summary(self) -> list[str]:
        """A few readable lines: outcome, pacing, the app's behaviour."""
        if self.failure is not None:
            return [f"call failed: {self.failure}"]
        played = [c for c in self.checkpoints if c.answered_at is not None]
        underruns = [gap for gap in self.gaps if gap.mid_utterance]
        lines = [
            f"call ended ({self.end_reason}) after {self.duration:.2f}s; "
            f"{self.frames_sent} frames sent, {self.late_frames} late "
            f"(max {self.max_lateness_ms:.1f} ms, mean {self.mean_lateness_ms:.2f} ms)",
            "first audio: "
            + ("none" if self.first_audio_latency is None else f"{self.first_audio_latency:.3f}s")
            + f"; commands: {_counts(self.commands)}; malformed: {self.malformed_commands}",
            f"checkpoints: {len(played)} played of {len(self.checkpoints)}"
            + _round_trips([c.round_trip for c in played])
            + f"; clears: {len(self.clears)}"
            + _round_trips([c.round_trip for c in self.clears]),
            f"gaps: {len(self.gaps)} ({len(underruns)} mid-utterance underruns, "
            f"{sum(g.seconds for g in underruns):.3f}s)"
            + (
                f"; queue over cap, {self.dropped_audio_seconds:.2f}s dropped"
                if self.degraded
                else ""
            ),
        ]
        return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


def _round_trips(values: list[float | None]) -> str:
    known = [value for value in values if value is not None]
    if not known:
        return ""
    return f" (round trip max {max(known) * 1000:.1f} ms)"
