"""A load's figures: what each call and each process hand back, the merged
:class:`LoadSummary`, and the :class:`LoadProgress` reported while it runs."""

from __future__ import annotations

import dataclasses
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vobiz_stream.emulator.load_options import LoadOptions
from vobiz_stream.emulator.report import CallReport

__all__ = [
    "CallOutcome",
    "Distribution",
    "LoadCounters",
    "LoadMeter",
    "LoadPart",
    "LoadProgress",
    "LoadSummary",
    "summarize",
]


# -- what each call and each process hand back --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The figures of one call the summary needs (a report without its timeline)."""

    completed: bool
    failure: str | None
    end_reason: str | None
    frames_sent: int
    late_frames: int
    first_audio: float | None
    """Seconds from ``start`` to the first ``playAudio``, or None when the app played nothing."""
    checkpoint_trips: tuple[float, ...] = ()
    clear_trips: tuple[float, ...] = ()
    app_warnings: tuple[tuple[str, int], ...] = ()
    """Each kind of sloppy command the app sent, with its count."""
    underruns: tuple[float, ...] = ()
    """Seconds of each underrun the caller heard (the app's audio ran out mid-utterance)."""
    pauses: int = 0
    """Pauses between utterances."""
    started_at: float = 0.0
    """Seconds from the load's start to the call's (the report's plots)."""
    ended_at: float = 0.0
    responses: tuple[float, ...] = ()
    """With a scenario: seconds from each caller turn to the agent's answer."""
    unanswered: int = 0
    """With a scenario: caller turns the agent never answered."""
    scenario_passed: bool | None = None
    """With a scenario: whether the call met every expectation of it."""

    @classmethod
    def from_report(cls, report: CallReport) -> CallOutcome:
        return cls(
            completed=report.completed,
            failure=report.failure,
            end_reason=report.end_reason,
            frames_sent=report.frames_sent,
            late_frames=report.late_frames,
            first_audio=report.first_audio_latency,
            checkpoint_trips=tuple(
                trip for c in report.checkpoints if (trip := c.round_trip) is not None
            ),
            clear_trips=tuple(trip for c in report.clears if (trip := c.round_trip) is not None),
            app_warnings=tuple((warning.kind, warning.count) for warning in report.app_warnings),
            underruns=tuple(gap.seconds for gap in report.underruns),
            pauses=len(report.pauses),
        )

    @classmethod
    def failed(cls, failure: str) -> CallOutcome:
        return cls(False, failure, None, 0, 0, None)


@dataclass(frozen=True, slots=True)
class LoadCounters:
    """One process's running totals, as reported every second."""

    started: int = 0
    finished: int = 0
    failed: int = 0
    frames_sent: int = 0
    late_frames: int = 0

    def __add__(self, other: LoadCounters) -> LoadCounters:
        return LoadCounters(
            *(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self))
        )


@dataclass
class LoadPart:
    """What one process measured: every call's outcome and every frame's lateness (seconds).

    Its repr leaves out the two long lists: asyncio's runner, restoring its SIGINT handler,
    formats a repr of the main task and so of this result, which took most of a second with a
    million frames in it.
    """

    outcomes: list[CallOutcome] = field(repr=False)
    lateness: array[float] = field(repr=False)
    cpu_seconds: float
    wall_seconds: float


# -- the summary ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Distribution:
    """Percentiles of one measure, in milliseconds."""

    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of_seconds(cls, values: Any) -> Distribution | None:
        """From seconds (any sequence numpy takes); None when there are none."""
        data = np.asarray(values, dtype=np.float64) * 1000
        if not len(data):
            return None
        p50, p99 = np.percentile(data, [50, 99])
        return cls(
            len(data), round(float(p50), 3), round(float(p99), 3), round(float(data.max()), 3)
        )

    def __str__(self) -> str:
        return f"p50 {self.p50:.2f} ms, p99 {self.p99:.2f} ms, max {self.max:.2f} ms"


