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

This module runs the calls (in one process or many); what a load is lives in
:mod:`~vobiz_stream.emulator.load_options`, its figures in
:mod:`~vobiz_stream.emulator.load_figures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import multiprocessing
import queue
import resource
import time
from array import array
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import aiohttp
import numpy as np

from vobiz_stream.emulator.call import run_call
from vobiz_stream.emulator.load_figures import (
    CallOutcome,
    Distribution,
    LoadCounters,
    LoadMeter,
    LoadPart,
    LoadProgress,
    LoadSummary,
    summarize,
)
from vobiz_stream.emulator.load_options import LoadOptions, load_audio
from vobiz_stream.emulator.load_profiles import profile_offset, start_offset
from vobiz_stream.emulator.load_script import ScenarioScript
from vobiz_stream.emulator.source import CallerSource, EmulatorError
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

TICK_SECONDS = 1.0
"""How often progress is reported."""


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
        self.script: ScenarioScript | None = None

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
                    if options.scenario is not None:
                        self.script = await ScenarioScript.prepare(options.scenario)
                    for index in self.indices:
                        at = profile_offset(options.profile, index, options.calls, options.rate)
                        delay = self.began + at - time.monotonic()
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
        started_at = time.monotonic() - self.began
        outcome = CallOutcome.failed("interrupted")
        try:
            if self.script is not None:
                outcome = await self.script.call(self.answer_url, self.call_options, http)
            else:
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
            self.outcomes[index] = dataclasses.replace(
                outcome, started_at=started_at, ended_at=time.monotonic() - self.began
            )
            self.finished += 1
            self.failed += not outcome.completed

    def part(self) -> LoadPart:
        return LoadPart(
            [self.outcomes[index] for index in self.indices],
            self.lateness,
            _cpu_seconds() - self.cpu_began,
            time.monotonic() - self.began,
        )


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
    meter = LoadMeter(options.calls, options.processes, on_progress or (lambda _progress: None))
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


def _run_processes(answer_url: str, options: LoadOptions, meter: LoadMeter) -> list[LoadPart]:
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
