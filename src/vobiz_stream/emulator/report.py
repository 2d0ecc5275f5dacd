"""What an emulated call did, as a JSON-ready report with a timeline. No I/O.

Times are seconds on the call clock: 0 is the moment ``start`` was sent, and with a ``speed``
factor the clock runs that many times faster than the wall clock. Pacing figures (how late media
frames left) are wall-clock milliseconds, since that is what the socket saw.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vobiz_stream.emulator.conduct import AppWarning
from vobiz_stream.emulator.faults import InjectedFaults
from vobiz_stream.emulator.playout import Gap
from vobiz_stream.emulator.profiles import CarrierProfile

__all__ = [
    "REPORT_ITEMS",
    "CallReport",
    "CallbackSent",
    "CheckpointTiming",
    "ClearTiming",
    "StreamLeg",
    "Timeline",
    "TimelineEntry",
    "VerbTiming",
]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened: ``at`` seconds into the call, ``event``, and a short detail."""

    at: float
    event: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.at:9.3f}s  {self.event:<14} {self.detail}".rstrip()


REPORT_ITEMS = 500
"""Checkpoints, clears, and timeline entries of one event, kept in a report: an app that floods
the carrier with commands makes a report of bounded size, the rest counted."""


class Timeline:
    """The call's entries in order, each also handed to ``listener`` as it happens; past
    ``per_event`` entries of one event, the rest are only counted (:attr:`omitted`)."""

    def __init__(
        self,
        listener: Callable[[TimelineEntry], None] | None = None,
        per_event: int = REPORT_ITEMS,
    ) -> None:
        self.entries: list[TimelineEntry] = []
        self.omitted: Counter[str] = Counter()
        """Entries past ``per_event``, by event."""
        self._listener = listener
        self._per_event = per_event
        self._seen: Counter[str] = Counter()

    def add(self, at: float, event: str, detail: str = "") -> None:
        self._seen[event] += 1
        if self._seen[event] > self._per_event:
            self.omitted[event] += 1
            return
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
    """The first checkpoints the clear voided (the timeline counts the rest)."""

    @property
    def round_trip(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.received_at


@dataclass(frozen=True, slots=True)
class CallbackSent:
    """One status callback: its event, when it happened, and what came of sending it.

    ``status`` is the HTTP status (None when no answer came); ``error`` says why there was none.
    ``latency_ms`` is wall-clock milliseconds from the request to its answer (or the failure).
    """

    event: str
    stream_id: str
    at: float
    status: int | None
    latency_ms: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class StreamLeg:
    """One socket of the call: a ``start`` and the media after it, until it ended.

    A call has one leg, plus one per reconnect (``maxRetries``); each has its own streamId.
    """

    stream_id: str
    started_at: float
    first_frame: int
    """Index of the first caller frame this socket carried (frames in a reconnect gap are lost)."""
    ended_at: float | None = None
    end_reason: str | None = None
    frames_sent: int = 0


@dataclass(slots=True)
class VerbTiming:
    """One verb after the ``<Stream>`` that ran: when it started and ended on the call clock.

    ``ended_at`` is where it ended or the call did, whichever came first; None only while a verb
    that lasts until the caller hangs up is still running.
    """

    verb: str
    started_at: float
    ended_at: float | None
    detail: str = ""


@dataclass
class CallReport:
    """Everything one emulated call measured. ``failure`` says why a call could not run."""

    answer_url: str
    call_uuid: str
    stream_id: str | None = None
    stream_url: str | None = None
    content_type: str | None = None
    l16_byte_order: str | None = None
    caller_audio: str | None = None
    """What the caller's audio file was and how it was converted for the stream."""
    """Byte order of the L16 sent to the app (``little`` or ``big``); None for mu-law."""
    bidirectional: bool | None = None
    carrier: str = "live"
    """The carrier profile the call ran under: ``live``, ``documented`` or ``strict``."""
    speed: float = 1.0
    jitter_buffer: float = 0.0
    """Seconds of the app's audio the carrier held before playing it out."""
    failure: str | None = None
    end_reason: str | None = None
    """How the stream ended. With the call: ``hangup`` (the caller audio or hangup_after ran
    out), ``xml_hangup`` (a ``<Hangup>`` after the stream), ``xml_done`` (the verbs after a
    background stream ran out), ``answer_ended`` (a background stream was the last verb). On its
    own, after which the call goes on while verbs after the ``<Stream>`` last: ``app_stop``,
    ``app_closed`` (the app closed the socket, and ``maxRetries`` reconnects, if any, ran out),
    ``stream_timeout``, ``cut`` (the injected ``drop_at`` fault). None when the call failed."""
    duration: float = 0.0
    """Call seconds from ``start`` to the hangup."""
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
    """The first :data:`REPORT_ITEMS` checkpoints; ``checkpoints_omitted`` counts the rest."""
    checkpoints_omitted: int = 0
    clears: list[ClearTiming] = field(default_factory=list)
    """The first :data:`REPORT_ITEMS` clears; ``clears_omitted`` counts the rest."""
    clears_omitted: int = 0
    gaps: list[Gap] = field(default_factory=list)
    """Every silence between two stretches of the app's audio the caller heard: underruns
    (``mid_utterance``) and pauses between utterances."""
    dropped_audio_seconds: float = 0.0
    degraded: bool = False
    warnings: list[str] = field(default_factory=list)
    """Everything the carrier would not take as it was: the answer XML's problems, then one
    line per kind of sloppy command (the same as ``app_warnings``, in words)."""
    app_warnings: list[AppWarning] = field(default_factory=list)
    """The app's sloppy or hostile commands, counted per kind, each with its first example."""
    streams: list[StreamLeg] = field(default_factory=list)
    """Every socket of the call, in order; more than one after reconnects."""
    reconnects: int = 0
    """Reconnect attempts made (``maxRetries``), successful or not."""
    frames_skipped: int = 0
    """Caller frames that went nowhere while the stream was down between sockets."""
    dtmf_sent: int = 0
    """Key presses sent to the app (``CallOptions.dtmf``)."""
    callbacks: list[CallbackSent] = field(default_factory=list)
    verbs: list[VerbTiming] = field(default_factory=list)
    """The verbs after the ``<Stream>`` that ran, in order."""
    faults: InjectedFaults | None = None
    """What was injected into the media (jitter, bunching, drops, swaps, the cut), if asked."""
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_omitted: dict[str, int] = field(default_factory=dict)
    """Timeline entries past :data:`REPORT_ITEMS` of one event, counted by event."""

    def add_checkpoint(self, timing: CheckpointTiming) -> None:
        """Keep ``timing`` while fewer than :data:`REPORT_ITEMS` are kept, else count it."""
        if len(self.checkpoints) < REPORT_ITEMS:
            self.checkpoints.append(timing)
        else:
            self.checkpoints_omitted += 1

    def add_clear(self, clear: ClearTiming) -> None:
        """Keep ``clear`` while fewer than :data:`REPORT_ITEMS` are kept, else count it."""
        if len(self.clears) < REPORT_ITEMS:
            self.clears.append(clear)
        else:
            self.clears_omitted += 1

    @property
    def completed(self) -> bool:
        return self.failure is None

    @property
    def app_broke_stream(self) -> bool:
        """The app sent something after which the carrier closed the socket (a message over
        the size cap): the call ran, but not as the app meant."""
        return any(warning.fatal for warning in self.app_warnings)

    @property
    def underruns(self) -> list[Gap]:
        """Gaps in the middle of an utterance: the app's audio came later than the buffer."""
        return [gap for gap in self.gaps if gap.mid_utterance]

    @property
    def pauses(self) -> list[Gap]:
        """Gaps between utterances: after a checkpoint or clear, or long silences."""
        return [gap for gap in self.gaps if not gap.mid_utterance]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``orjson``/``json``, with the derived round trips filled in."""
        data = dataclasses.asdict(self)
        data["completed"] = self.completed
        data["app_broke_stream"] = self.app_broke_stream
        for record, timing in zip(data["checkpoints"], self.checkpoints, strict=True):
            record["round_trip"] = timing.round_trip
        for record, clear in zip(data["clears"], self.clears, strict=True):
            record["round_trip"] = clear.round_trip
        for record, gap in zip(data["gaps"], self.gaps, strict=True):
            record["seconds"] = gap.seconds
        data["underruns"] = _gap_totals(self.underruns)
        data["pauses"] = _gap_totals(self.pauses)
        for record, sent in zip(data["callbacks"], self.callbacks, strict=True):
            record["ok"] = sent.ok
        return data

    def summary(self) -> list[str]:
        """A few readable lines: outcome, pacing, the app's behaviour."""
        if self.failure is not None:
            return [f"call failed: {self.failure}"]
        played = [c for c in self.checkpoints if c.answered_at is not None]
        lines = [
            f"call ended ({self.end_reason}) after {self.duration:.2f}s; "
            f"{self.frames_sent} frames sent, {self.late_frames} late "
            f"(max {self.max_lateness_ms:.1f} ms, mean {self.mean_lateness_ms:.2f} ms)",
            CarrierProfile(self.carrier).describe(),
            f"caller audio sent as {self.content_type}"
            + ("" if self.l16_byte_order is None else f", {self.l16_byte_order}-endian"),
            "first audio: "
            + ("none" if self.first_audio_latency is None else f"{self.first_audio_latency:.3f}s")
            + f"; commands: {_counts(self.commands)}; malformed: {self.malformed_commands}",
            f"checkpoints: {len(played)} played of {len(self.checkpoints)}"
            + (f" (and {self.checkpoints_omitted} more)" if self.checkpoints_omitted else "")
            + _round_trips([c.round_trip for c in played])
            + f"; clears: {len(self.clears) + self.clears_omitted}"
            + _round_trips([c.round_trip for c in self.clears]),
            f"underruns: {_gap_summary(self.underruns)}; pauses between utterances: "
            f"{_gap_summary(self.pauses)} (jitter buffer {self.jitter_buffer * 1000:g} ms)"
            + (
                f"; queue over cap, {self.dropped_audio_seconds:.2f}s dropped"
                if self.degraded
                else ""
            ),
        ]
        if len(self.streams) > 1 or self.reconnects:
            lines.append(
                f"streams: {len(self.streams)} ({self.reconnects} reconnects, "
                f"{self.frames_skipped} caller frames lost between sockets)"
            )
        if self.verbs:
            lines.append(
                "verbs after the <Stream>: "
                + ", ".join(f"{verb.verb} at {verb.started_at:.2f}s" for verb in self.verbs)
            )
        if self.faults is not None:
            lines.append(self.faults.summary())
        if self.caller_audio is not None:
            lines.insert(3, self.caller_audio)
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        if self.callbacks:
            failed = [sent for sent in self.callbacks if not sent.ok]
            events: dict[str, int] = {}
            for sent in self.callbacks:
                events[sent.event] = events.get(sent.event, 0) + 1
            latency = max(sent.latency_ms for sent in self.callbacks)
            lines.append(
                f"status callbacks: {_counts(events)}; {len(failed)} failed"
                + (f" ({failed[0].error or f'HTTP {failed[0].status}'})" if failed else "")
                + f"; max latency {latency:.1f} ms"
            )
        return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


def _gap_totals(gaps: list[Gap]) -> dict[str, float]:
    return {"count": len(gaps), "seconds": round(sum(gap.seconds for gap in gaps), 4)}


def _gap_summary(gaps: list[Gap]) -> str:
    return f"{len(gaps)} ({sum(gap.seconds for gap in gaps):.3f}s)"


def _round_trips(values: list[float | None]) -> str:
    known = [value for value in values if value is not None]
    if not known:
        return ""
    return f" (round trip max {max(known) * 1000:.1f} ms)"