@dataclass
class LoadSummary:
    """The merged figures of a load, JSON-ready with :meth:`to_json`."""

    answer_url: str
    calls: int
    rate: float
    duration: float
    processes: int
    l16_byte_order: str
    """Byte order of the L16 the calls sent (``little`` or ``big``; unused on mu-law streams)."""
    carrier: str
    """The carrier profile every call ran under (``live``, ``documented``, ``strict``)."""
    caller_audio: str | None
    """What the caller's audio file was and how it was converted (resampled per stream)."""
    completed: int
    failed: int
    failures: dict[str, int]
    """Each distinct failure message and how many calls it ended."""
    end_reasons: dict[str, int]
    app_warnings: dict[str, int]
    """Sloppy commands over every call, per kind (a call's report says what each kind means)."""
    underruns: int
    """Underruns over every call: the app's audio ran out mid-utterance, past the jitter buffer."""
    underrun_seconds: float
    calls_with_underruns: int
    pauses: int
    """Pauses between utterances over every call (not faults: reported apart)."""
    frames_sent: int
    late_frames: int
    late_tolerance_ms: float
    pacing: Distribution | None
    """Lateness of every media frame after its deadline."""
    first_audio: Distribution | None
    checkpoint_round_trip: Distribution | None
    clear_round_trip: Distribution | None
    wall_seconds: float
    cpu_seconds: float
    cpu_percent: float
    """CPU seconds of all load processes over the wall time (above 100 with several processes)."""
    process_cpu_percent: list[float]
    profile: str = "steady"
    scenario: str | None = None
    """The scenario every call followed, if any."""
    responses: Distribution | None = None
    """With a scenario: from each caller turn to the agent's answer, over every call."""
    unanswered: int = 0
    scenarios_passed: int | None = None
    """With a scenario: calls that met every expectation of it."""
    outcomes: list[CallOutcome] = field(default_factory=list, repr=False)
    """Every call's figures, in call order (the HTML report's plots; not in the JSON)."""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["outcomes"]
        return data

    def lines(self) -> list[str]:
        def measure(name: str, distribution: Distribution | None, none: str) -> str:
            if distribution is None:
                return f"{name}: {none}"
            return f"{name} ({distribution.count}): {distribution}"

        lines = [
            f"load: {self.calls} calls to {self.answer_url} at {self.rate:g}/s, "
            f"{'up to ' if self.scenario else ''}{self.duration:g}s each, "
            f"{self.processes} process(es), "
            f"carrier profile {self.carrier}, L16 sent {self.l16_byte_order}-endian: "
            f"{self.completed} completed, {self.failed} failed in {self.wall_seconds:.1f}s",
            f"frames: {self.frames_sent} sent, {self.late_frames} late "
            f"(> {self.late_tolerance_ms:g} ms); "
            + measure("pacing", self.pacing, "no frames sent"),
            measure("first audio", self.first_audio, "the app played nothing"),
            measure("checkpoint round trip", self.checkpoint_round_trip, "no checkpoints")
            + "; "
            + measure("clear round trip", self.clear_round_trip, "no clears"),
            f"underruns: {self.underruns} ({self.underrun_seconds:.3f}s) in "
            f"{self.calls_with_underruns} call(s); pauses between utterances: {self.pauses}",
            f"CPU: {self.cpu_seconds:.2f}s over {self.wall_seconds:.2f}s wall "
            f"({self.cpu_percent:.1f} %"
            + (
                f"; per process {', '.join(f'{p:.1f} %' for p in self.process_cpu_percent)}"
                if self.processes > 1
                else ""
            )
            + ")",
        ]
        if self.caller_audio is not None:
            lines.insert(1, self.caller_audio)
        if self.profile != "steady" or self.scenario is not None:
            lines.insert(1, _script_line(self))
        if self.app_warnings:
            lines.append(
                "app warnings (see one call's report for what the carrier does): "
                + ", ".join(f"{kind} {count}" for kind, count in sorted(self.app_warnings.items()))
            )
        for failure, count in sorted(self.failures.items(), key=lambda item: -item[1])[:5]:
            lines.append(f"  {count} call(s) failed: {failure}")
        return lines


def _script_line(summary: LoadSummary) -> str:
    """The load's profile and, with a scenario, how its calls went."""
    line = f"profile {summary.profile}"
    if summary.scenario is None:
        return line
    responses = summary.responses
    return (
        f"{line}; scenario {summary.scenario}: {summary.scenarios_passed} of {summary.calls} "
        "calls met it; response "
        + ("none measured" if responses is None else f"({responses.count}): {responses}")
        + f"; {summary.unanswered} turn(s) unanswered"
    )


