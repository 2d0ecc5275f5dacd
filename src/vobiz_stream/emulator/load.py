"""Many emulated calls at once: a load generator over :func:`~vobiz_stream.emulator.run_call`.

:func:`run_load` places ``calls`` calls to one answer URL, starting them at ``rate`` calls per
second, each streaming the same caller audio (looped to ``duration`` seconds) as paced ``media``
frames, in one process or split over ``processes`` worker processes whose results are merged.
Every call is the full carrier of :mod:`vobiz_stream.emulator.call` (answer XML, socket, playout,
checkpoints and clears); the calls of one process share one HTTP session and one copy of the audio.

What it measures, in a :class:`LoadSummary`:

* pacing: how late each media frame left after its deadline (``n * 20 ms`` from its call's
  ``start``), over every frame of every call: the figure that says whether the load process kept
  up. A frame later than ``late_tolerance`` (5 ms) counts as late;
* the app's side: first-audio latency, checkpoint and clear round trips, when the app plays;
* the cost: CPU seconds of the load process(es) against the wall clock.

Everything is bounded: a fixed number of calls, each ending with its audio, and a deadline for the
whole run (``grace`` seconds past the last call's expected end) after which calls still running are
cancelled and counted as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import math
import multiprocessing
import queue
import resource
import time
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from vobiz_stream.audio.speech import tone
from vobiz_stream.emulator.call import CallOptions, run_call
from vobiz_stream.emulator.report import CallReport
from vobiz_stream.emulator.source import CallerSource, EmulatorError, read_caller_audio
from vobiz_stream.extras import require
from vobiz_stream.loop import run as run_on_best_loop

__all__ = [
    "CallOutcome",
    "Distribution",
    "LoadCounters",
    "LoadOptions",
    "LoadPart",
    "LoadProgress",
    "LoadSummary",
    "load_audio",
    "load_calls",
    "run_load",
    "start_offset",
    "summarize",
]

TONE_RATE = 8000
"""The rate of the default caller audio (a tone, or silence)."""

TICK_SECONDS = 1.0
"""How often progress is reported."""

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


@dataclass(frozen=True)
class LoadOptions:
    """How many calls, how fast, how long, and the carrier each call emulates."""

    calls: int
    rate: float = 20.0
    """Calls started per second (over all processes); call ``i`` starts within its own slot
    ``[i / rate, (i + 1) / rate)``, at :func:`start_offset`."""
    duration: float = 10.0
    """Seconds of caller audio per call: the audio is looped or cut to this length."""
    audio: Path | None = None
    """The caller's WAV; None is a generated 1 kHz tone (or silence, with ``silence``)."""
    silence: bool = False
    processes: int = 1
    call_options: CallOptions = field(default_factory=CallOptions)
    """The carrier of every call; ``frame_lateness`` is the load's own, and no call may write a
    WAV. With ``processes`` above 1 it is pickled, so ``on_event`` must be a picklable function."""
    grace: float = 30.0
    """Seconds past the last call's expected end before the calls still running are cancelled."""

    def check(self) -> None:
        """Raise :class:`EmulatorError` for values that cannot make a load."""
        if self.calls < 1:
            raise EmulatorError(f"calls must be at least 1, got {self.calls}")
        if not self.rate > 0 or math.isinf(self.rate):
            raise EmulatorError(f"rate must be a positive number of calls/s, got {self.rate}")
        if not self.duration > 0 or math.isinf(self.duration):
            raise EmulatorError(f"duration must be positive seconds, got {self.duration}")
        if not 1 <= self.processes <= self.calls:
            raise EmulatorError(
                f"processes must be between 1 and the number of calls ({self.calls}), "
                f"got {self.processes}"
            )
        if not self.grace >= 0:
            raise EmulatorError(f"grace must be zero or more seconds, got {self.grace}")
        if self.call_options.heard_path is not None or self.call_options.caller_path is not None:
            raise EmulatorError(
                "heard_path and caller_path name one file, and a load has many calls; "
                "use run_call for a call whose audio you want"
            )
        if self.call_options.hangup_after is not None:
            raise EmulatorError("hangup_after does not apply to a load: set duration instead")
        self.call_options.check()

    @property
    def deadline(self) -> float:
        """Wall seconds from the first call's start after which the load is cut short."""
        speed = self.call_options.speed
        return self.calls / self.rate + self.duration / speed + self.grace


