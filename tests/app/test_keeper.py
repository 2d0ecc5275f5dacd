"""HandlingLatency: the per-frame handling latency histogram the server reports on ``/stats``.

Frames are noted with due times set against the real wall clock (as the server notes them), so
each latency is what the test chose plus the few microseconds the test itself takes.
"""

from __future__ import annotations

import math
import time
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.app import keeper
from vobiz_stream.app.keeper import HandlingLatency


def due(late_ms: float) -> int:
    """An epoch-millisecond due time (whole, as on the wire) at least ``late_ms`` ago."""
    return math.floor(time.time() * 1000 - late_ms)


def test_nothing_noted_reports_no_percentiles() -> None:
    latency = HandlingLatency()
    assert latency.summary() == {
        "count": 0,
        "p50": None,
        "p99": None,
        "max": None,
        "unplaced": 0,
    }
    latency.note(None)  # a frame without a timestamp counts as handled, not as a latency
    assert (latency.frames, latency.count) == (1, 0)


def test_percentiles_are_the_upper_edges_of_their_tenth_of_a_millisecond_bins() -> None:
    latency = HandlingLatency()
    for late_ms in range(1, 101):  # 1, 2, ... 100 ms late, each once
        latency.note(due(late_ms))  # late by late_ms up to late_ms + 1
    summary = latency.summary()
    assert summary["count"] == latency.frames == 100
    assert summary["p50"] is not None and summary["p99"] is not None
    assert summary["max"] is not None
    # The 50th of 100 is 50 ms late (a bin edge above it); a busy machine may add a little.
    assert 50.0 < summary["p50"] <= 52.0
    assert 99.0 < summary["p99"] <= 101.5
    assert 100.0 <= summary["max"] <= 105.0


def test_early_frames_count_as_zero_and_very_late_ones_report_the_max() -> None:
    latency = HandlingLatency()
    latency.note(due(-50))  # stamped ahead of this clock (another machine's)
    assert latency.percentile(1.0) == pytest.approx(0.1)  # the first bin
    for _ in range(99):
        latency.note(due(20_000))  # 20 s late: past the last bin
    p99 = latency.percentile(0.99)
    assert p99 is not None and p99 == latency.summary()["max"]
    assert 20_000 <= p99 < 20_100


def test_timestamps_too_far_from_now_are_counted_apart() -> None:
    latency = HandlingLatency()
    for _ in range(10):
        latency.note(due(3))
    limit = HandlingLatency.PLAUSIBLE_MS
    for wild in (-(2**63), 2**64 - 1, due(limit + 1000), due(-limit - 1000)):
        latency.note(wild)
    latency.note(due(limit - 1000))  # late, but a due time all the same
    latency.note(due(-50))  # a little ahead: another machine's clock
    summary = latency.summary()
    assert (summary["count"], summary["unplaced"], latency.frames) == (12, 4, 16)
    assert summary["max"] is not None and limit - 1000 <= summary["max"] < limit
    assert summary["p50"] is not None and summary["p50"] < 10


@given(
    bins=st.lists(
        st.one_of(st.integers(0, 3000), st.integers(995, 1005), st.integers(99_990, 120_000)),
        min_size=1,
        max_size=300,
    ),
    fraction=st.sampled_from([0.001, 0.5, 0.9, 0.99, 1.0]),
)
def test_percentiles_match_a_cumulative_search_of_the_whole_histogram(
    bins: list[int], fraction: float
) -> None:
    latency = HandlingLatency()
    clock = [0.0]
    with mock.patch.object(keeper, "_wall_clock", lambda: clock[0]):
        for index in bins:  # each frame noted in the middle of its bin
            clock[0] = (1_000_000 + (index + 0.5) * HandlingLatency.BIN_MS) / 1000
            latency.note(1_000_000)
    histogram = np.bincount(np.minimum(bins, HandlingLatency.BINS), minlength=HandlingLatency.BINS)
    wanted = max(1, math.ceil(fraction * len(bins)))
    expected = int(np.searchsorted(np.cumsum(histogram), wanted))
    if expected >= HandlingLatency.BINS:
        assert latency.percentile(fraction) == round(latency.max_ms, 3)
    else:
        assert latency.percentile(fraction) == round((expected + 1) * HandlingLatency.BIN_MS, 1)
