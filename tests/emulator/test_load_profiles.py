"""Load profiles (when calls start), gates on a load's figures, and its HTML report: no calls."""

from __future__ import annotations

import re
from array import array

import numpy as np
import pytest

from vobiz_stream.emulator.load_figures import CallOutcome, LoadPart, summarize
from vobiz_stream.emulator.load_gates import LoadGates, check_gates
from vobiz_stream.emulator.load_html import calls_up, load_report_html
from vobiz_stream.emulator.load_options import LoadOptions
from vobiz_stream.emulator.load_profiles import (
    SPIKE_BASE,
    LoadProfile,
    profile_offset,
    start_offset,
)

CALLS, RATE = 400, 20.0


def offsets(profile: LoadProfile) -> np.ndarray:
    return np.array([profile_offset(profile, i, CALLS, RATE) for i in range(CALLS)])


@pytest.mark.parametrize("profile", list(LoadProfile))
def test_every_profile_starts_each_call_once_in_order(profile: LoadProfile) -> None:
    starts = offsets(profile)
    assert starts[0] == 0 and np.all(np.diff(starts) > 0)


def test_steady_and_soak_hold_the_rate() -> None:
    for profile in (LoadProfile.STEADY, LoadProfile.SOAK):
        assert list(offsets(profile)) == [start_offset(i, RATE) for i in range(CALLS)]


def test_a_ramp_climbs_evenly_to_the_rate() -> None:
    starts = offsets(LoadProfile.RAMP)
    total = 2 * CALLS / RATE
    assert starts[-1] == pytest.approx(total, rel=0.01)
    per_second = np.histogram(starts, bins=int(total), range=(0, total))[0]
    # Starts per second grow in step with time: the last second is near the rate, the first
    # one near nothing, the middle one near half.
    assert per_second[-1] == pytest.approx(RATE, abs=2)
    assert per_second[0] <= 2
    assert per_second[len(per_second) // 2] == pytest.approx(RATE / 2, abs=2)


def test_a_spike_surges_to_the_rate_and_back() -> None:
    starts = offsets(LoadProfile.SPIKE)
    quarter = CALLS // 4
    base = RATE * SPIKE_BASE
    calm = np.diff(starts[:quarter])
    surge = np.diff(starts[quarter : CALLS - quarter])
    after = np.diff(starts[CALLS - quarter :])
    assert np.mean(calm) == pytest.approx(1 / base, rel=0.05)
    assert np.mean(surge) == pytest.approx(1 / RATE, rel=0.05)
    assert np.mean(after) == pytest.approx(1 / base, rel=0.05)


def test_the_load_deadline_follows_the_profiles_last_start() -> None:
    steady = LoadOptions(calls=CALLS, rate=RATE, duration=5, grace=1)
    ramp = LoadOptions(calls=CALLS, rate=RATE, duration=5, grace=1, profile=LoadProfile.RAMP)
    assert steady.deadline == pytest.approx(CALLS / RATE + 6, abs=0.1)
    assert ramp.deadline == pytest.approx(2 * CALLS / RATE + 6, abs=0.1)


def outcome(
    started: float,
    first_audio: float | None = 0.5,
    responses: tuple[float, ...] = (),
    underruns: tuple[float, ...] = (),
    failure: str | None = None,
) -> CallOutcome:
    return CallOutcome(
        completed=failure is None,
        failure=failure,
        end_reason=None if failure else "hangup",
        frames_sent=100,
        late_frames=0,
        first_audio=None if failure else first_audio,
        underruns=underruns,
        started_at=started,
        ended_at=started + 2,
        responses=responses,
    )


def outcomes() -> list[CallOutcome]:
    calls = [outcome(i * 0.5, 0.2 + i * 0.1, (0.4 + i * 0.1,)) for i in range(18)]
    calls.append(outcome(9.0, underruns=(0.04,)))
    calls.append(outcome(9.5, failure="answer URL returned HTTP 503"))
    return calls


def test_gates_say_what_was_measured_against_their_limit() -> None:
    gates = LoadGates(setup_success=99, first_audio_p95_ms=2000, response_p95_ms=1500, gap_rate=1)
    results = {result.name: result for result in check_gates(gates, outcomes())}
    assert (
        str(results["setup success"])
        == "FAIL setup success: 95.0 % (19 of 20 calls) (limit >= 99 %)"
    )
    assert results["p95 first audio"].passed
    assert results["p95 first audio"].measured == "1810 ms over 19"
    assert not results["p95 response"].passed
    assert results["p95 response"].measured == "2015 ms over 18"
    assert str(results["gap rate"]) == (
        "FAIL gap rate: 5.3 % (1 of 19 calls had a mid-utterance gap) (limit <= 1 %)"
    )


def test_a_response_gate_without_any_response_fails_and_says_why() -> None:
    [result] = check_gates(LoadGates(response_p95_ms=1500), [outcome(0.0)])
    assert not result.passed
    assert result.measured == "no response measured (it needs --scenario with caller turns)"


def test_calls_up_counts_the_calls_running_at_each_moment() -> None:
    points = calls_up([outcome(0.0), outcome(1.0), outcome(5.0)])
    up_at = {at: count for at, count in points}  # the last point at each moment
    assert up_at[1.0] == 2 and up_at[2.0] == 1 and up_at[3.0] == 0 and up_at[5.0] == 1


def test_the_html_report_is_self_contained_and_escapes_what_came_from_outside() -> None:
    options = LoadOptions(calls=20, rate=2, profile=LoadProfile.SPIKE)
    part = LoadPart(outcomes(), array("d", [0.001] * 10), 1.0, 10.0)
    summary = summarize("http://127.0.0.1:9/<script>alert(1)</script>", options, [part], 10.0)
    results = check_gates(LoadGates(setup_success=99), summary.outcomes)
    page = load_report_html(summary, results)
    assert page.count("<svg ") == 2
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)=", page)  # nothing fetched
    assert "FAIL: vobiz-stream load: 20 calls, profile spike, 19 completed, 1 failed" in page
    # One dot per call with a first audio, one per response.
    assert page.count('fill="#1f77b4"') == 19 + 1  # the dots and the legend
    assert page.count('fill="#ff7f0e"') == 18 + 1
    assert "outcomes" not in summary.to_json()