def _total_warnings(outcomes: list[CallOutcome]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for outcome in outcomes:
        for kind, count in outcome.app_warnings:
            totals[kind] += count
    return dict(totals)


def summarize(
    answer_url: str,
    options: LoadOptions,
    parts: list[LoadPart],
    wall_seconds: float,
    *,
    caller_audio: str | None = None,
) -> LoadSummary:
    """Merge the parts of a load into one summary; ``wall_seconds`` is the whole run's,
    ``caller_audio`` the line saying what the caller's file was."""
    outcomes = [outcome for part in parts for outcome in part.outcomes]
    lateness = np.concatenate([np.frombuffer(part.lateness, dtype=np.float64) for part in parts])
    cpu = sum(part.cpu_seconds for part in parts)

    def seconds(pick: Callable[[CallOutcome], tuple[float, ...]]) -> list[float]:
        return [value for outcome in outcomes for value in pick(outcome)]

    return LoadSummary(
        answer_url=answer_url,
        calls=len(outcomes),
        rate=options.rate,
        duration=options.duration,
        processes=len(parts),
        l16_byte_order=options.call_options.caller_byte_order.value,
        carrier=options.call_options.carrier.value,
        caller_audio=caller_audio,
        completed=sum(outcome.completed for outcome in outcomes),
        failed=sum(not outcome.completed for outcome in outcomes),
        failures=dict(Counter(o.failure for o in outcomes if o.failure is not None)),
        end_reasons=dict(Counter(o.end_reason for o in outcomes if o.end_reason is not None)),
        app_warnings=_total_warnings(outcomes),
        underruns=sum(len(outcome.underruns) for outcome in outcomes),
        underrun_seconds=round(sum(seconds(lambda o: o.underruns)), 4),
        calls_with_underruns=sum(bool(outcome.underruns) for outcome in outcomes),
        pauses=sum(outcome.pauses for outcome in outcomes),
        frames_sent=sum(outcome.frames_sent for outcome in outcomes),
        late_frames=sum(outcome.late_frames for outcome in outcomes),
        late_tolerance_ms=options.call_options.late_tolerance * 1000,
        pacing=Distribution.of_seconds(lateness),
        first_audio=Distribution.of_seconds(
            [o.first_audio for o in outcomes if o.first_audio is not None]
        ),
        checkpoint_round_trip=Distribution.of_seconds(seconds(lambda o: o.checkpoint_trips)),
        clear_round_trip=Distribution.of_seconds(seconds(lambda o: o.clear_trips)),
        wall_seconds=round(wall_seconds, 3),
        cpu_seconds=round(cpu, 3),
        cpu_percent=round(100 * cpu / wall_seconds, 1) if wall_seconds > 0 else 0.0,
        process_cpu_percent=[
            round(100 * p.cpu_seconds / p.wall_seconds, 1) if p.wall_seconds > 0 else 0.0
            for p in parts
        ],
        profile=options.profile.value,
        scenario=None if options.scenario is None else str(options.scenario),
        responses=Distribution.of_seconds(seconds(lambda o: o.responses)),
        unanswered=sum(outcome.unanswered for outcome in outcomes),
        scenarios_passed=None
        if options.scenario is None
        else sum(bool(outcome.scenario_passed) for outcome in outcomes),
        outcomes=outcomes,
    )


# -- progress ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """The load as it runs: calls up, frames per second over the last tick, late frames."""

    elapsed: float
    calls: int
    counters: LoadCounters
    frames_per_second: float

    @property
    def calls_up(self) -> int:
        return self.counters.started - self.counters.finished

    def line(self) -> str:
        c = self.counters
        return (
            f"{self.elapsed:6.1f}s  calls up {self.calls_up:>5}  "
            f"done {c.finished - c.failed}/{self.calls}  failed {c.failed}  "
            f"{self.frames_per_second:8.0f} frames/s  late {c.late_frames}"
        )


class LoadMeter:
    """Adds up the latest counters of each part and turns them into :class:`LoadProgress`."""

    def __init__(self, calls: int, parts: int, on_progress: Callable[[LoadProgress], None]):
        self.calls = calls
        self.latest = [LoadCounters()] * parts
        self.on_progress = on_progress
        self.began = time.monotonic()
        self._last_at = self.began
        self._last_frames = 0

    def update(self, part: int, counters: LoadCounters) -> None:
        self.latest[part] = counters

    def report(self) -> None:
        now = time.monotonic()
        total = sum(self.latest[1:], self.latest[0])
        rate = (total.frames_sent - self._last_frames) / max(now - self._last_at, 1e-9)
        self._last_at, self._last_frames = now, total.frames_sent
        self.on_progress(LoadProgress(now - self.began, self.calls, total, rate))