def load_audio(path: Path | None, duration: float, *, silence: bool = False) -> CallerSource:
    """The caller audio of every call: ``path`` (or a 1 kHz tone, or silence) looped or cut to
    exactly ``duration`` seconds."""
    if path is not None:
        source = read_caller_audio(path)
        if not len(source.pcm):
            raise EmulatorError(f"caller audio {path} has no samples")
        wanted = round(duration * source.rate)
        return CallerSource(
            np.resize(source.pcm, wanted).astype(np.int16), source.rate, source.source
        )
    wanted = round(duration * TONE_RATE)
    if silence:
        return CallerSource(np.zeros(wanted, dtype=np.int16), TONE_RATE)
    return CallerSource(tone(duration, TONE_RATE), TONE_RATE)


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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def load_calls(
    answer_url: str,
    options: LoadOptions,
    *,
    part: int = 0,
    on_tick: Callable[[LoadCounters], None] | None = None,
    caller: CallerSource | None = None,
) -> LoadPart:
    """Run this process's share of the load in the running event loop.

    With ``options.processes`` K, share ``part`` (0 to K-1) is calls ``part``, ``part + K``, ...,
    each started at its index over ``rate``, so the parts together ramp as one. ``on_tick`` gets
    the running totals about once a second and once at the end. ``caller`` is the audio, if
    already made by :func:`load_audio`.
    """
    options.check()
    if not 0 <= part < options.processes:
        raise EmulatorError(f"part must be between 0 and {options.processes - 1}, got {part}")
    if caller is None:
        caller = load_audio(options.audio, options.duration, silence=options.silence)
    share = _Share(answer_url, options, caller, range(part, options.calls, options.processes))
    ticking = asyncio.create_task(share.tick(on_tick)) if on_tick is not None else None
    try:
        with _few_collections():
            await share.run()
    finally:
        if ticking is not None:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
    if on_tick is not None:
        on_tick(share.counters())
    return share.part()


