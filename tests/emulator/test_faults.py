"""The fault schedule: when each media frame leaves under jitter, bunching, drops, swaps, a cut."""

from __future__ import annotations

import pytest

from vobiz_stream.emulator.faults import FaultPlan, Faults, plan_faults
from vobiz_stream.emulator.source import EmulatorError

FRAME = 0.02


def frames_of(plan: FaultPlan) -> list[int]:
    return [frame for _at, frame in plan.schedule]


def times_of(plan: FaultPlan) -> list[float]:
    return [at for at, _frame in plan.schedule]


def test_without_faults_every_frame_leaves_on_its_deadline() -> None:
    plan = plan_faults(5, Faults(), seed=1)
    assert plan.schedule == tuple((n * FRAME, n) for n in range(5))
    injected = plan.injected
    assert (injected.dropped, injected.reordered, injected.bunched) == ((), (), 0)
    assert injected.max_delay_ms == 0 and injected.cut_at is None
    assert not Faults().active


def test_no_frames_no_schedule() -> None:
    assert plan_faults(0, Faults(jitter_ms=30, reorder=0.5, bunch=3), seed=1).schedule == ()


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    faults = Faults(jitter_ms=40, drop_probability=0.1, reorder=0.2)
    first = plan_faults(500, faults, seed=7)
    assert plan_faults(500, faults, seed=7) == first
    assert plan_faults(500, faults, seed=8).schedule != first.schedule


def test_each_fault_draws_on_its_own() -> None:
    """Turning jitter on does not change which frames drop or swap."""
    alone = plan_faults(500, Faults(drop_probability=0.1, reorder=0.1), seed=3)
    jittered = plan_faults(500, Faults(drop_probability=0.1, reorder=0.1, jitter_ms=30), seed=3)
    assert alone.injected.dropped == jittered.injected.dropped
    assert alone.injected.reordered == jittered.injected.reordered


def test_jitter_delays_within_the_bound_and_keeps_the_order() -> None:
    plan = plan_faults(1000, Faults(jitter_ms=50), seed=2)
    assert frames_of(plan) == list(range(1000))  # TCP keeps order: no frame overtakes
    times = times_of(plan)
    assert times == sorted(times)
    delays = [at - n * FRAME for at, n in plan.schedule]
    assert min(delays) >= 0
    # A frame behind a late one may wait for it: at most the bound past its own deadline.
    assert max(delays) <= 0.050 + 1e-9
    assert sum(delay > 0.001 for delay in delays) > 900  # nearly every frame is delayed
    assert plan.injected.max_delay_ms == pytest.approx(max(delays) * 1000, abs=0.001)


def test_bunches_leave_together_at_the_last_deadline_of_their_group() -> None:
    plan = plan_faults(7, Faults(bunch=3), seed=0)
    assert list(plan.schedule) == [
        (2 * FRAME, 0),
        (2 * FRAME, 1),
        (2 * FRAME, 2),
        (5 * FRAME, 3),
        (5 * FRAME, 4),
        (5 * FRAME, 5),
        (6 * FRAME, 6),  # the short last group leaves on the call's last deadline
    ]
    assert plan.injected.bunched == 4
    assert plan.injected.max_delay_ms == pytest.approx(40)


def test_every_nth_frame_dropped() -> None:
    plan = plan_faults(10, Faults(drop_every=4), seed=0)
    assert frames_of(plan) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert plan.injected.dropped == (3, 7)
    assert times_of(plan) == [n * FRAME for n in frames_of(plan)]  # the rest are on time


def test_random_drops_at_about_their_rate() -> None:
    plan = plan_faults(5000, Faults(drop_probability=0.1), seed=11)
    dropped = set(plan.injected.dropped)
    assert 400 < len(dropped) < 600
    assert set(frames_of(plan)) == set(range(5000)) - dropped


def test_a_swap_sends_the_next_frame_first_at_its_deadline() -> None:
    plan = plan_faults(6, Faults(reorder=1.0), seed=0)
    # Every frame is in at most one swap: pairs (0,1), (2,3), (4,5) all swapped.
    assert list(plan.schedule) == [
        (1 * FRAME, 1),
        (1 * FRAME, 0),
        (3 * FRAME, 3),
        (3 * FRAME, 2),
        (5 * FRAME, 5),
        (5 * FRAME, 4),
    ]
    assert plan.injected.reordered == (0, 2, 4)


def test_random_swaps_are_adjacent_and_lose_nothing() -> None:
    plan = plan_faults(2000, Faults(reorder=0.1), seed=5)
    frames = frames_of(plan)
    assert sorted(frames) == list(range(2000))
    reordered = set(plan.injected.reordered)
    assert 100 < len(reordered) < 300
    for index, frame in enumerate(frames):
        if frame in reordered:
            assert frames[index - 1] == frame + 1
    times = times_of(plan)
    assert times == sorted(times)


def test_the_cut_removes_what_was_still_to_leave() -> None:
    plan = plan_faults(100, Faults(drop_at=1.0, drop_every=10), seed=0)
    assert plan.injected.cut_at == 1.0
    assert max(times_of(plan)) < 1.0
    assert frames_of(plan) == [n for n in range(50) if n % 10 != 9]
    assert plan.injected.dropped == (9, 19, 29, 39, 49)  # only those before the cut
    assert plan.injected.lost_to_cut == 50
    assert "connection cut at 1.00s (50 frames never sent)" in plan.injected.summary()


def test_a_cut_after_the_call_ends_never_happens() -> None:
    plan = plan_faults(50, Faults(drop_at=1.0), seed=0)  # the call lasts exactly 1 s
    assert plan.injected.cut_at is None
    assert len(plan.schedule) == 50


def test_faults_combine() -> None:
    plan = plan_faults(300, Faults(bunch=5, jitter_ms=10, drop_every=7, reorder=0.2), seed=4)
    frames = frames_of(plan)
    assert sorted(frames) == [n for n in range(300) if n % 7 != 6]
    times = times_of(plan)
    assert times == sorted(times)
    for at, frame in plan.schedule:
        assert at >= frame * FRAME


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (Faults(jitter_ms=-1), "jitter"),
        (Faults(bunch=0), "bunch"),
        (Faults(drop_probability=1.0), "drop probability"),
        (Faults(drop_every=1), "drop_every"),
        (Faults(reorder=1.5), "reorder"),
        (Faults(drop_at=0), "drop_at"),
        (Faults(seed=-1), "seed"),
    ],
)
def test_bad_values_are_refused(faults: Faults, message: str) -> None:
    with pytest.raises(EmulatorError, match=message):
        faults.check()
