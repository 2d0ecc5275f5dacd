"""The shared frame clock: deadlines, order, cancel, and one bad action among many."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from vobiz_stream.frame_clock import FrameClock


def _repeating(
    times: list[float], every: float, count: int, done: asyncio.Event
) -> tuple[Callable[[], float | None], dict[str, float]]:
    """An action run ``count`` times ``every`` seconds apart, noting when it ran."""
    state = {"next": 0.0}

    def action() -> float | None:
        now = time.monotonic()
        times.append(now)
        if len(times) == count:
            done.set()
            return None
        state["next"] += every
        return state["next"]

    return action, state


async def test_runs_each_action_at_its_deadlines_without_drift() -> None:
    clock = FrameClock.current()
    times: list[float] = []
    done = asyncio.Event()
    action, state = _repeating(times, 0.01, 30, done)
    start = time.monotonic() + 0.01
    state["next"] = start
    clock.schedule(start, action)
    await asyncio.wait_for(done.wait(), 5)
    for n, ran in enumerate(times):
        assert ran >= start + n * 0.01 - 1e-6  # never early
    # the last run is on its own deadline, not 30 accumulated delays late
    assert times[-1] - (start + 29 * 0.01) < 0.05
    assert len(clock) == 0


async def test_the_same_clock_serves_the_whole_loop() -> None:
    assert FrameClock.current() is FrameClock.current()


async def test_actions_run_in_deadline_order_even_when_scheduled_out_of_order() -> None:
    clock = FrameClock.current()
    order: list[str] = []
    done = asyncio.Event()
    base = time.monotonic() + 0.05

    def note(name: str) -> Callable[[], None]:
        def action() -> None:
            order.append(name)
            if len(order) == 3:
                done.set()

        return action

    clock.schedule(base + 0.02, note("third"))
    clock.schedule(base, note("first"))  # earlier than the armed timer: re-arms it
    clock.schedule(base + 0.01, note("second"))
    await asyncio.wait_for(done.wait(), 5)
    assert order == ["first", "second", "third"]


async def test_a_past_deadline_runs_at_once() -> None:
    ran = asyncio.Event()
    FrameClock.current().schedule(time.monotonic() - 1.0, ran.set)
    await asyncio.wait_for(ran.wait(), 1)


async def test_cancel_stops_an_action() -> None:
    clock = FrameClock.current()
    runs: list[float] = []

    def action() -> float:
        runs.append(time.monotonic())
        return time.monotonic() + 0.005

    ticket = clock.schedule(time.monotonic(), action)
    await asyncio.sleep(0.05)
    ticket.cancel()
    seen = len(runs)
    assert seen >= 2
    await asyncio.sleep(0.05)
    assert len(runs) == seen


async def test_an_action_due_again_at_once_waits_for_the_next_fire() -> None:
    """A buggy action that is always due cannot starve the loop."""
    clock = FrameClock.current()
    runs = 0

    def always_due() -> float:
        nonlocal runs
        runs += 1
        return time.monotonic() - 1.0

    ticket = clock.schedule(time.monotonic(), always_due)
    await asyncio.sleep(0.02)  # the loop still gets its turn, so this returns
    ticket.cancel()
    assert runs >= 2


async def test_a_failing_action_is_dropped_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FrameClock.current()
    times: list[float] = []
    done = asyncio.Event()
    action, state = _repeating(times, 0.005, 5, done)
    state["next"] = time.monotonic()

    def broken() -> float:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="vobiz_stream.frame_clock"):
        clock.schedule(time.monotonic(), broken)
        clock.schedule(state["next"], action)
        await asyncio.wait_for(done.wait(), 5)
    assert len(times) == 5
    assert "scheduled frame action failed" in caplog.text