GC_THRESHOLD = 50_000
"""Allocations between young-generation collections while a load runs (Python's default is
2000 in 3.13, 700 before): every frame allocates a few short-lived objects, which reference
counting frees anyway, so collecting every few hundred frames only walks live objects."""


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Collect garbage rarely while the calls run, and leave what was there before (the
    caller audio, the modules) out of the collections altogether; restore on the way out."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _Share:
    """One process's calls: started on the ramp, counted as they run, cut at the deadline."""

    def __init__(
        self, answer_url: str, options: LoadOptions, caller: CallerSource, indices: range
    ) -> None:
        self.answer_url = answer_url
        self.options = options
        self.caller = caller
        self.indices = indices
        self.tolerance = options.call_options.late_tolerance
        self.lateness: array[float] = array("d")
        """Every frame's lateness, appended by the calls as they send."""
        self.call_options = dataclasses.replace(options.call_options, frame_lateness=self.lateness)
        self.outcomes: dict[int, CallOutcome] = {}
        self.started = self.finished = self.failed = 0
        self._late = self._counted = 0
        """Frames found late so far, among the first ``_counted`` of ``lateness``."""
        self.cpu_began, self.began = _cpu_seconds(), time.monotonic()

    def counters(self) -> LoadCounters:
        """The running totals; counts the frames sent since the last call (once a second)."""
        frames = len(self.lateness)
        new = np.frombuffer(self.lateness[self._counted : frames], dtype=np.float64)
        self._late += int(np.count_nonzero(new > self.tolerance))
        self._counted = frames
        return LoadCounters(self.started, self.finished, self.failed, frames, self._late)

    async def tick(self, on_tick: Callable[[LoadCounters], None]) -> None:
        next_tick = self.began + TICK_SECONDS
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick += TICK_SECONDS
            on_tick(self.counters())

    async def run(self) -> None:
        options = self.options
        connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.call_options.http_timeout)
        tasks: list[asyncio.Task[None]] = []
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(asyncio.get_running_loop().time() + options.deadline):
                    for index in self.indices:
                        delay = self.began + start_offset(index, options.rate) - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        tasks.append(asyncio.create_task(self.call(index, http)))
                    await asyncio.gather(*tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for index in self.indices:
            if index not in self.outcomes:
                self.outcomes[index] = CallOutcome.failed(
                    "never started: the load deadline came first"
                )
                self.finished += 1
                self.failed += 1

    async def call(self, index: int, http: aiohttp.ClientSession) -> None:
        self.started += 1
        outcome = CallOutcome.failed("interrupted")
        try:
            report = await run_call(self.answer_url, self.caller, self.call_options, http=http)
            outcome = CallOutcome.from_report(report)
        except asyncio.CancelledError:
            outcome = CallOutcome.failed(
                f"still running {self.options.deadline:.1f}s after the load began: cancelled"
            )
            raise
        except Exception as exc:  # a bug in one call must not sink the other calls' figures
            outcome = CallOutcome.failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.outcomes[index] = outcome
            self.finished += 1
            self.failed += not outcome.completed

    def part(self) -> LoadPart:
        return LoadPart(
            [self.outcomes[index] for index in self.indices],
            self.lateness,
            _cpu_seconds() - self.cpu_began,
            time.monotonic() - self.began,
        )


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
    caller_audio: str | None
    """What the caller's audio file was and how it was converted (resampled per stream)."""
    completed: int
    failed: int
    failures: dict[str, int]
    """Each distinct failure message and how many calls it ended."""
    end_reasons: dict[str, int]
    app_warnings: dict[str, int]
    """Sloppy commands over every call, per kind (a call's report says what each kind means)."""
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

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        def measure(name: str, distribution: Distribution | None, none: str) -> str:
            if distribution is None:
                return f"{name}: {none}"
            return f"{name} ({distribution.count}): {distribution}"

        lines = [
            f"load: {self.calls} calls to {self.answer_url} at {self.rate:g}/s, "
            f"{self.duration:g}s each, {self.processes} process(es), "
            f"L16 sent {self.l16_byte_order}-endian: "
            f"{self.completed} completed, {self.failed} failed in {self.wall_seconds:.1f}s",
            f"frames: {self.frames_sent} sent, {self.late_frames} late "
            f"(> {self.late_tolerance_ms:g} ms); "
            + measure("pacing", self.pacing, "no frames sent"),
            measure("first audio", self.first_audio, "the app played nothing"),
            measure("checkpoint round trip", self.checkpoint_round_trip, "no checkpoints")
            + "; "
            + measure("clear round trip", self.clear_round_trip, "no clears"),
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
        if self.app_warnings:
            lines.append(
                "app warnings (see one call's report for what the carrier does): "
                + ", ".join(f"{kind} {count}" for kind, count in sorted(self.app_warnings.items()))
            )
        for failure, count in sorted(self.failures.items(), key=lambda item: -item[1])[:5]:
            lines.append(f"  {count} call(s) failed: {failure}")
        return lines


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
        l16_byte_order=options.call_options.l16_byte_order.value,
        caller_audio=caller_audio,
        completed=sum(outcome.completed for outcome in outcomes),
        failed=sum(not outcome.completed for outcome in outcomes),
        failures=dict(Counter(o.failure for o in outcomes if o.failure is not None)),
        end_reasons=dict(Counter(o.end_reason for o in outcomes if o.end_reason is not None)),
        app_warnings=_total_warnings(outcomes),
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


class _Meter:
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


# -- one process or many ---------------------------------------------------------------------


def _run_loop(coroutine: Coroutine[Any, Any, LoadPart]) -> LoadPart:
    return run_on_best_loop(coroutine)


def _worker(answer_url: str, options: LoadOptions, part: int, channel: Any) -> None:
    """A worker process: its share of the load, ticks and the result sent over ``channel``."""
    try:
        result = _run_loop(
            load_calls(
                answer_url,
                options,
                part=part,
                on_tick=lambda counters: channel.put(("tick", part, counters)),
            )
        )
    except BaseException as exc:
        channel.put(("error", part, f"{type(exc).__name__}: {exc}"))
        raise
    channel.put(("done", part, result))


def run_load(
    answer_url: str,
    options: LoadOptions,
    on_progress: Callable[[LoadProgress], None] | None = None,
) -> LoadSummary:
    """Run the whole load and return its summary (blocking: it runs its own event loop(s)).

    One process runs every call in this thread's new event loop (call it from a thread with
    no running loop, e.g. through ``asyncio.to_thread``); with ``processes`` K it starts K worker
    processes (spawned, so it is safe beside a running loop) and merges what they measured.
    ``on_progress`` is called about once a second.
    """
    options.check()
    require("picows", "the carrier emulator")  # before any worker starts
    caller = load_audio(options.audio, options.duration, silence=options.silence)  # fail early
    described = None if caller.source is None else caller.source.describe()
    meter = _Meter(options.calls, options.processes, on_progress or (lambda _progress: None))
    began = time.monotonic()
    if options.processes == 1:

        def tick(counters: LoadCounters) -> None:
            meter.update(0, counters)
            meter.report()

        part = _run_loop(load_calls(answer_url, options, on_tick=tick, caller=caller))
        return summarize(
            answer_url, options, [part], time.monotonic() - began, caller_audio=described
        )
    parts = _run_processes(answer_url, options, meter)
    return summarize(answer_url, options, parts, time.monotonic() - began, caller_audio=described)


SPAWN_ALLOWANCE = 30.0
"""Seconds a worker process gets to start (imports) on top of the load's own deadline."""


def _run_processes(answer_url: str, options: LoadOptions, meter: _Meter) -> list[LoadPart]:
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(answer_url, options, part, channel),
            name=f"vobiz-stream-load-{part}",
            daemon=True,
        )
        for part in range(options.processes)
    ]
    for worker in workers:
        worker.start()
    results: dict[int, LoadPart] = {}
    deadline = time.monotonic() + options.deadline + SPAWN_ALLOWANCE
    next_report = time.monotonic() + TICK_SECONDS
    try:
        while len(results) < len(workers):
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"load workers still running {options.deadline + SPAWN_ALLOWANCE:.0f}s "
                    "after they started"
                )
            try:
                kind, part, payload = channel.get(timeout=0.2)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise EmulatorError(
                        f"load worker {dead[0].name} exited with status {dead[0].exitcode}"
                    ) from None
            else:
                if kind == "tick":
                    meter.update(part, payload)
                elif kind == "done":
                    results[part] = payload
                else:
                    raise EmulatorError(f"load worker {part} failed: {payload}")
            if time.monotonic() >= next_report:
                next_report += TICK_SECONDS
                meter.report()
        meter.report()
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
        channel.close()
    return [results[part] for part in range(len(workers))]
